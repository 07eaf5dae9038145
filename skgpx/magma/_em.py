"""The Magma EM loop (MAGMA.md A.2): M-step, E-step, monitoring of log p(y | Theta), convergence.

Each iteration:

1. M-step, with ``q(mu0) = N(m, C)`` from the last E-step: L-BFGS-B on ``-J0(theta0)``
   then (``prior_mean="constant"``) the closed-form GLS ``m0``; for the task
   hyperparameters, L-BFGS-B on ``-sum_i Ji`` when they are shared; when distinct, the
   objective is a sum of independent per-task terms solved side by side
   (:mod:`._separable`; the first iteration starts them from the shared-hyperparameter
   optimum), each term plus the log of a Gaussian prior on the task's
   log-hyperparameters: the population of the tasks' values before this M-step
   (:func:`~._predict.population_prior`; none at the shared start). Per-task maximum
   likelihood from a task's few points over-fits (noise near zero, intervals far too
   narrow); the prior is the hierarchical model's remedy, re-estimated at every
   iteration (empirical Bayes, Laplace EM): its covariance is the spread of the tasks'
   posterior modes plus their average posterior covariance (the inverse Hessian of
   each task's problem at its mode, :func:`~._separable.laplace_covariances`). Without
   that second term the prior refitted to modes it has shrunk shrinks them further,
   and the spread collapses geometrically to zero (every task ends with the same
   values); with it the spread converges to the marginal-likelihood estimate, shrinking
   tasks only where their points do not identify their values.
2. E-step: ``q(mu0)`` on the union grid for the new ``Theta``, and with it the ELBO at
   that ``q``, which is ``L = log p(y | Theta)`` (:mod:`._estep`, from the E-step's own
   factors); stop when ``|(L_new - L_old) / L_new| < tol``.

``L`` can only increase: ``log p(y | Theta_new) >= ELBO(Theta_new, q_old) >=
ELBO(Theta_old, q_old) = log p(y | Theta_old)``, the M-step accepting only updates that
do not decrease its terms; a decrease beyond round-off is reported as a warning. With
the prior of distinct task hyperparameters it is ``L + log p(theta)`` under that
iteration's prior that can only increase, and that is what is checked. Every
numerical function is compiled once (data are arguments, shapes are fixed) and reused
by all iterations. The last E-step is at the final ``Theta``: its posterior is the
stored hyper-posterior, its ``L`` the fitted ``log p(y | Theta)``.

The loop is :func:`iterate`, driving an EM *state* object (optimistix's solver-state
pattern): :class:`MagmaEM` holds the data, the options and what carries over between
iterations (task-covariance ranks, per-task curvature), and offers ``start``,
``e_step``, ``m_step`` and ``value``. Its task M-step is :class:`TaskMStep`, which takes
the moments of the mean process each task sees (one hyper-posterior for Magma, a
mixture of them for MagmaClust: :mod:`._clust`), so a variant composes the loop and
the M-step instead of copying them.
"""

from __future__ import annotations

import dataclasses
import time
import warnings

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ._estep import HyperPosterior, e_step
from ._model import MagmaParams, TaskData, canonical
from ._objectives import (
    gls_prior_mean,
    m_step_covariance,
    mean_objective_and_grad,
    task_objective_and_grad,
)
from ._optimize import minimize_lbfgsb
from ._progress import reporting
from ._predict import population_prior
from ._separable import laplace_covariances, separable_m_step
from ._shard import task_shards
from ._taskcov import rank_cap, task_needs, uniform_rank

__all__ = ["EMOptions", "EMResult", "MagmaEM", "TaskMStep", "iterate", "run_em"]


@dataclasses.dataclass(frozen=True)
class EMOptions:
    """Options of an EM run (see :class:`~skgpx.MultiTaskMagmaRegressor` for their meaning)."""

    max_iter: int
    tol: float
    m_step_max_iter: int
    m_step_tol: float
    jitter: float
    learn_prior_mean: bool = False
    low_rank_tasks: bool = True
    verbose: int = 0


@dataclasses.dataclass(frozen=True)
class EMResult:
    params: MagmaParams
    posterior: HyperPosterior
    elbo_history: np.ndarray  # ELBO right after each E-step (= log p(y | Theta)): initial, then per iteration
    log_marginal_likelihood: float  # log p(y | final Theta), from the final E-step
    n_iter: int
    converged: bool
    iteration_times: np.ndarray
    # Rank of the M-step's low-rank hyper-posterior covariance at each iteration
    # (0: the full C was used; see `m_step_covariance`).
    m_step_cov_ranks: np.ndarray
    # Rank of the low-rank task covariances at each iteration (0: dense; see `_taskcov`).
    task_ranks: np.ndarray
    # Population prior (mean, precision) of distinct task log-hyperparameters at the end (else None).
    task_prior: object = None


def _task_bounds(params: MagmaParams, n_rows: int):
    b = np.asarray(params.task_kernel.bounds)
    return b if params.shared_hyperparameters else np.tile(b, (n_rows, 1))


class TaskMStep:
    """The task half of an EM state: the task M-step and what it carries between iterations.

    ``rank``: the task-covariance rank of the next E-step (0: dense); ``curvature``: the
    per-task inverse-Hessian approximations (distinct hyperparameters). :meth:`step`
    takes the mean-process moments the tasks see as ``(mean, cov, lowrank)``: for Magma
    the hyper-posterior mean on the grid and the M-step covariance
    (:func:`~._objectives.m_step_covariance`); for a variant, a
    :class:`~._objectives.TaskMoments` as ``mean`` (``cov`` None).
    """

    def __init__(self, data: TaskData, options: EMOptions):
        self.data, self.options = data, options
        self.jitter = jnp.asarray(options.jitter, data.y.dtype)
        self.scale = jnp.asarray(1.0 / max(int(np.asarray(data.n_obs)), 1), data.y.dtype)  # per observation
        self.cap = rank_cap(data)
        self.rank = 0
        self.curvature = None
        self.prior = None  # (mean, precision) of the last M-step's task-hyperparameter prior
        # Average Laplace covariance of one task's theta_i after the last distinct M-step
        # (what the next prior adds to the modes' spread: `population_prior`).
        self.task_cov = None
        self._needs = {}

    def log_prior(self, params) -> float:
        """``sum_i log p(theta_i)`` under the last M-step's prior, up to its constant (0 without one)."""
        if self.prior is None:
            return 0.0
        delta = np.asarray(params.theta_task, np.float64)[: self.data.n_tasks] - self.prior[0]
        return float(-0.5 * np.sum((delta @ self.prior[1]) * delta))

    def structured(self, params) -> bool:
        """Shared inputs and hyperparameters: one factorisation serves every task already."""
        return self.data.shared_inputs and params.shared_hyperparameters

    def needs_at(self, p):
        """:func:`~._taskcov.task_needs` at ``p`` (``None``: dense path), one pivot pass per
        value of the task hyperparameters (the rank checks after an M-step and the next
        M-step's plan see the same values)."""
        if not self.options.low_rank_tasks or self.structured(p):
            return None
        key = np.asarray(p.theta_task).tobytes()
        if key not in self._needs:
            self._needs.clear()
            self._needs[key] = task_needs(p, self.data, self.jitter)
        return self._needs[key]

    def start(self, params):
        self.rank = uniform_rank(self.needs_at(params), self.cap, 0)

    def step(self, params, mean, cov, lowrank, full_cov=None):
        """One task M-step: ``(params, result, rank used, per-task ranks or None)``.

        ``full_cov()``: the moments with the full covariance, for the distinct-hyperparameter
        start with shared inputs (default: ``(mean, cov, lowrank)`` as given).
        """
        o = self.options
        # Distinct hyperparameters that all still have their common start (the first
        # iteration) first move together: one shared-hyperparameter M-step, as the R
        # package's `precondition_hp` fits one shared GP to initialise every theta_i. It
        # improves the same objective (the shared optimum is a point of the distinct
        # problem), and the per-task problem then starts close to its solution.
        if not params.shared_hyperparameters and _rows_equal(params.theta_task):
            full = full_cov() if full_cov is not None else (mean, cov, lowrank)
            params = _shared_start(params, self.data, mean, cov, lowrank, self.jitter, self.rank, o.m_step_max_iter,
                                   o.m_step_tol, full)
            self.curvature = None
        # Distinct hyperparameters: the population of the tasks' current values is their prior
        # in this M-step (None while they are all equal, i.e. at the shared start).
        self.prior = self.population(params)
        params, rt, rank, next_rank, self.curvature, per_task = _task_m_step(
            params, self.data, mean, cov, lowrank, self.jitter, self.scale, self.rank, self.needs_at, self.curvature,
            o.m_step_max_iter, o.m_step_tol, self.prior,
        )
        if not params.shared_hyperparameters:
            covs = laplace_covariances(params, self.data, mean, cov, lowrank, self.jitter, self.scale,
                                       params.theta_task, per_task, self.prior)
            self.task_cov = covs.mean(axis=0)
        self.rank = next_rank
        return params, rt, rank, per_task

    def population(self, params):
        """The population prior ``(mean, precision)`` of distinct task hyperparameters at
        ``params`` (``None`` with shared ones or while they are all equal): the tasks'
        spread plus their average Laplace covariance from the last M-step."""
        if params.shared_hyperparameters:
            return None
        return population_prior(np.asarray(params.theta_task)[: self.data.n_tasks], task_covariance=self.task_cov)


class MagmaEM:
    """EM state of Magma on ``data``: :meth:`start`, then :func:`iterate` alternates
    :meth:`m_step` and :meth:`e_step`, monitoring :meth:`value`."""

    name = "Magma"

    def __init__(self, data: TaskData, options: EMOptions):
        self.data, self.options = data, options
        self.tasks = TaskMStep(data, options)
        self.m_step_cov_ranks, self.task_ranks = [], []

    def canonical(self, params):
        return canonical(params, np.dtype(self.data.y.dtype))

    def start(self, params):
        self.tasks.start(params)
        return self.e_step(params)

    def e_step(self, params) -> HyperPosterior:
        return e_step(params, self.data, self.tasks.jitter, self.tasks.rank, bool(self.options.verbose))

    @staticmethod
    def value(post) -> float:
        return float(post.lml)

    def mean_m_step(self, params, post, R):
        """``theta0`` by L-BFGS-B on ``-J0``, then (``learn_prior_mean``) the GLS ``m0``."""
        o, jitter = self.options, self.tasks.jitter
        r0 = minimize_lbfgsb(
            lambda th: mean_objective_and_grad(
                th, params.m0, params.mean_kernel, self.data.grid, post.mean, R, jitter, self.tasks.scale,
                self.data.grid_mask,
            ),
            params.theta0,
            np.asarray(params.mean_kernel.bounds),
            max_iter=o.m_step_max_iter,
            tol=o.m_step_tol,
            label="mean-process M-step",
        )
        params = with_values(params, theta0=jnp.asarray(r0.x))
        if o.learn_prior_mean:
            m0 = gls_prior_mean(params.theta0, params.mean_kernel, self.data.grid, post.mean, jitter,
                                self.data.grid_mask)
            params = with_values(params, m0=jnp.asarray(m0))
        return params, r0

    def m_step(self, params, post):
        """``(params, description)`` after the mean-process and the task M-steps."""
        R = post.cov_sqrt()
        if self.tasks.structured(params):
            cov_m, lowrank = R @ R.T, False  # one factorisation for all tasks: C as is
        else:
            cov_m, lowrank = m_step_covariance(post, self.tasks.jitter, self.data.longest)
        # The factor's width is bucketed to multiples of 8 with zero columns; report its rank.
        self.m_step_cov_ranks.append(factor_rank(cov_m) if lowrank else 0)
        params, r0 = self.mean_m_step(params, post, R)
        params, rt, rank, per_task = self.tasks.step(
            params, post.mean, cov_m, lowrank, full_cov=lambda: (post.mean, R @ R.T, False)
        )
        self.task_ranks.append(rank)
        return params, (
            f"mean-process L-BFGS {r0.n_iter} its, "
            + task_report(params, rt, self.m_step_cov_ranks[-1], rank, per_task, self.data.n_tasks)
        )


def factor_rank(F) -> int:
    return int(np.count_nonzero(np.any(np.asarray(F) != 0, axis=0)))


def task_report(params, rt, cov_rank, rank, per_task, n_tasks) -> str:
    return (
        f"task {'L-BFGS' if params.shared_hyperparameters else 'per-task BFGS'} {rt.n_iter} its"
        + (f", M-step covariance rank {cov_rank}" if cov_rank else "")
        + (f", task covariance rank {rank}" if rank else "")
        + (f" (per task: {_rank_mix(per_task[:n_tasks])})" if per_task is not None else "")
    )


def iterate(model, params):
    """Run EM from ``params`` with the state object ``model``.

    Returns ``(params, posterior, history, n_iter, converged, times)``; ``history`` is
    ``model.value`` after the start and after every iteration.
    """
    o, name = model.options, model.name
    params = model.canonical(params)
    post = model.start(params)
    history = [model.value(post)]
    if not np.isfinite(history[0]):
        raise ValueError(
            "The initial hyperparameters give a non-finite log-likelihood. Pass kernels with "
            "initial values on the scale of the data, or keep normalize_y=True."
        )
    if o.verbose:
        print(f"[{name}] initial ELBO {history[0]:.6g}")
    converged, times = False, []
    it = 0
    for it in range(1, o.max_iter + 1):
        t0 = time.perf_counter()
        before = params
        with reporting(o.verbose):  # a line every few seconds of a long M-step (._progress)
            params, report = model.m_step(params, post)
        post = model.e_step(params)
        value = model.value(post)
        times.append(time.perf_counter() - t0)
        prev = history[-1]
        history.append(value)
        # With a prior on the task hyperparameters the M-step raises L + log p(theta) under
        # that prior, which may lower L itself: the check compares both sides under it.
        gain = model.tasks.log_prior(params) - model.tasks.log_prior(before)
        if o.verbose:
            print(f"[{name}] iter {it:3d}  ELBO {value:.6g}  ({report}, {times[-1]:.2f} s)")
        if not np.isfinite(value):
            raise FloatingPointError(
                f"The {name} ELBO became non-finite at EM iteration {it}. Increase `jitter`, "
                "tighten the kernels' hyperparameter bounds, or keep normalize_y=True."
            )
        if value + gain < prev - 1e-7 * max(1.0, abs(prev)):
            warnings.warn(
                f"The {name} ELBO decreased at EM iteration {it} ({prev:.8g} -> {value:.8g}) by more "
                "than round-off; the M-step optimiser may have stopped early on a badly scaled "
                "problem. Check the kernels' bounds or increase `jitter`.",
                RuntimeWarning,
                stacklevel=4,
            )
        if abs((value - prev) / value) < o.tol:
            converged = True
            break
    if not converged:
        warnings.warn(
            f"{name} EM did not converge in max_iter={o.max_iter} iterations (relative ELBO change "
            f"{abs((history[-1] - history[-2]) / history[-1]):.2e} >= tol={o.tol}). Increase `max_iter` "
            "or `tol`.",
            ConvergenceWarning,
            stacklevel=4,
        )
    return params, post, np.asarray(history), it, converged, np.asarray(times)


def run_em(
    params: MagmaParams,
    data: TaskData,
    *,
    learn_prior_mean: bool,
    max_iter: int,
    tol: float,
    m_step_max_iter: int,
    m_step_tol: float,
    jitter: float,
    low_rank_tasks: bool = True,
    verbose: int = 0,
) -> EMResult:
    """Run Magma's EM from ``params`` on ``data`` (normalised targets).

    ``low_rank_tasks``: represent task covariances by low-rank factors plus diagonal
    where the task kernel allows it to the jitter level (:mod:`._taskcov`), choosing
    the rank anew at every iteration; otherwise always dense.
    """
    options = EMOptions(max_iter, tol, m_step_max_iter, m_step_tol, jitter, learn_prior_mean, low_rank_tasks, verbose)
    model = MagmaEM(data, options)
    params, post, history, it, converged, times = iterate(model, params)
    return EMResult(
        params, post, history, history[-1], it, converged, times, np.asarray(model.m_step_cov_ranks, int),
        np.asarray(model.task_ranks, int), model.tasks.population(params),
    )


def _task_m_step(
    params, data, mean, cov_m, lowrank, jitter, scale, rank, needs_at, curvature, max_iter, tol, prior=None
):
    """The task M-step: ``(params, result, rank used, rank for the next E-step, curvature,
    per-task ranks)`` (the last ``None`` with shared hyperparameters).

    Shared hyperparameters: L-BFGS-B on the summed objective. The low-rank factors'
    rank must still suffice at the new hyperparameters (every residual below the
    jitter); if it does not, the M-step continues from its result with the rank they
    need, and the result is kept only if it beats the start under that rank
    (generalised EM). Distinct ones: :func:`~._separable.separable_m_step`, each task at
    its own rank, its BFGS curvature carried over from the previous M-step; the rank
    reported is then the largest, or 0 when a task is dense. ``needs_at(params)``: the
    tasks' pivot needs (:func:`~._taskcov.task_needs`), ``None`` on the dense path.
    """
    bounds = _task_bounds(params, data.X.shape[0])
    cap = rank_cap(data)
    if not params.shared_hyperparameters:
        x, res, ranks, needs, curvature = separable_m_step(
            params, data, mean, cov_m, lowrank, jitter, scale, bounds, needs_at, curvature, max_iter, tol, prior
        )
        new = with_values(params, theta_task=jnp.asarray(x))
        real = ranks[: data.n_tasks]
        used = int(real.max()) if needs is not None and np.all(real > 0) else 0
        return new, res, used, uniform_rank(needs, cap, used), curvature, ranks

    def objective(th, rank):
        return task_objective_and_grad(th, params, data, mean, cov_m, jitter, scale, lowrank, rank)

    x, raised = params.theta_task, False
    while True:
        res = minimize_lbfgsb(lambda th: objective(th, rank), x, bounds, max_iter=max_iter, tol=tol,
                              label="task M-step")
        new = with_values(params, theta_task=jnp.asarray(res.x))
        needs = needs_at(new)
        next_rank = uniform_rank(needs, cap, rank)
        # The rank still suffices while every residual stays below the jitter itself.
        if rank == 0 or 0 < next_rank <= rank or (next_rank > 0 and np.all(needs[1] <= rank)):
            break
        rank, x, raised = next_rank, res.x, True
    if raised and not res.fun <= float(np.sum(np.asarray(objective(params.theta_task, rank)[0]))):
        new, next_rank = params, uniform_rank(needs_at(params), cap, rank)
    return new, res, rank, next_rank, curvature, None


def _rank_mix(ranks) -> str:
    values, counts = np.unique(ranks, return_counts=True)
    return ", ".join(f"{c} at {'dense' if v == 0 else v}" for v, c in zip(values, counts))


def _rows_equal(theta_task) -> bool:
    th = np.asarray(theta_task)
    return th.ndim == 2 and th.shape[0] > 1 and bool(np.all(th == th[:1]))


# With distinct inputs, the shared start is fitted on about this many tasks, evenly spaced
# (a start needs to be close, not exact).
_SHARED_START_TASKS = 64


def _task_subset(data: TaskData, size: int):
    """About ``size`` evenly spaced real tasks of ``data`` (whole chunks on every device, no padding), and
    their rows (``None``: all of ``data``)."""
    unit = data.chunk * task_shards()  # whole chunks on every device of a mesh
    k = max(unit, size // unit * unit)
    if k >= data.n_tasks:
        return data, None
    sel = jnp.asarray(np.linspace(0, data.n_tasks - 1, k).round().astype(int))
    sub = TaskData(data.grid, data.X[sel], data.y[sel], data.index[sel], data.mask[sel], data.grid_mask, data.chunk,
                   data.shared_inputs)
    return sub, sel


def _shared_start(params, data, mean, cov_m, lowrank, jitter, rank, max_iter, tol, full) -> MagmaParams:
    """Distinct task hyperparameters set to the optimum of the shared-hyperparameter M-step
    (with distinct inputs, on a subset of the tasks: :data:`_SHARED_START_TASKS`).
    ``full``: the moments ``(mean, cov, lowrank)`` with the full covariance (used with
    shared inputs, where one factorisation serves every task)."""
    if not data.shared_inputs:
        data, sel = _task_subset(data, _SHARED_START_TASKS)
        if sel is not None and hasattr(mean, "subset"):
            mean = mean.subset(sel)
    scale = jnp.asarray(1.0 / max(int(np.asarray(data.n_obs)), 1), data.y.dtype)
    shared = canonical(
        MagmaParams(params.mean_kernel, params.task_kernel, params.theta0, params.theta_task[0], params.m0, True),
        np.dtype(data.y.dtype),
    )
    if data.shared_inputs:  # one factorisation for all tasks, with C as is
        mean, cov_m, lowrank = full
        rank = 0
    res = minimize_lbfgsb(
        lambda th: task_objective_and_grad(th, shared, data, mean, cov_m, jitter, scale, lowrank, rank),
        shared.theta_task,
        np.asarray(params.task_kernel.bounds),
        max_iter=max_iter,
        tol=tol,
    )
    return with_values(params, theta_task=np.tile(np.asarray(res.x), (np.asarray(params.theta_task).shape[0], 1)))


def with_values(params, **changes):
    """``params`` with the named array fields replaced (cast to its dtype)."""
    names = list(changes)
    dtype = np.dtype(params.theta_task.dtype)
    new = [jnp.asarray(np.asarray(changes[n], dtype=dtype)) for n in names]
    return eqx.tree_at(lambda p: [getattr(p, n) for n in names], params, new)
