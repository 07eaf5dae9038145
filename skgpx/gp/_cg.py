"""Exact GP inference at scale: preconditioned CG, SLQ log-determinant, LOVE variances.

``solver="cg"``. Nothing here forms an ``n x n`` matrix unless the dense operator was
chosen because it fits the memory budget (``skgpx.operators.kernel_operator``).

* Solves: PCG (``skgpx.solvers.pcg``, ``||r||/||b|| <= tol`` per column) with a
  rank-adaptive partial-Cholesky preconditioner ``P = L L^T + diag(s)`` (accelerated
  randomly pivoted Cholesky, ``skgpx.solvers.rp_cholesky``; rank cap
  :func:`auto_preconditioner_rank`); the targets and the probe vectors share one block solve.
* Log marginal likelihood (Rasmussen & Williams eq. 2.30)
  ``-1/2 y^T a - 1/2 log|K| - n/2 log 2 pi`` with ``a = K^{-1} y`` and ``log|K|`` by
  preconditioned SLQ from the same CG run (``skgpx.solvers._slq``).
* Its gradient (R&W eq. 5.9) ``1/2 a^T dK a - 1/2 tr(K^{-1} dK)`` through a surrogate
  ``S(theta) = 1/2 a^T K(theta) a - 1/2 mean_j u_j^T K(theta) w_j`` with
  ``u_j = K^{-1} z_j``, ``w_j = P^{-1} z_j``, ``z_j ~ N(0, P)`` (all stop-gradient), so
  ``E[u_j^T dK w_j] = tr(K^{-1} dK P^{-1} P) = tr(K^{-1} dK)`` (Gardner et al. 2018).
  The kernel part of ``S`` is differentiated by one tiled gradient-only pass (each
  ``(tile, n)`` block linearised and pulled back, ``O(tile * n)`` memory, two kernel
  evaluations per entry instead of three; ``_kernel_surrogate_grad``). The returned value is
  ``stop_gradient(lml) + S - stop_gradient(S)``: exact value, unbiased gradient.
* Training (``log_marginal_likelihood``) solves to ``max(tol, train_tol)`` (default
  ``train_tol = 1e-2``), the fit (``condition``) to ``tol``; see :class:`CGInference`.
* Variances: exact batched PCG solves of ``K(X, Xs)`` columns, or preconditioned LOVE
  (``skgpx.solvers._love``); the posterior always carries an accuracy estimate of LOVE
  against exact solves on a few check points (``diagnostics()["love_std_rel_error_*"]``,
  ``["love_accepted"]``), and ``variance_method="auto"`` uses LOVE only when that estimate
  is below ``love_max_error`` (2%), exact solves otherwise. On the matrix-free operator
  "auto" builds no cache (its ``love_rank`` kernel sweeps would cost as much as the fit)
  and always solves exactly; ``variance_method="love"`` builds it anyway.

  On rough kernels LOVE is rejected: when the neglected kernel part of the preconditioner is
  several times the noise, ``k*^T P^{-1} k*`` exceeds the prior variance and a rank-100
  Krylov correction cannot repair it; exact solves then cost one block PCG over the test
  points (figures: docs/performance.md, "CG back-end"). Smooth kernels (RBF l = 0.5) are
  where LOVE is accurate (tests).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.exceptions import ConvergenceWarning

from .._mesh import context_row_mesh
from ..operators import (
    TimeGroupOperator,
    block_pairs,
    find_time_groups,
    kernel_operator,
    noise_diagonal,
    operator_kind,
    row_tiles,
    sharded_pair_vjp,
    tiled_cross_mm,
    time_group_operator,
    time_group_surrogate_grad,
)
from ..solvers import LoveCache, gaussian_log_likelihood, love_cache, pcg, rp_cholesky, slq_logdet
from ._abstract import AbstractInference, AbstractPosterior
from ._fit import choose_rows, n_real, padded_training_data
from ._registry import register_solver

__all__ = ["CG", "CGInference", "CGPosterior", "warn_if_not_converged", "auto_preconditioner_rank"]


def auto_preconditioner_rank(n: int, matrix_free: bool = False, itemsize: int = 8) -> int:
    """Buffer size of the adaptive pivoted Cholesky for ``preconditioner_rank="auto"``.

    The rank grows until the neglected kernel trace falls below the total noise or this
    cap. PCG iterations scale like ``sqrt(n) / rank`` on a rough kernel (measured:
    docs/performance.md, "CG back-end").

    * Dense operator (a product costs ``2 n^2`` flops from memory): ``n/4`` (Woodbury then
      costs <= 1/2 of a product) between 100 and 1000.
    * Matrix-free operator (a product costs ``n^2 / 2`` kernel evaluations, an order of
      magnitude more than a dense one): ``12 sqrt(n)``, at least 1000, at most ``n/4``, and
      at most ``min(3 GiB, available / 8)`` of factor, so the iteration count stays near
      40-50 as ``n`` grows (``rp_cholesky`` builds it with GEMMs).
    """
    return int(_auto_rank(n, _memory_cap(n, itemsize) if matrix_free else None))


def _memory_cap(n: int, itemsize: int) -> int:
    from ..operators import available_memory_bytes

    return min(3 * 2**30, available_memory_bytes() // 8) // max(n * itemsize, 1)


def _auto_rank(n, mem_cap=None):
    """:func:`auto_preconditioner_rank`'s formula for a host int or a traced ``n`` (the real
    rows of a padded set); ``mem_cap`` None: the dense operator's."""
    xp = np if isinstance(n, (int, np.integer)) else jnp
    if mem_cap is None:
        return xp.minimum(n, xp.minimum(1000, xp.maximum(100, n // 4)))
    sqrt_rank = (12 * xp.sqrt(n)).astype(xp.asarray(n).dtype)
    return xp.maximum(xp.minimum(n, 100), xp.minimum(xp.minimum(n // 4, xp.maximum(1000, sqrt_rank)), mem_cap))


def _stop(tree):
    return jax.tree_util.tree_map(lambda x: jax.lax.stop_gradient(x) if eqx.is_inexact_array(x) else x, tree)


def warn_if_not_converged(diagnostics: dict, what: str = "fit") -> bool:
    """Host side: emit ``ConvergenceWarning`` if a CG solve missed its tolerance. Returns the flag."""
    if diagnostics.get("converged", True):
        return True
    warnings.warn(
        f"CG did not reach the relative residual tol={diagnostics.get('tol')} during {what} "
        f"(achieved {diagnostics.get('relative_residual'):.3g} after {diagnostics.get('iterations')} "
        f"iterations, max_iter={diagnostics.get('max_iter')}). Increase `max_iter` or "
        "`preconditioner_rank`, or loosen `tol`.",
        ConvergenceWarning,
        stacklevel=2,
    )
    return False


class CGPosterior(AbstractPosterior):
    """Posterior of a CG fit: the operator, preconditioner, representer weights and LOVE cache."""

    kernel: object
    X: jax.Array
    alpha: jax.Array  # (n, t) = K^{-1} Y
    operator: object
    precond: object
    love: LoveCache
    lml: jax.Array
    stats: dict  # arrays: iterations, relres, converged, rank, trace_error, logdet_stderr, love_error
    inference: "CGInference"
    mask: jax.Array | None = None  # real rows of a padded training set (None: not padded)

    # -- helpers -----------------------------------------------------------------------
    def _solve(self, R, tol=None):
        inf = self.inference
        tol = inf.tol if tol is None else tol
        res = pcg(self.operator.mm, R, self.precond.solve, tol=tol, max_iter=inf.max_iter, label="CG posterior solve")
        jax.debug.callback(functools.partial(_warn_lml, tol=tol, max_iter=inf.max_iter, what="a posterior solve"),
                           res.converged, jnp.max(res.relative_residual), res.iterations)
        return res

    def _chunks(self, Xs, fn, out_cols: int | None = None):
        """Apply ``fn(Xs_chunk) -> (chunk, ...)`` over row chunks of ``Xs`` (padded, then cut)."""
        m = Xs.shape[0]
        c = int(min(m, max(1, self.inference.var_chunk)))
        out = jax.lax.map(fn, row_tiles(Xs, c))
        return out.reshape((-1,) + out.shape[2:])[:m]

    def _cross(self, Xs):
        """``K(X, Xs)`` with zero rows at padded training rows."""
        return self.kernel.cross(self.X, Xs, self.mask)

    # -- the seam ------------------------------------------------------------------------
    def mean(self, Xs):
        if isinstance(self.operator, TimeGroupOperator):  # spatial kernel once per pair (Exploit A)
            return self.operator.cross_mm(Xs, self.alpha)
        return tiled_cross_mm(self.kernel, Xs, self.X, self.alpha, checkpoint=False)

    def var_exact(self, Xs):
        """Latent variances by batched PCG solves of the ``K(X, Xs)`` columns."""

        def chunk(Xc):
            Ks = self._cross(Xc)
            return self.kernel.diag(Xc) - jnp.sum(Ks * self._solve(Ks, self.inference.var_solve_tol).x, axis=0)

        return jnp.maximum(self._chunks(Xs, chunk), 0.0)

    def var_love(self, Xs):
        """Latent variances from the preconditioned LOVE cache."""

        def chunk(Xc):
            Ks = self._cross(Xc)
            return self.kernel.diag(Xc) - self.love.quad(Ks, self.precond.solve)

        return jnp.maximum(self._chunks(Xs, chunk), 0.0)

    def var(self, Xs):
        """``variance_method``: "exact", "love", or "auto" = exact solves up to ``exact_var_max``
        test points, else LOVE *if* its error measured at ``condition`` time is below
        ``love_max_error`` (relative, on the standard deviation) and exact solves otherwise."""
        inf = self.inference
        method = inf.variance_method
        if method == "exact" or (method == "auto" and Xs.shape[0] <= inf.exact_var_max):
            return self.var_exact(Xs)
        if method == "love":
            return self.var_love(Xs)
        ok = self.stats["love_err_max"] <= inf.love_max_error
        return jax.lax.cond(ok, lambda Z: self.var_love(Z), lambda Z: self.var_exact(Z), Xs)

    def cov(self, Xs):
        m = Xs.shape[0]
        if m > self.inference.cov_max:
            raise ValueError(
                f"return_cov with solver='cg' solves one CG system per test point; got {m} test points "
                f"(limit {self.inference.cov_max}). Predict the covariance on fewer points or use return_std."
            )
        Ks = self._cross(Xs)
        return self.kernel.gram(Xs) - Ks.T @ self._solve(Ks, self.inference.var_solve_tol).x

    def solve_train(self, R):
        # R has the real rows only; the padded rows of the solve are zero (identity block).
        n = R.shape[0]
        R = jnp.concatenate([R, jnp.zeros((self.X.shape[0] - n,) + R.shape[1:], R.dtype)])
        return self._solve(R).x[:n]

    @property
    def log_marginal_likelihood_value(self):
        return self.lml

    def diagnostics(self) -> dict:
        s = {k: np.asarray(v) for k, v in self.stats.items()}
        inf = self.inference
        groups = {}
        if inf.time_groups is not None:
            groups = {"time_dim": inf.time_groups[0], "time_groups": len(inf.time_groups[1]),
                      "time_group_max_size": max(inf.time_groups[1])}
        return {
            "solver": "cg",
            "operator": self.operator.kind,
            **groups,
            "iterations": int(s["iterations"]),
            "relative_residual": float(np.max(s["relative_residual"])),
            "converged": bool(s["converged"]),
            "tol": inf.tol,
            "max_iter": inf.max_iter,
            "preconditioner_rank": int(s["rank"]),
            "preconditioner_trace_error": float(s["trace_error"]),
            "n_probes": inf.n_probes,
            "lanczos_order": inf.lanczos_order,
            "logdet_stderr": float(s["logdet_stderr"]),
            "variance_method": inf.variance_method,
            "love_rank": int(self.love.V.shape[1]),
            "love_std_rel_error_median": float(s["love_err_median"]),
            "love_std_rel_error_max": float(s["love_err_max"]),
            # What predict(return_std=True) uses past exact_var_max test points under "auto".
            "love_accepted": bool(s["love_err_max"] <= inf.love_max_error),
        }


class CG(AbstractInference):
    """Preconditioned-CG inference (``solver="cg"``, ``"cg-dense"``, ``"cg-matrix-free"``).

    ``operator``: ``"dense"`` (the Gram held in memory), ``"matrix-free"`` (tiled kernel
    products, the Gram never formed) or ``"auto"`` (dense while it fits the memory budget).
    ``preconditioner_rank``: rank of the pivoted-Cholesky preconditioner (``"auto"``: grows
    until the neglected trace falls below the noise, see :func:`auto_preconditioner_rank`).
    ``n_probes`` and ``lanczos_order``: stochastic Lanczos quadrature of the log-determinant.
    ``variance_method``: ``"exact"`` (a CG solve per test point), ``"love"`` (a rank-``love_rank``
    Lanczos cache) or ``"auto"`` (LOVE where its measured error is below ``love_max_error``).

    ``tol`` is the relative residual of the fit (``condition``: representer weights,
    variances) and ``train_tol`` (default ``1e-2``) that of :meth:`log_marginal_likelihood`,
    i.e. of every evaluation of the hyperparameter optimiser; the looser of the two is used
    there (``train_tol=None``: ``tol`` everywhere). As in GPyTorch, training needs only a
    loose solve: the data-fit value ``y^T x_k`` errs by ``||x - x_k||_K^2`` (quadratic in the
    residual) and the gradient by far less than the Hutchinson noise of the trace term
    (at ``1e-2`` both moved less than the probe spread, ``1e-1`` biased the gradient:
    docs/performance.md, "CG back-end"). An evaluation that misses ``max(tol, train_tol)``
    emits a ``ConvergenceWarning`` naming that tolerance and the achieved residual; the
    fit's residual is in ``diagnostics()`` as before.

    ``time_dim`` (default None: off): the column holding time, for a space x time product kernel
    (``ActiveDims`` factors, one over ``(time_dim,)``; a ``White`` term aside) on observations
    taking a few distinct times (at most ``max_time_groups``, e.g. days). The Gram operator is
    then a :class:`~skgpx.operators.TimeGroupOperator`: ``G x G`` blocks ``k_t(t_g, t_h)
    K_s(X_g, X_h)``, the spatial blocks evaluated once (``operator`` "dense") or the spatial
    kernel alone per pair (matrix-free), combined with the scalar temporal weights at product
    time; the gradient reaches the temporal hyperparameters through the ``G x G`` weights and
    skips the spatial kernel pass when the spatial hyperparameters are fixed; predicted means
    evaluate the spatial kernel once per pair. ``"auto"``: the single-column factor's column
    with the fewest distinct values, when there are 2 to ``max_time_groups``; else the plain
    operator (and ``time_dim`` becomes None). Its gain is the temporal kernel's share of each
    kernel evaluation, not an order of magnitude (figures: docs/performance.md, "Time groups");
    ``solver="auto"`` picks it past the Cholesky range as ``"cg-time-groups"`` where it keeps plain
    CG's operator kind (:func:`skgpx.gp._auto.time_groups_fit`). Fixed on the host by
    :meth:`for_data` (the estimator calls it); ``solver_info_`` then reports ``operator``
    ("time-groups-dense" / "time-groups-matrix-free"), ``time_dim``, ``time_groups`` and
    ``time_group_max_size``. Not under a device mesh.

    ``var_tol`` (default None: ``tol``) is the relative residual of the exact solves behind
    predictive variances (``variance_method="exact"`` or its "auto" fallback) and
    ``return_cov``. Variances are a difference of near-equal numbers when the noise is small,
    so their relative error is not quadratic in the residual (about the residual itself at
    ``1e-4`` and ``1e-3``: docs/performance.md, "CG back-end").
    """

    tol: float = eqx.field(static=True, default=1e-6)
    max_iter: int = eqx.field(static=True, default=1000)
    preconditioner_rank: int | str = eqx.field(static=True, default="auto")
    trace_tol: float = eqx.field(static=True, default=1.0)
    n_probes: int = eqx.field(static=True, default=16)
    lanczos_order: int = eqx.field(static=True, default=100)
    variance_method: str = eqx.field(static=True, default="auto")
    love_rank: int = eqx.field(static=True, default=100)
    n_check: int = eqx.field(static=True, default=16)
    exact_var_max: int = eqx.field(static=True, default=1024)
    love_max_error: float = eqx.field(static=True, default=0.02)
    cov_max: int = eqx.field(static=True, default=4096)
    var_chunk: int = eqx.field(static=True, default=256)
    operator: str = eqx.field(static=True, default="auto")
    tile_size: int | None = eqx.field(static=True, default=None)
    train_tol: float | None = eqx.field(static=True, default=1e-2)
    var_tol: float | None = eqx.field(static=True, default=None)
    time_dim: int | str | None = eqx.field(static=True, default=None)
    max_time_groups: int = eqx.field(static=True, default=64)
    time_groups: tuple | None = eqx.field(static=True, default=None)  # (time_dim, sizes): set by for_data

    def __check_init__(self):
        td = self.time_dim
        if not (td is None or td == "auto" or (isinstance(td, (int, np.integer)) and not isinstance(td, bool)
                                                and td >= 0)):
            raise ValueError(f"`time_dim` must be None, 'auto' or a column index >= 0, got {td!r}.")
        if int(self.max_time_groups) < 1:
            raise ValueError(f"`max_time_groups` must be >= 1, got {self.max_time_groups!r}.")
        if self.variance_method not in ("auto", "love", "exact"):
            raise ValueError(f"`variance_method` must be 'auto', 'love' or 'exact', got {self.variance_method!r}.")
        if not (self.tol > 0):
            raise ValueError(f"`tol` must be > 0, got {self.tol!r}.")
        if self.train_tol is not None and not (self.train_tol > 0):
            raise ValueError(f"`train_tol` must be > 0 or None, got {self.train_tol!r}.")
        if self.var_tol is not None and not (self.var_tol > 0):
            raise ValueError(f"`var_tol` must be > 0 or None, got {self.var_tol!r}.")
        if int(self.max_iter) < 1:
            raise ValueError(f"`max_iter` must be >= 1, got {self.max_iter!r}.")
        r = self.preconditioner_rank
        if not (r == "auto" or (isinstance(r, (int, np.integer)) and r >= 0)):
            raise ValueError(f"`preconditioner_rank` must be 'auto' or an int >= 0, got {r!r}.")
        if int(self.n_probes) < 1:
            raise ValueError(f"`n_probes` must be >= 1, got {self.n_probes!r}.")
        if int(self.lanczos_order) < 1:
            raise ValueError(f"`lanczos_order` must be >= 1 (100 is unbiased on hard problems), got {self.lanczos_order!r}.")
        if int(self.love_rank) < 1:
            raise ValueError(f"`love_rank` must be >= 1, got {self.love_rank!r}; use variance_method='exact' for no LOVE.")
        if self.operator not in ("auto", "dense", "matrix-free"):
            raise ValueError(f"`operator` must be 'auto', 'dense' or 'matrix-free', got {self.operator!r}.")

    @property
    def name(self) -> str:
        base = "cg" if self.operator == "auto" else f"cg-{self.operator}"
        return base if self.time_dim is None else f"{base}-time-groups"

    # -- shared pieces ---------------------------------------------------------------------
    @property
    def var_solve_tol(self) -> float:
        """Relative residual of the exact predictive-variance / covariance solves: ``var_tol``,
        or ``tol`` when it is None."""
        return self.tol if self.var_tol is None else float(self.var_tol)

    @property
    def lml_tol(self) -> float:
        """PCG tolerance of :meth:`log_marginal_likelihood` (the optimiser's evaluations):
        ``max(tol, train_tol)``, or ``tol`` when ``train_tol`` is None."""
        return self.tol if self.train_tol is None else max(float(self.tol), float(self.train_tol))

    def for_data(self, kernel, X, noise=None) -> "CG":
        """Host side: the time groups of ``X`` for ``time_dim`` (``time_groups``:
        :func:`skgpx.operators.find_time_groups`). When ``"auto"`` finds none, ``time_dim`` becomes
        None: the plain operator runs, and ``name`` (the estimator's ``solver_``) says so."""
        if self.time_dim is None:
            return self if self.time_groups is None else dataclasses.replace(self, time_groups=None)
        found = find_time_groups(kernel, np.asarray(X), self.time_dim, int(self.max_time_groups))
        return dataclasses.replace(self, time_groups=found, time_dim=self.time_dim if found else None)

    def _operator_kind(self, X) -> str:
        """``"dense"`` or ``"matrix-free"``: ``operator``, or by memory when ``"auto"`` (static;
        with time groups, by the two ``n x n`` matrices of the dense time-group operator)."""
        if self.time_groups is None:
            return operator_kind(self.operator, X.shape[0], X.dtype.itemsize)
        # the dense time-group operator holds two n x n matrices (spatial and weighted)
        return operator_kind(self.operator, math.ceil(math.sqrt(2) * sum(self.time_groups[1])), X.dtype.itemsize)

    def _operator(self, kernel, X, noise, mask):
        """The Gram operator: :func:`~skgpx.operators.kernel_operator`, or the time-group one."""
        kind = self._operator_kind(X)
        if self.time_groups is None:
            if self.time_dim is not None and self.time_dim != "auto":
                raise ValueError(f"CG(time_dim={self.time_dim!r}) has no time groups yet: call "
                                 "`inference.for_data(kernel, X)` on the host first (the estimator does).")
            return kernel_operator(kernel, X, noise, kind, self.tile_size, mask)
        if context_row_mesh() is not None:
            raise ValueError("CG time groups (`time_dim`) do not run under a device mesh; drop `time_dim` there.")
        dim, sizes = self.time_groups
        return time_group_operator(kernel, X, noise, dim, sizes, kind, self.tile_size, mask)

    def _uses_love(self, X) -> bool:
        """Whether ``condition`` builds the LOVE cache: ``variance_method="love"``, or ``"auto"``
        on the dense operator. Past the dense-memory budget a cache of ``love_rank`` Lanczos
        steps costs ``love_rank`` matrix-free kernel sweeps (at n = 10^5 about as long as the
        whole fit), so ``"auto"`` predicts variances by exact solves there and skips it."""
        return self.variance_method == "love" or (
            self.variance_method == "auto" and self._operator_kind(X) == "dense")

    def _rank(self, X):
        r, n = self.preconditioner_rank, X.shape[0]
        if r == "auto":
            return auto_preconditioner_rank(n, self._operator_kind(X) == "matrix-free", X.dtype.itemsize)
        return int(min(r, n))

    def _rank_cap(self, X, mask):
        """The rank cap of the real rows of a padded ``X`` (traced; ``None`` when not padded):
        the cap of the unpadded set (the matrix-free memory cap as for the padded size)."""
        if mask is None:
            return None
        n, r = jnp.sum(mask), self.preconditioner_rank
        if r != "auto":
            return jnp.minimum(n, r)
        matrix_free = self._operator_kind(X) == "matrix-free"
        return _auto_rank(n, _memory_cap(X.shape[0], X.dtype.itemsize) if matrix_free else None)

    def prepare(self, X, Y, noise, dtype=None):
        # Padded to a size bucket (skgpx.gp._fit), except under a device mesh: the sharded
        # operator runs unpadded.
        return padded_training_data(X, Y, noise, dtype, pad=context_row_mesh() is None)

    def _solve_all(self, kernel, X, Y, noise, key, extra=None, tol=None, mask=None):
        """Operator, preconditioner, one block PCG on ``[Y, Z, extra]``, value of the LML.

        Every column shares each operator product, so extra right-hand sides (the LOVE
        check points) cost little next to the kernel evaluations of a matrix-free product.
        With a ``mask`` the padded rows are an identity block of the operator and of the
        preconditioner, with zero targets and probes, so every Krylov vector is zero there
        and the numbers are those of the real rows alone.
        """
        t = Y.shape[1]
        k = self.n_probes
        op = self._operator(kernel, X, noise, mask)
        trace_tol = self.trace_tol if self.preconditioner_rank == "auto" else 0.0
        k_prec, k_probe = jax.random.split(key)
        P = rp_cholesky(kernel, X, op.diag_noise, self._rank(X), trace_tol, key=k_prec, mask=mask,
                        rank_cap=self._rank_cap(X, mask))
        Z = P.sample(k_probe, k)  # row i drawn from (key, i): the real rows' draws do not depend on padding
        if mask is not None:
            Z = jnp.where(mask[:, None], Z, 0.0)
        blocks = [Y, Z] + ([] if extra is None else [extra])
        tol = self.tol if tol is None else tol
        # At most n Lanczos steps are informative (the Krylov space of an n x n matrix), and the
        # SLQ eigendecompositions cost record^3 per probe: record no more than n of them.
        res = pcg(op.mm, jnp.concatenate(blocks, axis=1), P.solve, tol=tol, max_iter=self.max_iter,
                  record=min(self.lanczos_order, X.shape[0]), label="CG")
        W = P.solve(Z)
        logdet, samples = slq_logdet(res, slice(t, t + k), Z, W, P.logdet())
        stderr = jnp.std(samples) / math.sqrt(k)
        alpha = res.x[:, :t]
        lml = gaussian_log_likelihood(jnp.sum(Y * alpha), logdet, n_real(Y, mask), t)
        return op, P, res, alpha, res.x[:, t:t + k], W, lml, stderr

    def log_marginal_likelihood(self, kernel, X, Y, noise, key, mask=None):
        """``mask``: ``None`` or boolean ``(n,)`` flagging real rows (padded rows: zero ``X``,
        ``Y`` and ``noise``; they change no result)."""
        t = Y.shape[1]
        tol = self.lml_tol
        op, _, res, alpha, U, W, lml, _ = self._solve_all(_stop(kernel), X, Y, _stop(noise), key, tol=tol, mask=mask)
        jax.debug.callback(functools.partial(_warn_lml, tol=tol, max_iter=self.max_iter),
                           res.converged, jnp.max(res.relative_residual), res.iterations)
        # Surrogate whose gradient is the stochastic LML gradient (module docstring).
        V = jnp.concatenate([alpha, U], axis=1)
        Wt = jnp.concatenate([0.5 * alpha, (-0.5 * t / self.n_probes) * W], axis=1)
        # S = sum(Wt * (K + diag(s)) V): the kernel part by a gradient-only tiled pass (value 0),
        # the O(n) diagonal part by plain autodiff.
        S_diag = jnp.sum(Wt * noise_diagonal(kernel, X, noise)[:, None] * V)
        if isinstance(op, TimeGroupOperator):
            S_kernel = time_group_surrogate_grad(kernel, op, V, Wt)
        else:
            S_kernel = _kernel_surrogate_grad(kernel, X, V, Wt, self.tile_size)
        return jax.lax.stop_gradient(lml) + S_kernel + (S_diag - jax.lax.stop_gradient(S_diag))

    def condition(self, kernel, X, Y, noise, key, mask=None) -> CGPosterior:
        """``mask``: as in :meth:`log_marginal_likelihood`."""
        return _condition(self, kernel, X, Y, noise, key, mask)

    def _condition(self, kernel, X, Y, noise, key, mask=None) -> CGPosterior:
        k_slq, k_love, k_check = jax.random.split(key, 3)
        n = X.shape[0]
        n_obs = n_real(Y, mask)
        use_love = self._uses_love(X)
        if use_love:
            # LOVE check points: half training inputs, half midpoints of random pairs
            # (interior points away from the data); their exact solves join the main block.
            # Real rows first: with fewer than n_check real rows the slots past them are unused.
            nc = min(self.n_check, n)
            ki, kj = jax.random.split(k_check)
            i, j = choose_rows(ki, n, nc, mask), choose_rows(kj, n, nc, mask)
            Xc = jnp.where((jnp.arange(nc) % 2 == 0)[:, None], X[i], 0.5 * (X[i] + X[j]))
            Kc = kernel.cross(X, Xc, mask)
        else:
            Kc = None
        op, P, res, alpha, _, _, lml, stderr = self._solve_all(kernel, X, Y, noise, k_slq, Kc, mask=mask)
        jax.debug.callback(functools.partial(_warn_lml, tol=self.tol, max_iter=self.max_iter, what="fit"),
                           res.converged, jnp.max(res.relative_residual), res.iterations)
        if use_love:
            # LOVE start (Pleiss et al. 2018 start from the mean cross-covariance): mean kernel
            # column over a random subset of training points, mapped through P^{-1}.
            m = min(n, 256)
            used = jnp.arange(m) < n_obs
            sub = choose_rows(k_love, n, m, mask)
            kbar = jnp.sum(jnp.where(used[None, :], kernel.cross(X, X[sub], mask), 0.0), axis=1) / jnp.minimum(m, n_obs)
            cache = love_cache(op.mm, P.solve, P.mm, P.solve(kbar[:, None])[:, 0], self.love_rank,
                               None if mask is None else n_obs)
        else:
            cache = LoveCache(V=jnp.zeros((n, 0), alpha.dtype), M=jnp.zeros((0, 0), alpha.dtype))
        post = CGPosterior(kernel, X, alpha, op, P, cache, lml, {}, self, mask)
        if use_love:
            t = Y.shape[1]
            v_exact = kernel.diag(Xc) - jnp.sum(Kc * res.x[:, t + self.n_probes:], axis=0)
            v_love = post.var_love(Xc)
            sd_exact = jnp.sqrt(jnp.maximum(v_exact, 0.0))
            sd_love = jnp.sqrt(jnp.maximum(v_love, 0.0))
            # Relative to the exact sd, floored at sqrt(eps) x the prior sd: a posterior sd
            # below that is zero to working precision (near-noiseless data), where a plain
            # relative error read ~1e306.
            floor = jnp.sqrt(jnp.finfo(sd_exact.dtype).eps) * jnp.sqrt(jnp.mean(kernel.diag(Xc)))
            err = jnp.abs(sd_love - sd_exact) / jnp.maximum(sd_exact, floor)
            err_median, err_max = _median_max(err, jnp.arange(err.shape[0]) < n_obs)
        else:
            err_median = err_max = jnp.asarray(jnp.nan, alpha.dtype)
        stats = dict(
            iterations=res.iterations,
            relative_residual=jnp.max(res.relative_residual),
            converged=res.converged,
            rank=P.rank,
            trace_error=P.trace_error,
            logdet_stderr=stderr,
            love_err_median=err_median,
            love_err_max=err_max,
        )
        return eqx.tree_at(lambda p: p.stats, post, stats)


def _kernel_surrogate_grad(kernel, X, V, Wt, tile_size=None):
    """Zero, with the gradient (kernel leaves and ``X``) of ``sum(Wt * K(X, X) @ V)``.

    ``V``, ``Wt`` ``(n, k)`` are constants (no cotangent). The value of the surrogate is never
    needed (it enters as ``S - stop_gradient(S)``), so instead of a checkpointed tiled product
    (forward pass, recomputation, backward pass) the backward rule runs one ``lax.scan`` over
    the square block pairs ``I <= J`` (as :func:`~skgpx.operators.symmetric_tiled_mm`): with
    ``K`` symmetric, ``sum(Wt * K V) = sum_{I<=J} K_IJ : C_IJ`` where ``C_IJ = Wt_I V_J^T +
    V_I Wt_J^T`` off the diagonal and ``Wt_I V_I^T`` on it, so each block is linearised and
    pulled back once: half the kernel evaluations of row tiles, ``O(block^2)`` memory.
    Reverse mode only (no ``jvp``/second derivatives).
    """
    dyn, static = eqx.partition(kernel, eqx.is_inexact_array)
    n, d = X.shape
    Bk, I, J = block_pairs(n, tile_size)

    @jax.custom_vjp
    def f(dyn, X, V, Wt):
        return jnp.zeros((), V.dtype)

    def fwd(dyn, X, V, Wt):
        return f(dyn, X, V, Wt), (dyn, X, V, Wt)

    def bwd(res, ct):
        dyn, X, V, Wt = res
        mesh = context_row_mesh()
        if mesh is not None:  # the same block pairs, dealt over the devices (skgpx.operators)
            g_dyn, g_X = sharded_pair_vjp(eqx.combine(dyn, static), X, V, ct * Wt, mesh, tile_size)
            return g_dyn, g_X, jnp.zeros_like(V), jnp.zeros_like(Wt)
        # Padded rows carry zero weights, so zero cotangents.
        Xb, Vb, Wb = row_tiles(X, Bk), row_tiles(V, Bk, fill=0.0), row_tiles(ct * Wt, Bk, fill=0.0)

        def step(acc, ij):
            i, j = ij
            g_dyn, g_X = acc
            off = jnp.where(i == j, 0.0, 1.0).astype(V.dtype)
            cot = Wb[i] @ Vb[j].T + off * (Vb[i] @ Wb[j].T)
            _, vjp = jax.vjp(lambda dy, a, b: eqx.combine(dy, static).cross(a, b), dyn, Xb[i], Xb[j])
            gd, gXi, gXj = vjp(cot)
            g_dyn = jax.tree_util.tree_map(jnp.add, g_dyn, gd)
            return (g_dyn, g_X.at[i].add(gXi).at[j].add(gXj)), None

        zero = (jax.tree_util.tree_map(jnp.zeros_like, dyn), jnp.zeros_like(Xb))
        (g_dyn, g_X), _ = jax.lax.scan(step, zero, (I, J))
        return g_dyn, g_X.reshape(-1, d)[:n], jnp.zeros_like(V), jnp.zeros_like(Wt)

    f.defvjp(fwd, bwd)
    return f(dyn, X, V, Wt)


def _median_max(err, valid):
    """Median and maximum of ``err`` over its ``valid`` entries (a prefix, at least one)."""
    m = jnp.sum(valid)
    srt = jnp.sort(jnp.where(valid, err, jnp.inf))
    return 0.5 * (srt[(m - 1) // 2] + srt[m // 2]), jnp.max(jnp.where(valid, err, -jnp.inf))


@eqx.filter_jit
def _condition(inference, kernel, X, Y, noise, key, mask=None):
    return inference._condition(kernel, X, Y, noise, key, mask)


def _warn_lml(converged, relres, iterations, tol, max_iter, what="the marginal likelihood"):
    if not bool(converged):
        warnings.warn(
            f"CG did not reach tol={float(tol)} in {what} (achieved {float(relres):.3g} "
            f"after {int(iterations)} iterations, max_iter={int(max_iter)}). Increase `max_iter` or "
            "`preconditioner_rank`, or loosen `tol`.",
            ConvergenceWarning,
        )


CGInference = CG  # the name the pure layer used before solver objects

register_solver("cg", CG)
register_solver("cg-dense", lambda: CG(operator="dense"))
register_solver("cg-matrix-free", lambda: CG(operator="matrix-free"))
register_solver("cg-time-groups", lambda: CG(time_dim="auto"))
