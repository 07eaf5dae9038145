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
"""

from ._base import AbstractKernel as AbstractKernel, resolve_mask as resolve_mask
from ._base import bounds_field as bounds_field, hyperparameter_field as hyperparameter_field
from ._basic import (
    Constant as Constant,
    DotProduct as DotProduct,
    Linear as Linear,
    Polynomial as Polynomial,
    White as White,
)
from ._composite import Exponentiation as Exponentiation, Product as Product, Sum as Sum, as_kernel as as_kernel
from ._params import (
    Hyperparameter as Hyperparameter,
    get_bounds as get_bounds,
    get_theta as get_theta,
    hyperparameter_list as hyperparameter_list,
    set_theta as set_theta,
)
from ._stationary import (
    RBF as RBF,
    AbstractStationaryKernel as AbstractStationaryKernel,
    ExpSineSquared as ExpSineSquared,
    Matern as Matern,
    RationalQuadratic as RationalQuadratic,
    sq_dist as sq_dist,
)
from ._sklearn import (
    SUPPORTED_SKLEARN_KERNELS as SUPPORTED_SKLEARN_KERNELS,
    UnsupportedKernelError as UnsupportedKernelError,
    as_skgpx_kernel as as_skgpx_kernel,
    from_sklearn as from_sklearn,
    to_sklearn as to_sklearn,
)
from ._spectral import (
    RandomFourierFeatures as RandomFourierFeatures,
    draw_random_fourier_features as draw_random_fourier_features,
    rff_frequency_counts as rff_frequency_counts,
    sample_base_frequencies as sample_base_frequencies,
    spectral_density as spectral_density,
)
from ._active_dims import ActiveDims as ActiveDims
from ._batched import Batched as Batched
from ._chordal import Chordal as Chordal
from ._io import load as load, save as save
from ._structure import (
    is_stationary as is_stationary,
    kronecker_groups as kronecker_groups,
    length_scales as length_scales,
)
