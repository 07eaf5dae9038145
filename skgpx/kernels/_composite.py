"""Kernel algebra: sums, products and integer powers, nestable to any depth."""

from __future__ import annotations

import numbers

import equinox as eqx

from ._base import AbstractKernel
from ._basic import Constant

__all__ = ["Sum", "Product", "Exponentiation", "as_kernel"]


def as_kernel(obj) -> AbstractKernel:
    """A kernel as is; a positive number as ``Constant(number)``."""
    if isinstance(obj, AbstractKernel):
        return obj
    if isinstance(obj, numbers.Real) and not isinstance(obj, bool):
        return Constant(float(obj))
    raise TypeError(
        f"Cannot combine a kernel with {type(obj).__name__}; use another skgpx kernel or a number "
        "(scikit-learn kernels are converted with `skgpx.kernels.from_sklearn`)."
    )


def _check_unbatched(*kernels):
    from ._batched import Batched

    if any(isinstance(k, Batched) for k in kernels):
        raise TypeError(
            "A Batched kernel only has batched entry points (gram, cross, diag); batch the whole "
            "expression instead, e.g. Batched(k1 + k2, batch_size) rather than Batched(k1, B) + k2."
        )


class Sum(AbstractKernel):
    """``k1 + k2``."""

    k1: AbstractKernel
    k2: AbstractKernel
    sklearn_name = "Sum"

    def __check_init__(self):
        _check_unbatched(self.k1, self.k2)

    def pairwise(self, x1, x2):
        return self.k1.pairwise(x1, x2) + self.k2.pairwise(x1, x2)

    def _cross(self, X1, X2):
        return self.k1._cross(X1, X2) + self.k2._cross(X1, X2)

    def _gram(self, X):
        return self.k1._gram(X) + self.k2._gram(X)

    def _diag(self, X):
        return self.k1._diag(X) + self.k2._diag(X)

    def split_white(self):
        s1, n1 = self.k1.split_white()
        s2, n2 = self.k2.split_white()
        smooth = s1 if s2 is None else (s2 if s1 is None else Sum(s1, s2))
        return smooth, n1 + n2

    def _spectral_factors(self, inputs):
        from ._spectral import no_spectral_factors

        raise no_spectral_factors(self, inside_product=True)

    def to_sklearn(self):
        from sklearn.gaussian_process import kernels as skk

        return skk.Sum(self.k1.to_sklearn(), self.k2.to_sklearn())

    def __repr__(self):
        return f"{self.k1!r} + {self.k2!r}"


class Product(AbstractKernel):
    """``k1 * k2`` (elementwise product of covariances)."""

    k1: AbstractKernel
    k2: AbstractKernel
    sklearn_name = "Product"

    def __check_init__(self):
        _check_unbatched(self.k1, self.k2)

    def pairwise(self, x1, x2):
        return self.k1.pairwise(x1, x2) * self.k2.pairwise(x1, x2)

    def _cross(self, X1, X2):
        return self.k1._cross(X1, X2) * self.k2._cross(X1, X2)

    def _gram(self, X):
        return self.k1._gram(X) * self.k2._gram(X)

    def _diag(self, X):
        return self.k1._diag(X) * self.k2._diag(X)

    def _spectral_factors(self, inputs):
        # frequencies of a product add: the factors are concatenated
        a1, f1, w1 = self.k1._spectral_factors(inputs)
        a2, f2, w2 = self.k2._spectral_factors(inputs)
        return a1 * a2, f1 + f2, w1 or w2

    def to_sklearn(self):
        from sklearn.gaussian_process import kernels as skk

        return skk.Product(self.k1.to_sklearn(), self.k2.to_sklearn())

    def __repr__(self):
        return f"{_paren(self.k1)} * {_paren(self.k2)}"


class Exponentiation(AbstractKernel):
    """``kernel ** exponent`` for a positive integer exponent (static)."""

    kernel: AbstractKernel
    exponent: int = eqx.field(static=True)
    sklearn_name = "Exponentiation"

    def __check_init__(self):
        _check_unbatched(self.kernel)
        if not (isinstance(self.exponent, numbers.Integral) and self.exponent >= 1):
            raise ValueError(
                f"Exponentiation needs a positive integer exponent, got {self.exponent!r}: a "
                "non-integer power of a kernel is not positive definite in general."
            )

    def pairwise(self, x1, x2):
        return self.kernel.pairwise(x1, x2) ** self.exponent

    def _cross(self, X1, X2):
        return self.kernel._cross(X1, X2) ** self.exponent

    def _gram(self, X):
        return self.kernel._gram(X) ** self.exponent

    def _diag(self, X):
        return self.kernel._diag(X) ** self.exponent

    def _spectral_factors(self, inputs):
        a, f, w = self.kernel._spectral_factors(inputs)
        return a**self.exponent, f * self.exponent, w

    def to_sklearn(self):
        from sklearn.gaussian_process import kernels as skk

        return skk.Exponentiation(self.kernel.to_sklearn(), self.exponent)

    def __repr__(self):
        return f"{_paren(self.kernel)} ** {self.exponent}"


def _paren(k):
    return f"({k!r})" if isinstance(k, Sum) else repr(k)
