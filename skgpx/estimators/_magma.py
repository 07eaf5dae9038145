"""``MultiTaskMagmaRegressor``: Magma (Leroy et al., Machine Learning 2022) as a scikit-learn estimator.

A thin scikit-learn layer over the pure, compiled functions of :mod:`skgpx.magma`
(layout, E-step, M-step objectives, EM loop, prediction). Task identity travels as
``groups`` (long-format data, one row per observation), so ``GroupKFold`` and
``GridSearchCV(..., groups=)`` hold out whole tasks.
"""

from __future__ import annotations

import warnings
from numbers import Integral, Real

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process.kernels import RBF as SkRBF, ConstantKernel as SkC, Kernel as SkKernel
from sklearn.gaussian_process.kernels import WhiteKernel as SkWhite
from sklearn.metrics import r2_score
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .._config import precision_scope, resolve_dtype
from .._mesh import describe_placement, first_device, placement_scope, resolve_placement
from .._toolchain import check_toolchain
from ..gp import bucket
from ..kernels import AbstractKernel, White, to_sklearn
from ..magma import (
    MagmaParams,
    build_layout,
    mean_process_at,
    minimize_lbfgsb,
    new_task_objective_and_grad,
    pad_by_group,
    population_prior,
    run_em,
    place_task_data,
    task_data_from_layout,
    task_posteriors,
)
from ._magma_clust import ClusterMixin
from ._quality import em_advice, warn_magma_bounds
from ._state import DeviceCloneMixin, kernel_deep_params, split_kernel_params, to_host
from ._summary import format_magma_summary
from ._validation import check_kernel, check_n_samples, check_numeric, to_skgpx

__all__ = ["MultiTaskMagmaRegressor"]

# Matrix entries ((n_obs + n_targets)^2 per task) handled together by one vmapped batch.
_PREDICT_BUDGET = 1 << 22


class MultiTaskMagmaRegressor(DeviceCloneMixin, ClusterMixin, RegressorMixin, BaseEstimator):
    """Multi-task GP regression with a common mean process (Magma), trained by EM.

    Model (MAGMA.md A.1): tasks ``i`` observed at their own inputs ``t_i``,
    ``y_i = mu0(t_i) + f_i(t_i) + eps_i`` with the mean process
    ``mu0 ~ GP(m0, mean_kernel)`` shared by all tasks and ``f_i + eps_i ~ GP(0,
    task_kernel)`` per task. The task noise is the ``White`` term of `task_kernel`
    (one is added, ``White(0.1)``, if the kernel has none).

    **Parameters**

    - `mean_kernel`: kernel of the mean process (skgpx or scikit-learn); None is
      ``ConstantKernel(1.0) * RBF(1.0)``.
    - `task_kernel`: kernel of the task deviations plus noise; None is
      ``ConstantKernel(1.0) * RBF(1.0) + WhiteKernel(0.1)``.
    - `shared_hyperparameters`: one set of task hyperparameters for all tasks (True)
      or one per task (False; new tasks then learn theirs from their observations).
      Distinct ones are fitted with a Gaussian prior on the log-hyperparameters, the
      population of the tasks' values at the previous EM iteration plus their average
      posterior (Laplace) covariance (``skgpx.magma.population_prior``, empirical Bayes):
      a task's maximum-likelihood values from its few
      points often put its noise near zero and its intervals far too narrow (see the
      calibration guide).
    - `n_clusters`: number of mean processes. 1 (default): Magma. ``K >= 2``:
      MagmaClust (Leroy et al., JMLR 2023), tasks drawn from a mixture of ``K`` mean
      processes, fitted by variational EM; predictions are mixtures over clusters
      weighted by each task's memberships. ``"auto"`` (K = 1..6, at most the number of
      tasks) or a list of candidates: every candidate is fitted and the one with the
      largest variational BIC is kept (``n_clusters_scores_``); see the Magma guide.
    - `shared_mean_hyperparameters`: with clusters, one set of mean-kernel
      hyperparameters for all clusters (True) or one per cluster (False).
    - `new_task_hyperparameters`: how a new task (``predict(..., X_obs=...)``) gets its
      task hyperparameters: ``"auto"`` (default: the shared ones when
      `shared_hyperparameters`, else learned from its observations), ``"shared"`` (the
      shared ones, or the average of the training tasks'), ``"learn"`` (maximise its
      likelihood under the mean-process hyper-posterior, eq. (7) of the paper, starting
      from the shared/average ones; with distinct hyperparameters, times the population
      prior of the training tasks' log-hyperparameters that the EM ended with,
      as a few points alone often drive the noise to zero and the intervals far too narrow;
      see the calibration guide). On swimmers "learn" predicted new swimmers better.
    - `prior_mean`: constant prior mean ``m0`` of the mean process in the units of
      ``y`` (default 0.0), or ``"constant"`` to learn it (closed-form GLS update in
      each M-step).
    - `normalize_y`: standardise ``y`` (all tasks pooled) before fitting (default
      True; the kernels' initial values are then on the unit scale).
    - `max_iter`, `tol`: EM iterations at most, and the stopping rule on the
      relative change of the EM objective ``L = log p(y | Theta)`` (the ELBO right
      after an E-step), ``|dL / L| < tol``.
    - `m_step_max_iter`, `m_step_tol`: L-BFGS-B iterations and relative tolerance of
      each M-step problem.
    - `jitter`: added to every Cholesky diagonal, relative to the mean diagonal; ``"auto"``
      (default) is ``max(1e-8, 10 * eps)`` of the dtype: 1e-8 in float64, 1.2e-6 in float32
      (1e-8 is below float32's resolution, and its factorisations fail). Fitted: ``jitter_``.
    - `low_rank_tasks`: when the task kernel is ``smooth + WhiteKernel`` and its smooth
      part is, on every task, a low-rank matrix up to the jitter (pivoted Cholesky
      residual below ``jitter`` times the mean diagonal on every point; RBF kernels,
      long length scales), train with Nyström factors plus diagonal and Woodbury
      instead of a dense Cholesky per task (default True; the rank is chosen at
      every EM iteration, per task with distinct hyperparameters, and reported in
      ``task_cov_ranks_``). The change in the ELBO is below the jitter's own effect
      on it. False: always dense.
    - `input_decimals`: round inputs to this many decimals before building the
      union grid (fewer distinct inputs: a cheaper E-step); None keeps them exact.
    - `max_grid_size`: refuse a union grid of more distinct inputs (the E-step is
      cubic in it); round the inputs with `input_decimals` instead.
    - `device`, `dtype`: as :class:`~skgpx.ScalableGPRegressor`. Several devices (a list of
      ``jax.Device``, a ``jax.sharding.Mesh`` or ``"all"``): the per-task work of the E- and
      M-steps (task precisions, task terms and their gradients, pivot passes) is split by
      tasks over the devices, the task count padded with empty tasks to a multiple of
      their number; the grid-sized work is replicated (see the scaling-out guide).
    - `random_state`: seeds ``sample_y`` when its own `random_state` is None.
    - `verbose`: print the ELBO of every EM iteration.

    **Fitted attributes**: ``mean_kernel_``, ``task_kernel_`` (the shared task
    kernel; with distinct hyperparameters the kernel at the average log-
    hyperparameters, the starting point for new tasks), ``task_theta_`` ``(n_tasks,
    p)`` log-hyperparameters of every training task, ``tasks_`` (task labels),
    ``prior_mean_``, ``hyperposterior_`` (the hyper-posterior of the mean process on
    ``grid_``, on the normalised scale; stored on the grid padded to a size bucket, its
    ``grid_mask`` flagging the real points, see the Magma guide), ``grid_``, ``elbo_history_`` (``L`` at the
    initial hyperparameters, then after each EM iteration), ``n_iter_``,
    ``converged_``, ``log_marginal_likelihood_value_``, ``iteration_times_``,
    ``m_step_cov_ranks_`` (per EM iteration, the rank of the low-rank hyper-posterior
    covariance the task M-step used, 0 where it used the full one; see the Magma guide),
    ``task_cov_ranks_`` (per EM iteration, the rank of the low-rank task covariances in
    the task M-step, the largest over tasks with distinct hyperparameters, 0 where they
    were dense; see `low_rank_tasks`),
    ``n_features_in_``, ``device_``.

    With clusters (``n_clusters_ > 1``): ``n_clusters_`` (the number fitted or selected),
    ``n_clusters_scores_`` / ``n_clusters_elbos_`` (variational BIC / ELBO per candidate
    ``K``), ``cluster_proportions_`` ``(K,)``, ``memberships_`` ``(n_tasks, K)``,
    ``cluster_hyperposteriors_`` (the ``K`` mean-process hyper-posteriors, a
    ``HyperPosterior`` with a leading cluster axis on the normalised scale;
    :meth:`predict_mean_process` evaluates them), ``cluster_mean_kernels_``,
    ``cluster_prior_means_`` (also ``prior_mean_``), ``elbo_`` (the final ELBO, also
    ``log_marginal_likelihood_value_``: a lower bound); ``mean_kernel_`` is cluster 0's.
    A Magma fit has ``n_clusters_ = 1``, ``cluster_proportions_ = [1]`` and memberships 1.
    """

    _parameter_constraints: dict = {
        "mean_kernel": [None, SkKernel, AbstractKernel],
        "task_kernel": [None, SkKernel, AbstractKernel],
        "shared_hyperparameters": ["boolean"],
        "n_clusters": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"}), "array-like"],
        "shared_mean_hyperparameters": ["boolean"],
        "new_task_hyperparameters": [StrOptions({"auto", "shared", "learn"})],
        "prior_mean": [Real, StrOptions({"constant"})],
        "normalize_y": ["boolean"],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "m_step_max_iter": [Interval(Integral, 1, None, closed="left")],
        "m_step_tol": [Interval(Real, 0, None, closed="left")],
        "jitter": [StrOptions({"auto"}), Interval(Real, 0, None, closed="left")],
        "low_rank_tasks": ["boolean"],
        "input_decimals": [None, Interval(Integral, None, None, closed="neither")],
        "max_grid_size": [None, Interval(Integral, 1, None, closed="left")],
        "device": "no_validation",
        "dtype": "no_validation",
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        mean_kernel=None,
        task_kernel=None,
        *,
        shared_hyperparameters=True,
        n_clusters=1,
        shared_mean_hyperparameters=True,
        new_task_hyperparameters="auto",
        prior_mean=0.0,
        normalize_y=True,
        max_iter=25,
        tol=1e-3,
        m_step_max_iter=50,
        m_step_tol=1e-8,
        jitter="auto",
        low_rank_tasks=True,
        input_decimals=None,
        max_grid_size=5000,
        device=None,
        dtype="float64",
        random_state=None,
        verbose=0,
    ):
        self.mean_kernel = mean_kernel
        self.task_kernel = task_kernel
        self.shared_hyperparameters = shared_hyperparameters
        self.n_clusters = n_clusters
        self.shared_mean_hyperparameters = shared_mean_hyperparameters
        self.new_task_hyperparameters = new_task_hyperparameters
        self.prior_mean = prior_mean
        self.normalize_y = normalize_y
        self.max_iter = max_iter
        self.tol = tol
        self.m_step_max_iter = m_step_max_iter
        self.m_step_tol = m_step_tol
        self.jitter = jitter
        self.low_rank_tasks = low_rank_tasks
        self.input_decimals = input_decimals
        self.max_grid_size = max_grid_size
        self.device = device
        self.dtype = dtype
        self.random_state = random_state
        self.verbose = verbose

    def __getstate__(self):
        return to_host(super().__getstate__())

    # -- nested kernel parameters (mean_kernel__..., task_kernel__...) of skgpx kernels --------
    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        if deep:
            for name in ("mean_kernel", "task_kernel"):
                params.update(kernel_deep_params(getattr(self, name), name))
        return params

    def set_params(self, **params):
        """As scikit-learn; ``mean_kernel__<name>`` / ``task_kernel__<name>`` also work for skgpx kernels."""
        updates = {}
        for name in ("mean_kernel", "task_kernel"):
            params, updates[name] = split_kernel_params(params, params.get(name, getattr(self, name)), name)
        super().set_params(**params)
        for name, nested in updates.items():
            if nested:
                setattr(self, name, getattr(self, name).replace(**nested))
        return self

    def _jitter(self, dtype) -> float:
        if isinstance(self.jitter, str):
            return max(1e-8, 10.0 * float(np.finfo(dtype).eps))
        return float(self.jitter)

    def _context(self):
        return resolve_dtype(self.dtype), resolve_placement(self.device)

    # -- kernels ---------------------------------------------------------------------
    def _kernels(self):
        mk = SkC(1.0) * SkRBF(1.0) if self.mean_kernel is None else self.mean_kernel
        tk = SkC(1.0) * SkRBF(1.0) + SkWhite(0.1) if self.task_kernel is None else self.task_kernel
        self._sklearn_kernels = (isinstance(mk, SkKernel), isinstance(tk, SkKernel))
        mk = to_skgpx(clone(mk) if isinstance(mk, SkKernel) else mk)
        tk = to_skgpx(clone(tk) if isinstance(tk, SkKernel) else tk)
        if not tk.has_white:
            tk = tk + White(0.1, noise_level_bounds=(1e-6, 1e1))
        return mk, tk

    def _export(self, kernel, sklearn):
        return to_sklearn(kernel) if sklearn else kernel

    # -- fit ---------------------------------------------------------------------------
    def fit(self, X, y, groups=None):
        """Train by EM on long-format data.

        **Arguments:** `X` ``(n_samples, n_features)`` inputs, `y` ``(n_samples,)``
        outputs, `groups` ``(n_samples,)`` task label of every row (required).
        **Returns:** ``self``.
        """
        self._validate_params()
        dtype, device = self._context()
        check_toolchain(first_device(device))
        X, y = validate_data(self, X, y, y_numeric=True, ensure_2d=True, dtype="numeric")
        X = check_numeric(X)
        groups = _check_groups(groups, X.shape[0], "fit")
        if not (isinstance(self.n_clusters, Integral) and self.n_clusters == 1):
            return self._fit_clusters(X, y, groups)
        mk, tk = self._kernels()
        check_kernel(mk, X.shape[1], "mean_kernel")
        check_kernel(tk, X.shape[1], "task_kernel")
        self.jitter_ = jitter = self._jitter(dtype)
        y_n, self._y_mean, self._y_std = _normalise(y, self.normalize_y)
        layout = build_layout(
            X, y_n, groups, decimals=self.input_decimals, max_grid_size=self.max_grid_size,
            n_shards=n_devices(device), pad=True,
        )
        self._n_grid = layout.n_grid
        learn_m0 = isinstance(self.prior_mean, str)
        m0 = 0.0 if learn_m0 else (float(self.prior_mean) - self._y_mean) / self._y_std
        M_pad, p = layout.X.shape[0], tk.theta.shape[0]
        theta_task = np.asarray(tk.theta, np.float64)
        if not self.shared_hyperparameters:
            theta_task = np.tile(theta_task, (M_pad, 1))
        self.device_ = describe_placement(device)
        with precision_scope(dtype), placement_scope(device):
            data = place_task_data(task_data_from_layout(layout, dtype=dtype), device)
            params = MagmaParams(
                mk, tk, np.asarray(mk.theta, np.float64), theta_task, np.asarray(m0, np.float64),
                bool(self.shared_hyperparameters),
            )
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    res = run_em(
                        params,
                        data,
                        learn_prior_mean=learn_m0,
                        max_iter=self.max_iter,
                        tol=self.tol,
                        m_step_max_iter=self.m_step_max_iter,
                        m_step_tol=self.m_step_tol,
                        jitter=jitter,
                        low_rank_tasks=self.low_rank_tasks,
                        verbose=self.verbose,
                    )
                except ValueError as e:
                    if "non-finite log-likelihood" not in str(e):
                        raise
                    raise ValueError(self._initial_failure(dtype, jitter)) from e
        for w in caught:  # the EM's warnings, its generic non-convergence one made specific
            if issubclass(w.category, ConvergenceWarning) and "did not converge" in str(w.message):
                warnings.warn(em_advice(res.elbo_history, self.max_iter, self.tol), ConvergenceWarning, stacklevel=2)
            else:
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        P = to_host(res.params)
        self._layout = layout
        self.tasks_ = layout.task_ids
        self.grid_ = layout.real_grid
        self.hyperposterior_ = to_host(res.posterior)
        theta0 = np.asarray(P.theta0, np.float64)
        tt = np.asarray(P.theta_task, np.float64)
        self.task_theta_ = np.tile(tt, (layout.n_tasks, 1)) if tt.ndim == 1 else tt[: layout.n_tasks]
        self._task_prior = res.task_prior
        self._mean_kernel_skgpx = mk.with_theta(theta0)
        self._task_kernel_skgpx = tk.with_theta(self.task_theta_.mean(axis=0))
        self._task_template = tk
        self.mean_kernel_ = self._export(self._mean_kernel_skgpx, self._sklearn_kernels[0])
        self.task_kernel_ = self._export(self._task_kernel_skgpx, self._sklearn_kernels[1])
        self.prior_mean_ = float(np.asarray(P.m0)) * self._y_std + self._y_mean
        self.elbo_history_ = res.elbo_history
        self.n_iter_ = res.n_iter
        self.converged_ = res.converged
        self.log_marginal_likelihood_value_ = res.log_marginal_likelihood
        self.iteration_times_ = res.iteration_times
        self.m_step_cov_ranks_ = res.m_step_cov_ranks
        self.task_cov_ranks_ = res.task_ranks
        self.n_clusters_, self.cluster_proportions_ = 1, np.ones(1)
        self.memberships_ = np.ones((layout.n_tasks, 1))
        warn_magma_bounds(mk, theta0, "mean_kernel")
        warn_magma_bounds(tk, self.task_theta_ if not self.shared_hyperparameters else self.task_theta_[0],
                          "task_kernel")
        return self

    def _initial_failure(self, dtype, jitter) -> str:
        hint = "" if self.normalize_y else " Set normalize_y=True, or pass kernels with initial values on the scale of y."
        other = " or use dtype='float64'" if np.dtype(dtype) == np.float32 else ""
        return (
            f"The initial hyperparameters give a non-finite Magma log-likelihood ({np.dtype(dtype).name}): a "
            f"covariance matrix (the mean process's on the grid of {self._n_grid} distinct inputs, or a task's) "
            f"was not numerically positive definite with jitter={jitter:.3g} relative to its mean diagonal. "
            f"Raise `jitter` (e.g. jitter={max(jitter * 100, 1e-6):.0e}){other}, round the inputs with "
            f"`input_decimals`, or start from longer-scaled, smaller-amplitude kernels.{hint}"
        )

    def summary(self) -> str:
        """A readable multi-line report of the fitted model (kernels, tasks, grid, EM run)."""
        check_is_fitted(self, "hyperposterior_")
        return format_magma_summary(self)

    # -- predictions ----------------------------------------------------------------------
    def predict_mean_process(self, X, return_std=False, return_cov=False):
        """Hyper-posterior of the mean process ``mu0`` at `X` (no task deviation, no noise).

        **Returns:** mean ``(m,)``, and the standard deviation ``(m,)`` or covariance
        ``(m, m)`` when asked. With clusters, one per mean process: ``(K, m)``, ``(K, m)``
        or ``(K, m, m)``.
        """
        if return_std and return_cov:
            raise RuntimeError("At most one of return_std or return_cov can be requested.")
        check_is_fitted(self, "hyperposterior_")
        X = validate_data(self, X, ensure_2d=True, dtype="numeric", reset=False)
        if self._clustered:
            parts = [self._mean_process_cluster(X, k) for k in range(self.n_clusters_)]
            mean = np.stack([m for m, _ in parts]) * self._y_std + self._y_mean
            cov = np.stack([c for _, c in parts]) * self._y_std**2
            if return_cov:
                return mean, cov
            if return_std:
                return mean, np.sqrt(np.maximum(np.diagonal(cov, axis1=1, axis2=2), 0.0))
            return mean
        mean, second = self._mean_process(self.hyperposterior_, self._mean_kernel_skgpx, X, bool(return_cov))
        mean = mean * self._y_std + self._y_mean
        if return_cov:
            return mean, np.asarray(second) * self._y_std**2
        if return_std:
            return mean, np.sqrt(np.maximum(np.asarray(second), 0.0)) * self._y_std
        return mean

    def _mean_process(self, post, mean_kernel, X, full_cov):
        """:func:`~skgpx.magma.mean_process_at` on ``X`` padded to a size bucket (one compiled
        program for nearby sizes), the padding sliced off."""
        m = X.shape[0]
        A, mask = np.zeros((bucket(m), X.shape[1])), np.arange(bucket(m)) < m
        A[:m] = X
        dtype, device = self._context()
        with precision_scope(dtype), placement_scope(device):
            mean, second = mean_process_at(post, mean_kernel, jnp.asarray(A, dtype), full_cov, jnp.asarray(mask))
        second = np.asarray(second)
        return np.asarray(mean)[:m], (second[:m, :m] if full_cov else second[:m])

    def predict(self, X, groups=None, return_std=False, return_cov=False, *, X_obs=None, y_obs=None, groups_obs=None):
        """Predictive distribution of tasks at `X` (new noisy observations of each row's task).

        **Arguments:**

        - `X` ``(m, n_features)``, `groups` ``(m,)``: inputs and the task of every row.
          A training task is predicted from its training observations with its
          learned hyperparameters.
        - `X_obs`, `y_obs`, `groups_obs`: observed points of **new** tasks (labels
          not seen in ``fit``), any number of tasks at once. Each new task is
          predicted from its own observations; with distinct hyperparameters its
          hyperparameters are first learned from them (eq. (7) of the paper, all new
          tasks in one batched optimisation).
        - `return_std`, `return_cov`: also return the standard deviation ``(m,)``, or
          the covariance ``(m, m)``. Rows of different tasks are predicted
          independently given the training data (as in the paper), so the covariance
          is block-diagonal by task.

        A label that is neither a training task nor in `groups_obs` is an error; use
        :meth:`predict_mean_process` for a task with no observations.

        With clusters (``n_clusters_ > 1``) the predictive of a task is the mixture of
        its per-cluster predictives weighted by its memberships (training tasks: their
        variational memberships; new tasks: the clusters' posterior probabilities given
        their observations, :meth:`predict_cluster_proba`); the mean and standard
        deviation returned are the mixture's (``sum_k tau_k mean_k`` and
        ``sqrt(sum_k tau_k (var_k + (mean_k - mean)^2))``), the covariance is the
        mixture's covariance. :meth:`predict_clusters` returns every cluster's part.
        """
        return self._predict(X, groups, return_std, return_cov, X_obs, y_obs, groups_obs, unknown="error")

    def sample_y(self, X, groups=None, n_samples=1, random_state=None, *, X_obs=None, y_obs=None, groups_obs=None):
        """Draws ``(m, n_samples)`` from the predictive distribution of each row's task (see :meth:`predict`).

        Tasks are drawn independently (block-diagonal covariance); `random_state`
        defaults to the estimator's ``random_state``. With clusters, each draw of a task
        first draws its cluster from its memberships, then a GP sample from that
        cluster's predictive.
        """
        if groups is None:
            _check_groups(None, 0, "sample_y")
        n_samples = check_n_samples(n_samples)
        rng = check_random_state(self.random_state if random_state is None else random_state)
        if self._clustered:
            return self._sample_clusters(X, groups, n_samples, rng, X_obs, y_obs, groups_obs)
        mean, cov = self.predict(X, groups, return_cov=True, X_obs=X_obs, y_obs=y_obs, groups_obs=groups_obs)
        groups = np.asarray(groups)
        out = np.empty((mean.shape[0], int(n_samples)))
        for label in _unique_labels(groups):
            rows = np.flatnonzero(groups == label)
            out[rows] = rng.multivariate_normal(mean[rows], cov[np.ix_(rows, rows)], int(n_samples)).T
        return out

    def score(self, X, y, groups=None, sample_weight=None):
        """R^2 of the predictions of :meth:`predict` on ``(X, y, groups)``.

        Rows of tasks not seen in ``fit`` (e.g. the held-out tasks of ``GroupKFold``)
        are scored against the mean-process prediction, the Magma prediction for a
        task without observations.
        """
        if groups is None:
            _check_groups(None, 0, "score")
        y_pred = self._predict(X, groups, False, False, None, None, None, unknown="mean_process")
        return r2_score(y, y_pred, sample_weight=sample_weight)

    def _predict(self, X, groups, return_std, return_cov, X_obs, y_obs, groups_obs, unknown, full_output=False):
        if return_std and return_cov:
            raise RuntimeError("At most one of return_std or return_cov can be requested.")
        check_is_fitted(self, "hyperposterior_")
        X = check_numeric(validate_data(self, X, ensure_2d=True, dtype="numeric", reset=False))
        groups = _check_groups(groups, X.shape[0], "predict")
        known = {_key(t): i for i, t in enumerate(self.tasks_)}
        new_obs = self._new_task_observations(X_obs, y_obs, groups_obs, known)
        labels = _unique_labels(groups)
        missing = [t for t in labels if _key(t) not in known and _key(t) not in new_obs["index"]]
        if missing and unknown == "error":
            raise ValueError(
                f"`groups` holds {len(missing)} task(s) neither seen in fit nor given in `groups_obs` "
                f"(e.g. {missing[0]!r}). Pass their observed points as X_obs=, y_obs=, groups_obs=, "
                "or call predict_mean_process(X) for a task with no observations."
            )
        out_mean = np.empty(X.shape[0])
        out_var = np.empty(X.shape[0]) if return_std else None
        out_cov = np.zeros((X.shape[0], X.shape[0])) if return_cov else None
        mp_rows = np.isin(groups, np.asarray(missing, dtype=groups.dtype)) if missing else np.zeros(len(groups), bool)
        if self._clustered:
            out = self._predict_clust(X, groups, return_std, return_cov, known, new_obs, mp_rows)
            if full_output:
                return out
            if return_cov:
                return out["mean"], _mixture_cov(out, groups)
            return (out["mean"], np.sqrt(out["mix_var"])) if return_std else out["mean"]
        if mp_rows.any():
            m, s = self.predict_mean_process(X[mp_rows], return_cov=True)
            out_mean[mp_rows] = m
            if return_std:
                out_var[mp_rows] = np.diag(s)
            if return_cov:
                out_cov[np.ix_(mp_rows, mp_rows)] = s
        rows = np.flatnonzero(~mp_rows)
        if rows.size:
            mean, second, task_of_row, pos = self._task_predictions(
                X[rows], groups[rows], known, new_obs, full_cov=bool(return_cov)
            )
            out_mean[rows] = mean[task_of_row, pos] * self._y_std + self._y_mean
            if return_std:
                out_var[rows] = second[task_of_row, pos] * self._y_std**2
            if return_cov:
                for b in np.unique(task_of_row):
                    sel = task_of_row == b
                    r = rows[sel]
                    out_cov[np.ix_(r, r)] = second[b][np.ix_(pos[sel], pos[sel])] * self._y_std**2
        if return_cov:
            return out_mean, out_cov
        if return_std:
            return out_mean, np.sqrt(np.maximum(out_var, 0.0))
        return out_mean

    def _new_task_observations(self, X_obs, y_obs, groups_obs, known):
        """Padded observations of new tasks, and their hyperparameters (learned when distinct)."""
        if X_obs is None and y_obs is None and groups_obs is None:
            return {"index": {}}
        if X_obs is None or y_obs is None or groups_obs is None:
            raise ValueError("Pass all three of X_obs, y_obs and groups_obs (observed points of the new tasks).")
        X_obs, y_obs = validate_data(self, X_obs, y_obs, y_numeric=True, ensure_2d=True, dtype="numeric", reset=False)
        groups_obs = _check_groups(groups_obs, X_obs.shape[0], "predict", name="groups_obs")
        ids, task = np.unique(groups_obs, return_inverse=True)
        clash = [t for t in ids if _key(t) in known]
        if clash:
            raise ValueError(
                f"`groups_obs` labels must be new tasks, but {clash[0]!r} is a training task. A training task "
                "is predicted from its training data; give the new task a label not used in fit."
            )
        _, pos, _, n_max = pad_by_group(task, len(ids))
        # Size buckets for the tasks and their rows (padded tasks fully masked): nearby sizes
        # share the compiled programs.
        B, n_max, d = bucket(len(ids)), bucket(n_max), X_obs.shape[1]
        Xo = np.zeros((B, n_max, d))
        yo = np.zeros((B, n_max))
        mo = np.zeros((B, n_max), bool)
        Xo[task, pos] = X_obs
        yo[task, pos] = (y_obs - self._y_mean) / self._y_std
        mo[task, pos] = True
        thetas = np.tile(self.task_theta_.mean(axis=0), (B, 1))
        learn = self.new_task_hyperparameters == "learn" or (
            self.new_task_hyperparameters == "auto" and not self.shared_hyperparameters
        )
        if learn:
            learner = self._new_task_thetas_clust if self._clustered else self._learn_new_task_hyperparameters
            thetas = learner(thetas, Xo, yo, mo)
        return {"index": {_key(t): j for j, t in enumerate(ids)}, "X": Xo, "y": yo, "mask": mo, "theta": thetas}

    def _learn_new_task_hyperparameters(self, thetas, Xo, yo, mo):
        dtype, device = self._context()
        tk = self._task_template
        bounds = np.tile(np.asarray(tk.bounds), (thetas.shape[0], 1))
        prior = getattr(self, "_task_prior", None) or population_prior(self.task_theta_)
        with precision_scope(dtype), placement_scope(device):
            args = [jnp.asarray(a, dtype) for a in (Xo, yo)] + [jnp.asarray(mo)]
            jit = jnp.asarray(self.jitter_, dtype)
            scale = jnp.asarray(1.0 / max(int(mo.sum()), 1), dtype)
            prior = None if prior is None else tuple(jnp.asarray(a, dtype) for a in prior)
            res = minimize_lbfgsb(
                lambda th: new_task_objective_and_grad(
                    jnp.asarray(th, dtype), self.hyperposterior_, self._mean_kernel_skgpx, tk, *args, jit, scale,
                    prior,
                ),
                thetas,
                bounds,
                max_iter=self.m_step_max_iter * 4,
                tol=self.m_step_tol,
            )
        return np.asarray(res.x)

    def _task_predictions(self, X, groups, known, new_obs, full_cov, post=None, mean_kernel=None):
        """Batched task posteriors on the normalised scale, one padded row per requested task
        (under the hyper-posterior `post` with `mean_kernel`, default the fitted ones)."""
        labels, task_of_row = np.unique(groups, return_inverse=True)
        task_of_row = task_of_row.reshape(-1)
        _, pos, _, m_max = pad_by_group(task_of_row, len(labels))
        B, m_max = bucket(len(labels)), bucket(m_max)  # size buckets, padded tasks fully masked
        lay = self._layout
        n_new = new_obs["X"].shape[1] if "X" in new_obs else 0
        n_max = max(lay.n_max, n_new)
        d = X.shape[1]
        Xo, yo = np.zeros((B, n_max, d)), np.zeros((B, n_max))
        mo, thetas = np.zeros((B, n_max), bool), np.zeros((B, self.task_theta_.shape[1]))
        for b, t in enumerate(labels):
            k = _key(t)
            if k in known:
                i = known[k]
                Xo[b, : lay.n_max], yo[b, : lay.n_max], mo[b, : lay.n_max] = lay.X[i], lay.y[i], lay.mask[i]
                thetas[b] = self.task_theta_[i]
            else:
                j = new_obs["index"][k]
                Xo[b, :n_new], yo[b, :n_new], mo[b, :n_new] = new_obs["X"][j], new_obs["y"][j], new_obs["mask"][j]
                thetas[b] = new_obs["theta"][j]
        Xp, mp = np.zeros((B, m_max, d)), np.zeros((B, m_max), bool)
        Xp[task_of_row, pos], mp[task_of_row, pos] = X, True
        batch = int(max(1, min(B, _PREDICT_BUDGET // (n_max + m_max) ** 2)))
        dtype, device = self._context()
        with precision_scope(dtype), placement_scope(device):
            mean, second = task_posteriors(
                self.hyperposterior_ if post is None else post,
                self._mean_kernel_skgpx if mean_kernel is None else mean_kernel,
                self._task_template,
                *(jnp.asarray(a, dtype) for a in (thetas, Xo, yo)),
                jnp.asarray(mo),
                jnp.asarray(Xp, dtype),
                jnp.asarray(mp),
                jnp.asarray(self.jitter_, dtype),
                full_cov,
                batch,
            )
        return np.asarray(mean)[: len(labels)], np.asarray(second)[: len(labels)], task_of_row, pos


def _mixture_cov(out, groups):
    """The mixture covariance, block-diagonal by task: ``sum_k tau_k (C_k + d_k d_k^T)`` per task block."""
    cov = np.zeros(out["covs"].shape[1:])
    for label in np.unique(groups):
        r = np.flatnonzero(groups == label)
        t = out["proba"][r[0]]
        d = out["means"][:, r] - out["mean"][None, r]
        blk = np.einsum("k,kab->ab", t, out["covs"][:, r[:, None], r[None, :]]) + np.einsum("k,ka,kb->ab", t, d, d)
        cov[np.ix_(r, r)] = blk
    return cov


def n_devices(placement) -> int:
    return int(placement.size) if isinstance(placement, jax.sharding.Mesh) else 1


def _normalise(y, normalize_y):
    y = np.asarray(y, dtype=np.float64)
    if not normalize_y:
        return y, 0.0, 1.0
    mean, std = float(np.mean(y)), float(np.std(y))
    std = 1.0 if std < 10 * np.finfo(np.float64).eps else std
    return (y - mean) / std, mean, std


def _key(label):
    """Hashable key of a task label (NumPy scalars and Python scalars compare equal)."""
    return label.item() if isinstance(label, np.generic) else label


def _unique_labels(groups):
    _, first = np.unique(groups, return_index=True)
    return [groups[i] for i in np.sort(first)]


def _check_groups(groups, n_samples, method, name="groups"):
    if groups is None:
        raise ValueError(
            f"{method}() needs `{name}`: the task label of every row of X (e.g. {name}=task_ids, "
            "an array of length n_samples). With GridSearchCV, enable metadata routing "
            "(sklearn.set_config(enable_metadata_routing=True)) and call "
            "est.set_fit_request(groups=True).set_score_request(groups=True)."
        )
    groups = np.asarray(groups)
    if groups.ndim != 1 or groups.shape[0] != n_samples:
        raise ValueError(
            f"`{name}` must be a 1-D array with one task label per row of X ({n_samples} rows), "
            f"got shape {groups.shape}."
        )
    if groups.dtype.kind == "f" and np.any(~np.isfinite(groups)):
        raise ValueError(f"`{name}` contains NaN or infinite labels; give every row a task label.")
    if groups.dtype.kind == "O":
        groups = _object_labels(groups, name)
    return groups


def _object_labels(groups, name):
    """An object array of labels as one NumPy type: all strings, or all numbers.

    Mixed types are refused: turning them into strings made the labels 0 and "0" one task.
    """
    kinds = {"str" if isinstance(g, str) else "number" if isinstance(g, (Real, np.number)) else type(g).__name__
             for g in groups}
    if kinds == {"str"}:
        return groups.astype(str)
    if kinds == {"number"}:
        return np.asarray(groups.tolist())
    raise ValueError(
        f"`{name}` mixes label types ({', '.join(sorted(kinds))}), e.g. 0 and '0' would be ambiguous; give "
        "every task a label of one type (all strings or all numbers), e.g. groups=np.asarray(groups, dtype=str)."
    )
