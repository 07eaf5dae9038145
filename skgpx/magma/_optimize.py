"""Bounded L-BFGS on log-hyperparameters: SciPy's L-BFGS-B driving a compiled value-and-gradient.

Why SciPy rather than optimistix: the kernels carry scikit-learn style bounds
(log-space box constraints) that keep the hyperparameters finite on hard data,
and L-BFGS-B enforces them exactly; optimistix has no box-constrained
quasi-Newton solver. The objective and its exact autodiff gradient are one
``eqx.filter_jit`` function compiled once per data shape and reused by every
M-step, so the host loop costs only a device round trip per evaluation.

The objective is minimised; a non-finite value (a failed Cholesky far from the
optimum) is reported to the line search as ``+inf`` so it backtracks. If the
result is not better than the start, the start is returned (a generalised EM
step must never decrease its objective).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.optimize

__all__ = ["OptimResult", "minimize_lbfgsb"]


@dataclasses.dataclass(frozen=True)
class OptimResult:
    x: np.ndarray
    fun: float
    fun_start: float
    n_iter: int
    n_eval: int
    success: bool
    message: str


def minimize_lbfgsb(value_and_grad, x0, bounds, *, max_iter, tol) -> OptimResult:
    """Minimise ``value_and_grad(x) -> (f, g)`` (JAX) over the box ``bounds`` ``(n, 2)``.

    ``x0`` may have any shape; it is flattened for SciPy and reshaped back.
    """
    x0 = np.asarray(x0, dtype=np.float64)
    shape = x0.shape
    lo, hi = np.asarray(bounds, dtype=np.float64).reshape(-1, 2).T
    x0 = np.clip(x0.ravel(), lo, hi)
    if x0.size == 0:
        f0 = float(value_and_grad(x0.reshape(shape))[0])
        return OptimResult(x0.reshape(shape), f0, f0, 0, 1, True, "no free hyperparameters")

    last = {}  # SciPy evaluates x0 again first: the start's evaluation is reused

    def fun(x):
        key = np.asarray(x, dtype=np.float64).tobytes()
        if key in last:
            f, g = last[key]
            return f, g.copy()
        f, g = value_and_grad(x.reshape(shape))
        f = float(f)
        g = np.asarray(g, dtype=np.float64).ravel()
        out = (np.inf, np.zeros_like(x)) if not np.isfinite(f) or not np.all(np.isfinite(g)) else (f, g)
        last.clear()
        last[key] = out
        return out[0], out[1].copy()

    f0, _ = fun(x0)
    res = scipy.optimize.minimize(
        fun,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=np.stack([lo, hi], axis=1),
        options={"maxiter": int(max_iter), "ftol": float(tol), "gtol": 1e-8},
    )
    x, f = res.x, float(res.fun)
    if not (np.isfinite(f) and f <= f0):
        x, f = x0, f0
    return OptimResult(x.reshape(shape), f, f0, int(res.nit), int(res.nfev), bool(res.success), str(res.message))
