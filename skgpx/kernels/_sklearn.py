"""Conversion between scikit-learn kernel objects and skgpx kernels.

:func:`from_sklearn` maps every supported scikit-learn kernel to the skgpx kernel
with the same formula, the same hyperparameter names, values and bounds (so
``theta`` and ``bounds`` are identical numbers) and the same ``"fixed"`` flags.
:func:`to_sklearn` is its inverse; it only accepts kernels whose scikit-learn
counterpart round-trips exactly (``from_sklearn(to_sklearn(k))`` rebuilds ``k``).
"""

from __future__ import annotations

from ._base import AbstractKernel
from ._basic import Constant, DotProduct, White
from ._composite import Exponentiation, Product, Sum
from ._stationary import RBF, ExpSineSquared, Matern, RationalQuadratic

__all__ = ["from_sklearn", "to_sklearn", "as_skgpx_kernel", "SUPPORTED_SKLEARN_KERNELS"]

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


def unsupported_sklearn_kernel(obj, why=""):
    """The ``ValueError`` for a scikit-learn kernel without an skgpx equivalent."""
    why = f" ({why})" if why else ""
    return ValueError(
        f"scikit-learn kernel {type(obj).__name__}{why} has no skgpx equivalent. Supported kernels: "
        f"{', '.join(SUPPORTED_SKLEARN_KERNELS)}. Write it as an skgpx kernel instead "
        "(see 'Writing your own kernel' in `skgpx.kernels`)."
    )


# The skgpx classes with a scikit-learn counterpart: each knows its name there
# (``sklearn_name``) and converts both ways (``to_sklearn``, ``_from_sklearn``).
_CONVERTIBLE = (Sum, Product, Exponentiation, RBF, Matern, RationalQuadratic, ExpSineSquared, DotProduct, Constant, White)


def from_sklearn(sk_kernel) -> AbstractKernel:
    """Convert a scikit-learn kernel into the equivalent skgpx kernel.

    Values agree to rounding, and ``theta``, ``bounds`` and the ``"fixed"`` flags
    are identical to scikit-learn's. Raises ``ValueError`` naming the kernel class
    for kernels without an exact equivalent (e.g. ``PairwiseKernel``,
    ``CompoundKernel``, ``Matern(nu=0.7)``, non-integer ``Exponentiation``).
    """
    from sklearn.gaussian_process import kernels as skk

    for cls in _CONVERTIBLE:
        if type(sk_kernel) is getattr(skk, cls.sklearn_name):
            return cls._from_sklearn(sk_kernel)
    if isinstance(sk_kernel, skk.Kernel):
        raise unsupported_sklearn_kernel(sk_kernel)
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
