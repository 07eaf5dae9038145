"""``ScalableGPRegressor``'s compiled path: the JAX back-ends of :mod:`skgpx.gp`.

Imported on first use by :mod:`._gpr` (the estimator itself, its validation and the NumPy
host path load without JAX). Each function takes the estimator and does one public call's
work on the compiled path: fit, predict, prior moments, pathwise sampling, the likelihood.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.gaussian_process.kernels import Kernel as SkKernel

from .._config import precision_scope
from .._mesh import describe_placement, placement_scope, put, resolve_placement
from .._random import key_from_random_state
from .._toolchain import check_toolchain
from ..gp import HostPosterior, make_inference, pathwise_sample, select_solver
from ..kernels import to_sklearn
from . import _predict
from ._calibration import heldout_calibration
from ._optimize import NegativeLML, optimize_hyperparameters, warn_if_near_bounds
from ._quality import warn_if_poor_approximation
from ._validation import noise_vector

__all__ = ["fit_compiled", "predict_compiled", "prior_moment", "sample_pathwise", "lml_compiled", "host_kernel"]


def fit_compiled(est, kernel_skgpx, X, y, noise, dtype, auto):
    """``est.fit`` after validation on the compiled path: optimise, condition, set the fitted attributes."""
    device = resolve_placement(est.device)
    n = y.shape[0]
    optimize = est.optimizer is not None and kernel_skgpx.theta.shape[0] > 0
    # the time-group operator does not run under a device mesh
    solver = select_solver(n, X.shape[1], dtype.itemsize, optimize=optimize, kernel=kernel_skgpx, X=X,
                           time_groups=isinstance(device, jax.Device)) if auto else est.solver
    check_toolchain(device if isinstance(device, jax.Device) else jax.local_devices()[0])
    inference = make_inference(solver)
    inference = inference.for_data(kernel_skgpx, X, noise)  # host-side choices from the data (SKI's grid)
    est.inference_, est.solver_ = inference, inference.name
    est.device_ = describe_placement(device)

    with precision_scope(dtype), placement_scope(device), est._factorisation_guard(n):
        # On the solver's terms (padded to a size bucket where it masks), then onto the
        # device or replicated over the mesh.
        data = jax.tree_util.tree_map(lambda a: put(a, device), inference.prepare(X, y.reshape(n, -1), noise, dtype))
        key = key_from_random_state(est._rng)
        # Kept (as raw key data) so log_marginal_likelihood(theta) uses the fit's key.
        est._key_data = np.asarray(jax.random.key_data(key))
        est.optimizer_runs_, est.n_iter_ = [], 0
        if optimize:
            obj = NegativeLML(kernel_skgpx, inference, data, key, est.verbose)
            bounds = kernel_skgpx.bounds
            theta, func_min, runs, best = optimize_hyperparameters(
                est.optimizer,
                obj,
                np.asarray(kernel_skgpx.theta, dtype=np.float64),
                bounds,
                est.n_restarts_optimizer,
                est._rng,
                est.verbose,
            )
            kernel_skgpx = host_kernel(kernel_skgpx.with_theta(theta))
            warn_if_near_bounds(kernel_skgpx, theta, bounds)
            est.optimizer_runs_, est.n_iter_ = runs, runs[best]["n_iter"]
            lml_value = -func_min
        else:
            lml_value = None
        if est.verbose:
            print(f"[skgpx] conditioning on n={n} points with solver {est.solver_!r} ...", flush=True)
        t0 = time.perf_counter()
        posterior = inference.fit(kernel_skgpx, data, jax.random.fold_in(key, 1))
        jax.block_until_ready(posterior)  # inside the guard: JAX dispatches asynchronously
        heldout = heldout_calibration(posterior, data.Y, np.random.default_rng(est._key_data.ravel()),
                                      est.solver_, n_rows=n)
        if est.verbose:
            info = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                             for k, v in posterior.diagnostics().items() if k != "solver")
            print(f"[skgpx] conditioned in {time.perf_counter() - t0:.2f} s ({info})", flush=True)
    est.kernel_skgpx_ = kernel_skgpx
    est.kernel_ = to_sklearn(kernel_skgpx) if est._sklearn_kernel else kernel_skgpx
    est._check_posterior(posterior)
    est.posterior_ = posterior
    est.solver_info_ = dict(posterior.diagnostics(), **heldout)
    warn_if_poor_approximation(est.solver_info_, getattr(est.inference_, "n_components", None))
    # NumPy float64 as scikit-learn's (a Python float minus an np.float32 is float32).
    est.log_marginal_likelihood_value_ = np.float64(
        posterior.log_marginal_likelihood_value if lml_value is None else lml_value
    )


def predict_compiled(est, X, return_std, return_cov, dtype):
    """``(mean, var or None, cov or None)`` of a compiled posterior at ``X``, normalised scale."""
    var = cov = None
    with precision_scope(dtype), placement_scope(resolve_placement(est.device)):
        mean = _predict.posterior_mean(est.posterior_, X, dtype)
        if return_cov:
            cov = _predict.posterior_cov(est.posterior_, X, dtype)
        elif return_std:
            var = _predict.posterior_var(est.posterior_, X, dtype)
    return mean, var, cov


def prior_moment(est, kernel_skgpx, X, return_cov, dtype):
    """The prior covariance (`return_cov`) or variance of an skgpx kernel at ``X``."""
    with precision_scope(dtype), placement_scope(resolve_placement(est.device)):
        return (_predict.prior_cov(kernel_skgpx, X, dtype) if return_cov
                else _predict.prior_var(kernel_skgpx, X, dtype))


def sample_pathwise(est, X, n_samples, rng, dtype):
    """``sample_y(method="pathwise")`` after validation: samples ``(n_samples, m, t)``, normalised scale."""
    n = est.X_train_.shape[0]
    Y, noise = est.y_train_.reshape(n, -1), noise_vector(est.alpha, n)
    with precision_scope(dtype), placement_scope(resolve_placement(est.device)):
        key = key_from_random_state(rng, stream=2)
        rng.randint(0, 2**31 - 1)  # advance a user-supplied RandomState, as exact sampling would
        posterior = est.posterior_
        if isinstance(posterior, HostPosterior):  # a small-n host fit: its compiled twin solves the paths
            posterior = est.inference_.fit(est.kernel_skgpx_, est.inference_.prepare(est.X_train_, Y, noise, dtype),
                                           key)
        samples = pathwise_sample(
            est.inference_,
            posterior,
            est.kernel_skgpx_,
            jnp.asarray(est.X_train_, dtype),
            jnp.asarray(Y, dtype),
            jnp.asarray(noise, dtype),
            jnp.asarray(X, dtype),
            int(n_samples),
            key,
        )
    return np.asarray(samples)


def lml_compiled(est, theta, eval_gradient, clone_kernel, dtype):
    """``est.log_marginal_likelihood(theta, ...)`` after a compiled fit (scikit-learn's semantics)."""
    theta = np.asarray(theta, dtype=np.float64)
    if not clone_kernel:
        est.kernel_skgpx_ = host_kernel(est.kernel_skgpx_.with_theta(theta))
        if isinstance(est.kernel_, SkKernel):
            est.kernel_.theta = theta
        else:
            est.kernel_ = est.kernel_skgpx_
    device = resolve_placement(est.device)
    n = est.X_train_.shape[0]
    with precision_scope(dtype), placement_scope(device), est._factorisation_guard(n):
        data = est.inference_.prepare(est.X_train_, est.y_train_.reshape(n, -1), noise_vector(est.alpha, n), dtype)
        data = jax.tree_util.tree_map(lambda a: put(a, device), data)
        key = jax.random.wrap_key_data(jnp.asarray(est._key_data))
        obj = NegativeLML(est.kernel_skgpx_, est.inference_, data, key)
        if eval_gradient:
            value, grad = obj(theta, eval_gradient=True)
            return -value, -grad
        return -obj(theta, eval_gradient=False)


def host_kernel(kernel):
    """Kernel hyperparameters as float64 NumPy arrays (as stored before tracing)."""
    return jax.tree_util.tree_map(lambda x: np.asarray(x, dtype=np.float64) if isinstance(x, jax.Array) else x, kernel)
