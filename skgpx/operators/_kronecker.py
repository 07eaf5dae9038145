"""Product kernels over disjoint groups of columns on a product grid: Kronecker operators.

For ``k(x, x') = prod_g k_g(x[D_g], x'[D_g])`` with disjoint column groups ``D_g`` and a
grid that is the Cartesian product of its axes, ``K = (x)_g K_g`` up to the ordering of
the axes: with ``V`` reshaped to the grid's tensor ``(m_0, ..., m_{d-1}, k)``, each factor
acts on its own axes (``(A (x) B) vec(V) = vec(A V B^T)``), so a product costs the sum of
the factors' products, not their Kronecker product's. Each factor is a
:class:`~skgpx.operators.ToeplitzOperator` (stationary, any number of axes), a
:class:`~skgpx.operators.ChordalGridOperator` (``Chordal`` on a longitude-latitude pair of axes) or a
:class:`DenseGridOperator` (anything else, on its own small sub-grid).

:func:`grid_operator` picks the structure of a kernel on a grid.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..kernels import is_stationary, kronecker_groups
from ._grid import AbstractGridOperator, Grid, register_grid_operator
from ._chordal_grid import ChordalGridOperator, chordal_structure
from ._toeplitz import ToeplitzOperator

__all__ = ["DenseGridOperator", "KroneckerOperator", "grid_operator"]

# Largest sub-grid a non-stationary factor is materialised on (M^2 floats: 128 MiB).
DENSE_FACTOR_MAX = 4096


class DenseGridOperator(AbstractGridOperator):
    """``K(U, U)`` materialised, for a non-stationary kernel on a small grid."""

    grid: Grid
    matrix: jax.Array
    jitter: float

    def __init__(self, kernel, grid: Grid, dtype=None, jitter: float = 1e-10):
        if grid.size > DENSE_FACTOR_MAX:
            raise ValueError(
                f"A non-stationary kernel factor on a grid of {grid.size} points would be materialised "
                f"({grid.size} x {grid.size}); the limit is {DENSE_FACTOR_MAX}. Use a stationary kernel, a "
                "product over smaller groups of columns (ActiveDims), or a coarser grid."
            )
        self.grid = grid
        dtype = jnp.result_type(float) if dtype is None else dtype
        U = grid.points(dtype)
        self.matrix = kernel.cross(U, U)
        self.jitter = float(jitter)

    @property
    def dtype(self):
        return self.matrix.dtype

    @property
    def embed_size(self) -> int:
        return self.grid.size

    def mm(self, V):
        return self.matrix @ V

    def sqrt_mm(self, Z):
        M = self.grid.size
        scale = jnp.mean(jnp.diagonal(self.matrix))
        L = jnp.linalg.cholesky(self.matrix + (self.jitter * scale) * jnp.eye(M, dtype=self.dtype))
        return L @ Z

    def entries(self, I, J):
        return self.matrix[I, J]

    def as_matrix(self):
        return self.matrix


class KroneckerOperator(AbstractGridOperator):
    """``K = (x)_g K_g`` with factor ``g`` acting on the axes ``groups[g]`` of ``grid``."""

    grid: Grid
    factors: tuple
    groups: tuple = eqx.field(static=True)

    def __init__(self, factors, groups, grid: Grid):
        groups = tuple(tuple(int(a) for a in g) for g in groups)
        flat = sorted(a for g in groups for a in g)
        if flat != list(range(grid.ndim)) or len(factors) != len(groups):
            raise ValueError(f"KroneckerOperator groups {groups} must partition the {grid.ndim} grid axes.")
        for f, g in zip(factors, groups):
            if f.grid.shape != tuple(grid.shape[a] for a in g):
                raise ValueError(f"Factor on axes {g} has grid shape {f.grid.shape}, expected "
                                 f"{tuple(grid.shape[a] for a in g)}.")
        self.factors, self.groups, self.grid = tuple(factors), groups, grid

    @property
    def dtype(self):
        return self.factors[0].dtype

    @property
    def embed_size(self) -> int:
        return math.prod(f.embed_size for f in self.factors)

    def mm(self, V):
        k = V.shape[1]
        d = self.grid.ndim
        T = V.reshape(tuple(self.grid.shape) + (k,))
        for f, g in zip(self.factors, self.groups):
            rest = [a for a in range(d + 1) if a not in g]
            perm = list(g) + rest
            Tp = jnp.transpose(T, perm)
            shp = Tp.shape
            Tp = f.mm(Tp.reshape(f.grid.size, -1)).reshape(shp)
            T = jnp.transpose(Tp, np.argsort(perm))
        return T.reshape(-1, k)

    def sqrt_mm(self, Z):
        k = Z.shape[1]
        T = Z.reshape(tuple(f.embed_size for f in self.factors) + (k,))
        for i, f in enumerate(self.factors):
            Tp = jnp.moveaxis(T, i, 0)
            shp = Tp.shape
            Tp = f.sqrt_mm(Tp.reshape(shp[0], -1)).reshape((f.grid.size,) + shp[1:])
            T = jnp.moveaxis(Tp, 0, i)
        # (M_0, ..., M_{G-1}, k) with M_g = prod of group g's axes -> grid axis order.
        T = T.reshape(tuple(n for f in self.factors for n in f.grid.shape) + (k,))
        order = [a for g in self.groups for a in g]
        T = jnp.transpose(T, list(np.argsort(order)) + [len(order)])
        return T.reshape(-1, k)

    def with_psd_embedding(self, tol: float = 1e-10, max_factor: int = 16):
        """Host side: every Toeplitz factor with a positive semi-definite square-root embedding."""
        return eqx.tree_at(lambda o: o.factors, self, tuple(f.with_psd_embedding(tol, max_factor) for f in self.factors))

    def entries(self, I, J):
        i = jnp.unravel_index(I, self.grid.shape)
        j = jnp.unravel_index(J, self.grid.shape)
        out = None
        for f, g in zip(self.factors, self.groups):
            sub = tuple(self.grid.shape[a] for a in g)
            fi = jnp.ravel_multi_index(tuple(i[a] for a in g), sub, mode="clip")
            fj = jnp.ravel_multi_index(tuple(j[a] for a in g), sub, mode="clip")
            e = f.entries(fi, fj)
            out = e if out is None else out * e
        return out


def grid_operator(kernel, grid: Grid, dtype=None) -> AbstractGridOperator:
    """The structured covariance of ``kernel`` on ``grid``: Kronecker over the kernel's
    product groups (:func:`skgpx.kernels.kronecker_groups`) when it has several, each
    factor Toeplitz if stationary, :class:`~skgpx.operators.ChordalGridOperator` for ``Chordal`` on a
    (longitude, latitude) pair of axes, else dense; the same for a single group; otherwise a
    ``ValueError`` (a general kernel on a large grid has no structure to exploit)."""
    groups = kronecker_groups(kernel, grid.ndim)
    if groups is not None:
        factors = [_factor(k, grid.sub(dims), dtype) for dims, k in groups]
        return KroneckerOperator(factors, [dims for dims, _ in groups], grid)
    return _factor(kernel, grid, dtype)


def _factor(kernel, grid, dtype):
    if is_stationary(kernel):
        return ToeplitzOperator(kernel, grid, dtype)
    if grid.ndim == 2 and chordal_structure(kernel) is not None:  # FFT in longitude, dense in latitude
        return ChordalGridOperator(kernel, grid, dtype)
    if grid.size <= DENSE_FACTOR_MAX:
        return DenseGridOperator(kernel, grid, dtype)
    raise ValueError(
        f"{kernel!r} is neither stationary nor a product over disjoint groups of columns (ActiveDims), so on "
        f"a grid of {grid.size} points it has no Toeplitz or Kronecker structure. Use a stationary kernel or a "
        "product of ActiveDims factors."
    )


for _cls in (DenseGridOperator, KroneckerOperator):
    register_grid_operator(_cls, lambda operator: operator.diagonal())
