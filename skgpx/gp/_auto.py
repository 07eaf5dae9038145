"""``solver="auto"``: choose a back-end from the problem size and available memory.

Six outcomes, reported in the estimator's ``solver_``:

* ``"host-numpy"`` for a scikit-learn kernel, in float64 on the CPU, below
  ``HOST_MAX_N`` (512) rows: exact Cholesky in NumPy/SciPy through the kernel's own
  ``__call__``, which is scikit-learn's own computation. There is nothing to compile, and at
  this size XLA's compile (seconds, once per kernel structure) and dispatch cost more than
  the maths (figures: docs/performance.md, "Latency");
* ``"cholesky"`` (compiled) while three ``n x n`` matrices (Gram, factor, workspace) fit the memory
  budget and ``n <= CHOLESKY_MAX_N`` (5 000) when the hyperparameters are optimised, or
  ``n <= CHOLESKY_MAX_N_FIXED`` (15 000) when they are not (``optimizer=None`` or nothing
  free to learn). One factorisation is cheap well past 5 000 points, but an optimiser
  repeats it, with the inverse for the gradient, at every step, where a CG evaluation
  costs a fraction of that (figures: docs/performance.md, "Choosing a solver");
* ``"ski"`` beyond that range when the inputs are a regular lattice with missing cells (a
  gridded product: :func:`skgpx.operators.lattice_of`) of at most ``SKI_MAX_FILL`` times as many
  cells as observations, and the kernel has grid structure (stationary: Toeplitz; or a
  product over ``ActiveDims`` groups: Kronecker). On a lattice the masked-grid operator *is* the
  exact GP's matrix (no interpolation), a product costs one FFT instead of ``n^2`` kernel
  evaluations, and CG runs with the circulant preconditioner (figures: docs/performance.md,
  "Structured grids"). Scattered inputs never get ``"ski"`` from ``"auto"``: there it is an
  approximation (its interpolation error is reported), so it is asked for by name;
* ``"cg-time-groups"`` beyond, when the kernel is a space x time product (``ActiveDims``
  factors, one over a single column) and that column takes 2 to ``MAX_TIME_GROUPS`` distinct
  values (daily passes, daily maps): CG on the time-group operator
  (:class:`skgpx.operators.TimeGroupOperator`, ``CG(time_dim="auto")``), exact like plain CG, with
  the spatial kernel evaluated once per pair and the temporal one on the ``G x G`` group times.
  Chosen only where it keeps plain CG's operator kind (its dense form holds two ``n x n``
  matrices) and, matrix-free, pads the groups to at most ``TIME_GROUP_MAX_PAD`` times ``n`` rows
  (figures: docs/performance.md, "Time groups");
* ``"cg-dense"`` beyond, while one ``n x n`` Gram matrix fits the budget: preconditioned CG on
  a materialised Gram matrix (a cached dense product is an order of magnitude cheaper than
  re-evaluating the kernel on a CPU);
* ``"cg-matrix-free"`` past that: preconditioned CG on the tiled matrix-free operator
  (``O(tile * n)`` memory).

The budget is ``skgpx.operators.dense_memory_budget()``: ``min(25% of available memory, 8 GiB)``.
"""

from __future__ import annotations

import math

import numpy as np

from ..operators._budget import dense_fits, dense_memory_budget
from ._host import HOST_SOLVER

__all__ = ["select_solver", "masked_grid_fits", "time_groups_fit", "CHOLESKY_MAX_N", "CHOLESKY_MAX_N_FIXED",
           "HOST_MAX_N", "SKI_MAX_FILL", "MAX_TIME_GROUPS", "TIME_GROUP_MAX_PAD"]

CHOLESKY_MAX_N = 5000
CHOLESKY_MAX_N_FIXED = 15_000
# Below this, an optimised fit's arithmetic in NumPy costs less than compiling the exact
# path's programs (seconds, once per kernel structure); above, the compiled path wins.
HOST_MAX_N = 512
# "auto" uses the masked grid while the lattice has at most this many cells per observation
# (each CG product costs an FFT over the whole lattice).
SKI_MAX_FILL = 8
SKI_MAX_GRID = 2**22
# "auto" uses time groups for at most this many distinct times (CG's max_time_groups default).
MAX_TIME_GROUPS = 64
# Matrix-free time groups pad each group to whole blocks and a product costs (padded rows)^2: at
# the benchmark's 1.125 one evaluation already costs what plain CG's does (docs/performance.md).
TIME_GROUP_MAX_PAD = 1.15


def masked_grid_fits(kernel, X) -> bool:
    """Host side: whether ``X`` ``(n, d)`` lies on a regular lattice of at most
    ``SKI_MAX_FILL * n`` (and ``2**22``) cells, one observation per cell, and ``kernel`` (an
    skgpx kernel with concrete hyperparameters) has a structured operator on it."""
    from ..operators import grid_operator, lattice_of

    X = np.asarray(X, dtype=np.float64)
    n = X.shape[0]
    lattice = lattice_of(X, min(SKI_MAX_GRID, SKI_MAX_FILL * n))
    if lattice is None or np.unique(X, axis=0).shape[0] != n:
        return False
    try:
        grid_operator(kernel, lattice)
    except (ValueError, TypeError):
        return False
    return True


def time_groups_fit(kernel, X, itemsize: int = 8, memory_budget: int | None = None) -> bool:
    """Host side: whether ``"auto"`` runs CG on the time-group operator for ``kernel`` (an skgpx
    kernel) on ``X`` ``(n, d)``: :func:`skgpx.operators.find_time_groups` finds 2 to
    ``MAX_TIME_GROUPS`` groups, the time-group operator is dense exactly when plain CG's is (its
    dense form holds two ``n x n`` matrices), and matrix-free its padded rows are at most
    ``TIME_GROUP_MAX_PAD * n``."""
    from ..operators import find_time_groups, group_block_size

    X = np.asarray(X)
    found = find_time_groups(kernel, X, "auto", MAX_TIME_GROUPS)
    if found is None:
        return False
    budget = dense_memory_budget() if memory_budget is None else int(memory_budget)
    n, sizes = X.shape[0], found[1]
    if dense_fits(n, itemsize, budget):
        return dense_fits(math.ceil(math.sqrt(2) * n), itemsize, budget)
    block = group_block_size(sizes)
    return sum(block * math.ceil(c / block) for c in sizes) <= TIME_GROUP_MAX_PAD * n


def select_solver(
    n_samples: int, n_features: int, itemsize: int = 8, memory_budget: int | None = None, optimize: bool = True,
    kernel=None, X=None, host: bool = False, time_groups: bool = True,
) -> str:
    """Name of the solver ``"auto"`` resolves to for a training set of ``n_samples`` rows.

    **Arguments:** ``n_samples``, ``n_features`` (unused today: kernel cost is linear in it for
    every back-end), ``itemsize`` (bytes per float), ``memory_budget`` (bytes; ``None``:
    :func:`skgpx.operators.dense_memory_budget`), ``optimize`` (whether the
    hyperparameters will be optimised: many factorisations instead of one), ``kernel`` and
    ``X`` (the skgpx kernel and the training inputs; both needed for ``"ski"``), ``host``
    (whether the NumPy host path can run the problem: a scikit-learn kernel, float64, the CPU),
    ``time_groups`` (whether the time-group operator may run: not under a device mesh).

    **Returns:** ``"host-numpy"``, ``"cholesky"``, ``"ski"``, ``"cg-time-groups"``, ``"cg-dense"`` or
    ``"cg-matrix-free"``.
    """
    budget = dense_memory_budget() if memory_budget is None else int(memory_budget)
    n = int(n_samples)
    if host and n < HOST_MAX_N:
        return HOST_SOLVER
    max_n = CHOLESKY_MAX_N if optimize else CHOLESKY_MAX_N_FIXED
    if n <= max_n and 3 * n * n * itemsize <= budget:
        return "cholesky"
    if kernel is not None and X is not None and masked_grid_fits(kernel, X):
        return "ski"
    if time_groups and kernel is not None and X is not None and time_groups_fit(kernel, X, itemsize, budget):
        return "cg-time-groups"
    if dense_fits(n, itemsize, budget):
        return "cg-dense"
    return "cg-matrix-free"
