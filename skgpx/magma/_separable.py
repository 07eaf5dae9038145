"""The task M-step with distinct hyperparameters: one small problem per task, each at its own rank.

With one ``theta_i`` per task the task M-step is ``M`` independent problems
(:func:`~._optimize.minimize_separable` runs them side by side), and the numerical
rank of ``Psi_i`` is the task's own: at 600 tasks x 450 points the tasks need from 20
to 85 greedy pivots. Each task gets the smallest rank of
:data:`~._taskcov.RANK_LADDER` above its need (0, the dense path, past the cap), and
every evaluation runs the tasks of one rank together
(:func:`~._objectives.task_objectives_and_grads` with ``rows``), skipping the tasks
whose optimisation has stopped (a few times cheaper than one rank for all tasks:
docs/performance.md); late rounds, where few tasks are still moving, cost a fraction
of that.

A task whose rank no longer suffices at its new hyperparameters (a residual above the
jitter) continues from there at the rank it now needs, and keeps the result only if
it beats its M-step start under that rank (generalised EM, per task).

With ``prior = (mean, precision)`` (a Gaussian on the log-hyperparameters, see
:mod:`._em`) each task's problem adds ``-scale * log p(theta_i)``: separable still.
:func:`laplace_covariances` then gives each task's posterior covariance of ``theta_i``
(the inverse Hessian at its optimum), which the next prior needs (:mod:`._em`).
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._objectives import task_objectives_and_grads
from ._optimize import OptimResult, minimize_separable
from ._shard import task_shards
from ._taskcov import ladder_ranks, rank_cap

__all__ = ["task_ranks", "shard_rows", "separable_m_step", "laplace_covariances"]


def task_ranks(needs, cap: int):
    """Per task, the ladder rank for its need (0: dense), from
    :func:`~._taskcov.task_needs` (``None``: no low-rank path, ``None`` returned)."""
    return None if needs is None else ladder_ranks(needs[0], cap)


def _grouped(params, data, mean, cov_m, lowrank, jitter, scale, prior=None):
    """``f(theta, needed, ranks) -> (values, grads)`` evaluating rows ``needed`` rank by rank;
    with ``prior = (mean, precision)`` each row adds ``-scale * log p(theta_i)`` (up to a constant)."""
    n_pad = data.X.shape[0]
    shards = task_shards(n_pad, data.chunk)  # each device lists the tasks of its own share

    def evaluate(theta, needed, ranks):
        theta = jnp.asarray(theta, data.y.dtype)
        pending = []
        for r in np.unique(ranks[needed]):
            sel = np.flatnonzero(needed & (ranks == r))
            rows, n_rows = shard_rows(sel, n_pad, shards)
            out = task_objectives_and_grads(
                theta, params, data, mean, cov_m, jitter, scale, lowrank, int(r), jnp.asarray(rows),
                jnp.asarray(n_rows),  # traced: any group size runs the same compiled code
            )
            pending.append((sel, out))  # all groups dispatched before the first is read back
        f = np.zeros(n_pad)
        G = np.zeros(np.shape(theta))
        for sel, (fr, Gr) in pending:
            f[sel] = np.asarray(fr)[sel]
            G[sel] = np.asarray(Gr)[sel]
        if prior is not None:
            delta = np.asarray(theta, np.float64) - prior[0]
            step = delta @ prior[1]
            f = f + float(scale) * 0.5 * np.sum(step * delta, axis=1)
            G = G + float(scale) * step
        return f, G

    return evaluate


def shard_rows(sel, n_pad: int, shards: int):
    """The tasks ``sel`` (sorted) as ``(rows (n_pad,), n_rows (shards,))``: shard ``j`` of the
    task axis lists its selected tasks first, as indices within the shard (see
    :func:`~._objectives.task_objectives_and_grads`); unused slots repeat a valid index."""
    share = n_pad // shards
    rows = np.zeros(n_pad, np.int32)
    n_rows = np.zeros(shards, np.int32)
    for j in range(shards):
        local = sel[(sel >= j * share) & (sel < (j + 1) * share)] - j * share
        n_rows[j] = local.size
        rows[j * share: (j + 1) * share] = local[0] if local.size else 0
        rows[j * share: j * share + local.size] = local
    return rows, n_rows


def separable_m_step(
    params, data, mean, cov_m, lowrank, jitter, scale, bounds, needs_at, curvature, max_iter, tol, prior=None
):
    """Distinct-hyperparameter task M-step: ``(theta_task, result, ranks, needs, curvature)``.

    ``mean``, ``cov_m``, ``lowrank``: the mean-process moments the tasks see (see
    :func:`~._objectives.task_objectives_and_grads`).

    ``needs_at(params)``: :func:`~._taskcov.task_needs` at ``params`` (``None``: every task
    dense). The returned ranks suffice for every task at the returned hyperparameters,
    whose needs are returned too (``None`` on the dense path).
    """
    needs = needs_at(params)
    n_pad = data.X.shape[0]
    evaluate = _grouped(params, data, mean, cov_m, lowrank, jitter, scale, prior)
    cap = rank_cap(data)
    plan = task_ranks(needs, cap)
    ranks = np.zeros(n_pad, int) if plan is None else plan.copy()
    start = np.asarray(params.theta_task, np.float64)

    def run(x0, rows, curvature):
        fn = lambda th, needed: evaluate(th, needed, ranks)  # noqa: E731
        return minimize_separable(fn, x0, bounds, max_iter=max_iter, tol=tol, inverse_hessians=curvature, rows=rows)

    # Padding tasks (the task axis is a whole number of chunks) are never evaluated.
    res = run(start, np.arange(n_pad) < data.n_tasks, curvature)
    x, curvature, n_iter, n_eval = res.x, res.state, res.n_iter, res.n_eval
    f_rows = res.fun_rows.copy()
    while plan is not None:
        needs = needs_at(_at(params, x))
        short = (ranks > 0) & (needs[1] > ranks)
        if not short.any():
            break
        # These tasks continue at the rank they now need; any other task is done.
        ranks[short] = task_ranks(needs, cap)[short]
        more = run(x, short, curvature)
        x, curvature = more.x, more.state
        n_iter, n_eval = n_iter + more.n_iter, n_eval + more.n_eval
        f_rows[short] = more.fun_rows[short]
        f_start = evaluate(start, short, ranks)[0]
        worse = short & ~(f_rows <= f_start)
        x[worse], f_rows[worse] = start[worse], f_start[worse]
    result = OptimResult(x, float(np.sum(f_rows)), res.fun_start, n_iter, n_eval, res.success, res.message, curvature,
                         f_rows)
    return x, result, ranks, needs, curvature  # the loop ends with needs at x


def _at(params, theta_task):
    return eqx.tree_at(lambda p: p.theta_task, params, jnp.asarray(theta_task, params.theta0.dtype))


# Central-difference step (log-hyperparameters) of the Hessians in `laplace_covariances`.
_FD_STEP = 1e-4
# Largest variance a task's Laplace covariance may give a log-hyperparameter (a flat direction).
_MAX_LAPLACE_VAR = 1e2


def laplace_covariances(params, data, mean, cov_m, lowrank, jitter, scale, x, ranks, prior=None) -> np.ndarray:
    """Per task, the Laplace covariance ``H_i^{-1}`` of ``theta_i`` at ``x`` ``(n_tasks, p, p)``.

    ``H_i``: the Hessian at ``x`` of the task's negative log posterior in the M-step of
    :func:`separable_m_step` (same arguments; ``ranks`` its returned ranks), by central
    differences of its gradients (``2 p`` evaluations of all tasks).
    The data part ``H_i - P`` (``P`` the prior precision) is projected on the positive
    semidefinite cone (an optimum on a bound can have a negative curvature), and every
    variance is capped at ``_MAX_LAPLACE_VAR`` (a direction the data do not see).
    """
    evaluate = _grouped(params, data, mean, cov_m, lowrank, jitter, scale, prior)
    n_tasks = data.n_tasks
    x = np.asarray(x, np.float64)
    p = x.shape[1]
    needed = np.arange(x.shape[0]) < n_tasks
    H = np.zeros((x.shape[0], p, p))
    for j in range(p):
        e = np.zeros(p)
        e[j] = _FD_STEP
        g_plus = evaluate(x + e, needed, ranks)[1]
        g_minus = evaluate(x - e, needed, ranks)[1]
        H[:, :, j] = (g_plus - g_minus) / (2 * _FD_STEP)
    H = 0.5 * (H + np.swapaxes(H, 1, 2))[:n_tasks] / float(scale)
    P = np.zeros((p, p)) if prior is None else np.asarray(prior[1], np.float64)
    w, V = np.linalg.eigh(H - P)
    H_post = np.einsum("tij,tj,tkj->tik", V, np.maximum(w, 0.0), V) + P
    w, V = np.linalg.eigh(H_post)
    return np.einsum("tij,tj,tkj->tik", V, 1.0 / np.maximum(w, 1.0 / _MAX_LAPLACE_VAR), V)
