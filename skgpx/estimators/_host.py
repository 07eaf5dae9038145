"""``ScalableGPRegressor`` on the NumPy host path: scikit-learn kernels skgpx has no translation of, and small n.

A kernel :func:`skgpx.kernels.from_sklearn` cannot translate (a user's subclass, a
kernel on strings, ``PairwiseKernel``...) is evaluated by its own ``__call__`` and the
GP maths runs in NumPy/SciPy (:mod:`skgpx.gp._host`): exact Cholesky, the same
optimiser, restarts, bounds warnings and jitter policy as the compiled exact path, so
the numbers are scikit-learn's. ``solver="auto"`` also takes this path for a scikit-learn
kernel below ``skgpx.gp.HOST_MAX_N`` rows on the CPU in float64, where compiling costs more
than the maths. ``solver_`` is ``"host-numpy"`` and ``summary()`` says why.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone

from .._blas import dense_factorisation_guard
from .._lazy import loaded_isinstance
from ..gp._host import HOST_SOLVER, host_condition, host_log_marginal_likelihood
from ..kernels._sklearn_spec import untranslated_part
from ._optimize import optimize_hyperparameters, warn_if_near_bounds

__all__ = ["HOST_SOLVER", "HostNegativeLML", "check_host_solver", "fit_host", "host_inference", "host_lml",
           "untranslated_name"]

# The device_ of a host-path fit.
HOST_DEVICE = "cpu (NumPy/SciPy)"


def untranslated_name(kernel) -> str:
    """The class name of the (first) part of a scikit-learn `kernel` skgpx has no translation of."""
    part = untranslated_part(kernel)
    return type(kernel if part is None else part).__name__


def _exact(solver) -> bool:
    return loaded_isinstance(solver, "skgpx.gp._exact", "ExactInference")


def check_host_solver(solver, kernel) -> None:
    """Only exact inference runs on the host path; any other `solver` is an error naming the fix."""
    if _exact(solver) or (isinstance(solver, str) and solver in ("auto", "cholesky")):
        return
    name = solver if isinstance(solver, str) else type(solver).__name__
    raise ValueError(
        f"`solver={name!r}` needs an skgpx kernel, but the kernel {untranslated_name(kernel)} has no skgpx "
        "translation and runs on the exact NumPy host path (its own __call__). Use solver='auto' or "
        "solver='cholesky', or write the kernel as an skgpx kernel (see 'Writing your own kernel' in "
        "`skgpx.kernels`) to use the scalable solvers."
    )


def host_jitter(est):
    """The jitter policy of the exact solver the estimator asked for (``"auto"``, a number or ``None``)."""
    return est.solver.jitter if _exact(est.solver) else "auto"


def host_inference(est):
    """The ``inference_`` of a host-path fit, built on first access (it imports JAX): the exact solver
    with the jitter policy the fit used."""
    from ..gp import ExactInference

    return ExactInference(jitter=host_jitter(est))


class HostNegativeLML:
    """scikit-learn's ``obj_func(theta, eval_gradient=True)`` on the host path.

    Returns ``(-lml, -grad)`` as NumPy ``float64`` and ``float64`` array, or ``-lml``
    alone when ``eval_gradient=False`` (``inf`` where ``K`` is not positive definite).
    Sets ``theta`` on its own copy of the kernel, as scikit-learn's objective does.
    """

    def __init__(self, kernel, X, Y, noise, jitter):
        self.kernel = clone(kernel)
        self.X, self.Y, self.noise, self.jitter = X, Y, noise, jitter
        self.n_evals = 0
        self.last = None  # (value, grad) of the latest evaluation

    def __call__(self, theta, eval_gradient=True):
        self.kernel.theta = np.asarray(theta, dtype=np.float64)
        self.n_evals += 1
        out = host_log_marginal_likelihood(self.kernel, self.X, self.Y, self.noise, self.jitter, eval_gradient)
        if not eval_gradient:
            return -out
        self.last = (-out[0], -out[1])
        return self.last


def fit_host(est, kernel, X, Y, noise, reason: str) -> None:
    """``est.fit`` after validation, on the host path: optimise, condition, set the fitted attributes.

    `kernel` is the estimator's own clone of the scikit-learn kernel (it becomes
    ``kernel_``); `Y` the normalised targets ``(n,)`` or ``(n, t)``; `noise` ``(n,)``;
    `reason` why the host path runs (kept in ``solver_info_["host_reason"]``).
    """
    check_host_solver(est.solver, kernel)
    jitter = host_jitter(est)
    n = noise.shape[0]
    Y = Y.reshape(n, -1)
    est.solver_, est.device_ = HOST_SOLVER, HOST_DEVICE
    for stale in ("inference_", "kernel_skgpx_"):  # a previous compiled fit's; computed on access here
        est.__dict__.pop(stale, None)
    est.optimizer_runs_, est.n_iter_ = [], 0
    lml_value = None
    with dense_factorisation_guard(n):
        if est.optimizer is not None and kernel.n_dims > 0:
            if est.verbose:
                print(f"[skgpx] NumPy host path ({reason})", flush=True)
            obj = HostNegativeLML(kernel, X, Y, noise, jitter)
            bounds = kernel.bounds
            theta, func_min, runs, best = optimize_hyperparameters(
                est.optimizer, obj, kernel.theta, bounds, est.n_restarts_optimizer, est._rng, est.verbose
            )
            kernel.theta = theta
            warn_if_near_bounds(kernel, theta, bounds)
            est.optimizer_runs_, est.n_iter_ = runs, runs[best]["n_iter"]
            lml_value = -np.float64(func_min)
        posterior = host_condition(kernel, X, Y, noise, jitter)
    est.kernel_ = kernel
    est._check_posterior(posterior)
    est.posterior_ = posterior
    est.solver_info_ = dict(posterior.diagnostics(), host_reason=reason)
    est.log_marginal_likelihood_value_ = posterior.lml if lml_value is None else lml_value


def host_lml(est, theta, eval_gradient, clone_kernel):
    """``est.log_marginal_likelihood(theta, ...)`` after a host-path fit (scikit-learn's semantics)."""
    theta = np.asarray(theta, dtype=np.float64)
    if clone_kernel:
        kernel = est.kernel_.clone_with_theta(theta)
    else:
        est.kernel_.theta = theta
        kernel = est.kernel_
    n = est.posterior_.L.shape[0]
    with dense_factorisation_guard(n):
        return host_log_marginal_likelihood(kernel, est.X_train_, est.y_train_.reshape(n, -1),
                                            est.posterior_.noise, host_jitter(est), eval_gradient)
