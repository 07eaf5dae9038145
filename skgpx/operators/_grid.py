"""Regular grids and the contract of a covariance operator on one.

A :class:`Grid` is the Cartesian product of ``d`` regular axes (origin, spacing, number of
points per axis); its points are ordered C-style (the last axis varies fastest), so a
vector on the grid reshapes to ``grid.shape``. An :class:`AbstractGridOperator` is the
prior covariance ``K(U, U)`` of a kernel on the ``M`` grid points ``U``, never formed:

* ``mm(V)``: ``K @ V`` for ``V`` of shape ``(M, k)``;
* ``entries(I, J)``: ``K[I, J]`` elementwise for integer arrays of flat indices, ``O(1)``
  each (what a variance at one point needs: a few nearby entries);
* ``sqrt_mm(Z)``: ``S @ Z`` for a fixed ``S`` of shape ``(M, embed_size)`` with
  ``S S^T = K`` (prior draws on the grid: ``S @ N(0, I)``).

All are symmetric positive semi-definite; gradients with respect to the kernel's
hyperparameters flow through ``mm`` and ``entries`` by autodiff.
"""

from __future__ import annotations

import abc
import math
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np

from ._common import register_symmetric_psd

__all__ = ["Grid", "AbstractGridOperator", "auto_grid", "lattice_of", "register_grid_operator"]


class Grid(eqx.Module):
    """``d`` regular axes: point ``i`` of axis ``a`` is ``origin[a] + i * spacing[a]``."""

    origin: tuple = eqx.field(static=True)
    spacing: tuple = eqx.field(static=True)
    shape: tuple = eqx.field(static=True)

    def __init__(self, origin, spacing, shape):
        origin, spacing, shape = tuple(map(float, origin)), tuple(map(float, spacing)), tuple(map(int, shape))
        if not (len(origin) == len(spacing) == len(shape)) or not shape:
            raise ValueError(f"Grid(origin, spacing, shape) need the same non-zero length, got {origin}, {spacing}, {shape}.")
        if any(m < 1 for m in shape) or any(not (h > 0) for h in spacing):
            raise ValueError(f"Grid needs shape >= 1 and spacing > 0 on every axis, got shape={shape}, spacing={spacing}.")
        self.origin, self.spacing, self.shape = origin, spacing, shape

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    def axis(self, a: int) -> np.ndarray:
        return self.origin[a] + self.spacing[a] * np.arange(self.shape[a])

    def points(self, dtype=jnp.float64):
        """All ``M`` points, ``(M, d)``, C order."""
        mesh = np.meshgrid(*[self.axis(a) for a in range(self.ndim)], indexing="ij")
        return jnp.asarray(np.stack([m.ravel() for m in mesh], axis=1), dtype)

    def sub(self, dims) -> "Grid":
        """The grid of the axes ``dims`` (in that order)."""
        return Grid([self.origin[a] for a in dims], [self.spacing[a] for a in dims], [self.shape[a] for a in dims])

    def contains(self, X, margin: float = 0.0) -> np.ndarray:
        """Host side: which rows of ``X`` ``(n, d)`` lie within the grid (``margin`` cells inside);
        axes of one point (the kernel is constant along them) hold every value."""
        X = np.asarray(X)
        single = np.asarray(self.shape) == 1
        lo = np.asarray(self.origin) + margin * np.asarray(self.spacing)
        hi = np.asarray(self.origin) + (np.asarray(self.shape) - 1 - margin) * np.asarray(self.spacing)
        inside = (X >= lo - 1e-9 * np.abs(lo)) & (X <= hi + 1e-9 * np.abs(hi))
        return np.all(inside | single, axis=1)


def auto_grid(X, scales, points_per_scale: float = 4.0, max_size: int = 2**22, pad: int = 2) -> Grid:
    """A grid covering ``X`` ``(n, d)`` with spacing ``scales / points_per_scale``
    (``points_per_scale``: a number, or one per column: a rough axis, e.g. a Matérn-1/2
    factor, needs more points than a smooth one for the same interpolation error).

    ``scales`` (``(d,)``, e.g. :func:`skgpx.kernels.length_scales`) sets the spacing per
    axis; an infinite scale (the kernel is constant along that column) gives one point.
    ``pad`` extra points on each side hold the interpolation stencil of points on the
    edge (cubic convolution reads one node below and two above). If the grid would exceed
    ``max_size`` points, every finite spacing is widened by the same factor (with a
    ``UserWarning``: interpolation error grows with spacing / length scale).
    """
    X = np.asarray(X, dtype=np.float64)
    scales = np.asarray(scales, dtype=np.float64)
    if X.ndim != 2 or scales.shape != (X.shape[1],):
        raise ValueError(f"auto_grid needs X (n, d) and scales (d,), got {X.shape} and {scales.shape}.")
    if np.any(~(scales > 0)):
        raise ValueError(f"auto_grid needs positive length scales, got {scales}.")
    lo, hi = X.min(axis=0), X.max(axis=0)
    finite = np.isfinite(scales)
    pps = np.broadcast_to(np.asarray(points_per_scale, dtype=np.float64), scales.shape)
    h = np.where(finite, scales / pps, 1.0)

    def shape_for(h):
        inner = np.where(finite, np.ceil((hi - lo) / h).astype(np.int64) + 1, 1)
        return np.where(finite, inner + 2 * pad, 1)

    smallest = math.prod(int(s) for s in np.where(finite, np.where(hi > lo, 2, 1) + 2 * pad, 1))
    if smallest > max_size:  # no spacing reaches it: the widening below would never stop
        raise ValueError(f"The automatic grid for {X.shape[1]}-D data needs at least {smallest} points (two cells "
                         f"and the interpolation stencil's {pad} nodes each side per axis), above its cap "
                         f"max_size={max_size}; raise SKI's `max_grid_size` / `max_refined_size`.")
    shape = shape_for(h)
    widen = 1.0
    while math.prod(int(s) for s in shape) > max_size:
        widen *= 1.1
        shape = shape_for(h * widen)
    if widen > 1.0:
        warnings.warn(
            f"The automatic grid for {X.shape[0]} points would exceed max_size={max_size} points; its spacing "
            f"was widened {widen:.2f}x to {np.where(finite, h * widen, np.inf)} ({widen * 1:.2f}x coarser than "
            f"{points_per_scale} points per length scale). Interpolation error grows with spacing: raise "
            "`max_size` or check the interpolation error reported after the fit.",
            UserWarning,
            stacklevel=2,
        )
        h = h * widen
    origin = np.where(finite, lo - pad * h, 0.5 * (lo + hi))
    return Grid(origin, h, shape)


def lattice_of(X, max_size: int = 2**22, rtol: float = 1e-9):
    """Host side: the smallest regular :class:`Grid` whose nodes include every row of ``X``
    (a gridded product, possibly with missing cells), or ``None`` when the rows are not on one
    or it would exceed ``max_size`` nodes."""
    X = np.asarray(X, dtype=np.float64)
    origin, spacing, shape = [], [], []
    for a in range(X.shape[1]):
        u = np.unique(X[:, a])
        if u.size == 1:
            origin.append(u[0]), spacing.append(1.0), shape.append(1)
            continue
        if u.size > max_size:
            return None
        h = float(np.min(np.diff(u)))
        span = float(u[-1] - u[0])
        steps = (u - u[0]) / h
        if not np.all(np.abs(steps - np.round(steps)) <= rtol * max(1.0, span / h)):
            return None
        origin.append(u[0]), spacing.append(h), shape.append(int(round(span / h)) + 1)
    if math.prod(shape) > max_size:
        return None
    return Grid(origin, spacing, shape)


class AbstractGridOperator(lx.AbstractLinearOperator):
    """The covariance ``K(U, U)`` of a kernel on the points ``U`` of a :class:`Grid`."""

    grid: eqx.AbstractVar[Grid]

    @abc.abstractmethod
    def mm(self, V):
        """``K @ V`` for ``V`` ``(M, k)``."""

    @abc.abstractmethod
    def entries(self, I, J):
        """``K[I, J]`` elementwise for integer arrays ``I``, ``J`` of one shape."""

    @property
    @abc.abstractmethod
    def embed_size(self) -> int:
        """Columns of the square-root factor ``S`` (``S S^T = K``)."""

    @abc.abstractmethod
    def sqrt_mm(self, Z):
        """``S @ Z`` for ``Z`` ``(embed_size, k)``: ``(M, k)``."""

    @property
    @abc.abstractmethod
    def dtype(self):
        """Floating dtype of the operator."""

    def with_psd_embedding(self, tol: float = 1e-10, max_factor: int = 16) -> "AbstractGridOperator":
        """Host side: an equal operator whose ``sqrt_mm`` is exact to ``tol`` where an
        embedding allows it (Toeplitz factors); ``self`` when it already is."""
        return self

    def mv(self, vector):
        return self.mm(vector[:, None])[:, 0]

    def transpose(self):
        return self

    def in_structure(self):
        return jax.ShapeDtypeStruct((self.grid.size,), self.dtype)

    def out_structure(self):
        return self.in_structure()

    def as_matrix(self):
        """The dense ``M x M`` matrix (tests and debugging only)."""
        M = self.grid.size
        I, J = jnp.meshgrid(jnp.arange(M), jnp.arange(M), indexing="ij")
        return self.entries(I, J)

    def diagonal(self):
        i = jnp.arange(self.grid.size)
        return self.entries(i, i)


def register_grid_operator(cls, diagonal):
    """Register ``cls`` (symmetric positive semi-definite, never materialised silently) with
    lineax's dispatch functions; ``diagonal(operator)`` gives its diagonal."""
    register_symmetric_psd(cls, diagonal)

    @lx.materialise.register(cls)
    def _(operator):
        n = operator.in_structure().shape[0]
        warnings.warn(
            f"Materialising a {type(operator).__name__} forms its {n} x {n} matrix. Solve it with "
            "`skgpx.solvers.pcg` (or lineax.CG) to keep its structure.",
            UserWarning,
            stacklevel=2,
        )
        return lx.MatrixLinearOperator(operator.as_matrix(), (lx.symmetric_tag, lx.positive_semidefinite_tag))

    @lx.tridiagonal.register(cls)
    def _(operator):
        A = operator.as_matrix()
        return jnp.diagonal(A), jnp.diagonal(A, 1), jnp.diagonal(A, -1)
