"""Shared bookkeeping: evaluation budget and best point seen."""

from __future__ import annotations

import numpy as np


class BudgetExhausted(Exception):
    """Raised by :class:`Tracked` instead of evaluating past its budget."""


class Tracked:
    """Wraps ``obj_func``: counts evaluations, keeps the best finite point, enforces a budget."""

    def __init__(self, obj_func, max_evals=None, verbose=0, name="optimizer"):
        self.obj_func, self.max_evals, self.verbose, self.name = obj_func, max_evals, verbose, name
        self.n_evals = 0
        self.best_theta, self.best_value = None, np.inf

    def __call__(self, theta):
        if self.max_evals is not None and self.n_evals >= self.max_evals:
            raise BudgetExhausted
        theta = np.array(theta, dtype=np.float64)
        value, grad = self.obj_func(theta, eval_gradient=True)
        value, grad = float(value), np.asarray(grad, dtype=np.float64)
        self.n_evals += 1
        if np.isfinite(value) and value < self.best_value:
            self.best_theta, self.best_value = theta, value
        if self.verbose:
            print(f"    [{self.name}] eval {self.n_evals:4d}  -lml = {value: .6e}  |grad| = {np.linalg.norm(grad):.3e}",
                  flush=True)
        return value, grad

    def result(self, theta0):
        """``(theta, value)`` of the best finite evaluation (``theta0, inf`` when there was none)."""
        if self.best_theta is None:
            return np.array(theta0, dtype=np.float64), np.inf
        return self.best_theta, self.best_value


def check_positive_int(name, value, owner, allow_none=False):
    if allow_none and value is None:
        return
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"`{owner}({name}=...)` must be a positive integer{' or None' if allow_none else ''}, "
                         f"got {value!r}.")


def check_bounds(bounds, theta0):
    bounds = np.asarray(bounds, dtype=np.float64).reshape(-1, 2)
    if bounds.shape[0] != np.size(theta0):
        raise ValueError(f"`bounds` has {bounds.shape[0]} rows for {np.size(theta0)} hyperparameters.")
    return bounds
