"""The posterior of SKI in space, exact in time (``SKI(time_dim=...)``): variances and samples.

The operator is :class:`skgpx.operators.TimeSliceSKIOperator` (the data's ``G`` distinct times,
cubic interpolation in space only). The mean reads the per-slot fields ``K_ss (W^T a)_g``
(``G x M x t``, kept by the fit) through ``operator.cross_from``, exact in time at any test time.

Variances by LOVE: a cache on the grid would be ``R_g = K_ss (W^T V L^{-T})_g`` for every slot,
``G x M x r`` numbers, too many. The fit keeps ``V L^{-T}`` ``(n, r)`` in data space instead, and
the variance at test points forms, once per *distinct test time* ``t*``,

    ``R(t*) = K_ss W^T (V L^{-T} * k_t(tau, t*)[slot])``  ``(M, r)``,

(``r`` spatial FFT products) and reads it at every test point of that time:
``var = k(x*, x*) - |R(t*)^T w*|^2``. A map at one time costs ``r`` products; test points at
``T`` distinct times cost ``T r``.

Pathwise samples (Wilson et al. 2020): the prior is drawn jointly at the data's times and the
test times, the spatial circulant square root per time (exact for a stationary spatial kernel)
combined across times by the time kernel's Cholesky factor, or by the AR(1) recursion
``f_k = a_k f_{k-1} + sqrt(1 - a_k^2) s_k`` when the time factor is a Matérn-1/2 (exact, ``O(T)``);
the Matheron correction uses the same solver.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..operators._time_slices import _markov_scale
from ._ski_posterior import SKIPosterior

__all__ = ["TimeSlicePosterior"]

_COLUMNS = 64  # LOVE columns per spatial FFT product (the circulant embedding of the block is held)


class TimeSlicePosterior(SKIPosterior):
    """Fitted ``SKI(time_dim=...)`` posterior; ``love_R`` holds ``V L^{-T}`` ``(n, r)`` (module docstring)."""

    def var_cached(self, Xs):
        """LOVE variances, ``R(t*)`` formed once per distinct test time (module docstring)."""
        op = self.operator
        m = Xs.shape[0]
        ts = jnp.where(self._interp(Xs).covered(), Xs[:, op.time_dim], jnp.nan)  # outside the grid: NaN anyway
        u = jnp.unique(ts, size=m, fill_value=jnp.nan)
        C = op.time_cross(op._times(jnp.where(jnp.isnan(u), 0.0, u)))  # (m, G): k_t(u_k, tau_g)
        VL = self.love_R
        n, r = VL.shape
        c = int(min(_COLUMNS, max(r, 1)))
        nb = -(-r // c)
        blocks = jnp.pad(VL, ((0, 0), (0, nb * c - r))).reshape(n, nb, c).transpose(1, 0, 2)
        Ws = op.weights_at(Xs)

        def at_time(k, acc):
            def work(acc):
                q = jax.lax.map(lambda B: jnp.sum(Ws.gather(op.mixed_field(C[k], B)) ** 2, axis=1), blocks)
                return acc + jnp.where(ts == u[k], jnp.sum(q, axis=0), 0.0)

            return jax.lax.cond(jnp.isnan(u[k]), lambda a: a, work, acc)

        q = jax.lax.fori_loop(0, m, at_time, jnp.zeros((m,), Xs.dtype))
        return jnp.maximum(op.prior_diag(Xs) + self._white(Xs) - q, 0.0)

    def pathwise(self, Y, Xs, n_samples: int, key, include_white: bool = True):
        """Posterior samples ``(n_samples, m, t)`` at ``Xs`` (module docstring). Host side: the
        distinct test times are merged with the data's, and the spatial embedding is widened
        until it is positive semi-definite."""
        gop = self.operator.grid_op.with_psd_embedding()
        post = eqx.tree_at(lambda p: p.operator.grid_op, self, gop)
        op = self.operator
        Xs_np = np.asarray(Xs)
        G = op.n_slots
        times, where = np.unique(np.concatenate([np.asarray(op.tau), Xs_np[:, op.time_dim]]), return_inverse=True)
        where = where.astype(np.int32)
        return _pathwise(post, jnp.asarray(Y), jnp.asarray(Xs_np), jnp.asarray(times, Xs_np.dtype),
                         jnp.asarray(where[:G]), jnp.asarray(where[G:]), int(n_samples), key, bool(include_white))

    def diagnostics(self) -> dict:
        return dict(super().diagnostics(), time_dim=self.operator.time_dim, time_slices=int(self.operator.n_slots))


def _prior_in_time(op, times, S):
    """Draws ``(T, M, P)`` with covariance ``K_t(times) (x) K_ss`` from independent spatial draws ``S``."""
    if op.markov:
        a = jnp.exp(-jnp.diff(times) / _markov_scale(op.temporal))[:, None, None]

        def step(f, a_s):
            a, s = a_s
            f = a * f + jnp.sqrt(1.0 - a * a) * s
            return f, f

        _, rest = jax.lax.scan(step, S[0], (a, S[1:]))
        return jnp.concatenate([S[:1], rest])
    T = op._times(times)
    Kt = op.temporal.cross(T, T)
    jitter = jnp.finfo(Kt.dtype).eps * times.shape[0] * jnp.max(jnp.diag(Kt))
    L = jnp.linalg.cholesky(Kt + jitter * jnp.eye(times.shape[0], dtype=Kt.dtype))
    return jnp.einsum("ij,jmp->imp", L, S)


@eqx.filter_jit
def _pathwise(post, Y, Xs, times, data_idx, test_idx, n_samples, key, include_white):
    op = post.operator
    gop = op.grid_op
    n, t = Y.shape
    P = n_samples * t
    T, M = times.shape[0], gop.grid.size
    k_prior, k_eps, k_white = jax.random.split(key, 3)
    S = jax.lax.map(lambda i: gop.sqrt_mm(jax.random.normal(jax.random.fold_in(k_prior, i), (gop.embed_size, P),
                                                           Y.dtype)), jnp.arange(T))  # (T, M, P) ~ N(0, K_ss)
    F = _prior_in_time(op, times, S)
    f_data = op.interp.gather(F[data_idx].reshape(op.n_slots * M, P), op.slots)
    eps = jnp.sqrt(op.diag_noise)[:, None] * jax.random.normal(k_eps, (n, P), Y.dtype)
    Yrep = jnp.broadcast_to(Y[:, None, :], (n, n_samples, t)).reshape(n, P)
    beta = post._solve(Yrep - f_data - eps)
    samples = op.weights_at(Xs).gather(F.reshape(T * M, P), test_idx) + op.cross_mm(Xs, beta)
    if include_white:
        white = post._white(Xs)
        samples = samples + jnp.sqrt(white)[:, None] * jax.random.normal(k_white, samples.shape, Y.dtype)
    samples = jnp.where(post._interp(Xs).covered()[:, None], samples, jnp.nan)  # NaN outside the grid
    m = Xs.shape[0]
    return jnp.transpose(samples.reshape(m, n_samples, t), (1, 0, 2))
