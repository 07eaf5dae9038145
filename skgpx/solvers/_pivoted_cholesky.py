"""Pivoted partial Cholesky preconditioner ``P = L L^T + diag(s)`` read from kernel rows.

Harbrecht, Peters & Schneider (2012), Algorithm 1: at step ``j`` pick the pivot
``p`` with the largest remaining diagonal ``d_p`` of the error ``K - L L^T``, read
*one* kernel row ``K(x_p, X)`` and set

    l_j = (K(x_p, X) - L[:, :j] L[p, :j]^T) / sqrt(d_p),     d <- d - l_j^2.

So a rank-``r`` factor costs ``r`` kernel rows (``O(r n)`` kernel evaluations) and
``O(r^2 n)`` flops; no matrix-vector product with the full Gram matrix is used.
``trace(K - L L^T) = sum(d)`` is known at every step and drives the adaptive rank.

The preconditioner is applied by Woodbury (``D = diag(s)``, ``C = I + L^T D^{-1} L``):

    P^{-1} V = D^{-1} V - D^{-1} L C^{-1} L^T D^{-1} V,      log|P| = sum(log s) + log|C|.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = ["PivotedCholeskyPreconditioner", "pivoted_cholesky"]


class PivotedCholeskyPreconditioner(eqx.Module):
    """``P = L L^T + diag(s)`` with its Woodbury solve, log-determinant and ``N(0, P)`` samples."""

    L: jax.Array  # (n, r_max); columns past `rank` are zero
    s: jax.Array  # (n,)
    rank: jax.Array  # int scalar: columns actually computed
    trace_error: jax.Array  # trace(K - L L^T)
    core_chol: jax.Array  # Cholesky factor of C = I + L^T D^{-1} L, (r_max, r_max)

    def __init__(self, L, s, rank, trace_error):
        self.L, self.s, self.rank, self.trace_error = L, s, rank, trace_error
        r = L.shape[1]
        C = jnp.eye(r, dtype=L.dtype) + (L / s[:, None]).T @ L
        self.core_chol = jnp.linalg.cholesky(C)

    def solve(self, V):
        """``P^{-1} V`` for ``V`` ``(n, k)`` (Woodbury, ``O(n r k)``)."""
        W = V / self.s[:, None]
        if self.L.shape[1] == 0:
            return W
        U = jax.scipy.linalg.cho_solve((self.core_chol, True), self.L.T @ W)
        return W - (self.L @ U) / self.s[:, None]

    def mm(self, V):
        """``P @ V`` for ``V`` ``(n, k)``."""
        return self.L @ (self.L.T @ V) + self.s[:, None] * V

    def logdet(self):
        """``log|L L^T + diag(s)|`` by the matrix determinant lemma."""
        return jnp.sum(jnp.log(self.s)) + 2.0 * jnp.sum(jnp.log(jnp.diagonal(self.core_chol)))

    def sample(self, key, k: int):
        """``k`` columns ``z = L e1 + sqrt(s) e2 ~ N(0, P)``, shape ``(n, k)``."""
        n, r = self.L.shape
        k1, k2 = jax.random.split(key)
        Z = jnp.sqrt(self.s)[:, None] * jax.random.normal(k2, (n, k), self.s.dtype)
        if r:
            Z = Z + self.L @ jax.random.normal(k1, (r, k), self.s.dtype)
        return Z


def pivoted_cholesky(kernel, X, s, max_rank: int, trace_tol: float = 0.0) -> PivotedCholeskyPreconditioner:
    """Rank-adaptive pivoted Cholesky of ``K(X, X)`` (noise-free) as a preconditioner.

    Stops at ``max_rank`` (static: the buffer size) or as soon as
    ``trace(K - L L^T) <= trace_tol * sum(s)``, i.e. when the neglected part of the
    kernel is small against the noise it is added to.

    **Arguments:** ``kernel`` (skgpx kernel), ``X`` ``(n, d)``, ``s`` ``(n,)`` the diagonal
    added to ``K`` (noise plus ``White``), ``max_rank``, ``trace_tol``.
    """
    from ..operators._common import cross_diagonal

    n = X.shape[0]
    r_max = int(min(max_rank, n))
    d0 = cross_diagonal(kernel, X)
    L = jnp.zeros((n, r_max), d0.dtype)
    if r_max == 0:
        return PivotedCholeskyPreconditioner(L, s, jnp.asarray(0), jnp.sum(d0))
    stop = trace_tol * jnp.sum(s)
    floor = 1e-12 * jnp.max(d0)

    def cond(c):
        j, _, d = c
        return (j < r_max) & (jnp.sum(d) > stop) & (jnp.max(d) > floor)

    def body(c):
        j, L, d = c
        p = jnp.argmax(d)
        row = kernel._cross(X[p][None], X)[0]
        l = (row - L @ L[p]) / jnp.sqrt(d[p])
        d = jnp.maximum(d - l * l, 0.0).at[p].set(0.0)
        return j + 1, L.at[:, j].set(l), d

    j, L, d = jax.lax.while_loop(cond, body, (jnp.asarray(0), L, d0))
    return PivotedCholeskyPreconditioner(L, s, j, jnp.sum(d))
