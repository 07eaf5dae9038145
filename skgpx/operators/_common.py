"""Pieces shared by the kernel operators: the noise diagonal and the tiled cross product.

The noisy Gram matrix of a GP is ``K(X, X) + diag(s)`` where ``s`` is the
observation noise plus any diagonal-only kernel term (``White``). The
vectorised ``kernel.cross`` has no ``White`` contribution (as scikit-learn's
``k(X, Y)``), so :func:`noise_diagonal` adds ``kernel.diag(X) - diag(cross(X, X))``
to the noise: with it, ``cross`` rows plus ``s`` reproduce ``kernel.gram(X) + diag(noise)``
exactly, without ever forming the Gram matrix.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "noise_diagonal", "cross_diagonal", "tiled_cross_mm", "symmetric_tiled_mm", "auto_tile_size", "auto_block_size",
    "block_pairs", "row_tiles",
]

# Elements of one kernel tile (rows x n). 2^22 float64 = 32 MiB: large enough for a
# GEMM-sized step, small enough that the handful of temporaries per tile stay in memory.
_TILE_ELEMENTS = 2**22


def auto_tile_size(n_rows: int, n_cols: int) -> int:
    """Rows per tile so that one ``(tile, n_cols)`` kernel block holds about 4M entries."""
    t = max(8, _TILE_ELEMENTS // max(n_cols, 1))
    return int(min(t, max(n_rows, 1)))


def auto_block_size(n: int) -> int:
    """Side of the square blocks of :func:`symmetric_tiled_mm`: ``n`` split into
    ``ceil(n / 1024)`` near-equal blocks (about 1M kernel entries each, little padding;
    blocks of 512 to 2048 rows timed within 25% of each other, docs/performance.md)."""
    nb = max(1, math.ceil(n / 1024))
    return int(math.ceil(n / nb))


def block_pairs(n: int, block_size: int | None = None):
    """Square blocks of ``n`` rows and their upper-triangle pairs: ``(block, I, J)`` with
    ``I <= J`` the block indices (arrays of length ``nb (nb + 1) / 2``) to ``lax.scan`` over."""
    Bk = auto_block_size(n) if block_size is None else int(min(block_size, n))
    I, J = np.triu_indices(math.ceil(n / Bk))
    return Bk, jnp.asarray(I), jnp.asarray(J)


def row_tiles(A, tile_size: int, fill=None):
    """``A`` ``(m, ...)`` as ``(n_tiles, tile_size, ...)``, padded at the end.

    Padded rows are copies of ``A[0]`` (``fill=None``: finite kernel inputs) or ``fill``
    (e.g. 0.0 for weights that must contribute nothing). Outputs of padded rows are
    dropped by the caller with ``[:m]``.
    """
    m = A.shape[0]
    n_tiles = math.ceil(m / tile_size)
    pad = n_tiles * tile_size - m
    if pad:
        extra = jnp.broadcast_to(A[:1], (pad,) + A.shape[1:]) if fill is None else jnp.full(
            (pad,) + A.shape[1:], fill, A.dtype)
        A = jnp.concatenate([A, extra], axis=0)
    return A.reshape((n_tiles, tile_size) + A.shape[1:])


def cross_diagonal(kernel, X):
    """``diag(kernel.cross(X, X))`` evaluated row by row (``O(n)`` kernel evaluations)."""
    return jax.vmap(lambda x: kernel.cross(x[None], x[None])[0, 0])(X)


def noise_diagonal(kernel, X, noise):
    """Diagonal ``s`` with ``kernel.gram(X) + diag(noise) == cross(X, X) + diag(s)``."""
    return noise + (kernel.diag(X) - cross_diagonal(kernel, X))


def tiled_cross_mm(kernel, Xs, X, V, tile_size: int | None = None, checkpoint: bool = True):
    """``kernel.cross(Xs, X) @ V`` without forming the ``(m, n)`` matrix.

    Rows of ``Xs`` are processed in tiles of ``tile_size`` by ``lax.scan`` (one
    ``(tile, n)`` kernel block and one GEMM per step). ``Xs`` is padded to a
    multiple of the tile with copies of its first row; the padded outputs are
    discarded, so no row is dropped and gradients of padded rows are zero. With
    ``checkpoint=True`` each tile is recomputed in the backward pass, so the
    reverse-mode memory is bounded by one tile too.

    **Arguments:** ``Xs`` ``(m, d)``, ``X`` ``(n, d)``, ``V`` ``(n, k)``.
    **Returns:** ``(m, k)``.
    """
    m = Xs.shape[0]
    n = X.shape[0]
    T = auto_tile_size(m, n) if tile_size is None else int(min(tile_size, m))
    tiles = row_tiles(Xs, T)

    def block(kernel, Xt, X, V):
        return kernel.cross(Xt, X) @ V

    if checkpoint:
        block = jax.checkpoint(block)

    def step(carry, Xt):
        return carry, block(kernel, Xt, X, V)

    _, out = jax.lax.scan(step, None, tiles)
    return out.reshape(-1, V.shape[1])[:m]


def symmetric_tiled_mm(kernel, X, V, block_size: int | None = None, checkpoint: bool = True, block_weights=None):
    """``kernel.cross(X, X) @ V`` evaluating each kernel entry once, not twice.

    ``X`` is cut into ``nb`` square blocks and ``lax.scan`` runs over the
    ``nb (nb + 1) / 2`` block pairs ``I <= J``: block ``K_IJ`` is evaluated once
    and serves both ``K_IJ @ V_J`` (rows ``I``) and ``K_IJ^T @ V_I`` (rows ``J``;
    skipped on the diagonal), so a product costs about ``n^2 / 2`` kernel
    evaluations where :func:`tiled_cross_mm` costs ``n^2`` -- the kernel
    evaluations, not the GEMMs, dominate a matrix-free product on a CPU. The
    result is accumulated in place in the ``(n, k)`` carry; with
    ``checkpoint=True`` each block is recomputed in the backward pass, so
    reverse-mode memory stays ``O(block^2 + n k)``. Padded rows (copies of
    ``X[0]``) meet zero rows of ``V`` and their outputs are dropped.

    ``block_weights`` (``None`` or a symmetric ``(nb, nb)`` array, ``nb`` the number of blocks):
    block ``K_IJ`` is multiplied by ``block_weights[I, J]`` (the temporal weights of
    :class:`~skgpx.operators.TimeGroupOperator`, whose time groups are whole blocks).

    **Arguments:** ``X`` ``(n, d)``, ``V`` ``(n, k)``, ``block_size`` (rows per block;
    ``None``: :func:`auto_block_size`). **Returns:** ``(n, k)``.
    """
    n, k = V.shape
    if k == 1:  # a one-column transposed product lowers to a slow axis-0 reduction; two columns to GEMMs
        return symmetric_tiled_mm(kernel, X, jnp.pad(V, ((0, 0), (0, 1))), block_size, checkpoint,
                                  block_weights)[:, :1]
    Bk, I, J = block_pairs(n, block_size)
    Xb = row_tiles(X, Bk)
    Vb = row_tiles(V, Bk, fill=0.0)
    wts = None if block_weights is None else block_weights[I, J].astype(V.dtype)

    def pair(kernel, Xi, Xj, Vi, Vj, w):
        Kb = kernel.cross(Xi, Xj)
        if w is not None:
            Kb = w * Kb
        return Kb @ Vj, (Vi.T @ Kb).T

    if checkpoint:
        pair = jax.checkpoint(pair)

    def step(out, ijw):
        i, j, w = ijw
        to_i, to_j = pair(kernel, Xb[i], Xb[j], Vb[i], Vb[j], w)
        out = out.at[i].add(to_i)
        return out.at[j].add(jnp.where(i == j, 0.0, 1.0).astype(V.dtype) * to_j), None

    out, _ = jax.lax.scan(step, jnp.zeros_like(Vb), (I, J, wts))
    return out.reshape(-1, k)[:n]


def register_symmetric_psd(cls, diagonal) -> None:
    """Register ``cls`` with lineax as a symmetric positive semi-definite operator with no other
    structure; ``diagonal(operator)`` gives its diagonal. How it materialises is the caller's."""
    import lineax as lx

    lx.linearise.register(cls)(lambda operator: operator)
    lx.conj.register(cls)(lambda operator: operator)
    lx.diagonal.register(cls)(diagonal)
    lx.is_symmetric.register(cls)(lambda operator: True)
    lx.is_positive_semidefinite.register(cls)(lambda operator: True)
    lx.is_negative_semidefinite.register(cls)(lambda operator: False)
    for check in (lx.is_diagonal, lx.is_tridiagonal, lx.has_unit_diagonal, lx.is_lower_triangular,
                  lx.is_upper_triangular):
        check.register(cls)(lambda operator: False)
