"""Hyperparameter optimisation: the back-end's negative-LML objective, L-BFGS-B, restarts.

The objective is ``-log p(Y | X, theta)`` and its gradient with respect to ``theta``
(log hyperparameters, scikit-learn's ``kernel.theta``), evaluated by the inference's
host entry point :meth:`skgpx.gp.AbstractInference.objective`: one compiled program of
``(theta, kernel, inference, data, key)`` reused by every iteration, restart, clone and
later fit with the same structure and padded shape (the exact back-end on the CPU at
large ``n`` runs LAPACK between compiled stages instead; the estimator does not know).

Optimiser: ``scipy.optimize.minimize(method="L-BFGS-B")``. It is exactly what
scikit-learn's ``optimizer="fmin_l_bfgs_b"`` runs, so from the same start the
iterates, optima and ``ConvergenceWarning`` s match scikit-learn's; optimistix's
LBFGS has no box constraints, which the kernel bounds need.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process.kernels import Kernel as SkKernel

__all__ = ["NegativeLML", "run_optimizer", "optimize_hyperparameters", "warn_if_near_bounds"]


class NegativeLML:
    """scikit-learn's ``obj_func(theta, eval_gradient=True)`` for a callable optimizer.

    Returns ``(-lml, -grad)`` as NumPy float64 and float64 array, or ``-lml`` alone when
    ``eval_gradient=False``. Records every evaluation for progress reports.
    """

    def __init__(self, kernel, inference, data, key, verbose=0):
        self.kernel, self.inference, self.data, self.key = kernel, inference, data, key
        self.verbose = verbose
        self.n_evals = 0
        self.last = None  # (value, grad) of the latest evaluation

    def __call__(self, theta, eval_gradient=True):
        self.n_evals += 1
        value, grad = self.inference.objective(theta, self.kernel, self.data, self.key, gradient=eval_gradient)
        # NumPy float64 as scikit-learn's objective (a Python float minus an np.float32 is float32).
        value = np.float64(value)
        if not eval_gradient:
            return value
        grad = np.asarray(grad, dtype=np.float64)
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
    if isinstance(kernel, SkKernel):
        hyperparameters = kernel.hyperparameters
    else:
        from ..kernels import hyperparameter_list

        hyperparameters = hyperparameter_list(kernel)
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
