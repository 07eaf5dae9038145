"""L-BFGS-B with a hard budget of objective evaluations."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning

from ._tracking import BudgetExhausted, Tracked, check_bounds, check_positive_int

__all__ = ["LBFGSB", "lbfgsb"]


def lbfgsb(fun, x0, bounds, options=None, callback=None):
    """scipy's L-BFGS-B on ``fun(x) -> (value, gradient)`` over the box ``bounds`` ``(n, 2)``.

    The one L-BFGS-B call in skgpx: the estimator's ``optimizer="fmin_l_bfgs_b"`` (exactly
    scikit-learn's call, so the iterates match), :class:`LBFGSB` and Magma's M-steps.
    ``options`` are scipy's (``maxiter``, ``ftol``, ``gtol``); returns scipy's ``OptimizeResult``.
    """
    return scipy.optimize.minimize(
        fun, np.asarray(x0, dtype=np.float64), method="L-BFGS-B", jac=True, bounds=bounds, options=options,
        callback=callback,
    )


@dataclasses.dataclass(frozen=True)
class LBFGSB:
    """scipy's L-BFGS-B (what ``optimizer="fmin_l_bfgs_b"`` runs) with a hard evaluation budget.

    scipy's ``maxfun`` is checked only between iterations, and one line search may
    evaluate the objective up to 20 times, so a "20-evaluation" run can take 40+: with
    a stochastic CG likelihood near its optimum, line searches fail on the noise and
    the run keeps going. Here the objective refuses to run past ``max_evals``, and the
    best point evaluated is returned (for a smooth objective that is L-BFGS-B's own
    answer: it only accepts decreasing steps).

    **Arguments:**

    - `max_evals`: evaluations of the objective (value and gradient), or None (no
      budget: the iterates and optimum of ``optimizer="fmin_l_bfgs_b"``).
    - `max_iter`: L-BFGS-B iterations (scipy's ``maxiter``; scikit-learn's default 15000).
    - `verbose`: print every evaluation.

    A ``ConvergenceWarning`` is emitted when the budget or ``max_iter`` stops the run
    before L-BFGS-B's own convergence test, as scikit-learn does for ``maxiter``.
    The object is immutable, so one instance can be shared by ``clone`` and
    ``GridSearchCV``; the estimator's ``optimizer_runs_`` records the evaluations.
    """

    max_evals: int | None = None
    max_iter: int = 15000
    verbose: int = 0

    def __post_init__(self):
        check_positive_int("max_evals", self.max_evals, "LBFGSB", allow_none=True)
        check_positive_int("max_iter", self.max_iter, "LBFGSB")

    def __call__(self, obj_func, initial_theta, bounds):
        bounds = check_bounds(bounds, initial_theta)
        f = Tracked(obj_func, self.max_evals, self.verbose, "L-BFGS-B")
        try:
            res = lbfgsb(f, initial_theta, bounds, options={"maxiter": self.max_iter})
            stopped = None if res.status == 0 else f"{res.message} after {res.nit} iteration(s)"
        except BudgetExhausted:
            stopped = f"the evaluation budget max_evals={self.max_evals} was used up"
        if stopped is not None:
            warnings.warn(f"L-BFGS-B stopped before converging: {stopped}; returning the best of "
                          f"{f.n_evals} evaluations.", ConvergenceWarning, stacklevel=2)
        return f.result(initial_theta)
