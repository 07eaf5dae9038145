"""Structure of a kernel that grid operators exploit: stationarity, product groups, length scales.

* :func:`is_stationary`: ``k(x, x')`` depends on ``x - x'`` only, so on a regular grid its
  covariance matrix is (multilevel) Toeplitz.
* :func:`kronecker_groups`: a product of kernels over disjoint groups of input columns
  (``ActiveDims``) is, on a grid that is a Cartesian product of those groups, the Kronecker
  product of the groups' covariance matrices.
* :func:`length_scales`: the shortest length scale acting on each input column (to choose a
  grid spacing).

These are host-side questions about the kernel's *structure* (its tree of modules), answered
without evaluating it.
"""

from __future__ import annotations

import math

import numpy as np

from ._active_dims import ActiveDims
from ._basic import Constant, White
from ._chordal import Chordal
from ._composite import Exponentiation, Product, Sum
from ._stationary import AbstractStationaryKernel, ExpSineSquared

__all__ = ["is_stationary", "kronecker_groups", "length_scales"]


def is_stationary(kernel) -> bool:
    """Whether ``kernel(x, x')`` is a function of ``x - x'`` only (White terms included:
    they live on the diagonal)."""
    if isinstance(kernel, (AbstractStationaryKernel, ExpSineSquared, Constant, White)):
        return True
    if isinstance(kernel, (Sum, Product)):
        return is_stationary(kernel.k1) and is_stationary(kernel.k2)
    if isinstance(kernel, (Exponentiation, ActiveDims)):
        return is_stationary(kernel.kernel)
    return False


def _product_factors(kernel):
    if isinstance(kernel, Product):
        return _product_factors(kernel.k1) + _product_factors(kernel.k2)
    return [kernel]


def kronecker_groups(kernel, n_features: int):
    """``[(dims, factor), ...]`` with ``kernel(x, x') = prod_g factor_g(x[dims_g], x'[dims_g])``
    and disjoint ``dims_g`` covering ``range(n_features)``, or ``None`` when ``kernel`` is not
    such a product (a single group is ``None`` too: nothing to factor).

    Constant factors are folded into the first group; factors over identical ``dims`` are
    multiplied; columns no factor reads get a ``Constant(1.0)`` group (the kernel is constant
    along them). ``factor_g`` takes the columns ``dims_g`` in that order.
    """
    scale = None
    groups: dict[tuple, object] = {}
    for f in _product_factors(kernel):
        if isinstance(f, Constant):
            scale = f if scale is None else scale * f
            continue
        if not isinstance(f, ActiveDims):
            return None
        dims = f.dims
        if dims in groups:
            groups[dims] = groups[dims] * f.kernel
            continue
        if any(set(dims) & set(other) for other in groups):
            return None
        groups[dims] = f.kernel
    used = {d for dims in groups for d in dims}
    if any(d >= n_features for d in used):
        return None
    rest = tuple(d for d in range(n_features) if d not in used)
    if rest:
        groups[rest] = Constant(1.0, constant_value_bounds="fixed")
    if len(groups) < 2:
        return None
    out = list(groups.items())
    if scale is not None:
        dims0, k0 = out[0]
        out[0] = (dims0, scale * k0)
    return out


def length_scales(kernel, n_features: int):
    """Shortest length scale acting on each of the ``n_features`` input columns (NumPy
    ``(n_features,)``; ``inf`` on columns the kernel is constant along), or ``None`` when a
    part of the kernel has no length scale in the input coordinates (e.g. ``DotProduct``).
    ``Chordal``: its inner length scale as an angle on both angle columns (a chord of ``l`` on
    a sphere of radius ``r`` spans about ``l / r`` radians; along longitude that is the scale
    at the equator, the shortest in longitude units). Hyperparameters must be concrete (host side)."""
    if isinstance(kernel, (Constant, White)):
        return np.full(n_features, np.inf)
    if isinstance(kernel, AbstractStationaryKernel):
        ls = np.asarray(kernel.length_scale, dtype=np.float64)
        return np.broadcast_to(ls, (n_features,)).copy()
    if isinstance(kernel, ExpSineSquared):
        # One period holds ~ 2 pi length scales of the sine's argument.
        s = float(kernel.periodicity) * min(float(kernel.length_scale), 1.0) / (2.0 * math.pi)
        return np.full(n_features, s)
    if isinstance(kernel, (Sum, Product)):
        a, b = length_scales(kernel.k1, n_features), length_scales(kernel.k2, n_features)
        return None if a is None or b is None else np.minimum(a, b)
    if isinstance(kernel, Exponentiation):
        return length_scales(kernel.kernel, n_features)
    if isinstance(kernel, Chordal):
        inner = length_scales(kernel.kernel, 3)
        if inner is None:
            return None
        angle = float(np.min(inner)) / float(kernel.radius)
        out = np.full(n_features, np.inf)
        for d in kernel.lonlat_dims:
            if d < n_features:
                out[d] = math.degrees(angle) if kernel.degrees else angle
        return out
    if isinstance(kernel, ActiveDims):
        inner = length_scales(kernel.kernel, len(kernel.dims))
        if inner is None:
            return None
        out = np.full(n_features, np.inf)
        for j, d in enumerate(kernel.dims):
            if d < n_features:
                out[d] = inner[j]
        return out
    return None
