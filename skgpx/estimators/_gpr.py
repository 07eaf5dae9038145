"""``ScalableGPRegressor``: scikit-learn's ``GaussianProcessRegressor`` API on skgpx back-ends.

A thin scikit-learn layer: validation and bookkeeping here, numerics in the
pure, compiled functions of :mod:`skgpx.gp` (the back-end chosen by ``solver``),
:mod:`._optimize` (hyperparameters) and :mod:`._predict` (predictions).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin, clone
from sklearn.gaussian_process.kernels import Kernel as SkKernel
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .._blas import dense_factorisation_guard
from .._config import resolve_dtype
from .._device import default_device_is_cpu
from .._lazy import loaded_isinstance
from ..gp import _auto
from ..gp._host import HOST_SOLVER, HostPosterior
from ..kernels._sklearn_spec import untranslated_part
from ._host import fit_host, host_inference, host_lml
from ._state import DeviceCloneMixin, kernel_deep_params, split_kernel_params, to_host
from ._summary import format_summary
from ._validation import (
    GPR_PARAMETER_CONSTRAINTS,
    check_kernel,
    check_n_samples,
    check_numeric,
    check_sklearn_kernel,
    fit_kernel,
    noise_vector,
    normalise_targets,
    prior_kernel,
    skgpx_kernel_or_none,
    x_checks,
)

__all__ = ["ScalableGPRegressor"]

# sample_y(method="auto") draws exactly (a dense m x m covariance) up to this many points.
EXACT_SAMPLING_MAX_POINTS = 2000

class _OnFirstAccess:
    """A fitted attribute that a NumPy host-path fit computes on first access (``compute(est)``, which
    imports JAX) and keeps; a compiled fit sets it as an ordinary attribute, which takes precedence."""

    def __init__(self, compute):
        self.compute = compute

    def __set_name__(self, owner, name):
        self.name = name

    def __get__(self, est, owner=None):
        if est is None:
            return self
        if est.__dict__.get("solver_") != HOST_SOLVER:
            raise AttributeError(f"{type(est).__name__!r} object has no attribute {self.name!r}")
        value = est.__dict__[self.name] = self.compute(est)
        return value


class ScalableGPRegressor(DeviceCloneMixin, MultiOutputMixin, RegressorMixin, BaseEstimator):
    """Gaussian process regression, a drop-in for scikit-learn's ``GaussianProcessRegressor``.

    The first eight parameters, the methods and the fitted attributes are
    scikit-learn's, with the same meaning and defaults; with ``solver="cholesky"``
    (what ``"auto"`` picks for moderate ``n``) the numbers are scikit-learn's to
    rounding.

    **Parameters** (scikit-learn's)

    - `kernel`: a scikit-learn kernel, an skgpx kernel, or None (``ConstantKernel() *
      RBF()``, optimised, as scikit-learn; prior predictions use the fixed
      ``C(1.0, "fixed") * RBF(1.0, "fixed")``). A scikit-learn kernel without an skgpx
      translation (a user's subclass, a kernel on strings...) runs exactly on the NumPy
      host path through its own ``__call__`` (``solver_ == "host-numpy"``, see
      :mod:`skgpx.estimators._host`).
    - `alpha`: value(s) added to the diagonal of the training Gram matrix (noise
      variance), scalar or one per sample. Default 1e-10.
    - `optimizer`: ``"fmin_l_bfgs_b"`` (scipy's L-BFGS-B, as scikit-learn), a callable
      ``optimizer(obj_func, initial_theta, bounds) -> (theta_opt, func_min)`` where
      ``obj_func(theta, eval_gradient=True)`` returns the *negative* log marginal
      likelihood and its gradient, or None (keep the kernel's hyperparameters).
    - `n_restarts_optimizer`: extra optimiser runs from points drawn uniformly in the
      log bounds with ``random_state``.
    - `normalize_y`, `copy_X_train`, `n_targets`, `random_state`: as scikit-learn.

    **Parameters** (skgpx's)

    - `solver`: a solver name or a solver object from :mod:`skgpx.gp`. Names:
      ``"auto"`` (see ``skgpx.gp._auto.select_solver``), ``"cholesky"`` (exact),
      ``"cg-dense"`` (preconditioned CG on the n x n Gram held in memory),
      ``"cg-matrix-free"`` (tiled kernel matvecs, the Gram never formed), ``"cg"`` (CG,
      dense or matrix-free by the memory budget), ``"cg-time-groups"``, ``"ski"``, ``"rff"``,
      ``"nystrom"``. A name stands for
      the solver object with default options; to set options pass the object:
      ``Cholesky(jitter=1e-8)``, ``CG(tol=1e-4, preconditioner_rank=200, variance_method="love")``,
      ``Nystrom(n_components=2000)``, ``RFF(n_components=4096)``. Objects are immutable,
      validate their options when built, and are searched like nested parameters:
      ``GridSearchCV(est, {"solver__tol": [1e-3, 1e-6]})`` with ``solver=CG()``.
      ``"auto"`` runs a scikit-learn kernel below 512 rows on the CPU in float64 on the
      NumPy host path (``"host-numpy"``: scikit-learn's own computation, nothing to compile, JAX
      not imported; "the CPU" is decided without JAX unless an accelerator plugin is installed,
      ``JAX_PLATFORMS`` names another platform or JAX is already imported),
      and otherwise picks ``"cholesky"`` for n <= 5000 (n <= 15000 when no hyperparameter is
      optimised) when three n x n matrices fit min(25% of available memory, 8 GiB); beyond,
      ``"ski"`` for inputs on a regular lattice with missing cells (gridded data: the exact
      GP by FFT products) and a stationary or ``ActiveDims``-product kernel; then
      ``"cg-time-groups"`` (``CG(time_dim="auto")``, exact) for a space x time product kernel on
      data at 2 to 64 distinct times where it keeps plain CG's operator; else ``"cg-dense"``
      while one n x n matrix fits, then ``"cg-matrix-free"``.
    - `device`: None (JAX's default device), ``"cpu"``, ``"gpu"``, ``"auto"`` or a
      ``jax.Device``; arrays are placed and computations run there. Several devices (a list of
      ``jax.Device``, a ``jax.sharding.Mesh``, or ``"all"``): the CG solvers' kernel operator
      is split by rows over them (docs: "Scaling out").
    - `dtype`: ``"float64"`` (default; matches scikit-learn) or ``"float32"``.
    - `verbose`: 0 silent, 1 one line per optimiser run, 2 also every iteration.

    **Fitted attributes**: scikit-learn's ``X_train_``, ``y_train_``, ``kernel_`` (a
    scikit-learn kernel when a scikit-learn kernel or None was given, else the skgpx
    kernel), ``L_``, ``alpha_``, ``log_marginal_likelihood_value_``,
    ``n_features_in_``, ``feature_names_in_``; and skgpx's ``kernel_skgpx_`` (the
    fitted skgpx kernel; None for a kernel with no translation), ``solver_`` (resolved name),
    ``inference_`` (the solver object; after a host-path fit these two are built on first
    access, which imports JAX), ``posterior_`` (the fitted posterior), ``jitter_``, ``n_iter_`` (iterations of the best optimiser
    run), ``optimizer_runs_`` (one dict per run), ``device_`` (a string), ``solver_info_``
    (the back-end's ``diagnostics()`` dict: for the CG solvers the PCG iterations, achieved relative
    residual, converged flag, preconditioner rank and the measured LOVE standard-deviation error;
    for ``"rff"`` / ``"nystrom"`` the features used ``n_features_used`` and
    ``kernel_approx_rel_frobenius_error``, the relative Frobenius error of the approximate
    kernel on a 200-point training subsample).
    """

    _parameter_constraints: dict = GPR_PARAMETER_CONSTRAINTS

    # A NumPy host-path fit computes these on first access (they need JAX); a compiled fit sets them.
    kernel_skgpx_ = _OnFirstAccess(lambda est: skgpx_kernel_or_none(est.kernel_))
    inference_ = _OnFirstAccess(host_inference)

    def __init__(
        self,
        kernel=None,
        *,
        alpha=1e-10,
        optimizer="fmin_l_bfgs_b",
        n_restarts_optimizer=0,
        normalize_y=False,
        copy_X_train=True,
        n_targets=None,
        random_state=None,
        solver="auto",
        device=None,
        dtype="float64",
        verbose=0,
    ):
        self.kernel = kernel
        self.alpha = alpha
        self.optimizer = optimizer
        self.n_restarts_optimizer = n_restarts_optimizer
        self.normalize_y = normalize_y
        self.copy_X_train = copy_X_train
        self.n_targets = n_targets
        self.random_state = random_state
        self.solver = solver
        self.device = device
        self.dtype = dtype
        self.verbose = verbose

    # -- scikit-learn plumbing ----------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        return tags

    def get_params(self, deep=True):
        params = super().get_params(deep=deep)
        if deep:
            params.update(kernel_deep_params(self.kernel))
        return params

    def set_params(self, **params):
        """As scikit-learn; ``kernel__<name>`` also works for skgpx kernels (via ``kernel.replace``)
        and ``solver__<option>`` replaces an option of a solver object (``solver.replace``)."""
        solver = params.get("solver", self.solver)
        solver_updates = {k[len("solver__"):]: params.pop(k) for k in list(params) if k.startswith("solver__")}
        if solver_updates and not loaded_isinstance(solver, "skgpx.gp._abstract", "AbstractInference"):
            raise ValueError(
                f"`solver__{next(iter(solver_updates))}` needs a solver object, but solver={solver!r}. Pass one, "
                "e.g. set_params(solver=skgpx.gp.CG(), solver__tol=1e-4)."
            )
        rest, kernel_updates = split_kernel_params(params, params.get("kernel", self.kernel))
        super().set_params(**rest)
        if kernel_updates:
            self.kernel = self.kernel.replace(**kernel_updates)
        if solver_updates:
            self.solver = self.solver.replace(**solver_updates)
        return self

    def __getstate__(self):
        # JAX arrays (posterior, kernels) are stored as NumPy so pickles load anywhere,
        # without a device and without depending on the x64 flag at load time.
        return to_host(super().__getstate__())

    def _host_possible(self, n) -> bool:
        """Whether ``solver="auto"`` runs a scikit-learn kernel on `n` rows on the NumPy host path:
        float64, no device asked for, fewer than ``HOST_MAX_N`` rows and JAX's default device a CPU."""
        return (isinstance(self.solver, str) and self.solver == "auto" and resolve_dtype(self.dtype) == np.float64
                and self.device is None and n < _auto.HOST_MAX_N and default_device_is_cpu())

    # -- fit -------------------------------------------------------------------------
    def fit(self, X, y):
        """Fit the GP: optimise the kernel hyperparameters (unless ``optimizer=None``) and condition.

        **Arguments:** `X` ``(n_samples, n_features)``; `y` ``(n_samples,)`` or
        ``(n_samples, n_targets)``. **Returns:** ``self``.
        """
        self._validate_params()
        dtype = resolve_dtype(self.dtype)
        kernel = fit_kernel(self.kernel)
        kernel = clone(kernel) if isinstance(kernel, SkKernel) else kernel
        self._sklearn_kernel = isinstance(kernel, SkKernel)
        # A scikit-learn kernel's part with no skgpx translation (None: it translates): the NumPy host path.
        untranslated = untranslated_part(kernel) if self._sklearn_kernel else None
        self._rng = check_random_state(self.random_state)

        checks = x_checks(kernel)
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, **checks)
        if checks["dtype"] == "numeric":
            X = check_numeric(X)
        n = y.shape[0]
        if untranslated is not None:
            host = f"{type(untranslated).__name__} has no skgpx translation"
        elif self._sklearn_kernel and self._host_possible(n):
            host = f"solver='auto' with a scikit-learn kernel and n={n} < {_auto.HOST_MAX_N} on the CPU"
            check_sklearn_kernel(kernel, X.shape[1])  # what check_kernel checks, without building the kernel
        else:
            host = None
            kernel_skgpx = skgpx_kernel_or_none(kernel)
            check_kernel(kernel_skgpx, X.shape[1])
        n_targets_seen = y.shape[1] if y.ndim > 1 else 1
        if self.n_targets is not None and n_targets_seen != self.n_targets:
            raise ValueError(
                "The number of targets seen in `y` is different from the parameter "
                f"`n_targets`. Got {n_targets_seen} != {self.n_targets}."
            )
        y, self._y_train_mean, self._y_train_std = normalise_targets(y, self.normalize_y)
        noise = noise_vector(self.alpha, y.shape[0])
        self.X_train_ = np.copy(X) if self.copy_X_train else X
        self.y_train_ = np.copy(y) if self.copy_X_train else y
        if host is not None:
            # skgpx.estimators._host: the kernel's own __call__, scikit-learn's computation; no JAX.
            fit_host(self, kernel, X, y, noise, host)
            return self
        from ._gpr_compiled import fit_compiled

        auto = isinstance(self.solver, str) and self.solver == "auto"
        fit_compiled(self, kernel_skgpx, X, y, noise, dtype, auto)
        return self

    def _factorisation_guard(self, n):
        # Dense n x n factorisations happen only on the Cholesky path (skgpx._blas).
        return dense_factorisation_guard(n if self.solver_ == "cholesky" else 0)

    def _check_posterior(self, posterior):
        diag = posterior.diagnostics()
        if not bool(getattr(posterior, "ok", True)):
            jitter = getattr(self.inference_, "jitter", "auto")
            if isinstance(jitter, str):
                tried = f"adaptive jitter up to {diag.get('jitter', 0.0):.3g} on the diagonal did not help"
            else:
                tried = (f"jitter={jitter!r} was added; {type(self.inference_).__name__}(jitter='auto') adds "
                         "adaptive jitter when the factorisation fails")
            raise np.linalg.LinAlgError(
                f"The kernel, {self.kernel_}, is not returning a positive definite matrix. Try gradually "
                f"increasing the 'alpha' parameter of your ScalableGPRegressor estimator ({tried})."
            )
        self.jitter_ = float(diag.get("jitter", 0.0))
        if self.jitter_ > 0:
            warnings.warn(
                f"K + alpha was not numerically positive definite; added jitter {self.jitter_:.3g} to its "
                "diagonal (stored in `jitter_`). Increase `alpha` (or add a WhiteKernel) to model the noise "
                "explicitly.",
                UserWarning,
                stacklevel=3,
            )

    # -- fitted-state views (scikit-learn's names) --------------------------------------
    @property
    def L_(self):
        """Lower Cholesky factor of ``K(X_train_, X_train_) + alpha`` (exact solver only)."""
        check_is_fitted(self, "posterior_")
        L = getattr(self.posterior_, "L", None)
        if L is None:
            raise AttributeError(f"`L_` is only available with solver='cholesky' (this model used {self.solver_!r}).")
        n = self.X_train_.shape[0]  # the factor of a padded training set has an identity block after n
        return np.asarray(L)[:n, :n]

    @property
    def alpha_(self):
        """``(K + alpha)^{-1} y_train_`` on the normalised scale, shaped like ``y_train_``."""
        check_is_fitted(self, "posterior_")
        a = getattr(self.posterior_, "alpha", None)
        if a is None:
            raise AttributeError(f"`alpha_` is not stored by the {self.solver_!r} solver.")
        a = np.asarray(a)[: self.X_train_.shape[0]]
        return a.reshape(self.y_train_.shape)

    # -- predict -----------------------------------------------------------------------
    def predict(self, X, return_std=False, return_cov=False):
        """Predictive mean, and optionally standard deviation or covariance, as scikit-learn.

        Before ``fit`` the GP prior is used. Shapes: mean ``(m,)`` or ``(m, n_targets)``;
        std likewise; cov ``(m, m)`` or ``(m, m, n_targets)``.
        """
        if return_std and return_cov:
            raise RuntimeError("At most one of return_std or return_cov can be requested.")
        checks = x_checks(self.kernel)
        X = validate_data(self, X, reset=False, **checks)
        if checks["dtype"] == "numeric":
            X = check_numeric(X)
        if not hasattr(self, "posterior_"):
            return self._predict_prior(X, return_std, return_cov)
        dtype = resolve_dtype(self.dtype)
        std_y = self._y_train_std
        if isinstance(self.posterior_, HostPosterior):  # NumPy host path: the kernel's own __call__
            mean = self.posterior_.mean(X)
            cov = self.posterior_.cov(X) if return_cov else None
            var = self.posterior_.var(X) if return_std and not return_cov else None
        else:
            from ._gpr_compiled import predict_compiled

            mean, var, cov = predict_compiled(self, X, return_std, return_cov, dtype)
        # Undo the normalisation; results keep the estimator's dtype (float64 by default).
        y_mean = (std_y * np.asarray(mean) + self._y_train_mean).astype(dtype, copy=False)
        if y_mean.ndim > 1 and y_mean.shape[1] == 1:
            y_mean = np.squeeze(y_mean, axis=1)
        if return_cov:
            y_cov = np.asarray(cov)
            y_cov = np.outer(y_cov, std_y**2).reshape(*y_cov.shape, -1).astype(dtype, copy=False)
            return y_mean, (np.squeeze(y_cov, axis=2) if y_cov.shape[2] == 1 else y_cov)
        if return_std:
            y_var = np.array(var)
            negative = y_var < 0
            if np.any(negative):
                warnings.warn("Predicted variances smaller than 0. Setting those variances to 0.")
                y_var[negative] = 0.0
            y_var = np.outer(y_var, std_y**2).reshape(*y_var.shape, -1)
            if y_var.shape[1] == 1:
                y_var = np.squeeze(y_var, axis=1)
            return y_mean, np.sqrt(y_var).astype(dtype, copy=False)
        return y_mean

    def _predict_prior(self, X, return_std, return_cov):
        kernel = prior_kernel(self.kernel)
        # The NumPy host path's rule: a scikit-learn kernel it may run, or one with no translation.
        host = isinstance(kernel, SkKernel) and (self._host_possible(len(X)) or untranslated_part(kernel) is not None)
        n_targets = self.n_targets if self.n_targets is not None else 1
        y_mean = np.zeros(shape=(len(X), n_targets)).squeeze()
        if not (return_cov or return_std):
            return y_mean
        if host:  # NumPy host path: the kernel's own __call__ / diag
            moment = np.asarray(kernel(X) if return_cov else kernel.diag(X), dtype=np.float64)
        else:
            from ._gpr_compiled import prior_moment

            moment = prior_moment(self, skgpx_kernel_or_none(kernel), X, return_cov, resolve_dtype(self.dtype))
        if return_cov:
            y_cov = moment
            if n_targets > 1:
                y_cov = np.repeat(np.expand_dims(y_cov, -1), repeats=n_targets, axis=-1)
            return y_mean, y_cov
        if return_std:
            y_var = moment
            if n_targets > 1:
                y_var = np.repeat(np.expand_dims(y_var, -1), repeats=n_targets, axis=-1)
            return y_mean, np.sqrt(y_var)
        return y_mean

    # -- sampling --------------------------------------------------------------------------
    def sample_y(self, X, n_samples=1, random_state=0, method="auto"):
        """Draw samples of the GP (posterior after ``fit``, prior before) at ``X``.

        **Arguments:**

        - `n_samples`, `random_state`: as scikit-learn.
        - `method`: ``"exact"`` draws from the dense predictive covariance with
          ``rng.multivariate_normal`` exactly as scikit-learn (identical numbers for the
          same ``random_state``); ``"pathwise"`` uses pathwise (Matheron) conditioning
          of a random-feature prior draw, ``O(m)`` memory in the number of query points
          (``skgpx.gp._pathwise``); ``"auto"`` is exact for at most
          ``EXACT_SAMPLING_MAX_POINTS = 2000`` query points (or before ``fit``) and
          pathwise beyond.

        What is sampled (both methods, as scikit-learn): ``y`` as the kernel models it, i.e. the
        latent ``f`` plus the kernel's own ``WhiteKernel`` noise, drawn independently per point;
        ``alpha`` (added to the training diagonal only) is not added. For noise-free ``f``
        samples, model the noise with ``alpha`` instead of a ``WhiteKernel``.

        **Returns:** ``(m, n_samples)``, or ``(m, n_targets, n_samples)`` for multi-output.
        """
        if method not in ("auto", "exact", "pathwise"):
            raise ValueError(f"`method` must be 'auto', 'exact' or 'pathwise', got {method!r}.")
        n_samples = check_n_samples(n_samples)
        rng = check_random_state(random_state)
        fitted = hasattr(self, "posterior_")

        def untranslated():  # a kernel only its own __call__ evaluates (asked without JAX)
            return isinstance(self.posterior_, HostPosterior) and untranslated_part(self.kernel_) is not None

        if method == "auto":
            m = len(X) if hasattr(X, "__len__") else np.shape(X)[0]
            method = "exact" if (not fitted or m <= EXACT_SAMPLING_MAX_POINTS or untranslated()) else "pathwise"
        if method == "pathwise":
            if not fitted:
                raise ValueError("sample_y(method='pathwise') needs a fitted model; use method='exact' for the prior.")
            if untranslated():
                raise ValueError(
                    "sample_y(method='pathwise') needs an skgpx kernel (random features); this model's kernel "
                    "runs on the NumPy host path. Use method='exact'."
                )
            return self._sample_pathwise(X, n_samples, rng)
        y_mean, y_cov = self.predict(X, return_cov=True)
        y_cov = np.where(np.isnan(y_cov), 0.0, y_cov)  # points outside a SKI grid: NaN mean, so NaN samples
        if y_mean.ndim == 1:
            return rng.multivariate_normal(y_mean, y_cov, n_samples).T
        samples = [
            rng.multivariate_normal(y_mean[:, t], y_cov[..., t], n_samples).T[:, np.newaxis]
            for t in range(y_mean.shape[1])
        ]
        return np.hstack(samples)

    def _sample_pathwise(self, X, n_samples, rng):
        X = check_numeric(validate_data(self, X, ensure_2d=True, dtype="numeric", reset=False))
        if n_samples == 0:  # as the exact method: (m, 0), or (m, n_targets, 0)
            return np.zeros((X.shape[0], *self.y_train_.shape[1:], 0))
        from ._gpr_compiled import sample_pathwise

        s = sample_pathwise(self, X, n_samples, rng, resolve_dtype(self.dtype))  # (n_samples, m, t), normalised
        s = s * np.reshape(self._y_train_std, (1, 1, -1)) + np.reshape(self._y_train_mean, (1, 1, -1))
        if self.y_train_.ndim == 1:
            return s[:, :, 0].T
        return np.transpose(s, (1, 2, 0))

    # -- marginal likelihood -------------------------------------------------------------
    def log_marginal_likelihood(self, theta=None, eval_gradient=False, clone_kernel=True):
        """Log marginal likelihood of ``theta`` (log hyperparameters) on the training data.

        As scikit-learn: ``theta=None`` returns ``log_marginal_likelihood_value_``;
        ``eval_gradient=True`` also returns the gradient (by JAX autodiff);
        ``clone_kernel=False`` sets ``kernel_``'s hyperparameters to ``theta``.
        """
        if theta is None:
            if eval_gradient:
                raise ValueError("Gradient can only be evaluated for theta!=None")
            return self.log_marginal_likelihood_value_
        check_is_fitted(self, "posterior_")
        if isinstance(self.posterior_, HostPosterior):  # NumPy host path
            return host_lml(self, theta, eval_gradient, clone_kernel)
        from ._gpr_compiled import lml_compiled

        return lml_compiled(self, theta, eval_gradient, clone_kernel, resolve_dtype(self.dtype))

    # -- reporting ---------------------------------------------------------------------------
    def summary(self) -> str:
        """A readable multi-line report of the fitted model (kernel, solver, LML, optimiser, jitter)."""
        check_is_fitted(self, "posterior_")
        return format_summary(self)
