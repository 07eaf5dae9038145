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
  from the kernel at the start of the fit), refined per axis until the interpolation error
  is at most ``interpolation_tol``, tightened to ``2 * interpolation_std_tol`` times the
  posterior-to-prior variance ratio when the noise is known, within :meth:`SKI.refine_cap`
  points (:mod:`skgpx.gp._ski_grid`; ``interpolation_tol=None``: no refinement, at most
  ``max_grid_size`` points). Fixed by :meth:`SKI.for_data` on the host before anything is
  compiled.
* Solves: PCG (``skgpx.solvers.pcg``, ``||r||/||b|| <= tol`` per column), one block for the
  targets, the SLQ probes and the LOVE check points. ``preconditioner="auto"``:

  - on a masked grid (order 0, one observation per cell, Toeplitz kernel operator) the
    observed cells' block of ``(C + s I)^{-1}`` (``C`` the circulant embedding, ``s`` the mean
    noise) for the targets and check points (and, in the optimiser's objective, the SLQ probes,
    whose solutions its gradient needs), and the SLQ probes ``z ~ N(0, P_b)`` separately by
    block-Jacobi PCG for their ``lanczos_order`` Lanczos coefficients, ``log|A| = log|P_b| +``
    preconditioned SLQ (the circulant ``P`` has no log-determinant to add back);
  - elsewhere block-Jacobi (:func:`skgpx.solvers.block_jacobi`): the exact kernel plus noise on
    blocks of at most ``block_size`` nearby points (median bisection in length-scale units,
    ``block_scales`` set by :meth:`SKI.for_data`), with probes ``z ~ N(0, P)`` and
    ``log|A| = log|P| +`` preconditioned SLQ from the same block, as ``solver="cg"`` does.
* LOVE: the Lanczos rank grows ``love_rank`` steps at a time until the standard deviations at
  half of the ``n_check`` check points are within ``love_max_error`` of exact solves, up to
  ``love_max_rank`` (and the memory budget); the error reported is the other half's.
* Log marginal likelihood: ``-1/2 y^T a - 1/2 log|A| - n/2 log 2 pi`` with ``log|A|`` by
  stochastic Lanczos quadrature from the same CG run (``skgpx.solvers.slq_logdet``), and
  its gradient through the surrogate ``1/2 a^T A(theta) a - 1/2 mean_j u_j^T A(theta) w_j``
  (``u_j = A^{-1} z_j``, ``w_j = P^{-1} z_j``; Gardner et al. 2018) differentiated through the FFT products: no
  ``n x n`` or ``M x M`` array.
* Interpolation error: ``W K_UU W^T`` against the exact kernel on ``n_interp_check`` pairs of
  points (each point with itself, a random nearby point and a random data point), reported as
  the largest and the rms absolute error relative to the prior variance.
* Variances and samples: :mod:`skgpx.gp._ski_posterior`.
* ``time_dim``: SKI in space, exact in time (:class:`skgpx.operators.TimeSliceSKIOperator`):
  the grid has one node on that column and the data's distinct times are kept (``times``, set by
  :meth:`SKI.for_data`); the LOVE cache stays in data space and samples draw the prior jointly
  over the data's and the test points' times (:mod:`skgpx.gp._ski_time`).
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

from ..kernels import length_scales
from ..operators import (
    Grid,
    SKIOperator,
    auto_grid,
    grid_operator,
    interpolation_weights,
    lattice_of,
    noise_diagonal,
    split_space_time,
    time_slice_operator,
)
from ..solvers import block_jacobi, gaussian_log_likelihood, lanczos_checked, pcg, slq_logdet, tridiagonal_solve
from ..solvers._matmul import t_matmul
from ..operators import dense_memory_budget
from ._abstract import AbstractInference
from ._registry import register_solver
from ._cg import _stop, _warn_lml
from ._ski_grid import posterior_variance_ratio, refine_grid
from ._ski_posterior import SKIPosterior
from ._ski_time import TimeSlicePosterior

__all__ = ["SKI", "SKIInference"]


class SKI(AbstractInference):
    """SKI / masked-grid inference (``solver="ski"``; see the module docstring); options are static fields."""

    @property
    def name(self) -> str:
        return "ski"

    grid: Grid | None = None
    interpolation_order: int | None = eqx.field(static=True, default=None)  # None: 0 on a lattice, else 3
    points_per_length_scale: float | tuple = eqx.field(static=True, default=4.0)  # or one per input column
    max_grid_size: int = eqx.field(static=True, default=2**22)
    interpolation_tol: float | None = eqx.field(static=True, default=5e-3)  # None: no refinement
    interpolation_std_tol: float | None = eqx.field(static=True, default=0.02)  # None: interpolation_tol only
    # Largest grid the refinement reaches by default: a LOVE cache of grid x rank stays
    # within 1 GiB at rank 2048 (None: max_grid_size and the memory budget alone).
    max_refined_size: int | None = eqx.field(static=True, default=2**16)
    refinement: tuple = eqx.field(static=True, default=())  # set by for_data: (key, value) pairs
    # Exact in time over the data's distinct times (TimeSliceSKIOperator) on this input column.
    time_dim: int | None = eqx.field(static=True, default=None)
    times: tuple = eqx.field(static=True, default=(), repr=False)  # set by for_data: the distinct times
    tol: float = eqx.field(static=True, default=1e-6)
    train_tol: float | None = eqx.field(static=True, default=1e-2)
    var_tol: float | None = eqx.field(static=True, default=None)
    max_iter: int = eqx.field(static=True, default=2000)
    n_probes: int = eqx.field(static=True, default=16)
    lanczos_order: int = eqx.field(static=True, default=100)
    variance_method: str = eqx.field(static=True, default="auto")
    preconditioner: str = eqx.field(static=True, default="auto")
    block_size: int = eqx.field(static=True, default=256)  # points per block-Jacobi block
    # set by for_data: the length scale per input column that the blocks are measured in
    block_scales: tuple = eqx.field(static=True, default=(), repr=False)
    love_rank: int = eqx.field(static=True, default=128)
    love_max_rank: int = eqx.field(static=True, default=2048)
    love_max_error: float = eqx.field(static=True, default=0.02)
    n_variance_samples: int = eqx.field(static=True, default=256)
    n_check: int = eqx.field(static=True, default=32)
    n_interp_check: int = eqx.field(static=True, default=256)
    exact_var_max: int = eqx.field(static=True, default=256)
    var_chunk: int = eqx.field(static=True, default=16)
    cov_max: int = eqx.field(static=True, default=2048)

    def __check_init__(self):
        if self.interpolation_order not in (None, 0, 1, 3):
            raise ValueError(f"`interpolation_order` must be None, 0, 1 or 3, got {self.interpolation_order!r}.")
        if not isinstance(self.points_per_length_scale, (int, float, tuple)):
            raise ValueError(f"`points_per_length_scale` must be a number or a tuple (one per input column), got "
                             f"{self.points_per_length_scale!r}.")
        if self.preconditioner not in ("auto", "circulant", "block-jacobi", "none"):
            raise ValueError(f"`preconditioner` must be 'auto', 'circulant', 'block-jacobi' or 'none', got "
                             f"{self.preconditioner!r}.")
        if isinstance(self.block_size, bool) or not isinstance(self.block_size, (int, np.integer)) or self.block_size < 1:
            raise ValueError(f"`block_size` must be a positive number of points, got {self.block_size!r}.")
        if self.variance_method not in ("auto", "love", "exact", "samples"):
            raise ValueError(f"`variance_method` must be 'auto', 'love', 'exact' or 'samples', got "
                             f"{self.variance_method!r}.")
        if self.interpolation_tol is not None and not (float(self.interpolation_tol) > 0):
            raise ValueError(f"`interpolation_tol` must be > 0 or None (no grid refinement), got "
                             f"{self.interpolation_tol!r}.")
        if self.max_refined_size is not None and not (int(self.max_refined_size) >= 1):
            raise ValueError(f"`max_refined_size` must be a positive number of grid points or None (the "
                             f"memory budget alone), got {self.max_refined_size!r}.")
        if self.interpolation_std_tol is not None and not (float(self.interpolation_std_tol) > 0):
            raise ValueError(f"`interpolation_std_tol` must be > 0 or None (interpolation_tol alone), got "
                             f"{self.interpolation_std_tol!r}.")
        if not (self.tol > 0) or not np.all(np.asarray(self.points_per_length_scale) > 0):
            raise ValueError(f"`tol` and `points_per_length_scale` must be > 0, got {self.tol!r}, "
                             f"{self.points_per_length_scale!r}.")
        if self.time_dim is not None:
            if isinstance(self.time_dim, bool) or not isinstance(self.time_dim, (int, np.integer)) or self.time_dim < 0:
                raise ValueError(f"`time_dim` must be None or the index of the input column holding time, got "
                                 f"{self.time_dim!r}.")
            if self.variance_method == "samples":
                raise ValueError("variance_method='samples' is not available with `time_dim` (its draws would be "
                                 "needed at every test time); use 'auto', 'love' or 'exact'.")
            if self.preconditioner == "circulant":
                raise ValueError("preconditioner='circulant' is not available with `time_dim`; use 'auto' or 'none'.")
        for option in ("n_check", "n_interp_check"):  # the LOVE and interpolation checks need a point each
            if int(getattr(self, option)) < 1:
                raise ValueError(f"`{option}` must be >= 1, got {getattr(self, option)!r}.")
        if int(self.love_rank) < 1 or int(self.n_probes) < 1 or int(self.max_iter) < 1:
            raise ValueError("`love_rank`, `n_probes` and `max_iter` must be >= 1.")
        if int(self.love_max_rank) < int(self.love_rank):
            raise ValueError(f"`love_max_rank` ({self.love_max_rank}) must be >= `love_rank` ({self.love_rank}): "
                             "LOVE starts at love_rank Lanczos steps and adds love_rank at a time up to love_max_rank.")

    def love_rank_cap(self, n: int) -> int:
        """Largest LOVE rank: ``love_max_rank``, at most ``n``, and the cache (``V`` ``(n, r)``
        and ``R`` ``(M, r)`` in float64) within :func:`skgpx.operators.dense_memory_budget`."""
        fit = dense_memory_budget() // (8 * (int(n) + self.grid.size))
        return int(max(1, min(self.love_max_rank, n, max(self.love_rank, fit))))

    @property
    def var_solve_tol(self) -> float:
        return self.tol if self.var_tol is None else float(self.var_tol)

    @property
    def lml_tol(self) -> float:
        return self.tol if self.train_tol is None else max(float(self.tol), float(self.train_tol))

    # -- the grid (host side) -----------------------------------------------------------
    def for_data(self, kernel, X, noise=None) -> "SKIInference":
        """This inference with its grid and interpolation order fixed for data ``X`` (host);
        ``noise`` (scalar or ``(n,)``, the estimator's ``alpha``) lets the refinement's
        tolerance follow the posterior variance (``interpolation_std_tol``). With ``time_dim``
        the grid has one node on that column (space only) and the data's distinct times are kept."""
        X = np.asarray(X, dtype=np.float64)
        d = X.shape[1]
        pps = self.points_per_length_scale
        if isinstance(pps, tuple) and len(pps) not in (1, d):
            raise ValueError(f"`points_per_length_scale` is a number or one per input column; got {pps!r} "
                             f"({len(pps)} values) for X with {d} columns.")
        time = {}
        space = X
        if self.time_dim is not None:
            td = int(self.time_dim)
            if td >= d:
                raise ValueError(f"`time_dim`={td} but X has {d} columns; pass the index of the column holding time.")
            split_space_time(kernel, td)  # a ValueError naming the kernel's form when it is not space x time
            time = dict(times=tuple(float(v) for v in np.unique(X[:, td])))
            space = X.copy()
            space[:, td] = 0.0  # one grid node on the time column
        if self.grid is not None:
            if self.time_dim is not None and (self.grid.ndim != d or self.grid.shape[int(self.time_dim)] != 1):
                raise ValueError(f"With time_dim={self.time_dim}, `grid` needs {d} axes and one node on axis "
                                 f"{self.time_dim}; got shape {self.grid.shape}.")
            order = 3 if self.interpolation_order is None else self.interpolation_order
            return dataclasses.replace(self, interpolation_order=order,
                                       preconditioner=self._resolve_preconditioner(kernel, X, self.grid, order),
                                       block_scales=_block_scales(kernel, self.grid, d), **time)
        if self.interpolation_order in (None, 0):
            lattice = lattice_of(space, self.max_grid_size)
            if lattice is not None:
                return dataclasses.replace(self, grid=lattice, interpolation_order=0,
                                           preconditioner=self._resolve_preconditioner(kernel, X, lattice, 0),
                                           block_scales=_block_scales(kernel, lattice, d), **time)
            if self.interpolation_order == 0:
                raise ValueError("interpolation_order=0 needs data on a regular lattice (or an explicit `grid`); "
                                 "these inputs are not. Use interpolation_order=1 or 3.")
        scales = length_scales(kernel, d)
        if scales is None:
            raise ValueError(
                f"solver='ski' needs a kernel with length scales in the input coordinates (stationary parts, "
                f"products over ActiveDims); got {kernel!r}. Pass an explicit `grid`, or use solver='cg'."
            )
        grid_scales = scales.copy()
        if self.time_dim is not None:
            grid_scales[int(self.time_dim)] = np.inf
        order = 3 if self.interpolation_order is None else self.interpolation_order
        if self.interpolation_tol is None:
            g = auto_grid(space, grid_scales, self.points_per_length_scale, self.max_grid_size, pad=2)
            refinement = ()
        else:
            cap = self.refine_cap(d, len(time.get("times", ())))
            tol = float(self.interpolation_tol)
            extra = {}
            if self.interpolation_std_tol is not None and noise is not None:
                ratio = posterior_variance_ratio(kernel, X, noise, scales)
                tol = min(tol, 2.0 * float(self.interpolation_std_tol) * ratio)
                extra = dict(posterior_variance_ratio=ratio)
            g, info = refine_grid(kernel, X, grid_scales, self.points_per_length_scale, order, tol, cap,
                                  m=self.n_interp_check, pad=2)
            info = dict(info, tol=tol, **extra)
            if info["capped"]:
                warnings.warn(
                    f"solver='ski': the automatic grid stopped at {g.size} points (shape {g.shape}; cap {cap}: "
                    f"max_grid_size and the memory budget) with an interpolation error of "
                    f"{info['interpolation_error_estimate']:.3g} (relative to the prior variance) above its tolerance "
                    f"{tol:.3g} (interpolation_tol={self.interpolation_tol}, interpolation_std_tol="
                    f"{self.interpolation_std_tol}). Predictions carry that error; raise `max_refined_size`, "
                    "`max_grid_size`, `interpolation_tol` or `interpolation_std_tol`, or use solver='cg'. "
                    "solver_info_ has the figures.",
                    ConvergenceWarning,
                    stacklevel=3,
                )
            refinement = tuple(sorted(dict(info, cap=cap).items()))
        return dataclasses.replace(self, grid=g, interpolation_order=order, refinement=refinement,
                                   preconditioner=self._resolve_preconditioner(kernel, X, g, order),
                                   block_scales=_block_scales(kernel, g, d), **time)

    def refine_cap(self, d: int, slots: int = 0) -> int:
        """Largest grid the refinement may reach: ``max_grid_size``, ``max_refined_size``, and
        the fit's CG block (``1 + n_probes + n_check`` columns) on the circulant embedding
        (``2^d M`` floats per column; with ``slots`` time slots, ``3 slots M`` more: the
        stacked slot grids in and out of a product) within :func:`skgpx.operators.dense_memory_budget`."""
        block = 1 + int(self.n_probes) + int(self.n_check)
        cap = min(self.max_grid_size, dense_memory_budget() // (8 * (2**int(d) + 3 * int(slots)) * block))
        return int(cap if self.max_refined_size is None else min(cap, self.max_refined_size))

    def _resolve_preconditioner(self, kernel, X, grid, order) -> str:
        """Host side: ``"auto"`` is ``"circulant"`` on a masked grid (order 0, distinct cells) with
        a Toeplitz kernel operator, else ``"block-jacobi"``; an explicit ``"circulant"`` where it
        cannot apply is an error."""
        from ..operators import ToeplitzOperator

        if self.preconditioner in ("block-jacobi", "none"):
            return self.preconditioner
        if self.time_dim is not None:
            return "block-jacobi"  # the time-slice operator has no circulant preconditioner (rejected at construction)
        distinct = order == 0 and np.unique(np.asarray(X), axis=0).shape[0] == np.asarray(X).shape[0]
        ok = distinct and isinstance(grid_operator(kernel, grid), ToeplitzOperator)
        if self.preconditioner == "circulant" and not ok:
            raise ValueError("preconditioner='circulant' needs data on a regular lattice (interpolation_order=0, "
                             "one observation per cell) and a stationary kernel (one Toeplitz operator); use "
                             "preconditioner='auto' or 'none'.")
        return "circulant" if ok else "block-jacobi"

    def _ready(self, X):
        if self.grid is None or self.interpolation_order is None:
            if isinstance(X, jax.core.Tracer):
                raise ValueError("SKIInference has no grid yet: call `inference.for_data(kernel, X)` on the host "
                                 "before compiling (the estimator does).")
            raise ValueError("SKIInference has no grid yet: call `inference.for_data(kernel, X)` first.")

    def operator(self, kernel, X, noise):
        """``A = W K_UU W^T + diag(s)`` for data ``X`` (a :class:`~skgpx.operators.SKIOperator`), or with
        ``time_dim`` the :class:`~skgpx.operators.TimeSliceSKIOperator` over the distinct ``times``."""
        self._ready(X)
        if self.time_dim is not None:
            tau = jnp.asarray(self.times, X.dtype)
            slots = jnp.clip(jnp.searchsorted(tau, X[:, self.time_dim]), 0, tau.shape[0] - 1)
            return time_slice_operator(kernel, X, noise, self.grid, self.time_dim, tau, slots,
                                       self.interpolation_order)
        interp = interpolation_weights(X, self.grid, self.interpolation_order)
        return SKIOperator(grid_operator(kernel, self.grid, X.dtype), interp, noise_diagonal(kernel, X, noise))

    def blocks(self, kernel, X, noise):
        """The block-Jacobi preconditioner (``preconditioner="block-jacobi"``; else ``None``):
        exact kernel blocks of at most ``block_size`` nearby points, fewer where ``n * block_size``
        floats would exceed the memory budget."""
        if self.preconditioner != "block-jacobi":
            return None
        return self._block_jacobi(kernel, X, noise)

    def _block_jacobi(self, kernel, X, noise):
        n = X.shape[0]
        size = max(1, min(int(self.block_size), dense_memory_budget() // (8 * max(n, 1))))
        scales = self.block_scales or _cell_scales(self.grid)  # for_data not called: grid cells
        return block_jacobi(kernel, X, noise, np.asarray(scales, dtype=np.float64), size)

    def precond(self, op, blocks=None):
        """``P^{-1}`` for PCG on ``op`` (``None``: plain CG). ``"circulant"``: the observed cells'
        block of ``(C + s I)^{-1}``, ``C`` the kernel's circulant embedding on the grid and ``s``
        the mean noise (:meth:`skgpx.operators.ToeplitzOperator.circulant_solve`);
        ``"block-jacobi"``: ``blocks`` (:meth:`blocks`)."""
        if blocks is not None:
            return blocks.solve
        if self.preconditioner != "circulant":
            return None
        shift = jnp.mean(op.diag_noise)
        return lambda R: op.interp.gather(op.grid_op.circulant_solve(op.interp.scatter(R), shift))

    # -- solves ---------------------------------------------------------------------------
    def _solve_all(self, kernel, X, Y, noise, key, extra=None, tol=None, probe_solves=True):
        """One CG block for ``[Y, probes, extra]``: block-Jacobi PCG with probes ``z ~ N(0, P)``
        (preconditioned SLQ), or plain CG. With the circulant preconditioner, ``[Y, probes, extra]``
        by PCG (the probes only with ``probe_solves``: the gradient's trace term needs their
        solutions, the fit does not) and the probes ``z ~ N(0, P_b)`` again by block-Jacobi PCG for
        their ``lanczos_order`` Lanczos coefficients (SLQ cannot add back the circulant ``log|P|``).
        Returns ``(op, x, res, alpha, U, W, lml, logdet stderr, P)``: ``x`` the solutions in block
        order (without ``probe_solves``, the probes' partial iterates), ``W = P^{-1} Z`` for the
        gradient's trace term, ``P`` the block-Jacobi preconditioner or ``None``."""
        n, t = Y.shape
        k = self.n_probes
        op = self.operator(kernel, X, noise)
        tol = self.tol if tol is None else tol
        blocks = self.blocks(kernel, X, noise)
        P = self.precond(op) if blocks is None else None  # the circulant P, or None
        if P is None:
            if blocks is None:
                Z, W, logdet_P = jax.random.normal(key, (n, k), X.dtype), None, 0.0
            else:
                Z = blocks.sample(key, k)
                W, logdet_P = blocks.solve(Z), blocks.logdet()
            cols = [Y, Z] + ([] if extra is None else [extra])
            res = pcg(op.mm, jnp.concatenate(cols, axis=1), self.precond(op, blocks), tol=tol,
                      max_iter=self.max_iter, record=self.lanczos_order,
                      label="SKI CG" if blocks is None else "SKI PCG")
            x = res.x
            logdet, samples = slq_logdet(res, slice(t, t + k), Z, W, logdet_P)
            W = Z if W is None else W
        else:
            # SLQ through block-Jacobi (probes z ~ N(0, P_b), log|P_b| + preconditioned SLQ: far less
            # variance than plain probes); the solves through the circulant P, faster to converge.
            slq = self._block_jacobi(kernel, X, noise)
            Z = slq.sample(key, k)
            W = slq.solve(Z)
            cols = [Y] + ([Z] if probe_solves else []) + ([] if extra is None else [extra])
            res = pcg(op.mm, jnp.concatenate(cols, axis=1), P, tol=tol, max_iter=self.max_iter, label="SKI PCG")
            coef = pcg(op.mm, Z, slq.solve, tol=tol, max_iter=self.lanczos_order, record=self.lanczos_order,
                       label="SKI log-determinant probes")
            x = res.x if probe_solves else jnp.concatenate([res.x[:, :t], coef.x, res.x[:, t:]], axis=1)
            logdet, samples = slq_logdet(coef, slice(0, k), Z, W, slq.logdet())
        alpha = x[:, :t]
        lml = gaussian_log_likelihood(jnp.sum(Y * alpha), logdet, n, t)
        return op, x, res, alpha, x[:, t:t + k], W, lml, jnp.std(samples) / math.sqrt(k), blocks

    def log_marginal_likelihood(self, kernel, X, Y, noise, key):
        t = Y.shape[1]
        tol = self.lml_tol
        _, _, res, alpha, U, W, lml, _, _ = self._solve_all(_stop(kernel), X, Y, _stop(noise), key, tol=tol)
        jax.debug.callback(functools.partial(_warn_lml, tol=tol, max_iter=self.max_iter),
                           res.converged, jnp.max(res.relative_residual), res.iterations)
        V = jnp.concatenate([alpha, U], axis=1)
        Wt = jnp.concatenate([0.5 * alpha, (-0.5 * t / self.n_probes) * W], axis=1)
        S = jnp.sum(Wt * self.operator(kernel, X, noise).mm(V))
        return jax.lax.stop_gradient(lml) + S - jax.lax.stop_gradient(S)

    def condition(self, kernel, X, Y, noise, key) -> SKIPosterior:
        self._ready(X)
        return _condition(self, kernel, X, Y, noise, key)

    def _condition(self, kernel, X, Y, noise, key) -> SKIPosterior:
        n, t = Y.shape
        timed = self.time_dim is not None
        k_slq, k_check, k_interp, k_samp = jax.random.split(key, 4)
        # LOVE check points: half training inputs, half midpoints of random pairs.
        nc = min(self.n_check, n)
        ki, kj = jax.random.split(k_check)
        i = jax.random.choice(ki, n, (nc,), replace=False)
        j = jax.random.choice(kj, n, (nc,), replace=False)
        Xc = jnp.where((jnp.arange(nc) % 2 == 0)[:, None], X[i], 0.5 * (X[i] + X[j]))
        op = self.operator(kernel, X, noise)
        Kc = op.cross_columns(Xc)  # k* of the check points, (n, nc)
        extra = Kc
        if self.variance_method == "samples":  # not with time_dim (rejected at construction)
            # Zero-mean posterior draws on the grid (Matheron without the data): their solves join the block.
            S = self.n_variance_samples
            kf, ke = jax.random.split(k_samp)
            gop = op.grid_op
            F_U = gop.sqrt_mm(jax.random.normal(kf, (gop.embed_size, S), X.dtype))
            E = jnp.sqrt(noise_diagonal(kernel, X, noise))[:, None] * jax.random.normal(ke, (n, S), X.dtype)
            extra = jnp.concatenate([Kc, op.interp.gather(F_U) + E], axis=1)
        _, x, res, alpha, _, _, lml, stderr, blocks = self._solve_all(kernel, X, Y, noise, k_slq, extra,
                                                                        probe_solves=False)
        jax.debug.callback(functools.partial(_warn_lml, tol=self.tol, max_iter=self.max_iter, what="fit"),
                           res.converged, jnp.max(res.relative_residual), res.iterations)
        off = t + self.n_probes
        # Exact SKI standard deviations of the check points (from the block solve).
        white_c = _white(kernel, Xc)
        prior_c = op.prior_diag(Xc) + white_c
        sd_exact = jnp.sqrt(jnp.maximum(prior_c - jnp.sum(Kc * x[:, off:off + nc], axis=0), 0.0))
        floor = jnp.sqrt(jnp.finfo(X.dtype).eps) * jnp.sqrt(jnp.mean(prior_c))

        # The rank is chosen on the first half of the check points (all when there is one) and
        # the reported error measured on the other half, which played no part in choosing it.
        half = (nc + 1) // 2
        chosen = jnp.arange(nc) < half

        def errors(sd):
            return jnp.abs(sd - sd_exact) / jnp.maximum(sd_exact, floor)

        if self.variance_method == "samples":
            # var(x*) ~ mean_s (w*^T F_s)^2 with F_s = F_U,s - K W^T A^{-1}(W F_U,s + e_s).
            R = (F_U - op.fields(x[:, off + nc:])) / math.sqrt(S)
            steps = jnp.asarray(S)
        elif self.variance_method == "exact":  # no cache: every variance is a CG solve
            R = jnp.zeros((n if timed else self.grid.size, 0), X.dtype)
            steps = jnp.asarray(0)
        else:
            # LOVE on the grid: A^{-1} ~ V T^{-1} V^T (Lanczos from the mean cross-covariance),
            # R = K W^T V L^{-T} with T = L L^T. The rank grows, love_rank steps at a time, until
            # the check points' standard deviations are within love_max_error of the exact ones.
            start = op.kernel_mm(jnp.full((n, 1), 1.0 / n, X.dtype))[:, 0]

            def sd_love(V, d, e):
                P = t_matmul(V, Kc)
                return jnp.sqrt(jnp.maximum(prior_c - jnp.sum(P * tridiagonal_solve(d, e, P), axis=0), 0.0))

            def check(V, d, e):
                return jnp.max(jnp.where(chosen, errors(sd_love(V, d, e)), 0.0)) - self.love_max_error

            V, d, e, steps, _ = lanczos_checked(op.mm, start, self.love_rank_cap(n), check, self.love_rank)
            T = jnp.diag(d) + jnp.diag(e, 1) + jnp.diag(e, -1)
            Lt = jnp.linalg.cholesky(T)
            VL = jax.scipy.linalg.solve_triangular(Lt, V.T, lower=True).T  # V L^{-T}
            # With time slices the cache stays in data space (TimeSlicePosterior), else on the grid.
            R = VL if timed else _grid_columns(op.grid_op, op.interp, VL, 64)
        posterior = TimeSlicePosterior if timed else SKIPosterior
        post = posterior(kernel, op, alpha, op.fields(alpha), R, lml, {}, self, blocks)
        if self.variance_method == "exact":
            err_all = jnp.full((nc,), jnp.nan, X.dtype)
        elif timed:
            err_all = errors(sd_love(V, d, e))  # what var_cached gives at Xc, from the check columns
        else:
            err_all = errors(jnp.sqrt(post.var_cached(Xc)))
        err = err_all[half:] if nc > 1 else err_all
        if self.variance_method in ("auto", "love"):
            jax.debug.callback(functools.partial(_warn_love, tol=self.love_max_error, method=self.variance_method,
                                                 cap=self.love_rank_cap(n), exact_max=self.exact_var_max),
                               jnp.max(err), steps)
        elif self.variance_method == "samples":
            jax.debug.callback(functools.partial(_warn_samples, S=self.n_variance_samples),
                               jnp.max(err), op.grid_op.embedding_negativity())
        ie = _interpolation_error(kernel, op, X, self, k_interp)
        stats = dict(iterations=res.iterations, relative_residual=jnp.max(res.relative_residual),
                     converged=res.converged, logdet_stderr=stderr, love_steps=steps, love_err_median=jnp.median(err),
                     love_err_max=jnp.max(err), interp_err_max=ie[0], interp_err_rms=ie[1])
        return eqx.tree_at(lambda p: p.stats, post, stats)


def _block_scales(kernel, grid, d: int) -> tuple:
    """Host side: the length scale per input column (the grid spacing where the kernel has none;
    ``inf``: a column the blocks never split)."""
    scales = length_scales(kernel, d)
    return _cell_scales(grid) if scales is None else tuple(float(v) for v in scales)


def _cell_scales(grid) -> tuple:
    """The grid spacing per axis (``inf`` on an axis of one node)."""
    return tuple(float(h) if m > 1 else math.inf for h, m in zip(np.asarray(grid.spacing), grid.shape))


def _white(kernel, Xs):
    from ..operators import cross_diagonal

    return kernel.diag(Xs) - cross_diagonal(kernel, Xs)


def _grid_columns(gop, interp, V, chunk):
    """``K_UU W^T V`` ``(M, k)`` for ``V`` ``(n, k)``, ``chunk`` columns per FFT product (the
    circulant embedding of a whole block would hold ``embed_size x k`` complex numbers)."""
    n, k = V.shape
    c = int(min(chunk, k))
    nb = -(-k // c)
    Vp = jnp.pad(V, ((0, 0), (0, nb * c - k))).reshape(n, nb, c).transpose(1, 0, 2)
    out = jax.lax.map(lambda B: gop.mm(interp.scatter(B)), Vp)  # (nb, M, c)
    return out.transpose(1, 0, 2).reshape(out.shape[1], nb * c)[:, :k]


def _warn_love(err, steps, tol, method, cap, exact_max):
    """Host side: ``ConvergenceWarning`` when LOVE missed ``love_max_error`` at its largest rank."""
    err, steps = float(err), int(steps)
    if err <= tol:
        return
    then = ("predict(return_std=True) on more than exact_var_max={} points solves one CG system per "
            "point".format(exact_max) if method == "auto" else "the LOVE standard deviations are this far off")
    warnings.warn(
        f"solver='ski': LOVE standard deviations are off by up to {err:.3g} (relative) on the check points "
        f"after {steps} Lanczos steps (love_max_error={tol}, rank cap {cap}); {then}. Raise `love_max_rank`, or "
        "use variance_method='samples' (error ~ 1/sqrt(2 n_variance_samples)). solver_info_ has the figures.",
        ConvergenceWarning,
        stacklevel=2,
    )


# Held-out sample standard deviations this many sampling standard errors (1 / sqrt(2 S)) off are
# not sampling noise: over n_check / 2 points a false alarm has odds of about 1e-3.
_SAMPLES_ALARM = 4.0


def _warn_samples(err, negativity, S):
    """Host side: ``ConvergenceWarning`` when ``variance_method="samples"`` is further off on the
    held-out check points than its ``S`` draws explain (the grid prior's circulant embedding,
    its negative eigenvalues clipped, then draws from the wrong covariance)."""
    err, negativity = float(err), float(negativity)
    expected = 1.0 / math.sqrt(2 * S)
    if err <= _SAMPLES_ALARM * expected:
        return
    warnings.warn(
        f"solver='ski', variance_method='samples': standard deviations are off by up to {err:.3g} (relative) "
        f"on the held-out check points, where {S} draws explain about {expected:.2g}; the prior draws on the grid "
        f"use the kernel's smallest circulant embedding, and its negative eigenvalues ({negativity:.2g} of the "
        "largest) were clipped, so the draws have the wrong covariance (a kernel smooth over the grid's extent). "
        "Use variance_method='love' or 'auto'. solver_info_ has the figures.",
        ConvergenceWarning,
        stacklevel=2,
    )


def _interpolation_error(kernel, op, X, inference, key):
    """Largest and rms ``|k~(a, b) - k(a, b)| / k(a, a)`` over check pairs (module docstring),
    ``k~`` the kernel as ``op`` interpolates it (with time slices: in space only)."""
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
    approx = op.pairs(P, Q)
    exact = jax.vmap(lambda p, q: kernel.cross(p[None], q[None])[0, 0])(P, Q)
    ref = jnp.max(jax.vmap(lambda p: kernel.cross(p[None], p[None])[0, 0])(A))
    e = jnp.abs(approx - exact) / ref
    return jnp.max(e), jnp.sqrt(jnp.mean(e * e))


@eqx.filter_jit
def _condition(inference, kernel, X, Y, noise, key):
    return inference._condition(kernel, X, Y, noise, key)


SKIInference = SKI  # the name the estimator layer used before solver objects

register_solver("ski", SKI)
