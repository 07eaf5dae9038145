"""``ScalableGPRegressor``: scikit-learn's ``GaussianProcessRegressor`` API on skgpx back-ends.

A thin scikit-learn layer: validation and bookkeeping here, numerics in the
pure, compiled functions of :mod:`skgpx.gp` (the back-end chosen by ``solver``),
:mod:`._optimize` (hyperparameters) and :mod:`._predict` (predictions).
"""

from __future__ import annotations

import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import BaseEstimator, MultiOutputMixin, RegressorMixin, clone
from sklearn.gaussian_process.kernels import Kernel as SkKernel
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .._blas import dense_factorisation_guard
from .._config import precision_scope, resolve_dtype
from .._mesh import describe_placement, placement_scope, put, resolve_placement
from .._random import key_from_random_state
from .._toolchain import check_toolchain
from ..gp import (
    HOST_MAX_N,
    HOST_SOLVER,
    AbstractInference,
    HostPosterior,
    make_inference,
    pathwise_sample,
    select_solver,
)
from ..kernels import to_sklearn
from . import _predict
from ._calibration import heldout_calibration
from ._host import fit_host, host_lml, untranslated_part
from ._optimize import NegativeLML, optimize_hyperparameters, warn_if_near_bounds
from ._quality import warn_if_poor_approximation
from ._state import DeviceCloneMixin, kernel_deep_params, split_kernel_params, to_host
from ._summary import format_summary
from ._validation import (
    GPR_PARAMETER_CONSTRAINTS,
    check_kernel,
    check_n_samples,
    check_numeric,
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
      dense or matrix-free by the memory budget), ``"rff"``, ``"nystrom"``. A name stands for
      the solver object with default options; to set options pass the object:
      ``Cholesky(jitter=1e-8)``, ``CG(tol=1e-4, preconditioner_rank=200, variance_method="love")``,
      ``Nystrom(n_components=2000)``, ``RFF(n_components=4096)``. Objects are immutable,
      validate their options when built, and are searched like nested parameters:
      ``GridSearchCV(est, {"solver__tol": [1e-3, 1e-6]})`` with ``solver=CG()``.
      ``"auto"`` runs a scikit-learn kernel below 512 rows on the CPU in float64 on the
      NumPy host path (``"host-numpy"``: scikit-learn's own computation, nothing to compile),
      and otherwise picks ``"cholesky"`` for n <= 5000 (n <= 15000 when no hyperparameter is
      optimised) when three n x n matrices fit min(25% of available memory, 8 GiB); beyond,
      ``"ski"`` for inputs on a regular lattice with missing cells (gridded data: the exact
      GP by FFT products) and a stationary or ``ActiveDims``-product kernel; else ``"cg-dense"``
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
    fitted skgpx kernel), ``solver_`` (resolved name), ``posterior_`` (the fitted
    posterior module), ``jitter_``, ``n_iter_`` (iterations of the best optimiser
    run), ``optimizer_runs_`` (one dict per run), ``device_`` (a string), ``solver_info_``
    (the back-end's ``diagnostics()`` dict: for the CG solvers the PCG iterations, achieved relative
    residual, converged flag, preconditioner rank and the measured LOVE standard-deviation error;
    for ``"rff"`` / ``"nystrom"`` the features used ``n_features_used`` and
    ``kernel_approx_rel_frobenius_error``, the relative Frobenius error of the approximate
    kernel on a 200-point training subsample).
    """

    _parameter_constraints: dict = GPR_PARAMETER_CONSTRAINTS

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
        if solver_updates and not isinstance(solver, AbstractInference):
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

    def _context(self):
        dtype = resolve_dtype(self.dtype)
        device = resolve_placement(self.device)
        return dtype, device

    # -- fit -------------------------------------------------------------------------
    def fit(self, X, y):
        """Fit the GP: optimise the kernel hyperparameters (unless ``optimizer=None``) and condition.

        **Arguments:** `X` ``(n_samples, n_features)``; `y` ``(n_samples,)`` or
        ``(n_samples, n_targets)``. **Returns:** ``self``.
        """
        self._validate_params()
        dtype, device = self._context()
        kernel = fit_kernel(self.kernel)
        kernel = clone(kernel) if isinstance(kernel, SkKernel) else kernel
        self._sklearn_kernel = isinstance(kernel, SkKernel)
        kernel_skgpx = skgpx_kernel_or_none(kernel)  # None: no translation, the NumPy host path
        self._rng = check_random_state(self.random_state)

        checks = x_checks(kernel)
        X, y = validate_data(self, X, y, multi_output=True, y_numeric=True, **checks)
        if checks["dtype"] == "numeric":
            X = check_numeric(X)
        if kernel_skgpx is not None:
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
        n = y.shape[0]
        auto = isinstance(self.solver, str) and self.solver == "auto"
        if auto and kernel_skgpx is not None:
            optimize = self.optimizer is not None and kernel_skgpx.theta.shape[0] > 0
            # NumPy can run it: a scikit-learn kernel, float64, no device asked for and JAX's on the CPU.
            host = (self._sklearn_kernel and dtype == np.float64 and self.device is None
                    and isinstance(device, jax.Device) and device.platform == "cpu")
            solver = select_solver(n, X.shape[1], dtype.itemsize, optimize=optimize, kernel=kernel_skgpx, X=X,
                                   host=host)
        else:
            solver = self.solver
        if kernel_skgpx is None or solver == HOST_SOLVER:
            # skgpx.estimators._host: the kernel's own __call__, scikit-learn's computation.
            reason = (f"{untranslated_part(kernel)} has no skgpx translation" if kernel_skgpx is None else
                      f"solver='auto' with a scikit-learn kernel and n={n} < {HOST_MAX_N} on the CPU")
            fit_host(self, kernel, X, y, noise, reason)
            return self

        check_toolchain(device if isinstance(device, jax.Device) else jax.local_devices()[0])
        optimize = self.optimizer is not None and kernel_skgpx.theta.shape[0] > 0
        inference = make_inference(solver)
        inference = inference.for_data(kernel_skgpx, X, noise)  # host-side choices from the data (SKI's grid)
        self.inference_, self.solver_ = inference, inference.name
        self.device_ = describe_placement(device)

        with precision_scope(dtype), placement_scope(device), self._factorisation_guard(n):
            # On the solver's terms (padded to a size bucket where it masks), then onto the
            # device or replicated over the mesh.
            data = jax.tree_util.tree_map(lambda a: put(a, device), inference.prepare(X, y.reshape(n, -1), noise, dtype))
            key = key_from_random_state(self._rng)
            # Kept (as raw key data) so log_marginal_likelihood(theta) uses the fit's key.
            self._key_data = np.asarray(jax.random.key_data(key))
            self.optimizer_runs_, self.n_iter_ = [], 0
            if optimize:
                obj = NegativeLML(kernel_skgpx, inference, data, key, self.verbose)
                bounds = kernel_skgpx.bounds
                theta, func_min, runs, best = optimize_hyperparameters(
                    self.optimizer,
                    obj,
                    np.asarray(kernel_skgpx.theta, dtype=np.float64),
                    bounds,
                    self.n_restarts_optimizer,
                    self._rng,
                    self.verbose,
                )
                kernel_skgpx = _host_kernel(kernel_skgpx.with_theta(theta))
                warn_if_near_bounds(kernel_skgpx, theta, bounds)
                self.optimizer_runs_, self.n_iter_ = runs, runs[best]["n_iter"]
                lml_value = -func_min
            else:
                lml_value = None
            if self.verbose:
                print(f"[skgpx] conditioning on n={n} points with solver {self.solver_!r} ...", flush=True)
            t0 = time.perf_counter()
            posterior = inference.fit(kernel_skgpx, data, jax.random.fold_in(key, 1))
            jax.block_until_ready(posterior)  # inside the guard: JAX dispatches asynchronously
            heldout = heldout_calibration(posterior, data.Y, np.random.default_rng(self._key_data.ravel()),
                                          self.solver_, n_rows=n)
            if self.verbose:
                info = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                 for k, v in posterior.diagnostics().items() if k != "solver")
                print(f"[skgpx] conditioned in {time.perf_counter() - t0:.2f} s ({info})", flush=True)
        self.kernel_skgpx_ = kernel_skgpx
        self.kernel_ = to_sklearn(kernel_skgpx) if self._sklearn_kernel else kernel_skgpx
        self._check_posterior(posterior)
        self.posterior_ = posterior
        self.solver_info_ = dict(posterior.diagnostics(), **heldout)
        warn_if_poor_approximation(self.solver_info_, getattr(self.inference_, "n_components", None))
        # NumPy float64 as scikit-learn's (a Python float minus an np.float32 is float32).
        self.log_marginal_likelihood_value_ = np.float64(
            posterior.log_marginal_likelihood_value if lml_value is None else lml_value
        )
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
        dtype, device = self._context()
        std_y = self._y_train_std
        if isinstance(self.posterior_, HostPosterior):  # NumPy host path: the kernel's own __call__
            mean = self.posterior_.mean(X)
            cov = self.posterior_.cov(X) if return_cov else None
            var = self.posterior_.var(X) if return_std and not return_cov else None
        else:
            with precision_scope(dtype), placement_scope(device):
                mean = _predict.posterior_mean(self.posterior_, X, dtype)
                if return_cov:
                    cov = _predict.posterior_cov(self.posterior_, X, dtype)
                elif return_std:
                    var = _predict.posterior_var(self.posterior_, X, dtype)
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
        kernel_skgpx = skgpx_kernel_or_none(kernel)
        n_targets = self.n_targets if self.n_targets is not None else 1
        y_mean = np.zeros(shape=(len(X), n_targets)).squeeze()
        if not (return_cov or return_std):
            return y_mean
        if kernel_skgpx is None:  # NumPy host path: the kernel's own __call__ / diag
            moment = np.asarray(kernel(X) if return_cov else kernel.diag(X), dtype=np.float64)
        else:
            dtype, device = self._context()
            with precision_scope(dtype), placement_scope(device):
                moment = (_predict.prior_cov(kernel_skgpx, X, dtype) if return_cov
                          else _predict.prior_var(kernel_skgpx, X, dtype))
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
        untranslated = fitted and self.kernel_skgpx_ is None  # a kernel only its own __call__ evaluates
        if method == "auto":
            m = len(X) if hasattr(X, "__len__") else np.shape(X)[0]
            method = "exact" if (not fitted or untranslated or m <= EXACT_SAMPLING_MAX_POINTS) else "pathwise"
        if method == "pathwise":
            if not fitted:
                raise ValueError("sample_y(method='pathwise') needs a fitted model; use method='exact' for the prior.")
            if untranslated:
                raise ValueError(
                    "sample_y(method='pathwise') needs an skgpx kernel (random features); this model's kernel "
                    "runs on the NumPy host path. Use method='exact'."
                )
            return self._sample_pathwise(X, n_samples, rng)
        y_mean, y_cov = self.predict(X, return_cov=True)
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
        dtype, device = self._context()
        n = self.X_train_.shape[0]
        Y, noise = self.y_train_.reshape(n, -1), noise_vector(self.alpha, n)
        with precision_scope(dtype), placement_scope(device):
            key = key_from_random_state(rng, stream=2)
            rng.randint(0, 2**31 - 1)  # advance a user-supplied RandomState, as exact sampling would
            posterior = self.posterior_
            if isinstance(posterior, HostPosterior):  # a small-n host fit: its compiled twin solves the paths
                posterior = self.inference_.fit(self.kernel_skgpx_, self.inference_.prepare(self.X_train_, Y, noise,
                                                                                            dtype), key)
            samples = pathwise_sample(
                self.inference_,
                posterior,
                self.kernel_skgpx_,
                jnp.asarray(self.X_train_, dtype),
                jnp.asarray(Y, dtype),
                jnp.asarray(noise, dtype),
                jnp.asarray(X, dtype),
                int(n_samples),
                key,
            )
        s = np.asarray(samples)  # (n_samples, m, t), normalised scale
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
        theta = np.asarray(theta, dtype=np.float64)
        if not clone_kernel:
            self.kernel_skgpx_ = _host_kernel(self.kernel_skgpx_.with_theta(theta))
            if isinstance(self.kernel_, SkKernel):
                self.kernel_.theta = theta
            else:
                self.kernel_ = self.kernel_skgpx_
        dtype, device = self._context()
        n = self.X_train_.shape[0]
        with precision_scope(dtype), placement_scope(device), self._factorisation_guard(n):
            data = self.inference_.prepare(self.X_train_, self.y_train_.reshape(n, -1), noise_vector(self.alpha, n), dtype)
            data = jax.tree_util.tree_map(lambda a: put(a, device), data)
            key = jax.random.wrap_key_data(jnp.asarray(self._key_data))
            obj = NegativeLML(self.kernel_skgpx_, self.inference_, data, key)
            if eval_gradient:
                value, grad = obj(theta, eval_gradient=True)
                return -value, -grad
            return -obj(theta, eval_gradient=False)

    # -- reporting ---------------------------------------------------------------------------
    def summary(self) -> str:
        """A readable multi-line report of the fitted model (kernel, solver, LML, optimiser, jitter)."""
        check_is_fitted(self, "posterior_")
        return format_summary(self)


def _host_kernel(kernel):
    """Kernel hyperparameters as float64 NumPy arrays (as stored before tracing)."""
    return jax.tree_util.tree_map(lambda x: np.asarray(x, dtype=np.float64) if isinstance(x, jax.Array) else x, kernel)
