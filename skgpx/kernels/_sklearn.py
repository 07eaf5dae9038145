"""Conversion between scikit-learn kernel objects and skgpx kernels.

:func:`from_sklearn` maps every supported scikit-learn kernel to the skgpx kernel
with the same formula, the same hyperparameter names, values and bounds (so
``theta`` and ``bounds`` are identical numbers) and the same ``"fixed"`` flags.
:func:`to_sklearn` is its inverse; it only accepts kernels whose scikit-learn
counterpart round-trips exactly (``from_sklearn(to_sklearn(k))`` rebuilds ``k``).
"""

from __future__ import annotations

import math

import numpy as np

from ._base import AbstractKernel
from ._basic import Constant, DotProduct, White
from ._composite import Exponentiation, Product, Sum
from ._stationary import RBF, ExpSineSquared, Matern, RationalQuadratic

__all__ = ["from_sklearn", "to_sklearn", "as_skgpx_kernel", "SUPPORTED_SKLEARN_KERNELS", "UnsupportedKernelError"]

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


def from_sklearn(sk_kernel) -> AbstractKernel:
    """Convert a scikit-learn kernel into the equivalent skgpx kernel.

    Values agree to rounding, and ``theta``, ``bounds`` and the ``"fixed"`` flags
    are identical to scikit-learn's. Raises :class:`UnsupportedKernelError` (a
    ``ValueError``) naming the kernel class for kernels without an exact equivalent
    (e.g. ``PairwiseKernel``, ``CompoundKernel``, ``Matern(nu=0.7)``, non-integer
    ``Exponentiation``, a subclass of a scikit-learn kernel, a kernel on strings).
    """
    from sklearn.gaussian_process import kernels as skk

    t = type(sk_kernel)
    if t is skk.Sum:
        return Sum(from_sklearn(sk_kernel.k1), from_sklearn(sk_kernel.k2))
    if t is skk.Product:
        return Product(from_sklearn(sk_kernel.k1), from_sklearn(sk_kernel.k2))
    if t is skk.Exponentiation:
        return Exponentiation(from_sklearn(sk_kernel.kernel), _integer_exponent(sk_kernel))
    if t is skk.RBF:
        return RBF(_value(sk_kernel.length_scale), _bounds(sk_kernel, sk_kernel.length_scale_bounds))
    if t is skk.Matern:
        nu = float(sk_kernel.nu)
        ls, lsb = _value(sk_kernel.length_scale), _bounds(sk_kernel, sk_kernel.length_scale_bounds)
        if nu == math.inf:
            return RBF(ls, lsb)
        if nu not in (0.5, 1.5, 2.5):
            raise _unsupported(sk_kernel, f"nu={sk_kernel.nu!r}; skgpx has closed forms for nu in 0.5, 1.5, 2.5, inf")
        return Matern(ls, lsb, nu=nu)
    if t is skk.RationalQuadratic:
        return RationalQuadratic(
            length_scale=_value(sk_kernel.length_scale),
            alpha=_value(sk_kernel.alpha),
            length_scale_bounds=_bounds(sk_kernel, sk_kernel.length_scale_bounds),
            alpha_bounds=_bounds(sk_kernel, sk_kernel.alpha_bounds),
        )
    if t is skk.ExpSineSquared:
        return ExpSineSquared(
            length_scale=_value(sk_kernel.length_scale),
            periodicity=_value(sk_kernel.periodicity),
            length_scale_bounds=_bounds(sk_kernel, sk_kernel.length_scale_bounds),
            periodicity_bounds=_bounds(sk_kernel, sk_kernel.periodicity_bounds),
        )
    if t is skk.DotProduct:
        return DotProduct(_value(sk_kernel.sigma_0), _bounds(sk_kernel, sk_kernel.sigma_0_bounds))
    if t is skk.ConstantKernel:
        return Constant(_value(sk_kernel.constant_value), _bounds(sk_kernel, sk_kernel.constant_value_bounds))
    if t is skk.WhiteKernel:
        return White(_value(sk_kernel.noise_level), _bounds(sk_kernel, sk_kernel.noise_level_bounds))
    if isinstance(sk_kernel, skk.Kernel):
        raise _unsupported(sk_kernel)
    raise TypeError(
        f"from_sklearn(sk_kernel=...) expects a scikit-learn kernel, got {type(sk_kernel).__name__}."
    )


def to_sklearn(kernel: AbstractKernel):
    """Convert an skgpx kernel into the equivalent scikit-learn kernel (``kernel.to_sklearn()``).

    Only kernels with an exact scikit-learn counterpart (same formula, same
    hyperparameter names, so the same ``theta`` and ``bounds``) are converted:
    RBF, Matern, RationalQuadratic, ExpSineSquared, DotProduct, Constant, White
    and Sum/Product/Exponentiation of these. Others raise ``ValueError``.
    """
    if not isinstance(kernel, AbstractKernel):
        raise TypeError(f"to_sklearn(kernel=...) expects an skgpx kernel, got {type(kernel).__name__}.")
    return kernel.to_sklearn()


def as_skgpx_kernel(obj) -> AbstractKernel:
    """An skgpx kernel as is; a scikit-learn kernel converted with :func:`from_sklearn`."""
    if isinstance(obj, AbstractKernel):
        return obj
    from sklearn.gaussian_process.kernels import Kernel

    if isinstance(obj, Kernel):
        return from_sklearn(obj)
    raise TypeError(
        f"Expected an skgpx kernel (e.g. skgpx.kernels.RBF()) or a scikit-learn kernel, got "
        f"{type(obj).__name__}."
    )
