"""Low-rank-plus-diagonal task covariances for smooth task kernels (Nyström, exact to the jitter).

A task covariance ``Psi_i = K_i(t_i, t_i) + sigma_i^2 I + j I`` (kernel, ``White`` noise,
jitter ``j``) of a smooth kernel has a small numerical rank: an RBF on 450 points of
``[0, 10]`` with length scale 1 is, up to ``1e-8`` of its variance on every diagonal
entry, a rank-25 matrix. Greedy pivoted Cholesky (Harbrecht, Peters & Schneider 2012)
picks pivots ``p`` until the residual diagonal falls below 1% of the jitter ``j``; then

    Psi_i ~ Phi Phi^T + D,   Phi = K(t, t_p) chol(K(t_p, t_p))^{-T},
    D = sigma^2 + j + diag(K - Phi Phi^T)

(the residual diagonal is put back, so ``diag`` is exact and the neglected part of
``K`` has no diagonal and entries below 1% of the jitter). Everything a task
needs then costs ``O(n r^2)`` instead of ``O(n^3)``, by Woodbury with
``A = I + Phi^T D^{-1} Phi = L_A L_A^T`` (``r x r``):

    Psi^{-1} = D^{-1/2} (I - U A^{-1} U^T) D^{-1/2},   U = D^{-1/2} Phi,
    log|Psi| = sum(log D) + log|A|.

The pivots are chosen on values with gradients stopped (a discrete choice); the
factor itself is a smooth function of the hyperparameters, so JAX differentiates the
M-step objective through it exactly. The rank is a static buffer size chosen on the
host (:func:`choose_task_rank`); pivots a task does not need (its residual is already
below the jitter, or it has fewer points) are inactive: zero columns of ``Phi``.
Used only when the task kernel is ``smooth + White`` and the rank is small against
the task length; otherwise Magma keeps its dense Cholesky path.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from ..solvers import capacitance_cholesky, lemma_logdet, pivot_column, woodbury_inv_quad
from ._linalg import tri_solve
from ._shard import over_tasks

__all__ = [
    "task_factor",
    "woodbury_density",
    "woodbury_trace_factor",
    "woodbury_trace_full",
    "woodbury_precision",
    "pivot_needs",
    "task_needs",
    "uniform_rank",
    "RANK_LADDER",
    "rank_cap",
    "ladder_ranks",
    "choose_task_rank",
]

# Pivoting stops when every residual diagonal entry is below this fraction of the
# jitter: the neglected part of the kernel is then well below the jitter's own size
# (measured: ELBO, E-step mean and M-step gradient errors below the effect of changing
# the jitter from 1e-8 to 1e-10 on the dense path).
_RESIDUAL_FRACTION = 1e-2

# The low-rank path is used when its (bucketed) rank is at most this fraction of the
# longest task: beyond it the dense Cholesky is about as cheap.
_MAX_RANK_FRACTION = 0.25


def has_noise_term(kernel) -> bool:
    smooth, noise = kernel.split_white()
    return smooth is not None and not (isinstance(noise, float) and noise == 0.0)


def _jitter_level(smooth, noise, x, mask, jitter):
    """``j = jitter * mean(diag Psi)`` over the real rows, as :func:`~._linalg.add_jitter`."""
    d = smooth.diag(x) + noise
    return jitter * jnp.sum(jnp.where(mask, d, 0.0)) / jnp.maximum(jnp.sum(mask), 1)


def _greedy_pivots(smooth, x, mask, rank: int, tol):
    """Pivots of greedy pivoted Cholesky of ``K(x, x)`` (real rows), ``rank`` steps.

    Returns ``(pivots (rank,), active (rank,), residual_max, pivot_values (rank,))``: a
    step is active when the residual diagonal it pivots on (its pivot value, the largest
    residual then: residuals only decrease) exceeds ``tol``.
    """
    n = x.shape[0]
    d0 = jnp.where(mask, smooth.diag(x), 0.0)

    def body(j, c):
        P, piv, L, d = c
        p = jnp.argmax(d)
        piv = piv.at[j].set(d[p])
        l, d = pivot_column(L, d, p, jnp.where(mask, smooth.cross(x[p][None], x)[0], 0.0), tol)
        return P.at[j].set(p.astype(P.dtype)), piv, L.at[:, j].set(l), d

    init = (jnp.zeros(rank, jnp.int32), jnp.zeros(rank, x.dtype), jnp.zeros((n, rank), x.dtype), d0)
    P, piv, _, d = lax.fori_loop(0, rank, body, init)
    return P, piv > tol, jnp.max(d), piv


def task_factor(kernel, x, mask, jitter, rank: int):
    """``(Phi (n, rank), D (n,))`` with ``Psi ~ Phi Phi^T + diag(D)`` for one padded task.

    ``kernel`` is the task kernel at its hyperparameters (``smooth + White``). Padded
    rows: zero rows of ``Phi`` and ``D = 1``, so they contribute nothing.
    """
    smooth, noise = kernel.split_white()
    j = _jitter_level(smooth, noise, x, mask, jitter)
    frozen = jax.tree_util.tree_map(lambda a: lax.stop_gradient(a) if eqx.is_array(a) else a, (smooth, x, j))
    P, act, _, _ = _greedy_pivots(frozen[0], frozen[1], mask, rank, _RESIDUAL_FRACTION * frozen[2])
    both = act[:, None] & act[None, :]
    xp = x[P]
    Kxp = jnp.where(mask[:, None] & act[None, :], smooth.cross(x, xp), 0.0)
    Kpp = jnp.where(both, smooth.cross(xp, xp), jnp.eye(rank, dtype=x.dtype))
    Lpp = jnp.linalg.cholesky(Kpp)
    Phi = tri_solve(Lpp, Kxp.T).T
    resid = jnp.maximum(smooth.diag(x) - jnp.sum(Phi * Phi, axis=1), 0.0)
    D = jnp.where(mask, noise + j + resid, 1.0)
    return Phi, D


# The Woodbury formulas themselves are skgpx.solvers' (capacitance factor, determinant
# lemma, quadratic form); here they are applied in the scaled form U = D^{-1/2} Phi.
def _core(Phi, D):
    """``(U, L_A)`` with ``U = D^{-1/2} Phi`` and ``L_A L_A^T = I + U^T U``."""
    U = Phi / jnp.sqrt(D)[:, None]
    return U, capacitance_cholesky(U.T @ U)


def _inv_quad(U, LA, V, D):
    """``sum over columns of v^T Psi^{-1} v`` for ``V`` ``(n, k)``."""
    return woodbury_inv_quad(LA, D, V, U.T @ (V / jnp.sqrt(D)[:, None]))


def woodbury_density(Phi, D, r):
    """``(-1/2 r^T Psi^{-1} r - 1/2 log|Psi|, (U, L_A))`` for ``Psi = Phi Phi^T + diag(D)``."""
    U, LA = _core(Phi, D)
    return -0.5 * _inv_quad(U, LA, r[:, None], D) - 0.5 * lemma_logdet(LA, D), (U, LA)


def woodbury_trace_factor(core, D, F):
    """``tr(Psi^{-1} F F^T)`` for a factor ``F`` ``(n, q)``."""
    U, LA = core
    return _inv_quad(U, LA, F, D)


def woodbury_trace_full(core, D, C):
    """``tr(Psi^{-1} C)`` for a full ``(n, n)`` ``C``: ``O(n^2 r)``."""
    U, LA = core
    s = 1.0 / jnp.sqrt(D)
    Ct = C * s[:, None] * s[None, :]
    M = U.T @ (Ct @ U)
    return jnp.trace(Ct) - jnp.trace(jax.scipy.linalg.cho_solve((LA, True), M))


def woodbury_precision(Phi, D, mask):
    """``(Psi^{-1}, log|Psi|)``: the dense inverse (padded rows and columns zero) from the
    factor, ``O(n^2 r)``, and the log-determinant (padded rows contribute ``log 1``)."""
    U, LA = _core(Phi, D)
    s = 1.0 / jnp.sqrt(D)
    Z = tri_solve(LA, U.T).T * s[:, None]  # D^{-1/2} U L_A^{-T}
    P = jnp.diag(s * s) - Z @ Z.T
    both = mask[:, None] & mask[None, :]
    return jnp.where(both, P, 0.0), lemma_logdet(LA, D)


@eqx.filter_jit
def pivot_needs(task_kernel, thetas, X, mask, jitter, cap: int):
    """Per task ``(need, need_at_jitter)``: the greedy pivots that bring every residual
    diagonal entry below 1% of the jitter (the target of :func:`task_factor`) and below
    the jitter itself (still acceptable: a rank chosen earlier is kept while it meets that);
    ``cap + 1`` when ``cap`` pivots do not get there."""

    def local(task_kernel, jitter, *tasks):  # this device's tasks (._shard)
        def one(th, x, m):
            smooth, noise = task_kernel.with_theta(th).split_white()
            j = _jitter_level(smooth, noise, x, m, jitter)
            tol = _RESIDUAL_FRACTION * j
            _, act, resid, piv = _greedy_pivots(smooth, x, m, cap, tol)
            need = jnp.where(resid <= tol, jnp.sum(act), cap + 1)
            need_j = jnp.where(resid <= j, jnp.sum(piv > j), cap + 1)
            return need, need_j

        return jax.lax.map(lambda a: one(*a), tasks, batch_size=64)

    return over_tasks(local, (thetas, X, mask), (task_kernel, jitter), out="split")


# Ranks a task may get when tasks have their own hyperparameters (and so their own
# numerical ranks): every rank in use is one more compiled objective, so few, spread out.
RANK_LADDER = (16, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024)


def rank_cap(data) -> int:
    """The largest rank worth a low-rank factor: ``_MAX_RANK_FRACTION`` of the longest real task
    (padding the task blocks changes no rank)."""
    return int(_MAX_RANK_FRACTION * data.longest)


def ladder_ranks(need, cap: int) -> np.ndarray:
    """Per task, the smallest :data:`RANK_LADDER` rank ``>= need + 4`` (a few pivots of
    slack for hyperparameters that move), or 0 (dense) when it would exceed ``cap``."""
    ladder = np.asarray(RANK_LADDER)
    want = np.asarray(need) + 4
    pos = np.searchsorted(ladder, want)
    ranks = ladder[np.minimum(pos, len(ladder) - 1)]
    return np.where((pos < len(ladder)) & (ranks <= cap), ranks, 0)


def task_needs(params, data, jitter):
    """:func:`pivot_needs` of every task at ``params`` as NumPy arrays, or ``None`` when the
    low-rank path cannot apply (no ``White`` term to stand on, no jitter, tasks too short)."""
    cap = rank_cap(data)
    if cap < 8 or float(jitter) <= 0.0 or not has_noise_term(params.task_kernel):
        return None
    thetas = params.task_thetas(data.X.shape[0])
    # Pivot buffer from the padded block size (one compilation per bucket); needs beyond
    # `cap` are refused by the callers either way.
    buffer = max(cap, int(_MAX_RANK_FRACTION * data.X.shape[1]))
    need, need_j = pivot_needs(params.task_kernel, thetas, data.X, data.mask, jnp.asarray(jitter, data.y.dtype),
                               buffer)
    return np.asarray(need), np.asarray(need_j)


def uniform_rank(needs, cap: int, current: int = 0) -> int:
    """One rank for every task from :func:`task_needs` (``None``: 0, dense).

    The largest need plus a margin of a quarter, rounded up to a multiple of 8 (few
    compiled shapes), if that is at most ``cap``. A ``current`` rank that still covers
    the need is kept (no recompilation for a rank that moved within the margin).
    """
    if needs is None or np.any(needs[0] > cap):
        return 0
    q = int(np.max(needs[0]))
    if 0 < q <= current:
        return current
    rank = int(-(-(q + q // 4 + 4) // 8) * 8)
    return rank if rank <= cap else 0


def choose_task_rank(params, data, jitter, current: int = 0) -> int:
    """The static rank for the low-rank task path at ``params``, or 0 for the dense path
    (:func:`uniform_rank` of :func:`task_needs`)."""
    return uniform_rank(task_needs(params, data, jitter), rank_cap(data), current)
