"""SKI's automatic grid, refined per axis until its interpolation error meets a tolerance.

The interpolated kernel ``w_a^T K_UU w_b`` differs from ``k(a, b)`` by an error that depends
on the spacing per axis and on the kernel's smoothness along it: cubic convolution is third
order on a smooth kernel but only first order across the kink of a Matérn-1/2 (``|tau|``)
and about third order across the ``|tau|^3`` term of a Matérn-3/2, so at the same points per
length scale a Matérn-1/2 axis is off by ~7% where an RBF axis is off by ~1e-4. Instead of
a table of points per length scale per kernel, :func:`refine_grid` measures:

* the error is the one :class:`~skgpx.gp.SKI` reports after the fit: the largest
  ``|w_a^T K_UU w_b - k(a, b)| / max_a k(a, a)`` over pairs of each of ``m`` data points with
  itself, with a point up to two grid cells away and with a random data point;
* here it is computed from the kernel on each pair's stencil nodes directly (no grid
  operator), with the origin and spacing traced, so one compilation serves every candidate
  grid; and per axis (that axis interpolated, the others exact) to choose which to refine;
* the tolerance is ``interpolation_tol``, tightened to ``2 * std_tol * v`` where ``v`` is the
  exact posterior variance over the prior variance, median over 16 check points (half data
  points, half midpoints of random pairs) each conditioned on its 256 nearest data points
  (:func:`posterior_variance_ratio`): the interpolated kernel loses up to ``err`` of the prior
  variance, and the standard deviation is then off by about ``err / (2 v)`` (measured: a
  Matérn-1/2 axis at ``err = 4.5e-3`` put SKI's standard deviations 6% low where ``v = 0.04``);
* while the error exceeds the tolerance, one axis gets a 1.25x finer spacing: the one whose own error
  drops most per unit of log grid size (a rough axis spanning few length scales is cheap to
  refine), until every step would exceed ``max_size`` points (then it stops, and the caller
  warns).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._config import precision_scope
from ..operators import Grid, auto_grid, stencil_weights

__all__ = ["pair_interpolation_error", "posterior_variance_ratio", "refine_grid", "REFINE_FACTOR"]

REFINE_FACTOR = 1.25  # spacing divisor per refinement step of one axis
_MAX_STEPS = 64


def _nodes(x, origin, spacing, order, axes):
    """Stencil nodes ``(s, d)`` and weights ``(s,)`` of point ``x`` ``(d,)``, interpolated along
    ``axes`` only (exact coordinates on the others)."""
    base, W = stencil_weights((x - origin) / spacing, order)  # (d,), (d, q)
    q = W.shape[-1]
    coords, weights = [], []
    for a in range(x.shape[0]):
        if a in axes:
            coords.append(origin[a] + (base[a] + jnp.arange(q, dtype=x.dtype)) * spacing[a])
            weights.append(W[a])
        else:
            coords.append(x[a:a + 1])
            weights.append(jnp.ones((1,), x.dtype))
    mesh = jnp.meshgrid(*coords, indexing="ij")
    wmesh = jnp.meshgrid(*weights, indexing="ij")
    return jnp.stack([c.ravel() for c in mesh], axis=1), math.prod(wmesh).ravel()


@eqx.filter_jit
def _pair_errors(kernel, P, Q, origin, spacing, order, axes):
    def one(p, q):
        Pn, wp = _nodes(p, origin, spacing, order, axes)
        Qn, wq = _nodes(q, origin, spacing, order, axes)
        approx = wp @ kernel.cross(Pn, Qn) @ wq
        return approx - kernel.cross(p[None], q[None])[0, 0]

    err = jax.vmap(one)(P, Q)
    ref = jnp.max(jax.vmap(lambda p: kernel.cross(p[None], p[None])[0, 0])(P))
    return jnp.abs(err) / ref


def check_pairs(X, m: int, seed: int = 0):
    """Host side: ``m`` data points ``A``, unit offsets in ``[-2, 2]`` cells for their near
    partners, and ``m`` random data points (the far partners)."""
    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    m = min(int(m), n)
    A = X[rng.choice(n, m, replace=False)]
    step = rng.uniform(-2.0, 2.0, A.shape)
    far = X[rng.choice(n, m, replace=True)]
    return A, step, far, X.min(axis=0), X.max(axis=0)


def pair_interpolation_error(kernel, pairs, grid: Grid, order: int, axes=None) -> float:
    """Largest relative interpolation error (module docstring) on ``pairs`` (:func:`check_pairs`)
    for ``grid``, interpolating along ``axes`` only (default: every axis of more than one point)."""
    A, step, far, lo, hi = pairs
    spacing = np.asarray(grid.spacing)
    if axes is None:
        axes = tuple(a for a in range(grid.ndim) if grid.shape[a] > 1)
    near = np.clip(A + spacing * (np.round(step) if order == 0 else step), lo, hi)
    P = np.concatenate([A, A, A])
    Q = np.concatenate([A, near, far])
    with precision_scope(np.float64):  # a host-side measurement, in float64 whatever the fit's dtype
        e = _pair_errors(kernel, jnp.asarray(P), jnp.asarray(Q), jnp.asarray(grid.origin), jnp.asarray(spacing),
                         int(order), tuple(axes))
        return float(jnp.max(e))


@eqx.filter_jit
def _local_variances(kernel, N, noise, C):
    def one(Xn, s, c):
        K = kernel.gram(Xn) + jnp.diag(s)
        k = kernel.cross(Xn, c[None])[:, 0]
        L = jnp.linalg.cholesky(K)
        z = jax.scipy.linalg.solve_triangular(L, k, lower=True)
        return kernel.cross(c[None], c[None])[0, 0] - jnp.sum(z * z)

    return jax.vmap(one)(N, noise, C)


def posterior_variance_ratio(kernel, X, noise, scales, n_points: int = 16, n_neighbours: int = 256,
                             seed: int = 0) -> float:
    """Host side: the exact posterior variance over the prior variance, median over
    ``n_points`` check points (half data points, half midpoints of random pairs of data
    points), each conditioned on its ``n_neighbours`` nearest data points (in length-scale
    units; fewer data than the whole set, so at least the full posterior's variance)."""
    from scipy.spatial import cKDTree

    X = np.asarray(X, dtype=np.float64)
    noise = np.broadcast_to(np.asarray(noise, dtype=np.float64), X.shape[:1])
    n = X.shape[0]
    rng = np.random.default_rng(seed)
    c = min(int(n_points), n)
    i, j = rng.choice(n, c, replace=False), rng.choice(n, c, replace=False)
    C = np.where((np.arange(c) % 2 == 0)[:, None], X[i], 0.5 * (X[i] + X[j]))
    unit = np.where(np.isfinite(scales), 1.0 / np.asarray(scales, dtype=np.float64), 0.0)
    k = min(int(n_neighbours), n)
    _, nb = cKDTree(X * unit).query(C * unit, k=k)
    nb = np.asarray(nb).reshape(c, k)
    with precision_scope(np.float64):
        v = np.asarray(_local_variances(kernel, jnp.asarray(X[nb]), jnp.asarray(noise[nb]), jnp.asarray(C)))
        prior = np.asarray(jax.vmap(lambda p: kernel.cross(p[None], p[None])[0, 0])(jnp.asarray(C)))
    return float(np.median(np.maximum(v, 0.0) / np.max(prior)))


def refine_grid(kernel, X, scales, points_per_scale, order: int, tol: float, max_size: int, m: int = 256,
                pad: int = 2, seed: int = 0):
    """The automatic grid (:func:`skgpx.operators.auto_grid`), refined per axis until its
    measured interpolation error is at most ``tol`` or the next step would exceed ``max_size``
    points. Returns ``(grid, info)``: ``info`` has the error estimate reached, the points per
    length scale per axis, the number of refinement steps, and ``capped`` (stopped by the size
    cap above ``tol``)."""
    scales = np.asarray(scales, dtype=np.float64)
    finite = np.isfinite(scales)
    pps = np.broadcast_to(np.asarray(points_per_scale, dtype=np.float64), scales.shape).copy()
    grid = auto_grid(X, scales, tuple(pps), max_size, pad=pad)
    pairs = check_pairs(X, m, seed)
    lo, hi = pairs[3], pairs[4]

    def size_of(p):
        return math.prod(int(np.ceil((hi[b] - lo[b]) / (scales[b] / p[b]))) + 1 + 2 * pad if finite[b] else 1
                         for b in range(len(scales)))

    def finer(p, a):
        q = p.copy()
        q[a] *= REFINE_FACTOR
        return q

    err = pair_interpolation_error(kernel, pairs, grid, order)
    gain = {}  # axis -> (error now, error one step finer): along that axis alone
    steps = 0
    capped = False
    widened = size_of(pps) > max_size  # auto_grid widened the spacing (and warned)
    while err > tol and not widened and steps < _MAX_STEPS:
        best, best_rate = None, 0.0
        for a in map(int, np.flatnonzero(finite)):
            grow = size_of(finer(pps, a))
            if grow > max_size:
                continue
            if a not in gain:
                now = pair_interpolation_error(kernel, pairs, grid, order, axes=(a,))
                g = auto_grid(X, scales, tuple(finer(pps, a)), max_size, pad=pad)
                gain[a] = (now, pair_interpolation_error(kernel, pairs, g, order, axes=(a,)))
            # error removed per unit of log grid size: the cheapest axis to refine first
            rate = (gain[a][0] - gain[a][1]) / max(math.log(grow / size_of(pps)), 1e-12)
            if best is None or rate > best_rate:
                best, best_rate = a, rate
        if best is None:
            capped = True
            break
        pps = finer(pps, best)
        grid = auto_grid(X, scales, tuple(pps), max_size, pad=pad)
        del gain[best]
        err = pair_interpolation_error(kernel, pairs, grid, order)
        steps += 1
    info = dict(interpolation_error_estimate=err, points_per_length_scale=tuple(float(p) for p in pps),
                refinement_steps=steps, capped=capped or (err > tol and steps >= _MAX_STEPS))
    return grid, info
