"""Sparse local interpolation from scattered points to a grid, and the SKI operator.

Structured kernel interpolation (SKI, KISS-GP: Wilson & Nickisch 2015) approximates
``K(X, X') ~ W K(U, U) W'^T`` where row ``i`` of ``W`` interpolates from the grid ``U`` to
``x_i`` with a local stencil of ``q`` nodes per axis:

* ``order=3``: cubic convolution (Keys 1981, ``a = -1/2``), ``q = 4``, error ``O(h^3)`` on
  smooth functions;
* ``order=1``: multilinear, ``q = 2``;
* ``order=0``: the nearest node with weight 1 (exact for points *on* the grid: the
  observed cells of a gridded product).

Only the stencil's first node and the ``q`` weights per axis are stored (``(n, d)`` and
``(n, d, q)``); the ``q^d`` node indices and weight products are formed on the fly inside
each product by a ``lax.scan`` over the stencil, so memory stays ``O(n d q + n k)``.
"""

from __future__ import annotations

import itertools

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np

from ._grid import Grid, register_grid_operator

__all__ = ["GridInterpolation", "interpolation_weights", "interpolated_pairs", "stencil_weights", "SKIOperator"]


def _keys_cubic(s):
    s = jnp.abs(s)
    near = (1.5 * s - 2.5) * s * s + 1.0
    far = ((-0.5 * s + 2.5) * s - 4.0) * s + 2.0
    return jnp.where(s <= 1.0, near, jnp.where(s < 2.0, far, 0.0))


class GridInterpolation(eqx.Module):
    """The sparse ``(n, M)`` interpolation matrix ``W`` from a grid to ``n`` points.

    With ``perm``, the stencils are stored in grid order (row ``j`` is point ``perm[j]``; ``inv``
    the inverse permutation): a product then reads and writes the grid in order, which is faster
    (docs/performance.md, "Interpolation in grid order"); every method takes and returns the
    points in their own order.
    """

    grid: Grid
    base: jax.Array  # (n, d) int32: the stencil's first node on each axis
    weights: jax.Array  # (n, d, q)
    order: int = eqx.field(static=True)
    perm: jax.Array | None = None  # (n,) int32: the point of each stored row
    inv: jax.Array | None = None  # (n,) int32: the stored row of each point

    def _own(self, A):
        """Stored rows back in the points' order."""
        return A if self.inv is None else A[self.inv]

    def _stored(self, A):
        """Rows in the points' order to stored order."""
        return A if self.perm is None else A[self.perm]

    @property
    def n(self) -> int:
        return self.base.shape[0]

    @property
    def stencil_size(self) -> int:
        return len(self._offset_list())

    def _offset_list(self):
        # An axis of one node (the kernel is constant along it) has weight 1 on its first node.
        q = self.weights.shape[2]
        return list(itertools.product(*[range(q if m > 1 else 1) for m in self.grid.shape]))

    def _offsets(self):
        return jnp.asarray(self._offset_list(), jnp.int32)

    def _node(self, off):
        """Flat grid index and weight ``(n,)`` of stencil node ``off`` (``(d,)``); nodes off
        the grid get weight 0 (and a clipped index)."""
        shape = self.grid.shape
        idx = self.base + off[None, :]
        ok = jnp.all((idx >= 0) & (idx < jnp.asarray(shape)), axis=1)
        flat = jnp.zeros(idx.shape[:1], jnp.int32)
        stride = 1
        for a in reversed(range(len(shape))):
            flat = flat + jnp.clip(idx[:, a], 0, shape[a] - 1) * stride
            stride *= shape[a]
        w = jnp.prod(jnp.take_along_axis(self.weights, off[None, :, None], axis=2)[:, :, 0], axis=1)
        return flat, jnp.where(ok, w, 0.0)

    def gather(self, U, slots=None):
        """``W @ U``: grid values ``(M, k)`` to the points, ``(n, k)``. With ``slots`` (``(n,)``
        ints), ``U`` is ``(S M, k)``, ``S`` stacked grids, and point ``i`` reads grid ``slots[i]``."""
        base = 0 if slots is None else self._stored(slots) * self.grid.size

        def step(out, off):
            flat, w = self._node(off)
            return out + w[:, None] * U[flat + base], None

        out, _ = jax.lax.scan(step, jnp.zeros((self.n, U.shape[1]), U.dtype), self._offsets())
        return self._own(out)

    def scatter(self, V, slots=None, n_slots: int = 1):
        """``W^T @ V``: point values ``(n, k)`` onto the grid, ``(M, k)``; with ``slots`` onto
        ``n_slots`` stacked grids, ``(n_slots M, k)``, point ``i`` onto grid ``slots[i]``."""
        base = 0 if slots is None else self._stored(slots) * self.grid.size
        V = self._stored(V)

        def step(acc, off):
            flat, w = self._node(off)
            return acc.at[flat + base].add(w[:, None] * V), None

        size = self.grid.size * (1 if slots is None else int(n_slots))
        acc, _ = jax.lax.scan(step, jnp.zeros((size, V.shape[1]), V.dtype), self._offsets())
        return acc

    def covered(self):
        """``(n,)`` bool: every stencil node of the point lies on the grid (else its
        interpolation is truncated)."""
        q = self.weights.shape[2]
        shape = jnp.asarray(self.grid.shape)
        ok = (self.base >= 0) & (self.base + (q - 1) < shape)
        return self._own(jnp.all(ok | (shape == 1), axis=1))

    def stencil(self):
        """All stencil nodes at once: flat indices and weights ``(n, q^d)`` (small ``n`` only)."""
        flat, w = jax.vmap(self._node)(self._offsets())
        return self._own(flat.T), self._own(w.T)

    def as_matrix(self):
        """Dense ``(n, M)`` (tests only)."""
        flat, w = self.stencil()
        return jnp.zeros((self.n, self.grid.size), w.dtype).at[jnp.arange(self.n)[:, None], flat].add(w)


def stencil_weights(u, order: int):
    """First stencil node (float, in grid units) and the ``q`` weights per coordinate of ``u``
    (coordinates in grid units, any shape): ``(u.shape, u.shape + (q,))``. Traceable in ``u``."""
    if order == 0:
        return jnp.round(u), jnp.ones(u.shape + (1,), u.dtype)
    fl = jnp.floor(u)
    t = u - fl
    if order == 1:
        return fl, jnp.stack([1.0 - t, t], axis=-1)
    W = jnp.stack([_keys_cubic(t + 1.0), _keys_cubic(t), _keys_cubic(1.0 - t), _keys_cubic(2.0 - t)], axis=-1)
    return fl - 1.0, W


def interpolation_weights(X, grid: Grid, order: int = 3) -> GridInterpolation:
    """Interpolation from ``grid`` to the rows of ``X`` ``(n, d)`` (traceable in ``X``).

    Points must lie inside the grid with room for the stencil (the automatic grid pads
    two nodes on each side); stencil nodes past an edge get weight 0. Axes of one node
    (the kernel is constant along them) interpolate with weight 1 whatever the coordinate.
    """
    if order not in (0, 1, 3):
        raise ValueError(f"`interpolation_order` must be 0 (nearest node), 1 (linear) or 3 (cubic), got {order!r}.")
    X = jnp.asarray(X)
    if X.ndim != 2 or X.shape[1] != grid.ndim:
        raise ValueError(f"interpolation_weights needs X of shape (n, {grid.ndim}), got {X.shape}.")
    u = (X - jnp.asarray(grid.origin, X.dtype)) / jnp.asarray(grid.spacing, X.dtype)
    single = jnp.asarray(np.asarray(grid.shape) == 1)
    base, W = stencil_weights(u, order)
    q = W.shape[-1]
    first = jnp.zeros((q,), X.dtype).at[0].set(1.0)
    W = jnp.where(single[None, :, None], first, W)
    base = jnp.where(single[None, :], 0, base).astype(jnp.int32)
    # Stored in grid order (row-major flat index of the first stencil node).
    key = jnp.zeros(base.shape[:1], jnp.int32)
    for a, m in enumerate(grid.shape):
        key = key * m + jnp.clip(base[:, a], 0, m - 1)
    perm = jnp.argsort(key).astype(jnp.int32)
    inv = jnp.zeros_like(perm).at[perm].set(jnp.arange(perm.shape[0], dtype=jnp.int32))
    return GridInterpolation(grid, base[perm], W[perm], order, perm, inv)


def interpolated_pairs(grid_op, Wp: GridInterpolation, Wq: GridInterpolation):
    """``w_p_i^T K_UU w_q_i`` ``(n,)`` for each pair of rows of two interpolations of ``n``
    points (``Wp is Wq``: the diagonal), from the stencils' ``q^{2d}`` grid entries (small ``n``)."""
    fp, wp = Wp.stencil()
    fq, wq = (fp, wp) if Wq is Wp else Wq.stencil()
    return jnp.einsum("na,nab,nb->n", wp, grid_op.entries(fp[:, :, None], fq[:, None, :]), wq)


class AbstractInterpolatedOperator(lx.AbstractLinearOperator):
    """A symmetric ``(n,) -> (n,)`` noisy Gram matrix reaching its ``n`` points through an
    interpolation ``interp`` and with noise ``diag_noise``.

    Subclasses define ``kernel_mm`` (the smooth part, ``K V``), ``fields`` and ``cross_from``
    (``K(Xs, X) V`` in two steps, the first cached by a posterior), ``cross_columns``
    (``K(X, Xs)``), ``test_gram`` (``K(Xs, Xs)``) and ``pairs`` (``k(p_i, q_i)``), all as the
    operator interpolates them; the posterior and the fit's checks use only these."""

    def mm(self, V):
        return self.kernel_mm(V) + self.diag_noise[:, None] * V

    def weights_at(self, Xs) -> GridInterpolation:
        """The interpolation of test points ``Xs`` on this operator's grid."""
        return interpolation_weights(Xs, self.interp.grid, self.interp.order)

    def cross_mm(self, Xs, V):
        """``K(Xs, X) @ V`` ``(m, k)``: :meth:`cross_from` of :meth:`fields` (for a time-slice
        operator: exact in time at any test time, ``G`` FFT products per column)."""
        return self.cross_from(self.fields(V), Xs)

    def prior_diag(self, Xs):
        """``k(x, x)`` ``(m,)`` at ``Xs`` as interpolated (the smooth part)."""
        return self.pairs(Xs, Xs)

    def mv(self, vector):
        return self.mm(vector[:, None])[:, 0]

    def transpose(self):
        return self

    def in_structure(self):
        return jax.ShapeDtypeStruct((self.interp.n,), self.diag_noise.dtype)

    def out_structure(self):
        return self.in_structure()


class SKIOperator(AbstractInterpolatedOperator):
    """``W K(U, U) W^T + diag(s)``, ``(n,) -> (n,)``: the SKI (or masked-grid) noisy Gram matrix."""

    grid_op: object  # an AbstractGridOperator
    interp: GridInterpolation
    diag_noise: jax.Array  # (n,)

    kind = "ski"

    def kernel_mm(self, V):
        return self.interp.gather(self.grid_op.mm(self.interp.scatter(V)))

    def diagonal(self):
        return interpolated_pairs(self.grid_op, self.interp, self.interp) + self.diag_noise

    def cross_columns(self, Xs):
        """``K(X, Xs)`` ``(n, m)``: one grid product per test point (small ``m``)."""
        Ws = self.weights_at(Xs)
        return self.interp.gather(self.grid_op.mm(Ws.scatter(jnp.eye(Xs.shape[0], dtype=Xs.dtype))))

    def fields(self, V):
        """``K_UU W^T V`` ``(M, k)``: the grid field :meth:`cross_from` reads."""
        return self.grid_op.mm(self.interp.scatter(V))

    def cross_from(self, F, Xs):
        """``K(Xs, X) V = W* F`` ``(m, k)`` from ``F`` = :meth:`fields` ``(V)``."""
        return self.weights_at(Xs).gather(F)

    def test_gram(self, Xs):
        """``K(Xs, Xs)`` ``(m, m)`` as interpolated."""
        G = self.weights_at(Xs).scatter(jnp.eye(Xs.shape[0], dtype=Xs.dtype))
        return G.T @ self.grid_op.mm(G)

    def pairs(self, P, Q):
        """``k(p_i, q_i)`` ``(m,)`` as interpolated, for rows of ``P`` and ``Q`` ``(m, d)``."""
        Wp = self.weights_at(P)
        return interpolated_pairs(self.grid_op, Wp, Wp if Q is P else self.weights_at(Q))

    def as_matrix(self):
        W = self.interp.as_matrix()
        return W @ self.grid_op.mm(W.T) + jnp.diag(self.diag_noise)


register_grid_operator(SKIOperator, lambda operator: operator.diagonal())
