"""Which skgpx kernel a scikit-learn kernel is, decided without JAX.

:func:`sklearn_spec` maps a scikit-learn kernel to a :class:`KernelSpec`, the name and
arguments of its skgpx equivalent (:func:`skgpx.kernels.from_sklearn` builds it), or raises
:class:`UnsupportedKernelError` naming the part with no translation. The estimator's NumPy host
path asks this without importing JAX (:func:`untranslated_part`).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

__all__ = ["KernelSpec", "sklearn_spec", "untranslated_part", "SUPPORTED_SKLEARN_KERNELS", "UnsupportedKernelError"]


class KernelSpec(NamedTuple):
    """An skgpx kernel to build: the class ``name`` in :mod:`skgpx.kernels`, positional ``args``
    (values, or the specs of sub-kernels) and keyword ``kwargs``."""

    name: str
    args: tuple
    kwargs: dict = {}


SUPPORTED_SKLEARN_KERNELS = (
    "RBF",
    "Matern (nu in {0.5, 1.5, 2.5, inf})",
    "RationalQuadratic",
    "ExpSineSquared",
    "DotProduct",
    "ConstantKernel",
    "WhiteKernel",
    "Sum",
    "Product",
    "Exponentiation (positive integer exponent)",
)


class UnsupportedKernelError(ValueError):
    """A scikit-learn kernel with no skgpx translation (:func:`from_sklearn` raises it).

    ``ScalableGPRegressor`` catches it and runs the kernel on its NumPy host path
    (:mod:`skgpx.gp._host`); everything else that needs an skgpx kernel reports it.
    ``kernel`` is the part that has no translation (a leaf of a sum or product).
    """

    def __init__(self, message, kernel=None):
        super().__init__(message)
        self.kernel = kernel


def _unsupported(obj, why=""):
    why = f" ({why})" if why else ""
    return UnsupportedKernelError(
        f"scikit-learn kernel {type(obj).__name__}{why} has no skgpx equivalent. Supported kernels: "
        f"{', '.join(SUPPORTED_SKLEARN_KERNELS)}. Write it as an skgpx kernel instead "
        "(see 'Writing your own kernel' in `skgpx.kernels`).",
        kernel=obj,
    )


def _spec(name, *args, **kwargs) -> KernelSpec:
    return KernelSpec(name, args, kwargs)


def _value(x):
    return np.asarray(x, dtype=np.float64)


def _bounds(obj, b):
    # scikit-learn bounds are "fixed", a (low, high) pair or an (n, 2) array; the skgpx
    # bounds converter accepts exactly these with 0 < low <= high (log bounds are finite
    # below). scikit-learn also takes e.g. (0, inf) or (-inf, inf): no translation.
    if isinstance(b, str):
        return b
    arr = np.asarray(b, dtype=np.float64)
    rows = arr.reshape(-1, 2)
    if not np.all((rows[:, 0] > 0) & (rows[:, 0] <= rows[:, 1])):
        raise _unsupported(obj, f"bounds {b!r}; skgpx kernels need 0 < low <= high")
    return tuple(arr) if arr.shape == (2,) else tuple(tuple(row) for row in rows)


def _integer_exponent(obj):
    e = obj.exponent
    try:
        ef = float(e)
    except (TypeError, ValueError):
        raise _unsupported(obj, f"exponent={e!r}") from None
    if not (ef.is_integer() and ef >= 1):
        raise _unsupported(obj, f"exponent={e!r}; only positive integer exponents are positive definite")
    return int(ef)


def sklearn_spec(sk_kernel) -> KernelSpec:
    """The skgpx kernel equivalent to a scikit-learn kernel, as a :class:`KernelSpec` (no JAX).

    Raises :class:`UnsupportedKernelError` for kernels without an exact equivalent and
    ``TypeError`` for anything that is not a scikit-learn kernel, as :func:`from_sklearn`.
    """
    from sklearn.gaussian_process import kernels as skk

    t = type(sk_kernel)
    if t is skk.Sum:
        return _spec("Sum", sklearn_spec(sk_kernel.k1), sklearn_spec(sk_kernel.k2))
    if t is skk.Product:
        return _spec("Product", sklearn_spec(sk_kernel.k1), sklearn_spec(sk_kernel.k2))
    if t is skk.Exponentiation:
        return _spec("Exponentiation", sklearn_spec(sk_kernel.kernel), _integer_exponent(sk_kernel))
    if t is skk.RBF:
        return _spec("RBF", _value(sk_kernel.length_scale), _bounds(sk_kernel, sk_kernel.length_scale_bounds))
    if t is skk.Matern:
        nu = float(sk_kernel.nu)
        ls, lsb = _value(sk_kernel.length_scale), _bounds(sk_kernel, sk_kernel.length_scale_bounds)
        if nu == math.inf:
            return _spec("RBF", ls, lsb)
        if nu not in (0.5, 1.5, 2.5):
            raise _unsupported(sk_kernel, f"nu={sk_kernel.nu!r}; skgpx has closed forms for nu in 0.5, 1.5, 2.5, inf")
        return _spec("Matern", ls, lsb, nu=nu)
    if t is skk.RationalQuadratic:
        return _spec(
            "RationalQuadratic",
            length_scale=_value(sk_kernel.length_scale),
            alpha=_value(sk_kernel.alpha),
            length_scale_bounds=_bounds(sk_kernel, sk_kernel.length_scale_bounds),
            alpha_bounds=_bounds(sk_kernel, sk_kernel.alpha_bounds),
        )
    if t is skk.ExpSineSquared:
        return _spec(
            "ExpSineSquared",
            length_scale=_value(sk_kernel.length_scale),
            periodicity=_value(sk_kernel.periodicity),
            length_scale_bounds=_bounds(sk_kernel, sk_kernel.length_scale_bounds),
            periodicity_bounds=_bounds(sk_kernel, sk_kernel.periodicity_bounds),
        )
    if t is skk.DotProduct:
        return _spec("DotProduct", _value(sk_kernel.sigma_0), _bounds(sk_kernel, sk_kernel.sigma_0_bounds))
    if t is skk.ConstantKernel:
        return _spec("Constant", _value(sk_kernel.constant_value),
                     _bounds(sk_kernel, sk_kernel.constant_value_bounds))
    if t is skk.WhiteKernel:
        return _spec("White", _value(sk_kernel.noise_level), _bounds(sk_kernel, sk_kernel.noise_level_bounds))
    if isinstance(sk_kernel, skk.Kernel):
        raise _unsupported(sk_kernel)
    raise TypeError(
        f"from_sklearn(sk_kernel=...) expects a scikit-learn kernel, got {type(sk_kernel).__name__}."
    )


def untranslated_part(sk_kernel):
    """The (first) part of a scikit-learn kernel with no skgpx translation, or None when it translates."""
    try:
        sklearn_spec(sk_kernel)
    except UnsupportedKernelError as e:
        return e.kernel
    return None
