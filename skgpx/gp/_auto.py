"""``solver="auto"``: choose a back-end from the problem size and available memory.

Three outcomes, reported in the estimator's ``solver_`` (each is a registered solver name):

* ``"cholesky"`` while ``n <= CHOLESKY_MAX_N`` and three ``n x n`` matrices (Gram, factor,
  workspace) fit the memory budget: exact dense Cholesky, the fastest exact method at this
  size (measured on 2 CPU cores: Gram + factor + solve 17.5 s at n = 5 000, but 91 s at
  10 000 and 384 s / 12.3 GB at 20 000: ``O(n^3)`` time, ``n^2`` memory);
* ``"cg-dense"`` beyond, while one ``n x n`` Gram matrix fits the budget: preconditioned CG on
  a materialised Gram matrix (a cached dense product is ~13x cheaper than re-evaluating
  the kernel on a CPU);
* ``"cg-matrix-free"`` past that: preconditioned CG on the tiled matrix-free operator
  (``O(tile * n)`` memory).

The budget is ``skgpx.operators.dense_memory_budget()``: ``min(25% of available memory, 8 GiB)``.
"""

from __future__ import annotations

from ..operators import dense_fits, dense_memory_budget

__all__ = ["select_solver", "CHOLESKY_MAX_N"]

CHOLESKY_MAX_N = 5000


def select_solver(n_samples: int, n_features: int, itemsize: int = 8, memory_budget: int | None = None) -> str:
    """Name of the solver ``"auto"`` resolves to for a training set of ``n_samples`` rows.

    **Arguments:** ``n_samples``, ``n_features`` (unused today: kernel cost is linear in it for
    every back-end), ``itemsize`` (bytes per float), ``memory_budget`` (bytes; ``None``:
    :func:`skgpx.operators.dense_memory_budget`).

    **Returns:** ``"cholesky"``, ``"cg-dense"`` or ``"cg-matrix-free"``.
    """
    budget = dense_memory_budget() if memory_budget is None else int(memory_budget)
    n = int(n_samples)
    if n <= CHOLESKY_MAX_N and 3 * n * n * itemsize <= budget:
        return "cholesky"
    if dense_fits(n, itemsize, budget):
        return "cg-dense"
    return "cg-matrix-free"
