"""Active dimensions: evaluate a kernel on a static subset of the feature columns."""

from __future__ import annotations

import numbers

import equinox as eqx
import numpy as np

from ._base import AbstractKernel

__all__ = ["ActiveDims"]


class ActiveDims(AbstractKernel):
    """``kernel`` applied to the columns ``dims`` of the inputs (in that order).

    ``ActiveDims(RBF([1.0, 2.0]), dims=(0, 2))`` is an ARD RBF on features 0 and 2
    only; sums of ``ActiveDims`` kernels give additive models. ``dims`` is static
    (a tuple of non-negative column indices), so selection costs one slice or gather.
    """

    kernel: AbstractKernel
    dims: tuple = eqx.field(static=True)

    def __init__(self, kernel, dims):
        if not isinstance(kernel, AbstractKernel):
            raise TypeError(f"ActiveDims(kernel=...) must be an skgpx kernel, got {type(kernel).__name__}.")
        if isinstance(dims, numbers.Integral):
            dims = (dims,)
        dims = tuple(dims)
        ok = all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 0 for d in dims)
        if not dims or not ok or len(set(dims)) != len(dims):
            raise ValueError(
                f"ActiveDims(dims=...) must be a non-empty tuple of distinct non-negative column indices, got {dims!r}."
            )
        self.kernel = kernel
        self.dims = tuple(int(d) for d in dims)

    def _select(self, X):
        if X.shape[-1] <= max(self.dims):
            raise ValueError(
                f"ActiveDims(dims={self.dims}) selects column {max(self.dims)} but the input has only "
                f"{X.shape[-1]} features; pass inputs with more columns or change `dims`."
            )
        lo = self.dims[0]
        if self.dims == tuple(range(lo, lo + len(self.dims))):
            return X[..., lo : lo + len(self.dims)]  # contiguous: a slice, no gather
        return X[..., np.asarray(self.dims)]

    def pairwise(self, x1, x2):
        return self.kernel.pairwise(self._select(x1), self._select(x2))

    def _cross(self, X1, X2):
        return self.kernel._cross(self._select(X1), self._select(X2))

    def _gram(self, X):
        return self.kernel._gram(self._select(X))

    def _diag(self, X):
        return self.kernel._diag(self._select(X))

    def __repr__(self):
        return f"ActiveDims({self.kernel!r}, dims={self.dims})"
