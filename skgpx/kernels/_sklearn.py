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
from ._sklearn_spec import SUPPORTED_SKLEARN_KERNELS, KernelSpec, UnsupportedKernelError, sklearn_spec
from ._stationary import RBF, ExpSineSquared, Matern, RationalQuadratic

__all__ = ["from_sklearn", "to_sklearn", "as_skgpx_kernel", "SUPPORTED_SKLEARN_KERNELS", "UnsupportedKernelError"]

_CLASSES = {
    "Sum": Sum, "Product": Product, "Exponentiation": Exponentiation, "RBF": RBF, "Matern": Matern,
    "RationalQuadratic": RationalQuadratic, "ExpSineSquared": ExpSineSquared, "DotProduct": DotProduct,
    "Constant": Constant, "White": White,
}


def from_sklearn(sk_kernel) -> AbstractKernel:
    """Convert a scikit-learn kernel into the equivalent skgpx kernel.

    Values agree to rounding, and ``theta``, ``bounds`` and the ``"fixed"`` flags
    are identical to scikit-learn's. Raises :class:`UnsupportedKernelError` (a
    ``ValueError``) naming the kernel class for kernels without an exact equivalent
    (e.g. ``PairwiseKernel``, ``CompoundKernel``, ``Matern(nu=0.7)``, non-integer
    ``Exponentiation``, a subclass of a scikit-learn kernel, a kernel on strings).
    """
    return _build(sklearn_spec(sk_kernel))


def _build(spec: KernelSpec) -> AbstractKernel:
    args = [_build(a) if isinstance(a, KernelSpec) else a for a in spec.args]
    return _CLASSES[spec.name](*args, **spec.kwargs)


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
