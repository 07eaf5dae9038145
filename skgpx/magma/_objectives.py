"""Magma M-step objectives and the ELBO that EM monitors.

For fixed hyper-posterior ``q(mu0) = N(m, C)`` (MAGMA.md A.2 M-step):

    J0(theta0, m0) = log N(m; m0, K0) - 1/2 tr(K0^{-1} C)                       [logL_GP_mod]
    Ji(theta_i)    = log N(y_i; m(t_i), Psi_i) - 1/2 tr(Psi_i^{-1} C_i),  C_i = P_i C P_i^T

and the evidence lower bound (A.2 "monitoring", plus the entropy constant so
that it equals ``log p(y | Theta)`` right after an E-step):

    L = J0 + sum_i Ji + 1/2 log|C| + N/2 (1 + log 2 pi).

The task sum runs over chunks of tasks with ``lax.map`` (on a mesh, each device over its
share of the tasks: :mod:`._shard`); each task term has a
hand-written reverse rule (:func:`_gaussian_term`). For the M-step, which needs the
value and the gradient together, :func:`task_terms_and_grad` differentiates each task
inside the chunk loop, so no per-task ``n_max x n_max`` residual outlives its chunk
and nothing is recomputed. (:func:`task_terms` alone, reverse-differentiated through
the loop, checkpoints its chunk body on large problems instead.)
Padded rows contribute exactly zero: ``Psi_i`` is identity there (no jitter), the
residual and ``C_i`` are masked to zero, and the ``log 2 pi`` count uses the real
number of observations. Padded grid points (``grid_mask``) contribute exactly zero too:
``K0`` is identity there, the mean process's residual and its covariance factor are
masked to zero, and ``N`` counts the real points.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..solvers import cho_inverse
from ._estep import HyperPosterior
from ._linalg import LOG_2PI, add_jitter, cho_solve, chol, logdet_from_chol, tri_solve
from ._model import MagmaParams, TaskData, grid_chol, grid_size
from ._shard import like_tasks, over_tasks
from ._taskcov import task_factor, woodbury_density, woodbury_trace_factor, woodbury_trace_full

__all__ = [
    "mean_process_term",
    "task_terms",
    "task_terms_and_grad",
    "m_step_covariance",
    "elbo",
    "gls_prior_mean",
    "mean_objective_and_grad",
    "task_objective_and_grad",
    "task_objectives_and_grads",
    "TaskMoments",
]


class TaskMoments(eqx.Module):
    """The moments of the mean process as each task sees them, when they differ by task.

    Magma's task terms take the hyper-posterior ``(mean, cov)`` on the grid and gather
    each task's rows. A variant whose tasks see different moments (MagmaClust: a
    mixture of cluster posteriors weighted by the task's memberships) passes a
    ``TaskMoments`` as ``mean`` (``cov`` unused): :meth:`at` gives task ``i``'s mean and
    covariance (or factor, when ``lowrank``) on its rows, and :meth:`pooled` the sums the
    shared-inputs, shared-hyperparameters path needs from one factor ``L`` of ``Psi``.
    """

    lowrank: bool = eqx.field(static=True)

    def at(self, i, idx, mask):
        """``(mean_i (n,), cov_i (n, n) or factor (n, q))`` for task ``i`` at grid rows ``idx``."""
        raise NotImplementedError

    def pooled(self, L, y, mask):
        """``(sum_i E||L^{-1}(y_i - mu(T))||^2, ...)``: the quadratic and trace sums over tasks."""
        raise NotImplementedError

    def subset(self, rows):
        raise NotImplementedError


def mean_process_term(theta0, m0, mean_kernel, grid, mean, cov_sqrt, jitter, grid_mask=None):
    """``J0 = log N(mean; m0, K0) - 1/2 tr(K0^{-1} C)`` with ``C = cov_sqrt cov_sqrt^T``
    (on the real points of a padded grid, ``grid_mask``)."""
    L0 = grid_chol(mean_kernel.with_theta(theta0), grid, jitter, grid_mask)
    r = mean - m0
    if grid_mask is not None:
        r, cov_sqrt = jnp.where(grid_mask, r, 0.0), jnp.where(grid_mask[:, None], cov_sqrt, 0.0)
    a = tri_solve(L0, r)
    W = tri_solve(L0, cov_sqrt)  # tr(K0^{-1} C) = ||L0^{-1} R||_F^2
    N = grid_size(grid, grid_mask)
    return -0.5 * jnp.dot(a, a) - 0.5 * logdet_from_chol(L0) - 0.5 * N * LOG_2PI - 0.5 * jnp.sum(W * W)


@jax.custom_vjp
def _gaussian_term(Psi, r, Ci):
    """``-1/2 r^T Psi^{-1} r - 1/2 log|Psi| - 1/2 tr(Psi^{-1} Ci)`` (one task's ``Ji`` without ``log 2 pi``).

    Reverse mode by hand (Rasmussen & Williams 2006, Eq. 5.9, plus the trace term):
    ``dJ/dPsi = 1/2 (a a^T - W + W Ci W)`` with ``W = Psi^{-1}``, ``a = W r``: one
    Cholesky and one :func:`~skgpx.solvers.cho_inverse` forward, two matrix products
    backward, instead of differentiating through the factorisation and the solves.
    """
    return _gaussian_term_fwd(Psi, r, Ci)[0]


def _inverse_and_density(Psi, r):
    """``(W, a, -1/2 r^T W r - 1/2 log|Psi|)`` with ``W = Psi^{-1}``, ``a = W r``."""
    L = jnp.linalg.cholesky(Psi)
    W = cho_inverse(L)
    a = W @ r
    return W, a, -0.5 * jnp.dot(r, a) - 0.5 * logdet_from_chol(L)


def _gaussian_term_fwd(Psi, r, Ci):
    W, a, value = _inverse_and_density(Psi, r)
    return value - 0.5 * jnp.sum(W * Ci), (W, a, Ci)


def _gaussian_term_bwd(res, g):
    W, a, Ci = res
    G = (0.5 * g) * (jnp.outer(a, a) - W + W @ Ci @ W)
    return G, -g * a, (-0.5 * g) * W


_gaussian_term.defvjp(_gaussian_term_fwd, _gaussian_term_bwd)


@jax.custom_vjp
def _gaussian_term_lowrank(Psi, r, F):
    """:func:`_gaussian_term` with ``Ci = F F^T`` given by its ``(n, q)`` factor.

    ``tr(Psi^{-1} Ci) = sum(F * W F)`` and ``W Ci W = (W F)(W F)^T``: ``O(n^2 q)`` instead
    of the two ``n x n`` products (``4 n^3`` flops) of the full term.
    """
    return _gaussian_term_lowrank_fwd(Psi, r, F)[0]


def _gaussian_term_lowrank_fwd(Psi, r, F):
    W, a, value = _inverse_and_density(Psi, r)
    WF = W @ F
    return value - 0.5 * jnp.sum(F * WF), (W, a, WF)


def _gaussian_term_lowrank_bwd(res, g):
    W, a, WF = res
    G = (0.5 * g) * (jnp.outer(a, a) - W + WF @ WF.T)
    return G, -g * a, -g * WF


_gaussian_term_lowrank.defvjp(_gaussian_term_lowrank_fwd, _gaussian_term_lowrank_bwd)


def _one_task(task_kernel, th, x, y, idx, mask, mean, cov, shared_inputs, jitter, lowrank=False, task_rank=0):
    """``Ji`` for one padded task (padded rows: identity in ``Psi``, zero residual and ``C_i``).

    ``cov`` is ``C`` (``N x N``), or with ``lowrank=True`` a factor ``F`` (``N x q``) of
    the covariance to use, ``F F^T``. ``task_rank > 0``: ``Psi`` as its rank-``task_rank``
    Nyström factor plus diagonal (:mod:`._taskcov`), differentiated by plain autodiff.
    """
    k = task_kernel.with_theta(th)
    r = jnp.where(mask, y - (mean if shared_inputs else mean[idx]), 0.0)
    n_i = jnp.sum(mask)
    if lowrank:
        Fi = jnp.where(mask[:, None], cov if shared_inputs else cov[idx], 0.0)
    else:
        both = mask[:, None] & mask[None, :]
        Ci = jnp.where(both, cov if shared_inputs else cov[idx[:, None], idx[None, :]], 0.0)
    if task_rank:
        Phi, D = task_factor(k, x, mask, jitter, task_rank)
        density, core = woodbury_density(Phi, D, r)
        tr = woodbury_trace_factor(core, D, Fi) if lowrank else woodbury_trace_full(core, D, Ci)
        return density - 0.5 * tr - 0.5 * n_i * LOG_2PI
    Psi = add_jitter(k.gram(x, mask), jitter, mask)
    if lowrank:
        return _gaussian_term_lowrank(Psi, r, Fi) - 0.5 * n_i * LOG_2PI
    return _gaussian_term(Psi, r, Ci) - 0.5 * n_i * LOG_2PI


# Above this many stored n_max x n_max entries (all tasks), the task objective's backward
# pass recomputes each chunk's factors instead of keeping them (memory O(chunk n_max^2)).
_CHECKPOINT_ENTRIES = 1 << 25


def task_terms(theta_task, params: MagmaParams, data: TaskData, mean, cov, jitter, task_rank=0):
    """``sum_i Ji(theta_i)`` over all tasks, ``theta_task`` shaped like ``params.theta_task``.

    ``task_rank``: see :func:`_one_task` (not used for shared inputs and hyperparameters).
    """
    if data.shared_inputs and params.shared_hyperparameters:
        # One Cholesky of Psi for every task (MAGMA.md item 3).
        L = grid_chol(params.task_kernel.with_theta(theta_task), data.grid, jitter, data.grid_mask)
        M = jnp.sum(data.mask[:, 0])
        N = grid_size(data.grid, data.grid_mask)  # cov is zero on padded points (HyperPosterior.cov_sqrt)
        if isinstance(mean, TaskMoments):
            quad, tr = mean.pooled(L, data.y, data.mask)
            return -0.5 * quad - 0.5 * tr - 0.5 * M * (logdet_from_chol(L) + N * LOG_2PI)
        R = jnp.where(data.mask, data.y - mean[None, :], 0.0).T  # (N, M_pad)
        A = tri_solve(L, R)
        tr = jnp.trace(cho_solve(L, cov))
        return -0.5 * jnp.sum(A * A) - 0.5 * M * (logdet_from_chol(L) + N * LOG_2PI + tr)

    params = eqx.tree_at(lambda p: p.theta_task, params, theta_task)
    thetas = params.task_thetas(data.X.shape[0])

    checkpoint = data.X.shape[0] * data.X.shape[1] ** 2 > _CHECKPOINT_ENTRIES

    def local(task_kernel, mean, cov, jitter, *arrays):  # this device's tasks (._shard)
        def chunk_fn(xs):
            def f(*a):
                return _task_term(task_kernel, *a, mean, cov, data.shared_inputs, jitter, False, task_rank)

            return jnp.sum(jax.vmap(f)(*xs))

        return jnp.sum(jax.lax.map(jax.checkpoint(chunk_fn) if checkpoint else chunk_fn, data.chunked(*arrays)))

    tasks = jnp.arange(data.X.shape[0])
    arrays = (thetas, data.X, data.y, data.index, data.mask, tasks)
    return over_tasks(local, arrays, (params.task_kernel, mean, cov, jitter), unit=data.chunk)


def _task_term(task_kernel, th, x, y, idx, mask, i, mean, cov, shared_inputs, jitter, lowrank, task_rank):
    """:func:`_one_task` for task number ``i``, with ``mean`` either the grid moments or a
    :class:`TaskMoments` (then the task's own moments, already on its rows)."""
    if isinstance(mean, TaskMoments):
        m_i, c_i = mean.at(i, idx, mask)
        return _one_task(task_kernel, th, x, y, idx, mask, m_i, c_i, True, jitter, mean.lowrank, task_rank)
    return _one_task(task_kernel, th, x, y, idx, mask, mean, cov, shared_inputs, jitter, lowrank, task_rank)


@eqx.filter_jit
def elbo(params: MagmaParams, data: TaskData, post: HyperPosterior, jitter, task_rank: int = 0):
    """The monitored lower bound ``L(Theta, q)`` (MAGMA.md A.2), per call one compiled graph.

    ``task_rank > 0``: task covariances as low-rank factors plus diagonal (:mod:`._taskcov`).
    """
    R = post.cov_sqrt()
    C = R @ R.T
    N = grid_size(data.grid, data.grid_mask)
    j0 = mean_process_term(params.theta0, params.m0, params.mean_kernel, data.grid, post.mean, R, jitter,
                           data.grid_mask)
    ji = task_terms(params.theta_task, params, data, post.mean, C, jitter, task_rank)
    return j0 + ji + 0.5 * post.logdet_cov() + 0.5 * N * (1.0 + LOG_2PI)


def gls_constant(theta0, mean_kernel, grid, mean, jitter, grid_mask=None):
    """Constant ``m0`` maximising ``log N(mean; m0 1, K0)``: ``1^T K0^{-1} mean / 1^T K0^{-1} 1``
    (over the real points of a padded grid)."""
    L0 = grid_chol(mean_kernel.with_theta(theta0), grid, jitter, grid_mask)
    ones = jnp.ones_like(mean) if grid_mask is None else grid_mask.astype(mean.dtype)
    one = tri_solve(L0, ones)
    return jnp.dot(one, tri_solve(L0, mean * ones)) / jnp.dot(one, one)


gls_prior_mean = eqx.filter_jit(gls_constant)


@eqx.filter_jit
def mean_objective_and_grad(theta0, m0, mean_kernel, grid, mean, cov_sqrt, jitter, scale, grid_mask=None):
    """Value and gradient of ``-J0 * scale`` w.r.t. ``theta0`` (minimised by L-BFGS-B)."""
    f = lambda t: -scale * mean_process_term(t, m0, mean_kernel, grid, mean, cov_sqrt, jitter, grid_mask)  # noqa: E731
    return jax.value_and_grad(f)(theta0)


def task_terms_and_grad(
    theta_task, params: MagmaParams, data: TaskData, mean, cov, jitter, lowrank=False, task_rank=0
):
    """``(sum_i Ji, d/d theta_task sum_i Ji)`` with each task differentiated in its chunk.

    ``cov``: ``C``, or with ``lowrank=True`` a factor ``F`` with ``C ~ F F^T`` (see
    :func:`m_step_covariance`).

    Same value and gradient as reverse-differentiating :func:`task_terms`, but forward
    only: every task's ``dJi/dtheta_i`` (its :func:`_gaussian_term` rule pulled back
    through its Gram) is formed while its factors are at hand, then the per-task
    gradients are pulled back to ``theta_task`` (summed when hyperparameters are shared).
    At 600 tasks x 450 points this halves an evaluation: the reverse pass over the
    ``lax.map`` had to recompute (checkpoint) or store every chunk's inverses.
    """
    n_pad = data.X.shape[0]
    thetas, pullback = jax.vjp(
        lambda t: eqx.tree_at(lambda p: p.theta_task, params, t).task_thetas(n_pad), theta_task
    )

    values, grads = _per_task_values_and_grads(thetas, params, data, mean, cov, jitter, lowrank, task_rank)
    (grad,) = pullback(grads)
    return jnp.sum(values), grad


def _per_task_values_and_grads(thetas, params, data, mean, cov, jitter, lowrank, task_rank, rows=None, n_rows=None):
    """``(Ji (M_pad,), dJi/dtheta_i (M_pad, p))`` for per-task log-hyperparameters ``thetas``.

    ``rows`` (``(M_pad,)`` task indices) and ``n_rows`` (``(s,)``; a scalar when ``s = 1``):
    evaluate only some tasks, listed per shard of the task axis (``s`` shards of ``M_pad / s``
    tasks, one per device under a mesh: :func:`~._shard.task_shards`; ``s = 1`` without one): shard ``j``
    evaluates its tasks ``rows[j * M_pad / s:][:n_rows[j]]`` (indices within the shard),
    gathered chunk by chunk; chunks past ``n_rows[j]`` are skipped (``lax.cond``), and the
    other tasks' outputs are zero. Both are traced: any subset runs on the same compiled
    code, at the cost of the chunks it fills.
    """
    value_and_grad = jax.value_and_grad(_task_term, argnums=1)

    def task_fn(task_kernel, mean, cov, jitter):
        def per_task(*a):
            return value_and_grad(task_kernel, *a, mean, cov, data.shared_inputs, jitter, lowrank, task_rank)

        return per_task

    whole = (params.task_kernel, mean, cov, jitter)
    tasks = jnp.arange(thetas.shape[0])  # task numbers (global on every shard, for TaskMoments)
    arrays = (thetas, data.X, data.y, data.index, data.mask, tasks)
    if rows is None:
        def local_all(task_kernel, mean, cov, jitter, *a):
            per_task = task_fn(task_kernel, mean, cov, jitter)
            values, grads = jax.lax.map(lambda xs: jax.vmap(per_task)(*xs), data.chunked(*a))
            return values.reshape(a[0].shape[:1]), grads.reshape(a[0].shape)

        return over_tasks(local_all, arrays, whole, unit=data.chunk, out="split")

    chunk = data.chunk

    def local(task_kernel, mean, cov, jitter, thetas, X, y, index, mask, tasks, rows, n_rows):
        per_task = task_fn(task_kernel, mean, cov, jitter)
        n_pad, n_rows = thetas.shape[0], n_rows[0]

        def chunk_fn(c):
            idx = jax.lax.dynamic_slice_in_dim(rows, c * chunk, chunk)

            def run(_):
                return jax.vmap(per_task)(thetas[idx], X[idx], y[idx], index[idx], mask[idx], tasks[idx])

            def skip(_):
                return like_tasks((jnp.zeros((chunk,), thetas.dtype), jnp.zeros((chunk,) + thetas.shape[1:],
                                                                                    thetas.dtype)), thetas)

            return jax.lax.cond(c * chunk < n_rows, run, skip, None)

        values, grads = jax.lax.map(chunk_fn, jnp.arange(n_pad // chunk))
        slot = jnp.where(jnp.arange(n_pad) < n_rows, rows, n_pad)  # unused slots are dropped
        values = jnp.zeros(n_pad, thetas.dtype).at[slot].set(values.reshape(-1), mode="drop")
        grads = jnp.zeros_like(thetas).at[slot].set(grads.reshape(thetas.shape), mode="drop")
        return values, grads

    return over_tasks(local, arrays + (rows, jnp.atleast_1d(n_rows)), whole, unit=chunk, out="split")


@eqx.filter_jit
def task_objectives_and_grads(
    theta_task, params, data, mean, cov, jitter, scale, lowrank=False, task_rank=0, rows=None, n_rows=None
):
    """Per task, ``-Ji * scale`` and its gradient w.r.t. that task's row of ``theta_task``.

    Distinct hyperparameters only: the task M-step is then ``M`` independent problems
    (:func:`~._optimize.minimize_separable` solves them side by side). ``rows``,
    ``n_rows``: only some tasks, listed per shard (see :func:`_per_task_values_and_grads`).
    """
    values, grads = _per_task_values_and_grads(
        theta_task, params, data, mean, cov, jitter, lowrank, task_rank, rows, n_rows
    )
    return -scale * values, -scale * grads


@eqx.filter_jit
def task_objective_and_grad(theta_task, params, data, mean, cov, jitter, scale, lowrank=False, task_rank=0):
    """Value and gradient of ``-sum_i Ji * scale`` w.r.t. the task log-hyperparameters.

    ``mean``, ``cov``: the hyper-posterior mean and (M-step) covariance on the grid, or a
    :class:`TaskMoments` as ``mean`` (``cov`` None) when each task sees its own.
    ``lowrank``: ``cov`` is a factor ``F`` of the M-step covariance (:func:`m_step_covariance`).
    ``task_rank``: rank of the low-rank task covariances (:mod:`._taskcov`), 0 for dense.
    """
    if data.shared_inputs and params.shared_hyperparameters:
        f = lambda t: -scale * task_terms(t, params, data, mean, cov, jitter)  # noqa: E731
        return jax.value_and_grad(f)(theta_task)
    value, grad = task_terms_and_grad(theta_task, params, data, mean, cov, jitter, lowrank, task_rank)
    return -scale * value, -scale * grad


# The low-rank M-step covariance is used when its rank is at most this fraction of the
# largest task (beyond it, the n^2 q products cost about as much as the full term).
_LOWRANK_MAX_FRACTION = 0.25


@eqx.filter_jit
def _cov_eigh(post: HyperPosterior, jitter):
    C = post.cov()  # zero on padded grid points: no eigenvalue there above the floor
    # K0 was factorised with jitter * mean(diag K0) on its diagonal (over the real grid):
    # C's uninformed directions sit exactly on that floor.
    d = jnp.sum(post.L0 * post.L0, axis=1)
    gm = post.grid_mask
    k0_diag = jnp.mean(d) if gm is None else jnp.sum(jnp.where(gm, d, 0.0)) / jnp.sum(gm)
    floor = jitter / (1.0 + jitter) * k0_diag
    lam, U = jnp.linalg.eigh(C)
    return C, lam, U, floor


def m_step_covariance(post: HyperPosterior, jitter, n_max: int):
    """The hyper-posterior covariance as the task M-step uses it: ``(cov, lowrank)``
    (``n_max``: rows of the longest real task, :attr:`~._model.TaskData.longest`).

    ``C = (K0^{-1} + S)^{-1}`` inherits the jitter ``j = jitter * mean(diag K0)`` that makes
    ``K0`` factorisable: every direction the data do not inform has variance ``j``
    exactly, so on smooth mean kernels ``C`` is a low-rank matrix plus a floor of
    ``j``-eigenvalues (600 tasks x 450 points, RBF: rank 25 of 900, the other 875
    eigenvalues ``j (1 +- 3e-5)``). The floor is the jitter's own variance, not the
    model's: the M-step's trace terms use ``C - j`` on its eigenvalues (clipped at 0),
    ``F F^T`` with ``F = U_q (Lambda_q - j)^{1/2}``, dropping eigenvalues below
    ``1e-12 * max(Lambda)`` after the shift. Each task term then costs ``O(n_i^2 q)``
    instead of ``O(n_i^3)`` for ``Psi_i^{-1} C_i Psi_i^{-1}``; the change in ``Ji`` is at most
    ``j/2 tr(Psi_i^{-1})``, the size of the jitter itself. When ``q`` exceeds
    ``_LOWRANK_MAX_FRACTION * n_max`` (rough mean kernels), returns ``(C, False)``:
    the full term. The monitored ELBO always uses ``C``.
    """
    C, lam, U, floor = _cov_eigh(post, jitter)
    lam = np.asarray(lam)
    excess = np.maximum(lam - float(floor), 0.0)
    keep = excess > 1e-12 * max(float(lam.max()), 0.0)
    q = int(keep.sum())
    q_pad = int(-(-max(q, 1) // 8) * 8)  # a few shapes only: one compilation per bucket
    if q_pad > _LOWRANK_MAX_FRACTION * n_max:
        return C, False
    order = np.argsort(excess)[::-1][:q_pad]
    scale = np.where(keep[order], np.sqrt(excess[order]), 0.0)
    F = jnp.asarray(U)[:, order] * jnp.asarray(scale, dtype=C.dtype)[None, :]
    return F, True
