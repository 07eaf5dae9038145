"""SKI in space, exact in time: observations at a few hundred distinct times (satellite passes).

For ``k(x, x') = k_s(x, x') k_t(t, t')`` (:func:`~skgpx.operators.split_space_time`) and data whose
time column takes ``G`` distinct values ``tau_1 < ... < tau_G`` (each pass at one time), the noisy
Gram matrix is interpolated in space only:

    ``A_ij = k_t(tau_g(i), tau_g(j)) (W K_ss W^T)_ij + s_i``,

``W`` the spatial interpolation weights (cubic, :func:`~skgpx.operators.interpolation_weights` on
a grid whose time axis has one node) and ``K_ss`` the spatial kernel on that grid (Toeplitz by FFT).
A product scatters each point onto the grid of its time slot (``G x M`` values per column), applies
``K_ss`` slot by slot (``G`` FFT products per column, one slot at a time so the circulant embedding
of one slot is all that is held), mixes the slots with ``K_t = [k_t(tau_g, tau_h)]`` and gathers.
There is no time grid and no interpolation error in time: a rough temporal kernel (Matérn-1/2,
whose kink costs a time grid hundreds of points per length scale) is as exact as the data's times.

The mixing is the two-sweep recursion of the exponential kernel when ``k_t`` is a Matérn-1/2
(``O(G M)`` per column: ``F_g = a_g F_{g-1} + U_g`` forward, the same backward, ``a_g =
exp(-(tau_g - tau_{g-1}) / l)``), else the dense ``G x G`` matrix (``O(G^2 M)``). Cost per column:
``G`` spatial FFT pairs, against ``2 m_t`` for a time grid of ``m_t`` nodes: this route pays off
while ``G`` is below twice the time grid an interpolation tolerance would need.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..kernels import ActiveDims, Matern
from ._common import noise_diagonal
from ._grid import Grid, register_grid_operator
from ._interpolation import AbstractInterpolatedOperator, GridInterpolation, interpolated_pairs, interpolation_weights
from ._kronecker import grid_operator
from ._time_groups import split_space_time

__all__ = ["TimeSliceSKIOperator", "time_slices", "time_slice_operator"]


def time_slices(X, time_dim: int):
    """Host side: the sorted distinct times ``(G,)`` of column ``time_dim`` and each row's slot ``(n,)``."""
    tau, slot = np.unique(np.asarray(X, dtype=np.float64)[:, time_dim], return_inverse=True)
    return tau, slot.astype(np.int32)


def _markov_scale(temporal):
    """The length scale of a Matérn-1/2 time factor (``exp(-|dt| / l)``), else ``None``."""
    if isinstance(temporal, ActiveDims) and isinstance(temporal.kernel, Matern) and temporal.kernel.nu == 0.5:
        ls = jnp.asarray(temporal.kernel.length_scale)
        return ls.reshape(-1)[0] if ls.size == 1 else None
    return None


class TimeSliceSKIOperator(AbstractInterpolatedOperator):
    """``[k_t(tau_g(i), tau_g(j)) (W K_ss W^T)_ij] + diag(s)`` (module docstring), ``(n,) -> (n,)``."""

    grid_op: object  # K_ss on the spatial grid (its time axis one node)
    interp: GridInterpolation  # spatial interpolation of the n points
    slots: jax.Array  # (n,) int32: the time slot of each point
    tau: jax.Array  # (G,) the distinct times, ascending
    temporal: object  # k_t, an ActiveDims kernel reading the time column
    diag_noise: jax.Array  # (n,)
    time_dim: int = eqx.field(static=True)
    markov: bool = eqx.field(static=True)  # k_t a Matern-1/2: the two-sweep mixing

    kind = "ski-time-slices"

    @property
    def n_slots(self) -> int:
        return self.tau.shape[0]

    def _times(self, t):
        """Rows of ``d`` columns holding times ``t`` in the time column (what ``temporal`` reads)."""
        d = max(self.interp.grid.ndim, self.time_dim + 1)
        return jnp.zeros((t.shape[0], d), self.tau.dtype).at[:, self.time_dim].set(t)

    @property
    def decay(self):
        """``(G - 1,)`` ``k_t(tau_g, tau_{g-1})``: ``exp(-(tau_g - tau_{g-1}) / l)`` for a Matern-1/2."""
        return jnp.exp(-jnp.diff(self.tau) / _markov_scale(self.temporal))

    def mix(self, U):
        """``(K_t (x) I) U`` for slot-stacked grid values ``U`` ``(G, M, k)``."""
        if not self.markov or self.n_slots == 1:
            return jnp.einsum("gh,hmk->gmk", self.time_kernel(), U)

        def sweep(F, au):
            a, u = au
            F = a * F + u
            return F, F

        a = self.decay[:, None, None]
        _, fwd = jax.lax.scan(sweep, U[0], (a, U[1:]))
        _, bwd = jax.lax.scan(sweep, U[-1], (a[::-1], U[:-1][::-1]))
        F = jnp.concatenate([U[:1], fwd])
        B = jnp.concatenate([bwd[::-1], U[-1:]])
        return F + B - U

    def grid_mm(self, U):
        """``(K_t (x) K_ss) U`` for ``U`` ``(G, M, k)``: ``K_ss`` one slot at a time."""
        return self.mix(self.space_mm(U))

    def space_mm(self, U):
        """``K_ss`` on every slot of ``U`` ``(G, M, k)``, one slot per FFT product (batching
        slots into one product's columns measured slower: docs/performance.md)."""
        return jax.lax.map(self.grid_op.mm, U)

    def slot_scatter(self, V):
        """``W^T V`` per time slot: ``(G, M, k)``."""
        G, M = self.n_slots, self.grid_op.grid.size
        return self.interp.scatter(V, self.slots, G).reshape(G, M, V.shape[1])

    def kernel_mm(self, V):
        G, M = self.n_slots, self.grid_op.grid.size
        Z = self.grid_mm(self.slot_scatter(V)).reshape(G * M, V.shape[1])
        return self.interp.gather(Z, self.slots)

    def time_kernel(self):
        """``K_t`` ``(G, G)``, dense."""
        T = self._times(self.tau)
        return self.temporal.cross(T, T)

    def time_cross(self, Xs):
        """``[k_t(t*_i, tau_g)]`` ``(m, G)`` for test points ``Xs`` (their time column)."""
        return self.temporal.cross(Xs, self._times(self.tau))

    def fields(self, V):
        """``Phi_g = K_ss (W^T V)_g`` ``(G, M, k)``: what :meth:`cross_from` reads."""
        return self.space_mm(self.slot_scatter(V))

    def cross_from(self, Phi, Xs):
        """``K(Xs, X) V = sum_g k_t(t*, tau_g) w*^T Phi_g`` ``(m, k)`` from ``Phi`` =
        :meth:`fields` ``(V)`` (``m G`` stencil gathers)."""
        Ws = self.weights_at(Xs)
        C = self.time_cross(Xs)

        def step(out, g):
            return out + C[:, g, None] * Ws.gather(Phi[g]), None

        out, _ = jax.lax.scan(step, jnp.zeros((Xs.shape[0], Phi.shape[2]), Phi.dtype), jnp.arange(self.n_slots))
        return out

    def mixed_field(self, c, V):
        """``K_ss sum_g c_g (W^T V)_g`` ``(M, k)`` for time weights ``c`` ``(G,)``: the cross product's
        grid field at one test time (``c = k_t(t*, tau)``), one spatial product per column."""
        return self.grid_op.mm(self.interp.scatter(V * c[self.slots][:, None]))

    def cross_columns(self, Xs):
        """``K(X, Xs)`` ``(n, m)`` (small ``m``): spatial columns times the time factor per slot."""
        Ws = self.weights_at(Xs)
        space = self.interp.gather(self.grid_op.mm(Ws.scatter(jnp.eye(Xs.shape[0], dtype=Xs.dtype))))
        return space * self.time_cross(Xs).T[self.slots]

    def test_gram(self, Xs):
        G = self.weights_at(Xs).scatter(jnp.eye(Xs.shape[0], dtype=Xs.dtype))
        return (G.T @ self.grid_op.mm(G)) * self.temporal.cross(Xs, Xs)

    def pairs(self, P, Q):
        Wp = self.weights_at(P)
        space = interpolated_pairs(self.grid_op, Wp, Wp if Q is P else self.weights_at(Q))
        kt = self.temporal.diag(P) if Q is P else jax.vmap(lambda p, q: self.temporal.cross(p[None], q[None])[0, 0])(P, Q)
        return space * kt

    def as_matrix(self):
        W = self.interp.as_matrix()
        Kt = self.time_kernel()
        return (W @ self.grid_op.mm(W.T)) * Kt[self.slots][:, self.slots] + jnp.diag(self.diag_noise)

    def diagonal(self):
        kt0 = self.temporal.diag(self._times(self.tau))[self.slots]
        return interpolated_pairs(self.grid_op, self.interp, self.interp) * kt0 + self.diag_noise


register_grid_operator(TimeSliceSKIOperator, lambda operator: operator.diagonal())


def time_slice_operator(kernel, X, noise, grid: Grid, time_dim: int, tau, slots, order: int = 3) -> TimeSliceSKIOperator:
    """The operator for data ``X`` ``(n, d)`` (traceable) whose column ``time_dim`` takes the
    values ``tau`` (``(G,)``, sorted; ``slots`` ``(n,)`` each row's index in ``tau``, both from
    :func:`time_slices`); ``grid`` the spatial grid (``d`` axes, one node on ``time_dim``)."""
    if grid.shape[time_dim] != 1:
        raise ValueError(f"time_slice_operator needs a grid with one node on the time axis {time_dim}, got shape "
                         f"{grid.shape}.")
    spatial, temporal = split_space_time(kernel, time_dim)
    dtype = X.dtype
    tau = jnp.asarray(tau, dtype)
    return TimeSliceSKIOperator(grid_operator(spatial, grid, dtype), interpolation_weights(X, grid, order),
                                jnp.asarray(slots, jnp.int32), tau, temporal, noise_diagonal(kernel, X, noise),
                                int(time_dim), _markov_scale(temporal) is not None)
