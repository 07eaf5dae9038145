"""Hyperparameter optimisation: one compiled negative-LML objective, L-BFGS-B, restarts.

The objective is ``-log p(Y | X, theta)`` and its gradient with respect to
``theta`` (log hyperparameters, scikit-learn's ``kernel.theta``), obtained by JAX
autodiff through ``inference.log_marginal_likelihood``. It is one
``eqx.filter_jit`` function of ``(theta, kernel, inference, X, Y, noise, key)``:
the kernel's structure and static fields (bounds, ``nu``) are compile-time
constants, all arrays are traced, so the compiled code is reused by every
iteration, every restart, and every later fit with the same shapes. An inference
may instead supply a host function for its first attempt
(``AbstractInference.host_lml_and_grad``): the exact path on the CPU evaluates in
two compiled stages (the Gram, the gradient) around LAPACK ``potrf`` / ``potri``
(:mod:`skgpx.gp._exact_lapack`), each likewise compiled once per shape.

Optimiser: ``scipy.optimize.minimize(method="L-BFGS-B")``. It is exactly what
scikit-learn's ``optimizer="fmin_l_bfgs_b"`` runs, so from the same start the
iterates, optima and ``ConvergenceWarning`` s match scikit-learn's; optimistix's
LBFGS has no box constraints, which the kernel bounds need.
"""

from __future__ import annotations

import collections
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process.kernels import Kernel as SkKernel

from ..kernels import hyperparameter_list

__all__ = ["NegativeLML", "run_optimizer", "optimize_hyperparameters", "warn_if_near_bounds", "TRACE_COUNTS"]

# How often each compiled function was traced (tests check the objective is traced once).
TRACE_COUNTS: collections.Counter = collections.Counter()


@eqx.filter_jit
def _neg_lml_and_grad(theta, kernel, inference, X, Y, noise, key):
    TRACE_COUNTS["neg_lml_and_grad"] += 1

    def lml(th):
        return inference.log_marginal_likelihood(kernel.with_theta(th), X, Y, noise, key)

    value, grad = jax.value_and_grad(lml)(theta)
    # A failed factorisation gives NaN: report -inf and a zero gradient, as scikit-learn does.
    finite = jnp.isfinite(value)
    return jnp.where(finite, -value, jnp.inf), jnp.where(finite, -grad, 0.0)


@eqx.filter_jit
def _neg_lml(theta, kernel, inference, X, Y, noise, key):
    TRACE_COUNTS["neg_lml"] += 1
    value = inference.log_marginal_likelihood(kernel.with_theta(theta), X, Y, noise, key)
    return jnp.where(jnp.isfinite(value), -value, jnp.inf)


class NegativeLML:
    """scikit-learn's ``obj_func(theta, eval_gradient=True)`` for a callable optimizer.

    Returns ``(-lml, -grad)`` as NumPy float64 and float64 array, or ``-lml`` alone when
    ``eval_gradient=False``. Records every evaluation for progress reports.
    """

    def __init__(self, kernel, inference, X, Y, noise, key, dtype, verbose=0):
        self.kernel, self.inference = kernel, inference
        self.X, self.Y, self.noise, self.key = X, Y, noise, key
        self.dtype = dtype
        self.verbose = verbose
        self.n_evals = 0
        self.last = None  # (value, grad) of the latest evaluation
        self.first = inference.first_attempt()  # tried before `inference` (see AbstractInference)
        # Value and gradient of the first attempt by a host function where it has one.
        self.host = None if self.first is None else self.first.host_lml_and_grad(X)

    def _evaluate(self, fn, th):
        data = (self.X, self.Y, self.noise, self.key)
        if self.first is not None:
            if self.host is not None:
                gradient = fn is _neg_lml_and_grad
                value, grad = self.host(th, self.kernel, self.X, self.Y, self.noise, gradient=gradient)
                out = (-value, -grad) if gradient else -value
            else:
                out = fn(th, self.kernel, self.first, *data)
            if np.isfinite(np.asarray(out[0] if isinstance(out, tuple) else out)):
                return out
        return fn(th, self.kernel, self.inference, *data)

    def __call__(self, theta, eval_gradient=True):
        th = jnp.asarray(np.asarray(theta, dtype=np.float64), dtype=self.dtype)
        self.n_evals += 1
        # NumPy float64 as scikit-learn's objective (a Python float minus an np.float32 is float32).
        if not eval_gradient:
            return np.float64(self._evaluate(_neg_lml, th))
        value, grad = self._evaluate(_neg_lml_and_grad, th)
        value, grad = np.float64(value), np.asarray(grad, dtype=np.float64)
        self.last = (value, grad)
        return value, grad


def _check_lbfgs_result(result):
    # Same condition and wording as scikit-learn's `_check_optimize_result("lbfgs", ...)`.
    if result.status != 0:
        warnings.warn(
            f"lbfgs failed to converge after {result.nit} iteration(s) (status={result.status}):\n"
            f"{result.message}\n",
            ConvergenceWarning,
            stacklevel=4,
        )


def run_optimizer(optimizer, obj: NegativeLML, theta0, bounds, verbose=0):
    """One optimisation from ``theta0``; returns ``(theta_opt, func_min, info)``."""
    from ..optimizers import lbfgsb

    if optimizer == "fmin_l_bfgs_b":
        callback = None
        if verbose >= 2:

            def callback(intermediate_result):
                value, grad = obj.last
                print(f"    iter {callback.k:4d}  -lml = {value: .6e}  |grad| = {np.linalg.norm(grad):.3e}")
                callback.k += 1

            callback.k = 1
        res = lbfgsb(obj, theta0, bounds, callback=callback)
        _check_lbfgs_result(res)
        info = {"n_iter": int(res.nit), "n_evals": int(res.nfev), "converged": res.status == 0, "message": str(res.message)}
        return np.asarray(res.x, dtype=np.float64), np.float64(res.fun), info
    if callable(optimizer):
        n0 = obj.n_evals
        theta_opt, func_min = optimizer(obj, theta0, bounds=bounds)
        info = {"n_iter": obj.n_evals - n0, "n_evals": obj.n_evals - n0, "converged": None, "message": "callable"}
        return np.asarray(theta_opt, dtype=np.float64), np.float64(func_min), info
    raise ValueError(f"Unknown optimizer {optimizer}.")


def optimize_hyperparameters(optimizer, obj: NegativeLML, theta0, bounds, n_restarts, rng, verbose=0):
    """Optimise from ``theta0`` and from ``n_restarts`` points drawn uniformly in the log bounds.

    Draws restart points with ``rng.uniform(bounds[:, 0], bounds[:, 1])`` exactly as
    scikit-learn does. Returns ``(best_theta, best_func, runs, best_index)``, one info dict per run.
    """
    starts = [np.asarray(theta0, dtype=np.float64)]
    if n_restarts > 0:
        if not np.isfinite(bounds).all():
            raise ValueError("Multiple optimizer restarts (n_restarts_optimizer>0) requires that all bounds are finite.")
    runs = []
    for i in range(n_restarts + 1):
        if i > 0:
            starts.append(rng.uniform(bounds[:, 0], bounds[:, 1]))
        if verbose:
            print(f"[skgpx] optimiser run {i + 1}/{n_restarts + 1}")
        theta, fun, info = run_optimizer(optimizer, obj, starts[i], bounds, verbose)
        info.update(theta0=starts[i], theta=theta, log_marginal_likelihood=-fun)
        if verbose:
            status = {True: "converged", False: "NOT converged", None: "done"}[info["converged"]]
            print(f"[skgpx]   log-marginal-likelihood {-fun:.6f} after {info['n_iter']} iterations ({status})")
        runs.append(info)
    best = int(np.argmin([-r["log_marginal_likelihood"] for r in runs]))
    return runs[best]["theta"], -runs[best]["log_marginal_likelihood"], runs, best


def warn_if_near_bounds(kernel, theta, bounds):
    """scikit-learn's ``Kernel._check_bounds_params``: warn when an optimum sits on a bound.

    `kernel`: an skgpx kernel, or a scikit-learn kernel on the NumPy host path.
    """
    close = np.isclose(bounds, np.atleast_2d(theta).T)
    idx = 0
    # A scikit-learn kernel (the NumPy host path) lists its own Hyperparameter tuples, same fields.
    hyperparameters = kernel.hyperparameters if isinstance(kernel, SkKernel) else hyperparameter_list(kernel)
    for h in hyperparameters:
        if h.fixed:
            continue
        nat = np.asarray(h.bounds, dtype=np.float64).reshape(-1, 2)
        if nat.shape[0] == 1:
            nat = np.repeat(nat, h.n_elements, axis=0)
        for dim in range(h.n_elements):
            if close[idx, 0]:
                warnings.warn(
                    f"The optimal value found for dimension {dim} of parameter {h.name} is close to the "
                    f"specified lower bound {nat[dim][0]}. Decreasing the bound and calling fit again may "
                    "find a better value.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
            elif close[idx, 1]:
                warnings.warn(
                    f"The optimal value found for dimension {dim} of parameter {h.name} is close to the "
                    f"specified upper bound {nat[dim][1]}. Increasing the bound and calling fit again may "
                    "find a better value.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
            idx += 1
