"""Pivoted partial Cholesky preconditioner ``P = L L^T + diag(s)`` read from kernel rows.

Harbrecht, Peters & Schneider (2012), Algorithm 1: at step ``j`` pick the pivot
``p`` with the largest remaining diagonal ``d_p`` of the error ``K - L L^T``, read
*one* kernel row ``K(x_p, X)`` and set

    l_j = (K(x_p, X) - L[:, :j] L[p, :j]^T) / sqrt(d_p),     d <- d - l_j^2.

So a rank-``r`` factor costs ``r`` kernel rows (``O(r n)`` kernel evaluations) and
``O(r^2 n)`` flops; no matrix-vector product with the full Gram matrix is used.
``trace(K - L L^T) = sum(d)`` is known at every step and drives the adaptive rank.

Each greedy step is a matrix-vector product with the whole ``(n, r)`` factor, so the
rank-``r`` factor reads it ``r`` times (memory bound). :func:`rp_cholesky` is the
blocked alternative, accelerated randomly pivoted Cholesky (Epperly, Tropp & Webber
2024, "Embrace rejection", Alg. 2; sequential RPCholesky: Chen, Epperly, Tropp & Webber
2023): pivots are *sampled* from ``d / sum(d)`` a block at a time, screened by rejection
sampling on a small ``B x B`` block, and the accepted ones are added with one kernel
block and one GEMM per round.

The preconditioner is applied by Woodbury (``D = diag(s)``, ``C = I + L^T D^{-1} L``):

    P^{-1} V = D^{-1} V - D^{-1} L C^{-1} L^T D^{-1} V,      log|P| = sum(log s) + log|C|.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax import lax

from ._matmul import t_matmul
from ._woodbury import capacitance_cholesky, lemma_logdet, woodbury_apply

__all__ = ["PivotedCholeskyPreconditioner", "pivoted_cholesky", "rp_cholesky", "pivot_column", "sample_pivots"]

# Elements of one row chunk of ``L`` when accumulating ``L^T D^{-1} L`` (16 MiB in float64).
_CORE_CHUNK_ELEMENTS = 2**21
# Rounds in a row without an accepted pivot after which rp_cholesky gives up (the
# sampled residual mass is then rounding noise; see rp_cholesky's docstring).
_MAX_EMPTY_ROUNDS = 3


class PivotedCholeskyPreconditioner(eqx.Module):
    """``P = L L^T + diag(s)`` with its Woodbury solve, log-determinant and ``N(0, P)`` samples."""

    L: jax.Array  # (n, r_max); columns past `rank` are zero
    s: jax.Array  # (n,)
    rank: jax.Array  # int scalar: columns actually computed
    trace_error: jax.Array  # trace(K - L L^T)
    core_chol: jax.Array  # Cholesky factor of C = I + L^T D^{-1} L, (r_max, r_max)

    def __init__(self, L, s, rank, trace_error):
        self.L, self.s, self.rank, self.trace_error = L, s, rank, trace_error
        self.core_chol = capacitance_cholesky(_core_matrix(L, s))

    def solve(self, V):
        """``P^{-1} V`` for ``V`` ``(n, k)`` (Woodbury, ``O(n r k)``)."""
        if self.L.shape[1] == 0:
            return V / self.s[:, None]
        return woodbury_apply(self.core_chol, self.s, V, lambda W: t_matmul(self.L, W), lambda U: self.L @ U)

    def mm(self, V):
        """``P @ V`` for ``V`` ``(n, k)``."""
        return self.L @ t_matmul(self.L, V) + self.s[:, None] * V

    def logdet(self):
        """``log|L L^T + diag(s)|`` by the matrix determinant lemma."""
        return lemma_logdet(self.core_chol, self.s)

    def sample(self, key, k: int):
        """``k`` columns ``z = L e1 + sqrt(s) e2 ~ N(0, P)``, shape ``(n, k)``."""
        n, r = self.L.shape
        k1, k2 = jax.random.split(key)
        Z = jnp.sqrt(self.s)[:, None] * jax.random.normal(k2, (n, k), self.s.dtype)
        if r:
            Z = Z + self.L @ jax.random.normal(k1, (r, k), self.s.dtype)
        return Z


def _core_matrix(L, s):
    """``L^T diag(s)^{-1} L`` accumulated over row chunks of ``L``.

    ``(L / s).T @ L`` would hold a scaled copy of ``L`` (as large as ``L`` itself: 3.2 GB
    at ``n = 1e5``, ``r = 4000``); chunks of about 2M entries keep the temporary small
    while each step is still a GEMM.
    """
    n, r = L.shape
    C = jnp.zeros((r, r), L.dtype)
    if r == 0 or n == 0:
        return C
    chunk = int(max(1, min(n, _CORE_CHUNK_ELEMENTS // r)))
    n_full = n // chunk

    def add(C, Lc, sc):
        return C + (Lc / sc[:, None]).T @ Lc

    def body(i, C):
        start = i * chunk
        return add(C, lax.dynamic_slice_in_dim(L, start, chunk), lax.dynamic_slice_in_dim(s, start, chunk))

    C = lax.fori_loop(0, n_full, body, C)
    if n_full * chunk < n:  # the ragged last chunk, static shape
        C = add(C, L[n_full * chunk :], s[n_full * chunk :])
    return C


def pivot_column(L, d, p, row, tol=None, fresh=False):
    """One step of a partial Cholesky factorisation at pivot ``p`` (the module docstring's
    update; Chen, Epperly, Tropp & Webber 2023, Alg. 1, lines 4-6).

    **Arguments:** ``L`` ``(n, r)`` the columns so far (unused ones zero), ``d`` ``(n,)`` the
    residual diagonal, ``p`` the pivot, ``row`` ``(n,)`` the kernel row ``K(x_p, X)``,
    ``tol`` (the column is zero unless the pivot value exceeds it; ``None``: no test), and
    ``fresh`` (pivot value from the residual column itself instead of ``d[p]``).

    **Returns:** ``(l, d)``: the new column ``(row - L L[p]) / sqrt(pivot value)`` and the
    updated residual diagonal ``max(d - l^2, 0)``, exactly 0 at ``p``.
    """
    g = row - L @ L[p]
    piv = g[p] if fresh else d[p]
    if tol is None:
        l = g / jnp.sqrt(piv)
    else:
        ok = piv > tol
        l = jnp.where(ok, g / jnp.sqrt(jnp.where(ok, piv, 1.0)), 0.0)
    return l, jnp.maximum(d - l * l, 0.0).at[p].set(0.0)


def sample_pivots(d, u):
    """Indices drawn with probability ``d / sum(d)`` from uniforms ``u`` (inverse CDF; entries
    with ``d = 0`` are never drawn)."""
    cdf = jnp.cumsum(d)
    return jnp.minimum(jnp.searchsorted(cdf, u * cdf[-1], side="right"), d.shape[0] - 1)


def pivoted_cholesky(kernel, X, s, max_rank: int, trace_tol: float = 0.0) -> PivotedCholeskyPreconditioner:
    """Rank-adaptive pivoted Cholesky of ``K(X, X)`` (noise-free) as a preconditioner.

    Stops at ``max_rank`` (static: the buffer size) or as soon as
    ``trace(K - L L^T) <= trace_tol * sum(s)``, i.e. when the neglected part of the
    kernel is small against the noise it is added to.

    **Arguments:** ``kernel`` (skgpx kernel), ``X`` ``(n, d)``, ``s`` ``(n,)`` the diagonal
    added to ``K`` (noise plus ``White``), ``max_rank``, ``trace_tol``.
    """
    from ..operators import cross_diagonal

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
        l, d = pivot_column(L, d, p, kernel.cross(X[p][None], X)[0])
        return j + 1, L.at[:, j].set(l), d

    j, L, d = jax.lax.while_loop(cond, body, (jnp.asarray(0), L, d0))
    return PivotedCholeskyPreconditioner(L, s, j, jnp.sum(d))


def _rejection_walk(S, d_old, u, floor, room):
    """Screen ``B`` sampled pivots in order (Epperly, Tropp & Webber 2024, Alg. 2, lines 6-12).

    Candidate ``i`` is accepted when ``u_i d_old_i < res_i``, where ``res_i`` is its
    residual ``S_ii`` after eliminating the candidates accepted before it, ``res_i`` is
    above ``floor`` and fewer than ``room`` have been accepted. A duplicate of an accepted
    candidate has ``res_i = 0`` and is rejected.

    **Returns:** ``F`` ``(B, B)`` whose column ``j`` is the Cholesky column of the ``j``-th
    accepted candidate over all ``B`` candidates (so ``F[order[:m]]`` is the lower Cholesky
    factor of the accepted block), ``order`` ``(B,)`` the accepted slots (first ``m``), ``m``.
    """
    B = S.shape[0]

    def step(i, c):
        F, order, m = c
        f = F[i]  # columns >= m are still zero
        res = S[i, i] - jnp.dot(f, f)
        ok = (u[i] * d_old[i] < res) & (res > floor) & (m < room)
        col = (S[:, i] - F @ f) / jnp.sqrt(jnp.where(ok, res, 1.0))
        F = F.at[:, m].set(jnp.where(ok, col, 0.0))
        order = order.at[m].set(jnp.where(ok, i, 0))
        return F, order, m + ok.astype(m.dtype)

    init = (jnp.zeros_like(S), jnp.zeros(B, jnp.int32), jnp.asarray(0, jnp.int32))
    return lax.fori_loop(0, B, step, init)


def _rp_cholesky(kernel, X, s, max_rank, trace_tol, key, block_size, mask=None, rank_cap=None):
    """:func:`rp_cholesky`'s loop; also returns the number of rounds (for the acceptance rate)."""
    from ..operators import cross_diagonal

    n = X.shape[0]
    r_max = int(min(max_rank, n))
    d0 = cross_diagonal(kernel, X)
    if mask is not None:  # padded rows: never drawn, zero rows of L
        d0, s = jnp.where(mask, d0, 0.0), jnp.where(mask, s, 0.0)
    if r_max == 0:
        return jnp.zeros((n, 0), d0.dtype), jnp.asarray(0, jnp.int32), d0, jnp.asarray(0, jnp.int32)
    # Candidates per round: block_size, or r_max rounded up to a multiple of 8 below it, so
    # that a buffer of n rows and one of its padded size (skgpx.gp._fit.bucket) draw alike.
    B = int(max(1, min(block_size, -(-r_max // 8) * 8)))
    width = max(r_max, B)  # columns of L; those past r_max stay zero
    L = jnp.zeros((n, width), d0.dtype)
    cap = r_max if rank_cap is None else jnp.minimum(r_max, rank_cap).astype(jnp.int32)
    stop = trace_tol * jnp.sum(s)
    floor = 1e-12 * jnp.max(d0)
    slots = jnp.arange(B)

    def cond(c):
        rank, _, d, _, empty = c
        return (rank < cap) & (jnp.sum(d) > stop) & (jnp.max(d) > floor) & (empty < _MAX_EMPTY_ROUNDS)

    def body(c):
        rank, L, d, t, empty = c
        k_idx, k_u = jax.random.split(jax.random.fold_in(key, t))
        # B i.i.d. pivots with P(i) = d_i / sum(d).
        idx = sample_pivots(d, jax.random.uniform(k_idx, (B,), d.dtype))
        # Residual columns of the candidates: one kernel block and one GEMM.
        G = kernel.cross(X, X[idx], mask) - L @ L[idx].T
        S = G[idx]
        S = 0.5 * (S + S.T)
        F, order, m = _rejection_walk(S, d[idx], jax.random.uniform(k_u, (B,), d.dtype), floor, cap - rank)
        # New columns G[:, acc] R^{-T} with R R^T = S[acc, acc], as one GEMM G @ W: row
        # order[j] of W is row j of R^{-T}, rejected slots are zero rows, and the padding of
        # R is the identity, so columns m..B-1 of `new` are zero. (XLA's CPU triangular
        # solve with n right-hand sides runs at a fraction of GEMM speed, hence the B x B
        # inverse.)
        acc = slots < m
        eye = jnp.eye(B, dtype=F.dtype)
        R = jnp.where(acc[:, None] & acc[None, :], jnp.tril(F[order]), eye)
        Rinv = lax.linalg.triangular_solve(R, eye, left_side=True, lower=True)
        W = jnp.zeros_like(R).at[jnp.where(acc, order, B)].set(Rinv.T, mode="drop")
        new = G @ W
        # Write at column `rank` without clamping: the block starts at most at width - B, and
        # m <= width - rank means the last (rank - start) columns of `new` are zero, so
        # rolling them to the front keeps the columns already in L[:, start:rank].
        start = jnp.minimum(rank, width - B)
        block = lax.dynamic_slice_in_dim(L, start, B, axis=1) + jnp.roll(new, rank - start, axis=1)
        L = lax.dynamic_update_slice_in_dim(L, block, start, axis=1)
        d = jnp.maximum(d - jnp.sum(new * new, axis=1), 0.0)
        # The sampled points' residuals are known exactly from S; below the floor they are
        # rounding noise and are dropped, so they are not drawn again.
        res = jnp.diagonal(S) - jnp.sum(F * F, axis=1)
        d = d.at[idx].set(jnp.where(res > floor, res, 0.0))
        d = d.at[jnp.where(acc, idx[order], n)].set(0.0, mode="drop")
        empty = jnp.where(m == 0, empty + 1, 0)
        return rank + m, L, d, t + 1, empty

    zero = jnp.asarray(0, jnp.int32)
    rank, L, d, rounds, _ = lax.while_loop(cond, body, (zero, L, d0, zero, zero))
    return L, rank, d, rounds


@eqx.filter_jit
def rp_cholesky(
    kernel, X, s, max_rank: int, trace_tol: float = 0.0, *, key, block_size: int = 64, mask=None, rank_cap=None
) -> PivotedCholeskyPreconditioner:
    """Accelerated randomly pivoted Cholesky of ``K(X, X)`` (noise-free) as a preconditioner.

    Epperly, Tropp & Webber (2024), Alg. 2. Each round draws ``block_size`` pivots i.i.d.
    with probability ``d_i / sum(d)`` (``d`` the diagonal of ``K - L L^T``), computes
    their residual columns ``G = K(X, X_idx) - L L_idx^T`` (one ``(n, B)`` kernel block and
    one GEMM), accepts candidate ``i`` when ``u_i d_i`` is below its residual after the
    candidates accepted before it (``u_i`` uniform; duplicates and candidates already
    explained by the accepted ones are rejected), and appends ``G_acc R^{-T}``, with
    ``R R^T`` the accepted block of ``G``. The pivots follow the distribution of sequential
    RPCholesky (Chen, Epperly, Tropp & Webber 2023). For rank ``r`` and acceptance rate
    ``a`` (about 0.9 at ``block_size=64`` on Matérn problems) the cost is ``r / a`` kernel
    columns and ``2 n max_rank r / a`` flops, all in GEMMs over the whole buffer. The
    ``trace_tol`` test runs between rounds, so the rank may pass the greedy stopping point by
    up to ``block_size - 1``.

    Stops as :func:`pivoted_cholesky` does: at ``max_rank`` (static: the buffer size), when
    ``trace(K - L L^T) <= trace_tol * sum(s)``, or when ``max(d) <= 1e-12 max(diag K)``;
    also, as a safeguard, after 3 rounds in a row accept nothing (every candidate drawn was
    at rounding level). The same ``key`` gives the same factor.

    **Arguments:** ``kernel`` (skgpx kernel), ``X`` ``(n, d)``, ``s`` ``(n,)`` the diagonal
    added to ``K`` (noise plus ``White``), ``max_rank``, ``trace_tol``, ``key`` a JAX PRNG
    key, ``block_size`` the candidates per round (static; capped at ``max_rank`` rounded up to
    a multiple of 8). Compiled once per shapes, ``max_rank``, ``trace_tol`` and ``block_size``.
    ``mask`` (``None`` or boolean ``(n,)``): real rows of a padded ``X``; padded rows are never
    pivots, have zero rows in ``L`` and unit ``s`` (the preconditioner of the identity block),
    and the stopping rule sums the real rows only. ``rank_cap`` (``None`` or a traced int):
    a further cap on the rank below ``max_rank`` (the buffer).

    **Returns:** a :class:`PivotedCholeskyPreconditioner`.
    """
    L, rank, d, _ = _rp_cholesky(kernel, X, s, max_rank, trace_tol, key, block_size, mask, rank_cap)
    if mask is not None:
        s = jnp.where(mask, s, 1.0)
    return PivotedCholeskyPreconditioner(L, s, rank, jnp.sum(d))
