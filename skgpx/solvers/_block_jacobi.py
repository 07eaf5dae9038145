"""Block-Jacobi preconditioner over local blocks of the data: ``P = blockdiag(K_bb + diag(s_b))``.

The rows are split into ``G = 2^L`` blocks of at most ``block_size`` nearby points by recursive
median bisection along the widest axis in length-scale units (:func:`local_blocks`: traced,
shapes fixed by ``n`` and ``block_size``), and each block of the exact kernel plus noise is
factored once. ``P`` is the part of ``A = K + diag(s)`` (or of an interpolated ``W K_UU W^T +
diag(s)``) that couples close points, where a rough kernel's dense along-track or clustered
samples make ``A`` ill-conditioned; CG then only resolves the coupling between blocks.

Like :class:`skgpx.solvers.PivotedCholeskyPreconditioner` it gives ``P^{-1} V``, ``P V``,
``log|P|`` and draws ``z ~ N(0, P)``, which is what preconditioned SLQ (:mod:`skgpx.solvers._slq`)
and the stochastic gradient need. Memory ``n * B`` floats (``B`` the block size), products
``O(n B)`` per column.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["BlockJacobiPreconditioner", "block_jacobi", "local_blocks"]


def _levels(n: int, block_size: int) -> tuple[int, int]:
    """``(L, B)``: ``2^L`` blocks of ``B = ceil(n / 2^L) <= block_size`` rows."""
    L = max(0, math.ceil(math.log2(max(n, 1) / max(int(block_size), 1))))
    return L, -(-n // 2**L)


def local_blocks(X, scales, block_size: int):
    """Indices ``(G, B)`` into the rows of ``X`` ``(n, d)``: ``G = 2^L`` blocks of at most
    ``block_size`` rows, each a cell of a recursive median bisection along the widest axis of
    ``X / scales`` (``scales``: host ``(d,)``, ``inf`` where the axis does not count). Padding
    entries hold ``n``."""
    n, d = X.shape
    L, B = _levels(n, block_size)
    N = (2**L) * B
    inv = np.where(np.isfinite(np.asarray(scales, dtype=np.float64)), 1.0 / np.asarray(scales, dtype=np.float64), 0.0)
    Z = jnp.concatenate([X * jnp.asarray(inv, X.dtype), jnp.zeros((1, d), X.dtype)])
    idx = jnp.concatenate([jnp.arange(n), jnp.full((N - n,), n)])
    for level in range(L):
        I = idx.reshape(2**level, -1)
        valid = (I < n)[..., None]
        Zb = Z[I]  # (parts, size, d)
        width = jnp.max(jnp.where(valid, Zb, -jnp.inf), axis=1) - jnp.min(jnp.where(valid, Zb, jnp.inf), axis=1)
        axis = jnp.argmax(jnp.where(jnp.isfinite(width), width, -1.0), axis=1)
        key = jnp.take_along_axis(Zb, axis[:, None, None], axis=2)[..., 0]
        key = jnp.where(I < n, key, jnp.inf)  # padding sorts last and ends in the upper half
        idx = jnp.take_along_axis(I, jnp.argsort(key, axis=1), axis=1).reshape(N)
    return idx.reshape(2**L, B)


class BlockJacobiPreconditioner(eqx.Module):
    """``P = blockdiag(C_b C_b^T)`` over :func:`local_blocks` (padding rows: identity)."""

    index: jax.Array  # (G, B) rows of each block; n marks padding
    position: jax.Array  # (n,) flat position of each row in `index`
    chol: jax.Array  # (G, B, B) lower Cholesky factors

    def _blocks(self, V):
        n, k = V.shape
        return jnp.concatenate([V, jnp.zeros((1, k), V.dtype)])[self.index]  # (G, B, k)

    def _rows(self, Vb):
        return Vb.reshape(-1, Vb.shape[-1])[self.position]

    def solve(self, V):
        """``P^{-1} V`` for ``V`` ``(n, k)``."""
        return self._rows(jax.vmap(lambda c, v: jax.scipy.linalg.cho_solve((c, True), v))(self.chol, self._blocks(V)))

    def mm(self, V):
        """``P V`` for ``V`` ``(n, k)``."""
        C = self.chol
        return self._rows(C @ (jnp.swapaxes(C, 1, 2) @ self._blocks(V)))

    def logdet(self):
        """``log|P|`` (padding contributes ``log 1``)."""
        return 2.0 * jnp.sum(jnp.log(jnp.diagonal(self.chol, axis1=1, axis2=2)))

    def sample(self, key, k: int):
        """``k`` columns ``z ~ N(0, P)``, shape ``(n, k)``."""
        G, B, _ = self.chol.shape
        return self._rows(self.chol @ jax.random.normal(key, (G, B, k), self.chol.dtype))


def block_jacobi(kernel, X, s, scales, block_size: int) -> BlockJacobiPreconditioner:
    """Factor ``K(X_b, X_b) + diag(s_b)`` on the blocks of :func:`local_blocks` (``kernel`` its
    own White part included, ``s`` ``(n,)`` the added noise). A relative jitter of ``1e-10`` of
    the largest diagonal keeps a block of duplicated noise-free points factorable; ``P`` only
    needs to be SPD."""
    n = X.shape[0]
    index = local_blocks(X, scales, block_size)
    N = index.size
    position = jnp.zeros((n,), jnp.int32).at[index.reshape(-1)].set(jnp.arange(N, dtype=jnp.int32), mode="drop")
    Xp = jnp.concatenate([X, X[:1]])
    sp = jnp.concatenate([s, jnp.zeros((1,), s.dtype)])

    def factor(ix):
        valid = ix < n
        K = kernel.gram(Xp[ix]) + jnp.diag(sp[ix])
        K = jnp.where(valid[:, None] & valid[None, :], K, jnp.eye(ix.shape[0], dtype=K.dtype))
        jitter = 1e-10 * jnp.max(jnp.diagonal(K))
        return jnp.linalg.cholesky(K + jnp.diag(jnp.where(valid, jitter, 0.0)))

    return BlockJacobiPreconditioner(index, position, jax.vmap(factor)(index))
