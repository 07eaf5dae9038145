"""Warnings where a fitted answer is poor: a coarse kernel approximation, Magma's
hyperparameters on their bounds, an EM run stopped while still improving."""

from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from ..kernels import hyperparameter_list

__all__ = ["APPROX_ERROR_WARN", "warn_if_poor_approximation", "warn_magma_bounds", "em_advice"]

# Relative Frobenius error of a low-rank kernel approximation (solver_info_'s
# kernel_approx_rel_frobenius_error) above which fit warns: past it, predictive means were
# seen off by a large fraction of the targets' spread (0.29 with RFF: mean off by 0.84).
APPROX_ERROR_WARN = 0.1


def warn_if_poor_approximation(info: dict, n_components) -> None:
    """Warn when the ``"rff"`` / ``"nystrom"`` kernel approximation error exceeds ``APPROX_ERROR_WARN``."""
    err = info.get("kernel_approx_rel_frobenius_error")
    if err is None or not np.isfinite(err) or err <= APPROX_ERROR_WARN:
        return
    warnings.warn(
        f"The {info.get('solver', 'low-rank')!r} kernel approximation has relative Frobenius error "
        f"{err:.2g} on the training points (solver_info_['kernel_approx_rel_frobenius_error'], "
        f"warned above {APPROX_ERROR_WARN}); its predictions may be far from the exact GP's. Raise "
        f"the solver's `n_components` (now {n_components}; e.g. solver=Nystrom(n_components=...)), or use "
        "solver='cholesky' or 'cg'.",
        ConvergenceWarning,
        stacklevel=3,
    )


def warn_magma_bounds(kernel, theta, name: str) -> None:
    """Warn for every hyperparameter of ``kernel`` at its bound; ``theta`` is ``(p,)`` or one row per task."""
    theta = np.atleast_2d(np.asarray(theta, np.float64))
    bounds = np.asarray(kernel.bounds, np.float64)
    if theta.shape[1] == 0:
        return
    lo = np.isclose(theta, bounds[:, 0])
    hi = np.isclose(theta, bounds[:, 1])
    idx = 0
    for h in hyperparameter_list(kernel):
        if h.fixed:
            continue
        for dim in range(h.n_elements):
            for hit, side, verb in ((lo[:, idx], "lower", "Decrease"), (hi[:, idx], "upper", "Increase")):
                if hit.any():
                    which = "" if theta.shape[0] == 1 else f" for {int(hit.sum())} of {theta.shape[0]} tasks"
                    value = float(np.exp(bounds[idx, 0 if side == "lower" else 1]))
                    warnings.warn(
                        f"Magma's {name}__{h.name} (dimension {dim}) ended at its {side} bound {value:.3g}"
                        f"{which}; the fit is likely poor. {verb} the bound (e.g. {name}=... with "
                        f"{h.path[-1]}_bounds) or rescale X and y to units of order one, and fit again.",
                        ConvergenceWarning,
                        stacklevel=3,
                    )
            idx += 1


def em_advice(history, max_iter: int, tol: float) -> str:
    """What to change when EM stopped at ``max_iter`` with the objective still moving."""
    h = np.asarray(history, np.float64)
    last = h[-1] - h[-2]
    rel = abs(last) / max(abs(h[-1]), np.finfo(np.float64).tiny)
    msg = (
        f"Magma EM stopped at max_iter={max_iter} with the ELBO still changing by {last:.3g} per iteration "
        f"(relative {rel:.2e} >= tol={tol})."
    )
    more = None
    if h.size >= 3 and last > 0 and tol > 0:
        q = last / (h[-2] - h[-3]) if h[-2] > h[-3] else 0.0
        if 0 < q < 1:
            more = max(1, math.ceil(math.log(tol * abs(h[-1]) / last) / math.log(q)))
    if more is not None:
        msg += f" The increments shrink by x{q:.2f} per iteration: set max_iter={max_iter + more} or more"
    else:
        msg += f" Set max_iter higher (e.g. {2 * max_iter})"
    return msg + f", or tol={float(f'{rel * 1.5:.1g}')} to accept this fit."
