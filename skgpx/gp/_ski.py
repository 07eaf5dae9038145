"""Structured kernel interpolation (SKI / KISS-GP) and gridded data with gaps: ``solver="ski"``.

The kernel is evaluated on a regular grid ``U`` only, where it is structured
(:func:`skgpx.operators.grid_operator`: Toeplitz by FFT for a stationary kernel, Kronecker over
``ActiveDims`` product groups), and reaches the data through sparse local interpolation
(Wilson & Nickisch 2015): ``K(X, X) ~ W K_UU W^T``, ``A = W K_UU W^T + diag(s)`` (``s``: noise
plus the kernel's ``White`` part). A product with ``A`` costs ``O(n q^d + M log M)``.

* Grid: ``grid`` when given; else, when the data lie on a regular lattice (a gridded product
  with missing cells), that lattice with ``interpolation_order=0``: ``W`` selects the
  observed cells and the GP is *exact*; else the automatic grid of
  :func:`skgpx.operators.auto_grid` (spacing ``length_scale / points_per_length_scale``
  from the kernel at the start of the fit, at most ``max_grid_size`` points). Fixed by
  :meth:`SKI.for_data` on the host before anything is compiled.
* Solves: CG (``skgpx.solvers.pcg``, ``||r||/||b|| <= tol`` per column), one block for the
  targets, the SLQ probes and the LOVE check points.
* Log marginal likelihood: ``-1/2 y^T a - 1/2 log|A| - n/2 log 2 pi`` with ``log|A|`` by
  stochastic Lanczos quadrature from the same CG run (``skgpx.solvers.slq_quadratures``), and
  its gradient through the surrogate ``1/2 a^T A(theta) a - 1/2 mean_j u_j^T A(theta) z_j``
  (``u_j = A^{-1} z_j``; Gardner et al. 2018) differentiated through the FFT products: no
  ``n x n`` or ``M x M`` array.
* Interpolation error: ``W K_UU W^T`` against the exact kernel on ``n_interp_check`` pairs of
  points (each point with itself, a random nearby point and a random data point), reported as
  the largest and the rms absolute error relative to the prior variance.
* Variances and samples: :mod:`skgpx.gp._ski_posterior`.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..kernels import length_scales
from ..operators import (
    Grid,
    SKIOperator,
    auto_grid,
    grid_operator,
    interpolation_weights,
    lattice_of,
    noise_diagonal,
)
from ..solvers import gaussian_log_likelihood, love_cache, pcg, slq_quadratures
from ._abstract import AbstractInference
from ._registry import register_solver
from ._cg import _stop, _warn_lml
from ._ski_posterior import SKIPosterior

__all__ = ["SKI", "SKIInference"]


class SKI(AbstractInference):
    """SKI / masked-grid inference (``solver="ski"``; see the module docstring); options are static fields."""

    @property
    def name(self) -> str:
        return "ski"

    grid: Grid | None = None
    interpolation_order: int | None = eqx.field(static=True, default=None)  # None: 0 on a lattice, else 3
    points_per_length_scale: float = eqx.field(static=True, default=4.0)
    max_grid_size: int = eqx.field(static=True, default=2**22)
    tol: float = eqx.field(static=True, default=1e-6)
    train_tol: float | None = eqx.field(static=True, default=1e-2)
    var_tol: float | None = eqx.field(static=True, default=None)
    max_iter: int = eqx.field(static=True, default=2000)
    n_probes: int = eqx.field(static=True, default=16)
    lanczos_order: int = eqx.field(static=True, default=100)
    variance_method: str = eqx.field(static=True, default="auto")
    love_rank: int = eqx.field(static=True, default=128)
    love_max_error: float = eqx.field(static=True, default=0.02)
    n_variance_samples: int = eqx.field(static=True, default=256)
    n_check: int = eqx.field(static=True, default=16)
    n_interp_check: int = eqx.field(static=True, default=256)
    exact_var_max: int = eqx.field(static=True, default=256)
    var_chunk: int = eqx.field(static=True, default=16)
    cov_max: int = eqx.field(static=True, default=2048)

    def __check_init__(self):
        if self.interpolation_order not in (None, 0, 1, 3):
            raise ValueError(f"`interpolation_order` must be None, 0, 1 or 3, got {self.interpolation_order!r}.")
        if self.variance_method not in ("auto", "love", "exact", "samples"):
            raise ValueError(f"`variance_method` must be 'auto', 'love', 'exact' or 'samples', got "
                             f"{self.variance_method!r}.")
        if not (self.tol > 0) or not (self.points_per_length_scale > 0):
            raise ValueError(f"`tol` and `points_per_length_scale` must be > 0, got {self.tol!r}, "
                             f"{self.points_per_length_scale!r}.")
        if int(self.love_rank) < 1 or int(self.n_probes) < 1 or int(self.max_iter) < 1:
            raise ValueError("`love_rank`, `n_probes` and `max_iter` must be >= 1.")

    @property
    def var_solve_tol(self) -> float:
        return self.tol if self.var_tol is None else float(self.var_tol)

    @property
    def lml_tol(self) -> float:
        return self.tol if self.train_tol is None else max(float(self.tol), float(self.train_tol))

    # -- the grid (host side) -----------------------------------------------------------
    def for_data(self, kernel, X) -> "SKIInference":
        """This inference with its grid and interpolation order fixed for data ``X`` (host)."""
        if self.grid is not None:
            return self if self.interpolation_order is not None else dataclasses.replace(self, interpolation_order=3)
        X = np.asarray(X, dtype=np.float64)
        if self.interpolation_order in (None, 0):
            lattice = lattice_of(X, self.max_grid_size)
            if lattice is not None:
                return dataclasses.replace(self, grid=lattice, interpolation_order=0)
            if self.interpolation_order == 0:
                raise ValueError("interpolation_order=0 needs data on a regular lattice (or an explicit `grid`); "
                                 "these inputs are not. Use interpolation_order=1 or 3.")
        scales = length_scales(kernel, X.shape[1])
        if scales is None:
            raise ValueError(
                f"solver='ski' needs a kernel with length scales in the input coordinates (stationary parts, "
                f"products over ActiveDims); got {kernel!r}. Pass an explicit `grid`, or use solver='cg'."
            )
        order = 3 if self.interpolation_order is None else self.interpolation_order
        g = auto_grid(X, scales, self.points_per_length_scale, self.max_grid_size, pad=2)
        return dataclasses.replace(self, grid=g, interpolation_order=order)

    def _ready(self, X):
        if self.grid is None or self.interpolation_order is None:
            if isinstance(X, jax.core.Tracer):
                raise ValueError("SKIInference has no grid yet: call `inference.for_data(kernel, X)` on the host "
                                 "before compiling (the estimator does).")
            raise ValueError("SKIInference has no grid yet: call `inference.for_data(kernel, X)` first.")

    def operator(self, kernel, X, noise) -> SKIOperator:
        """``A = W K_UU W^T + diag(s)`` for data ``X``."""
        self._ready(X)
        interp = interpolation_weights(X, self.grid, self.interpolation_order)
        return SKIOperator(grid_operator(kernel, self.grid, X.dtype), interp, noise_diagonal(kernel, X, noise))

    # -- solves ---------------------------------------------------------------------------
    def _solve_all(self, kernel, X, Y, noise, key, extra=None, tol=None):
        n, t = Y.shape
        k = self.n_probes
        op = self.operator(kernel, X, noise)
        Z = jax.random.normal(key, (n, k), X.dtype)
        blocks = [Y, Z] + ([] if extra is None else [extra])
        res = pcg(op.mm, jnp.concatenate(blocks, axis=1), tol=self.tol if tol is None else tol,
                  max_iter=self.max_iter, record=self.lanczos_order)
        quad = slq_quadratures(res.alphas[:, t:t + k], res.betas[:, t:t + k], res.n_steps[t:t + k])
        samples = jnp.sum(Z * Z, axis=0) * quad
        logdet = jnp.mean(samples)
        alpha = res.x[:, :t]
        lml = gaussian_log_likelihood(jnp.sum(Y * alpha), logdet, n, t)
        return op, res, alpha, res.x[:, t:t + k], Z, lml, jnp.std(samples) / math.sqrt(k)

    def log_marginal_likelihood(self, kernel, X, Y, noise, key):
        t = Y.shape[1]
        tol = self.lml_tol
        _, res, alpha, U, Z, lml, _ = self._solve_all(_stop(kernel), X, Y, _stop(noise), key, tol=tol)
        jax.debug.callback(functools.partial(_warn_lml, tol=tol, max_iter=self.max_iter),
                           res.converged, jnp.max(res.relative_residual), res.iterations)
        V = jnp.concatenate([alpha, U], axis=1)
        Wt = jnp.concatenate([0.5 * alpha, (-0.5 * t / self.n_probes) * Z], axis=1)
        S = jnp.sum(Wt * self.operator(kernel, X, noise).mm(V))
        return jax.lax.stop_gradient(lml) + S - jax.lax.stop_gradient(S)

    def condition(self, kernel, X, Y, noise, key) -> SKIPosterior:
        self._ready(X)
        return _condition(self, kernel, X, Y, noise, key)

    def _condition(self, kernel, X, Y, noise, key) -> SKIPosterior:
        n, t = Y.shape
        k_slq, k_check, k_interp, k_samp = jax.random.split(key, 4)
        # LOVE check points: half training inputs, half midpoints of random pairs.
        nc = min(self.n_check, n)
        ki, kj = jax.random.split(k_check)
        i = jax.random.choice(ki, n, (nc,), replace=False)
        j = jax.random.choice(kj, n, (nc,), replace=False)
        Xc = jnp.where((jnp.arange(nc) % 2 == 0)[:, None], X[i], 0.5 * (X[i] + X[j]))
        gop = grid_operator(kernel, self.grid, X.dtype)
        Wc = interpolation_weights(Xc, self.grid, self.interpolation_order)
        W = interpolation_weights(X, self.grid, self.interpolation_order)
        Kc = W.gather(gop.mm(Wc.scatter(jnp.eye(nc, dtype=X.dtype))))  # k* of the check points, (n, nc)
        extra = Kc
        if self.variance_method == "samples":
            # Zero-mean posterior draws on the grid (Matheron without the data): their solves join the block.
            S = self.n_variance_samples
            kf, ke = jax.random.split(k_samp)
            F_U = gop.sqrt_mm(jax.random.normal(kf, (gop.embed_size, S), X.dtype))
            E = jnp.sqrt(noise_diagonal(kernel, X, noise))[:, None] * jax.random.normal(ke, (n, S), X.dtype)
            extra = jnp.concatenate([Kc, W.gather(F_U) + E], axis=1)
        op, res, alpha, _, _, lml, stderr = self._solve_all(kernel, X, Y, noise, k_slq, extra)
        jax.debug.callback(functools.partial(_warn_lml, tol=self.tol, max_iter=self.max_iter, what="fit"),
                           res.converged, jnp.max(res.relative_residual), res.iterations)
        off = t + self.n_probes
        if self.variance_method == "samples":
            # var(x*) ~ mean_s (w*^T F_s)^2 with F_s = F_U,s - K W^T A^{-1}(W F_U,s + e_s).
            R = (F_U - gop.mm(op.interp.scatter(res.x[:, off + nc:]))) / math.sqrt(S)
        else:
            # LOVE on the grid: A^{-1} ~ V T^{-1} V^T from the mean cross-covariance, R = K W^T V chol(T^{-1}).
            start = op.interp.gather(gop.mm(op.interp.scatter(jnp.full((n, 1), 1.0 / n, X.dtype))))[:, 0]
            ident = lambda V: V  # noqa: E731
            cache = love_cache(op.mm, ident, ident, start, self.love_rank)
            r = cache.M.shape[0]
            Tinv = cache.M + jnp.eye(r, dtype=X.dtype)
            L = jnp.linalg.cholesky(0.5 * (Tinv + Tinv.T))
            R = gop.mm(op.interp.scatter(cache.V @ L))
        post = SKIPosterior(kernel, op, alpha, gop.mm(op.interp.scatter(alpha)), R, lml, {}, self)
        # LOVE against the exact SKI variances of the check points (from the block solve).
        prior_c = kernel.diag(Xc)  # as the posterior's variances (the exact prior variance)
        v_exact = prior_c - jnp.sum(Kc * res.x[:, off:off + nc], axis=0)
        sd_exact = jnp.sqrt(jnp.maximum(v_exact, 0.0))
        sd_love = jnp.sqrt(post.var_cached(Xc))
        floor = jnp.sqrt(jnp.finfo(X.dtype).eps) * jnp.sqrt(jnp.mean(prior_c))
        err = jnp.abs(sd_love - sd_exact) / jnp.maximum(sd_exact, floor)
        ie = _interpolation_error(kernel, gop, X, self, k_interp)
        stats = dict(iterations=res.iterations, relative_residual=jnp.max(res.relative_residual),
                     converged=res.converged, logdet_stderr=stderr, love_err_median=jnp.median(err),
                     love_err_max=jnp.max(err), interp_err_max=ie[0], interp_err_rms=ie[1])
        return eqx.tree_at(lambda p: p.stats, post, stats)


def _interpolation_error(kernel, gop, X, inference, key):
    """Largest and rms ``|w_a^T K_UU w_b - k(a, b)| / k(a, a)`` over check pairs (module docstring)."""
    n, d = X.shape
    m = min(inference.n_interp_check, n)
    k1, k2, k3 = jax.random.split(key, 3)
    A = X[jax.random.choice(k1, n, (m,), replace=False)]
    scale = jnp.asarray(inference.grid.spacing, X.dtype)
    step = jax.random.uniform(k2, A.shape, X.dtype, -2.0, 2.0)
    near = A + scale * (jnp.round(step) if inference.interpolation_order == 0 else step)  # on the lattice for 0
    lo = jnp.min(X, axis=0)
    hi = jnp.max(X, axis=0)
    near = jnp.clip(near, lo, hi)
    far = X[jax.random.choice(k3, n, (m,), replace=True)]
    P = jnp.concatenate([A, A, A])
    Q = jnp.concatenate([A, near, far])
    order = inference.interpolation_order
    fp, wp = interpolation_weights(P, inference.grid, order).stencil()
    fq, wq = interpolation_weights(Q, inference.grid, order).stencil()
    approx = jnp.einsum("na,nab,nb->n", wp, gop.entries(fp[:, :, None], fq[:, None, :]), wq)
    exact = jax.vmap(lambda p, q: kernel.cross(p[None], q[None])[0, 0])(P, Q)
    ref = jnp.max(jax.vmap(lambda p: kernel.cross(p[None], p[None])[0, 0])(A))
    e = jnp.abs(approx - exact) / ref
    return jnp.max(e), jnp.sqrt(jnp.mean(e * e))


@eqx.filter_jit
def _condition(inference, kernel, X, Y, noise, key):
    return inference._condition(kernel, X, Y, noise, key)


SKIInference = SKI  # the name the estimator layer used before solver objects

register_solver("ski", SKI)
