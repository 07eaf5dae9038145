"""Non-stationary and degenerate kernels: Constant, White, DotProduct, Linear, Polynomial."""

from __future__ import annotations

import equinox as eqx
import jax.numpy as jnp

from ._base import AbstractKernel, bounds_field, hyperparameter_field

__all__ = ["Constant", "White", "DotProduct", "Linear", "Polynomial"]


class Constant(AbstractKernel):
    """``k(x, x') = constant_value``. ``c * k`` builds ``Product(Constant(c), k)``."""

    constant_value: object = hyperparameter_field(default=1.0)
    constant_value_bounds: object = bounds_field()
    hyperparameters = ("constant_value",)
    sklearn_name = "ConstantKernel"

    def _spectral_factors(self, inputs):
        return self.constant_value, [], False  # an amplitude

    def pairwise(self, x1, x2):
        return self.constant_value * jnp.ones((), x1.dtype)

    def _cross(self, X1, X2):
        return jnp.full((X1.shape[0], X2.shape[0]), self.constant_value, X1.dtype)

    def _diag(self, X):
        return jnp.full(X.shape[:1], self.constant_value, X.dtype)

    def __repr__(self):
        return f"{float(jnp.sqrt(self.constant_value)):.3g}**2" if _concrete(self.constant_value) else "Constant(<traced>)"


class White(AbstractKernel):
    """Independent noise: ``noise_level * I`` on a Gram matrix, zero between distinct sets.

    As in scikit-learn, ``gram(X)`` has ``noise_level`` on its diagonal while
    ``cross(X, Y)`` is zero even where rows of ``X`` and ``Y`` coincide.
    """

    noise_level: object = hyperparameter_field(default=1.0)
    noise_level_bounds: object = bounds_field()
    hyperparameters = ("noise_level",)
    sklearn_name = "WhiteKernel"

    def _spectral_factors(self, inputs):
        return 1.0, [], True  # no cross-covariance, no features

    def pairwise(self, x1, x2):
        # Only meaningful on the diagonal of a Gram matrix; see the class docstring.
        return jnp.zeros((), x1.dtype)

    def _cross(self, X1, X2):
        return jnp.zeros((X1.shape[0], X2.shape[0]), X1.dtype)

    def _gram(self, X):
        return self.noise_level * jnp.eye(X.shape[0], dtype=X.dtype)

    def _diag(self, X):
        return jnp.full(X.shape[:1], self.noise_level, X.dtype)

    def without_white(self):
        return eqx.tree_at(lambda w: w.noise_level, self, self.noise_level * 0.0)

    def split_white(self):
        return None, self.noise_level


class DotProduct(AbstractKernel):
    """``k(x, x') = sigma_0^2 + x . x'`` (scikit-learn's DotProduct)."""

    sigma_0: object = hyperparameter_field(default=1.0)
    sigma_0_bounds: object = bounds_field()
    hyperparameters = ("sigma_0",)
    sklearn_name = "DotProduct"

    def pairwise(self, x1, x2):
        return self.sigma_0**2 + jnp.dot(x1, x2)

    def _cross(self, X1, X2):
        return self.sigma_0**2 + X1 @ X2.T

    def _diag(self, X):
        return self.sigma_0**2 + jnp.sum(X * X, axis=-1)


class Linear(AbstractKernel):
    """``k(x, x') = variance * x . x'`` (Bayesian linear regression through the origin)."""

    variance: object = hyperparameter_field(default=1.0)
    variance_bounds: object = bounds_field()
    hyperparameters = ("variance",)
    _sklearn_hint = (
        " The same covariance in scikit-learn is ConstantKernel(variance) * "
        "DotProduct(sigma_0=0.0, sigma_0_bounds='fixed'), but its hyperparameter is named k1__constant_value."
    )

    def pairwise(self, x1, x2):
        return self.variance * jnp.dot(x1, x2)

    def _cross(self, X1, X2):
        return self.variance * (X1 @ X2.T)

    def _diag(self, X):
        return self.variance * jnp.sum(X * X, axis=-1)


class Polynomial(AbstractKernel):
    """``k(x, x') = (sigma_0^2 + x . x')^degree`` with an integer ``degree`` (static)."""

    sigma_0: object = hyperparameter_field(default=1.0)
    sigma_0_bounds: object = bounds_field()
    degree: int = eqx.field(static=True, default=2)
    hyperparameters = ("sigma_0",)
    _sklearn_hint = (
        " The same covariance in scikit-learn is DotProduct(sigma_0) ** degree, but its "
        "hyperparameter is named kernel__sigma_0."
    )

    def __check_init__(self):
        if not (isinstance(self.degree, int) and self.degree >= 1):
            raise ValueError(f"Polynomial(degree=...) must be a positive integer, got {self.degree!r}")

    def pairwise(self, x1, x2):
        return (self.sigma_0**2 + jnp.dot(x1, x2)) ** self.degree

    def _cross(self, X1, X2):
        return (self.sigma_0**2 + X1 @ X2.T) ** self.degree

    def _diag(self, X):
        return (self.sigma_0**2 + jnp.sum(X * X, axis=-1)) ** self.degree

    def _repr_extra(self):
        return (("degree", self.degree),)


def _concrete(x):
    try:
        float(jnp.asarray(x))
        return True
    except Exception:
        return False
