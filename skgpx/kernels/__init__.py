"""Kernels: small immutable Equinox modules, composable and batchable.

``from skgpx.kernels import RBF, Matern, White``; ``2.0 * RBF(0.3) + White(0.1)``.

Every kernel offers ``gram(X, mask=None)`` ``(n, n)``, ``cross(X1, X2, mask1, mask2)``
``(n, m)``, ``diag(X, mask)`` ``(n,)`` and ``k(X)`` / ``k(X, Y)``; masks are boolean
``(n,)`` arrays or ``"nan"`` (rows holding a NaN are padding: identity rows in a Gram,
zero rows in a cross-covariance, finite gradients). Hyperparameters are exposed as
scikit-learn does: ``theta`` (log of the free values), ``bounds``, ``with_theta``,
``replace(k1__length_scale=...)``, ``"fixed"`` bounds to freeze. Wrappers:
``Batched`` (a task axis, hyperparameters shared or distinct), ``ActiveDims``,
``Chordal`` (lon/lat on the sphere). ``from_sklearn`` / ``to_sklearn`` convert
scikit-learn kernels; ``save`` / ``load`` serialise hyperparameters.

Writing your own kernel
-----------------------
Subclass :class:`AbstractKernel`, declare each hyperparameter as an array field
with :func:`hyperparameter_field` plus a ``<name>_bounds`` :func:`bounds_field`,
list the names (alphabetically) in ``hyperparameters``, and write ``pairwise``::

    class Brownian(AbstractKernel):
        variance: object = hyperparameter_field(default=1.0)
        variance_bounds: object = bounds_field()
        hyperparameters = ("variance",)

        def pairwise(self, x1, x2):  # x1, x2: feature vectors of shape (d,)
            return self.variance * jnp.prod(jnp.minimum(x1, x2))

That is all: ``gram``/``cross``/``diag``, masks, ``+``/``*``, ``theta``, ``jax.grad``
and ``Batched`` work (via a double ``vmap`` of ``pairwise``). For speed, also
override the unpadded vectorised ``_cross(X1, X2)``, ``_gram(X)`` and ``_diag(X)``;
a stationary kernel can instead subclass :class:`AbstractStationaryKernel` and
write only ``from_sq_dist(r2)`` to get the vectorised squared distances (direct
differences up to three features, the matmul identity above). See
``examples/custom_kernel.py``.

The names load on first use (``import skgpx.kernels`` imports nothing; see :mod:`skgpx._lazy`).
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_package

__getattr__, __dir__ = lazy_package(__name__)

if TYPE_CHECKING:  # the public names, for type checkers and documentation tools
    from ._api import *  # noqa: F403
