"""Leave-one-out predictions of a fitted low-rank posterior: a held-out calibration check.

The random-feature and Nyström models are exact GPs for an approximate kernel, so
their intervals are calibrated for data drawn from *that* model, not from the
kernel the user wrote: random features underestimate the posterior variance once
``n`` exceeds the number of features ("variance starvation"), and Nyström's FITC
residual (an independent per-point variance) overestimates it, because the
residual is correlated between neighbouring points and the data do predict part
of it. Neither error can be computed without the ``n x n`` kernel, but its effect
on coverage can be measured on the data.

For ``C = Phi Phi^T + diag(d)`` (``d``: noise, ``White`` and the FITC residual) the
leave-one-out predictive of a noisy training target is closed form (Rasmussen &
Williams 2006, Eq. 5.12): ``mu_-i = y_i - [C^-1 y]_i / [C^-1]_ii``,
``s_-i^2 = 1 / [C^-1]_ii``. With ``A = I + Phi^T D^-1 Phi = L L^T``,
``v_i = |L^-1 phi_i|^2`` and the posterior mean ``phi_i . w`` at ``x_i``,

    [C^-1]_ii = (d_i - v_i) / d_i^2,      (y_i - mu_-i) / s_-i = (y_i - phi_i . w) / sqrt(d_i - v_i),

``O(r^2)`` per point, no refit. This is the same predictive that ``predict`` gives
(plus the noise) at ``x_i`` from the other points, so its coverage on a random
subset of training points estimates the coverage of new observations at inputs
distributed like the training inputs. Nyström landmarks (training points with a zero
residual, unlike a new point's) are left out of the subset.
"""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from ._lowrank import LowRankPosterior

__all__ = ["low_rank_loo"]


@eqx.filter_jit
def low_rank_loo(posterior: LowRankPosterior, Y, rows):
    """Leave-one-out z-scores and variances of training targets ``Y[rows]`` (normalised scale).

    **Arguments:** `posterior` fitted on ``(X, Y)`` ``(n, t)``; `rows` ``(m,)`` indices.
    **Returns:** ``(z, var, usable)``: ``z`` ``(m, t)`` standardised leave-one-out errors,
    ``var`` ``(m,)`` leave-one-out predictive variances of the noisy target, ``usable``
    ``(m,)`` False at Nyström landmarks (and at copies of them).
    """
    op = posterior.operator
    Xr = op.X[rows]
    P = posterior.features(Xr)
    v = jnp.sum(solve_triangular(posterior.chol, P.T, lower=True) ** 2, axis=0)
    d = op.diagonal[rows]
    gap = jnp.maximum(d - v, jnp.finfo(d.dtype).tiny)
    z = (Y[rows] - P @ posterior.weights) / jnp.sqrt(gap)[:, None]
    Z = getattr(posterior.features, "Z", None)  # Nyström landmarks (rows of X)
    if Z is None:
        usable = jnp.ones(rows.shape, bool)
    else:
        same = jnp.all(Xr[:, None, :] == Z[None, :, :], axis=-1)
        used = getattr(posterior.features, "mask", None)  # unused landmark slots of a padded fit
        usable = ~jnp.any(same if used is None else same & used[None, :], axis=1)
    return z, d * d / gap, usable
