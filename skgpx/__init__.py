"""skgpx: scalable Gaussian processes for scikit-learn users, on JAX, Equinox and lineax."""

from . import kernels as kernels

__version__ = "0.1.0"
