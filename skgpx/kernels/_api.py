"""The public names of :mod:`skgpx.kernels`, imported on first use of any of them (:mod:`skgpx._lazy`)."""

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
