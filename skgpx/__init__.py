"""skgpx: scalable Gaussian processes for scikit-learn users, on JAX, Equinox and lineax."""

from . import datasets as datasets
from . import kernels as kernels
from . import optimizers as optimizers
from ._config import precision_scope as precision_scope
from .estimators import MultiTaskMagmaRegressor as MultiTaskMagmaRegressor
from .estimators import ScalableGPRegressor as ScalableGPRegressor

__version__ = "0.1.0"
