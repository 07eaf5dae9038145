"""The posterior of a structured-grid (SKI / masked-grid) fit: everything lives on the grid.

With ``A = W K_UU W^T + diag(s)`` and ``a = A^{-1} Y``, the SKI predictive distribution at
``x*`` with interpolation row ``w*`` is

    mean  = w*^T (K_UU W^T a)                      (a grid field: O(q^d) per point),
    var   = w*^T K_UU w* - k*^T A^{-1} k*,  k* = W K_UU w*.

Variances: ``"samples"`` keeps ``S`` zero-mean posterior draws on the grid (their solves
share the fit's CG block) and averages their squares: unbiased where the kernel's circulant
embedding is positive semi-definite (else the fit warns: the clipped draws have the wrong
covariance), ``O(q^d S)`` per point, relative error of the standard deviation about
``1 / sqrt(2 S)``. ``"love"`` uses the LOVE cache of Pleiss et al. (2018) kept on the grid,
``A^{-1} ~ V T^{-1} V^T`` from ``r`` Lanczos steps, stored as ``R = K_UU W^T V chol(T^{-1})``
``(M, r)``, so ``k*^T A^{-1} k* ~ |R^T w*|^2`` costs ``O(q^d r)`` per point whatever ``n``;
``"exact"`` solves ``A^{-1} k*`` by CG for every point (small test sets). The fit measures
LOVE against exact solves on a few check points (``diagnostics()``), and ``"auto"`` uses LOVE
only when that error is below ``love_max_error``.

Pathwise samples (Wilson et al. 2020) draw the prior on the grid by circulant embedding,
``f_U = S z`` (exact for a stationary kernel: ``skgpx.operators.ToeplitzOperator``), and
correct it with the same solver: ``f*(x*) = w*^T (f_U + K_UU W^T A^{-1}(Y - W f_U - e))``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..operators import interpolation_weights
from ..operators import row_tiles
from ..solvers import pcg
from ._abstract import AbstractPosterior

__all__ = ["SKIPosterior"]


class SKIPosterior(AbstractPosterior):
    """Fitted structured-grid posterior (see the module docstring)."""

    kernel: object
    operator: object  # SKIOperator (W K_UU W^T + diag(s)) or TimeSliceSKIOperator
    alpha: jax.Array  # (n, t)
    grid_mean: jax.Array  # operator.fields(alpha): (M, t) = K_UU W^T alpha, (G, M, t) per time slot
    love_R: jax.Array  # (M, r); (n, r) V L^{-T} for time slices (TimeSlicePosterior)
    lml: jax.Array
    stats: dict
    inference: object
    blocks: object = None  # the fit's block-Jacobi preconditioner, reused by every posterior solve

    @property
    def grid(self):
        return self.operator.interp.grid

    def _interp(self, Xs):
        return interpolation_weights(Xs, self.grid, self.inference.interpolation_order)

    def _white(self, Xs):
        from ..operators import cross_diagonal

        return self.kernel.diag(Xs) - cross_diagonal(self.kernel, Xs)

    def _solve(self, R, tol=None):
        inf = self.inference
        res = pcg(self.operator.mm, R, inf.precond(self.operator, self.blocks), tol=inf.tol if tol is None else tol,
                  max_iter=inf.max_iter, label="SKI posterior solve")
        return res.x

    def _chunks(self, Xs, fn, size):
        m = Xs.shape[0]
        out = jax.lax.map(fn, row_tiles(Xs, int(min(m, max(1, size)))))
        return out.reshape((-1,) + out.shape[2:])[:m]

    # -- the seam -------------------------------------------------------------------------
    def mean(self, Xs):
        """Posterior mean; NaN at points outside the grid (with room for their stencil): the
        grid covers the training data only."""
        covered = self._interp(Xs).covered()
        return jnp.where(covered[:, None], self.operator.cross_from(self.grid_mean, Xs), jnp.nan)

    def var_cached(self, Xs):
        """Variances from the cache on the grid, ``O(q^d r)`` per point: LOVE (prior minus
        ``|R^T w*|^2``) or, with ``variance_method="samples"``, ``|R^T w*|^2`` for ``R`` the
        zero-mean posterior draws on the grid over ``sqrt(S)``."""
        samples = self.inference.variance_method == "samples"

        def chunk(Xc):
            Wc = self._interp(Xc)
            q = jnp.sum(Wc.gather(self.love_R) ** 2, axis=1)
            if samples:
                return q + self._white(Xc)
            return self.operator.prior_diag(Xc) + self._white(Xc) - q

        return jnp.maximum(self._chunks(Xs, chunk, 1024), 0.0)

    def var_exact(self, Xs):
        op = self.operator

        def chunk(Xc):
            Ks = op.cross_columns(Xc)  # (n, c) = k*
            prior = op.prior_diag(Xc) + self._white(Xc)
            return prior - jnp.sum(Ks * self._solve(Ks, self.inference.var_solve_tol), axis=0)

        return jnp.maximum(self._chunks(Xs, chunk, self.inference.var_chunk), 0.0)

    def var(self, Xs):
        """Posterior variance (``variance_method``; module docstring); NaN outside the grid."""
        inf = self.inference
        method = inf.variance_method
        if method == "exact" or (method == "auto" and Xs.shape[0] <= inf.exact_var_max):
            v = self.var_exact(Xs)
        elif method in ("love", "samples"):
            v = self.var_cached(Xs)
        else:
            ok = self.stats["love_err_max"] <= inf.love_max_error
            # lambdas, not bound methods: cond hashes its branches, and a traced posterior cannot be hashed
            v = jax.lax.cond(ok, lambda Z: self.var_cached(Z), lambda Z: self.var_exact(Z), Xs)
        return jnp.where(self._interp(Xs).covered(), v, jnp.nan)

    def cov(self, Xs):
        m = Xs.shape[0]
        if m > self.inference.cov_max:
            raise ValueError(f"return_cov with solver='ski' solves one CG system per test point; got {m} test "
                             f"points (limit {self.inference.cov_max}). Use return_std or fewer points.")
        op = self.operator
        Ks = op.cross_columns(Xs)
        cov = op.test_gram(Xs) + jnp.diag(self._white(Xs)) - Ks.T @ self._solve(Ks, self.inference.var_solve_tol)
        covered = self._interp(Xs).covered()
        return jnp.where(covered[:, None] & covered[None, :], cov, jnp.nan)  # NaN outside the grid, as the mean

    def solve_train(self, R):
        return self._solve(R)

    @property
    def log_marginal_likelihood_value(self):
        return self.lml

    def pathwise(self, Y, Xs, n_samples: int, key, include_white: bool = True):
        """Posterior samples ``(n_samples, m, t)`` at ``Xs``: prior on the grid by circulant
        embedding, Matheron correction by CG (module docstring). Host side (it first widens
        the square root's embedding until it is positive semi-definite)."""
        gop = self.operator.grid_op.with_psd_embedding()
        post = eqx.tree_at(lambda p: p.operator.grid_op, self, gop)
        return _pathwise(post, jnp.asarray(Y), jnp.asarray(Xs), int(n_samples), key, bool(include_white))

    def diagnostics(self) -> dict:
        s = {k: np.asarray(v) for k, v in self.stats.items()}
        inf = self.inference
        g = self.grid
        return {
            "solver": "ski",
            "operator": type(self.operator.grid_op).__name__,
            "grid_shape": tuple(g.shape),
            "grid_spacing": tuple(g.spacing),
            "interpolation_order": inf.interpolation_order,
            "interpolation_error_max": float(s["interp_err_max"]),
            "interpolation_error_rms": float(s["interp_err_rms"]),
            "iterations": int(s["iterations"]),
            "relative_residual": float(np.max(s["relative_residual"])),
            "converged": bool(s["converged"]),
            "tol": inf.tol,
            "max_iter": inf.max_iter,
            "n_probes": inf.n_probes,
            "logdet_stderr": float(s["logdet_stderr"]),
            "variance_method": inf.variance_method,
            "preconditioner": inf.preconditioner,
            **({} if self.blocks is None else {"preconditioner_blocks": int(self.blocks.index.shape[0]),
                                                "preconditioner_block_size": int(self.blocks.index.shape[1])}),
            "love_rank": int(s["love_steps"]),  # Lanczos steps taken, or the number of variance samples
            "love_max_rank": int(self.love_R.shape[1]),
            "love_std_rel_error_median": float(s["love_err_median"]),
            "love_std_rel_error_max": float(s["love_err_max"]),
            "love_accepted": bool(s["love_err_max"] <= inf.love_max_error),
            "interpolation_tol": inf.interpolation_tol,
            **{f"grid_{k}": v for k, v in inf.refinement},
        }


@eqx.filter_jit
def _pathwise(post, Y, Xs, n_samples, key, include_white):
    op = post.operator
    gop = op.grid_op
    n, t = Y.shape
    P = n_samples * t
    k_prior, k_eps, k_white = jax.random.split(key, 3)
    f_U = gop.sqrt_mm(jax.random.normal(k_prior, (gop.embed_size, P), Y.dtype))  # (M, P) ~ N(0, K_UU)
    eps = jnp.sqrt(op.diag_noise)[:, None] * jax.random.normal(k_eps, (n, P), Y.dtype)
    Yrep = jnp.broadcast_to(Y[:, None, :], (n, n_samples, t)).reshape(n, P)
    beta = post._solve(Yrep - op.interp.gather(f_U) - eps)
    field = f_U + gop.mm(op.interp.scatter(beta))  # posterior sample on the grid
    samples = post._interp(Xs).gather(field)
    if include_white:
        white = post._white(Xs)
        samples = samples + jnp.sqrt(white)[:, None] * jax.random.normal(k_white, samples.shape, Y.dtype)
    samples = jnp.where(post._interp(Xs).covered()[:, None], samples, jnp.nan)  # NaN outside the grid
    m = Xs.shape[0]
    return jnp.transpose(samples.reshape(m, n_samples, t), (1, 0, 2))
