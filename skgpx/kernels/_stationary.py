"""Stationary kernels: RBF, Matérn, RationalQuadratic, ExpSineSquared.

All share one vectorised path: inputs are divided by the (scalar or ARD)
length scale, squared distances come from direct differences (exact, used for
few features) or from the matmul identity ``|a|^2 + |b|^2 - 2 a.b`` (a GEMM,
used for many features), and each kernel maps the squared distance to a value.
"""

from __future__ import annotations

import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp

from ._base import AbstractKernel, bounds_field, hyperparameter_field

__all__ = ["AbstractStationaryKernel", "RBF", "Matern", "RationalQuadratic", "ExpSineSquared", "sq_dist"]

# Up to _DIRECT_MAX_FEATURES features squared distances are summed column by column from
# direct differences (exact, one fused elementwise pass), differentiated by autodiff; up
# to _DIRECT_JVP_MAX_FEATURES likewise, with the derivative below (in matrix products, so
# gradients cost what the GEMM identity's do); above, the GEMM identity. The thresholds are
# where each form stopped winning in `benchmarks/kernels.py --distance-paths` (figures:
# docs/performance.md, "Squared distances"); the broadcast form lost to both for d >= 2.
_DIRECT_MAX_FEATURES = 2
_DIRECT_JVP_MAX_FEATURES = 3


def _column_sq_dist(A, B):
    r2 = jnp.zeros((A.shape[0], B.shape[0]), jnp.result_type(A, B))
    for j in range(A.shape[-1]):
        diff = A[:, j][:, None] - B[:, j][None, :]
        r2 = r2 + diff * diff
    return r2


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _column_sq_dist_product_jvp(A, B, same):
    return _column_sq_dist(A, B)


@_column_sq_dist_product_jvp.defjvp
def _column_sq_dist_jvp(same, primals, tangents):
    # d r2_ij = 2 (a_i - b_j).(da_i - db_j)
    #         = 2 (a_i.da_i + b_j.db_j - da_i.b_j - a_i.db_j):
    # matrix products, which reverse mode transposes into G B and G^T A (autodiff of the
    # column sum instead keeps d elementwise n x n intermediates).
    A, B = primals
    dA, dB = tangents
    dr2 = (jnp.sum(A * dA, axis=-1)[:, None] - dA @ B.T) + (jnp.sum(B * dB, axis=-1)[None, :] - A @ dB.T)
    dr2 = 2.0 * dr2
    if same:  # the diagonal is exactly zero whatever the inputs: so is its derivative
        dr2 = jnp.where(jnp.eye(A.shape[0], dtype=bool), 0.0, dr2)
    return _column_sq_dist(A, B), dr2


def sq_dist(A, B, *, same=False):
    """Squared Euclidean distances between rows of ``A`` (n, d) and ``B`` (m, d).

    ``same=True`` states that ``A is B``: the diagonal is then exactly zero.
    """
    d = A.shape[-1]
    if d <= _DIRECT_MAX_FEATURES:
        return _column_sq_dist(A, B)
    if d <= _DIRECT_JVP_MAX_FEATURES:
        return _column_sq_dist_product_jvp(A, B, same)
    a2 = jnp.sum(A * A, axis=-1)
    b2 = a2 if same else jnp.sum(B * B, axis=-1)
    r2 = jnp.maximum(a2[:, None] + b2[None, :] - 2.0 * (A @ B.T), 0.0)
    if same:
        n = A.shape[0]
        r2 = jnp.where(jnp.eye(n, dtype=bool), 0.0, r2)
    return r2


@jax.custom_jvp
def safe_sqrt(r2):
    """``sqrt`` of a squared distance, with derivative 0 at zero and finite everywhere.

    A custom JVP rather than the double-``where`` idiom: XLA's CPU backend (jaxlib >=
    0.10.1) contracts ``x * s - y * s`` into a fused multiply-add inside some fusions and
    not others, so a distance that is exactly 0 in one fusion is ~1e-38 in the next, and
    the two ``where`` s of the idiom took different branches in the forward and backward
    passes (wrong gradients under ``jit``; ``tests/test_toolchain.py``). Here the
    derivative is evaluated from the primal alone and bounded by ``0.5 / tiny``.
    """
    return jnp.sqrt(jnp.maximum(r2, 0.0))


@safe_sqrt.defjvp
def _safe_sqrt_jvp(primals, tangents):
    (r2,), (dr2,) = primals, tangents
    r = jnp.sqrt(jnp.maximum(r2, 0.0))
    tiny = jnp.finfo(r.dtype).tiny
    return r, jnp.where(r > 0, 0.5 / jnp.maximum(r, tiny), 0.0) * dr2


class AbstractStationaryKernel(AbstractKernel):
    """A kernel ``k(x, x') = f(|(x - x') / length_scale|^2)``.

    Subclasses have a ``length_scale`` field (scalar, or one per feature for ARD)
    and implement :meth:`from_sq_dist`.
    """

    def from_sq_dist(self, r2):
        raise NotImplementedError

    def _scaled(self, X):
        return X / self.length_scale

    def pairwise(self, x1, x2):
        d = (x1 - x2) / self.length_scale
        return self.from_sq_dist(jnp.sum(d * d))

    def _scaled_sq_dist(self, X1, X2, same):
        ls = self.length_scale
        if jnp.size(ls) == 1:
            # Isotropic: |x/l - x'/l|^2 = |x - x'|^2 / l^2. Dividing after the distance keeps
            # the length scale out of the GEMM, so its gradient is elementwise only (and a
            # Batched kernel with distinct length scales but shared inputs computes the
            # distances once). One reciprocal, then a multiply per entry: XLA keeps a
            # divide per entry otherwise.
            return sq_dist(X1, X2, same=same) * jnp.reshape(1.0 / (ls * ls), ())
        return sq_dist(self._scaled(X1), self._scaled(X2), same=same)

    def _cross(self, X1, X2):
        return self.from_sq_dist(self._scaled_sq_dist(X1, X2, False))

    def _gram(self, X):
        return self.from_sq_dist(self._scaled_sq_dist(X, X, True))

    def _diag(self, X):
        return jnp.broadcast_to(self.from_sq_dist(jnp.zeros((), X.dtype)), X.shape[:1])

    @property
    def anisotropic(self) -> bool:
        return jnp.ndim(self.length_scale) > 0


class RBF(AbstractStationaryKernel):
    """Squared exponential: ``exp(-r^2 / 2)`` with ``r = |x - x'| / length_scale``."""

    length_scale: object = hyperparameter_field(default=1.0)
    length_scale_bounds: object = bounds_field()
    hyperparameters = ("length_scale",)
    sklearn_name = "RBF"

    def from_sq_dist(self, r2):
        return jnp.exp(-0.5 * r2)

    def spectral_dof(self):
        return None  # a Gaussian spectral density

    def _spectral_factors(self, inputs):
        from ._spectral import SpectralFactor

        return 1.0, [SpectralFactor(self, inputs)], False


class Matern(AbstractStationaryKernel):
    """Matérn kernel with smoothness ``nu`` in {0.5, 1.5, 2.5} (static) or ``inf`` (RBF)."""

    length_scale: object = hyperparameter_field(default=1.0)
    length_scale_bounds: object = bounds_field()
    nu: float = eqx.field(static=True, default=1.5)
    hyperparameters = ("length_scale",)
    sklearn_name = "Matern"

    def spectral_dof(self):
        return None if self.nu == math.inf else 2.0 * self.nu  # multivariate Student-t, 2 nu

    def _spectral_factors(self, inputs):
        from ._spectral import SpectralFactor

        return 1.0, [SpectralFactor(self, inputs)], False

    def _sklearn_static(self):
        return {"nu": self.nu}

    def __check_init__(self):
        if self.nu not in (0.5, 1.5, 2.5, math.inf):
            raise ValueError(
                f"Matern(nu={self.nu!r}) is not supported: use nu in {{0.5, 1.5, 2.5}} "
                "(or nu=inf, which is the RBF kernel)."
            )

    def from_sq_dist(self, r2):
        if self.nu == math.inf:
            return jnp.exp(-0.5 * r2)
        r = safe_sqrt(r2)
        if self.nu == 0.5:
            return jnp.exp(-r)
        if self.nu == 1.5:
            s = math.sqrt(3.0) * r
            return (1.0 + s) * jnp.exp(-s)
        s = math.sqrt(5.0) * r
        return (1.0 + s + s * s * (1.0 / 3.0)) * jnp.exp(-s)

    def _repr_extra(self):
        return (("nu", self.nu),)


class RationalQuadratic(AbstractStationaryKernel):
    """``(1 + r^2 / (2 alpha))^(-alpha)`` with ``r = |x - x'| / length_scale``."""

    length_scale: object = hyperparameter_field(default=1.0)
    alpha: object = hyperparameter_field(default=1.0)
    length_scale_bounds: object = bounds_field()
    alpha_bounds: object = bounds_field()
    hyperparameters = ("alpha", "length_scale")
    sklearn_name = "RationalQuadratic"

    def from_sq_dist(self, r2):
        return (1.0 + r2 * (0.5 / self.alpha)) ** (-self.alpha)


class ExpSineSquared(AbstractKernel):
    """Periodic kernel ``exp(-2 sin^2(pi d / periodicity) / length_scale^2)``, ``d = |x - x'|``."""

    length_scale: object = hyperparameter_field(default=1.0)
    periodicity: object = hyperparameter_field(default=1.0)
    length_scale_bounds: object = bounds_field()
    periodicity_bounds: object = bounds_field()
    hyperparameters = ("length_scale", "periodicity")
    sklearn_name = "ExpSineSquared"

    def __check_init__(self):
        if jnp.ndim(self.length_scale) > 0 or jnp.ndim(self.periodicity) > 0:
            raise ValueError(
                "ExpSineSquared takes a scalar length_scale and periodicity (as scikit-learn); for a "
                "periodic kernel per feature multiply ActiveDims(ExpSineSquared(...), (j,)) terms."
            )

    def _from_dist(self, d):
        # Scalars folded first: a divide per entry costs several multiplies.
        s = jnp.sin(d * (jnp.pi / self.periodicity))
        return jnp.exp(s * s * (-2.0 / self.length_scale**2))

    def pairwise(self, x1, x2):
        d = x1 - x2
        return self._from_dist(safe_sqrt(jnp.sum(d * d)))

    def _cross(self, X1, X2):
        return self._from_dist(safe_sqrt(sq_dist(X1, X2)))

    def _gram(self, X):
        return self._from_dist(safe_sqrt(sq_dist(X, X, same=True)))

    def _diag(self, X):
        return jnp.ones(X.shape[:1], X.dtype)
