"""Held-out calibration check of approximate solvers: measured coverage, a warning when it is off.

The exact solvers (``"cholesky"``, the CG family, which solve the exact posterior to a
stated tolerance) give the GP's own predictive, calibrated for data from the model.
The low-rank solvers (``"rff"``, ``"nystrom"``) are exact for an approximate kernel,
and their predictive variance cannot be corrected without the ``n x n`` kernel
(:mod:`skgpx.gp._heldout`). After ``fit`` they are therefore checked on the data:
the leave-one-out predictions of ``HELDOUT_POINTS`` random training targets
(closed form, no refit) give the measured coverage of the 50/80/95% intervals of a
new observation. The results go to ``solver_info_``; a ``CalibrationWarning`` is
issued when the 95% coverage leaves its binomial sampling band.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy.stats import norm

from ..gp._fit import bucket
from ..gp._heldout import low_rank_loo
from ..gp._lowrank import LowRankPosterior

__all__ = ["CalibrationWarning", "heldout_calibration", "coverage_band", "HELDOUT_POINTS"]

# Training points whose leave-one-out predictions are checked: O(points * r^2), and a
# binomial band of +-0.021 on the 95% coverage.
HELDOUT_POINTS = 1000
# Fewer usable points than this: the band is too wide to tell anything; no check.
_MIN_POINTS = 200
LEVELS = (0.5, 0.8, 0.95)


class CalibrationWarning(UserWarning):
    """The measured coverage of an approximate solver's intervals is not their nominal level."""


def coverage_band(n_points: int, level: float = 0.95, n_sigma: float = 3.0) -> tuple[float, float]:
    """Interval that the coverage of ``n_points`` independent ``level`` intervals falls in
    with probability ~0.997 (``n_sigma`` binomial standard deviations) when they are calibrated."""
    half = n_sigma * math.sqrt(level * (1 - level) / max(n_points, 1))
    return max(0.0, level - half), min(1.0, level + half)


def heldout_calibration(posterior, Y, rng, solver_name: str, n_points: int = HELDOUT_POINTS,
                        n_rows: int | None = None) -> dict:
    """Leave-one-out coverage of a low-rank posterior on ``n_points`` random training targets.

    **Arguments:** `posterior` fitted on the (normalised) targets `Y` ``(n, t)`` (a JAX
    array on the fit's device, padded as the fit's training data: ``n_rows`` real rows first,
    ``None``: all); `rng` a NumPy ``Generator``; `solver_name` for the message.
    **Returns:** ``{}`` for posteriors without a closed-form leave-one-out predictive
    (exact and CG solvers), else ``heldout_points``, ``heldout_coverage_50/80/95``,
    ``heldout_band_95`` and ``heldout_calibrated``; warns (``CalibrationWarning``) when the 95%
    coverage is outside ``heldout_band_95``.
    """
    if not isinstance(posterior, LowRankPosterior):
        return {}
    import jax.numpy as jnp

    n = int(Y.shape[0] if n_rows is None else n_rows)
    m = min(n, n_points)
    rows = np.sort(rng.choice(n, m, replace=False)) if m < n else np.arange(n)
    # Rows padded to a size bucket (and Y as the fit's), so a nearby n compiles nothing new;
    # the extra rows are cut off.
    rows = np.concatenate([rows, np.full(bucket(m) - m, rows[0])])
    z, _, usable = low_rank_loo(posterior, Y, jnp.asarray(rows))
    usable = np.asarray(usable)[:m]
    z = np.asarray(z)[:m][usable]
    k = int(usable.sum())
    if k < _MIN_POINTS:
        return {"heldout_points": k}
    info = {"heldout_points": k}
    for level in LEVELS:
        info[f"heldout_coverage_{round(100 * level)}"] = float(np.mean(np.abs(z) <= norm.ppf(0.5 + level / 2)))
    lo, hi = coverage_band(k)  # rows, not values: the columns of a multi-output y may be correlated
    info["heldout_band_95"] = (lo, hi)
    cov = info["heldout_coverage_95"]
    info["heldout_calibrated"] = bool(lo <= cov <= hi)
    if not info["heldout_calibrated"]:
        warnings.warn(
            f"solver={solver_name!r}: the 95% predictive intervals of a new observation covered {cov:.3f} of "
            f"{k} held-out training targets (leave-one-out; calibrated intervals cover {lo:.3f}-{hi:.3f}): "
            f"they are too {'wide' if cov > hi else 'narrow'}. This approximation's predictive variance cannot "
            "be corrected cheaply; raise n_components, or use solver='cholesky' or 'cg' for calibrated "
            "intervals. The measured coverage is in `solver_info_` (heldout_*).",
            CalibrationWarning,
            stacklevel=3,
        )
    return info
