"""Projected Adam for stochastic marginal-likelihood objectives."""

from __future__ import annotations

import dataclasses

import numpy as np

from ._tracking import Tracked, check_bounds, check_positive_int


@dataclasses.dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba 2015, Algorithm 1) on the log hyperparameters, projected onto the bounds.

    For the stochastic likelihood of the CG back-ends (SLQ log-determinant, Hutchinson
    gradient), whose noise stalls line-search methods: a fixed number of steps whose
    length is set by ``learning_rate`` in log-hyperparameter units (0.1 moves a length
    scale by about 10% per step), as GPyTorch trains. Each step costs one evaluation
    of the objective and its gradient; after the step the point is clipped to the
    kernel's bounds.

    **Arguments:**

    - `max_iter`: steps (= objective evaluations). Default 50.
    - `learning_rate`: Adam's step size. Default 0.1.
    - `beta1`, `beta2`, `eps`: Adam's moment decay rates and denominator guard.
    - `verbose`: print every evaluation.

    **Returns** (when called): the evaluated point with the lowest objective and its
    value. A non-finite evaluation (a failed factorisation) leaves the moments
    unchanged and halves the step back towards the previous point.
    """

    max_iter: int = 50
    learning_rate: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    verbose: int = 0

    def __post_init__(self):
        check_positive_int("max_iter", self.max_iter, "Adam")
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"`Adam(learning_rate=...)` must be a positive number, got {self.learning_rate!r}.")
        for name in ("beta1", "beta2"):
            b = getattr(self, name)
            if not (0 <= b < 1):
                raise ValueError(f"`Adam({name}=...)` must be in [0, 1), got {b!r}.")
        if not (self.eps > 0):
            raise ValueError(f"`Adam(eps=...)` must be > 0, got {self.eps!r}.")

    def __call__(self, obj_func, initial_theta, bounds):
        bounds = check_bounds(bounds, initial_theta)
        lo, hi = bounds[:, 0], bounds[:, 1]
        f = Tracked(obj_func, None, self.verbose, "Adam")
        theta = np.clip(np.asarray(initial_theta, dtype=np.float64), lo, hi)
        m = np.zeros_like(theta)
        v = np.zeros_like(theta)
        prev = theta
        t = 0
        for _ in range(self.max_iter):
            value, grad = f(theta)
            if not (np.isfinite(value) and np.all(np.isfinite(grad))):
                theta = 0.5 * (theta + prev)  # back off towards the last good point
                continue
            t += 1
            m = self.beta1 * m + (1 - self.beta1) * grad
            v = self.beta2 * v + (1 - self.beta2) * grad**2
            m_hat = m / (1 - self.beta1**t)
            v_hat = v / (1 - self.beta2**t)
            prev = theta
            theta = np.clip(theta - self.learning_rate * m_hat / (np.sqrt(v_hat) + self.eps), lo, hi)
        return f.result(initial_theta)
