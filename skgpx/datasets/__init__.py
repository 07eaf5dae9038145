"""Simulated data sets for tests, examples and benchmarks."""

from ._magma import make_magma_data as make_magma_data
from ._magmaclust import make_magmaclust_data as make_magmaclust_data
