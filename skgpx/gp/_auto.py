"""``solver="auto"``: choose a back-end from the problem size and available memory.

* ``n <= CHOLESKY_MAX_N``: exact dense Cholesky, the fastest exact method at this size
  (measured on 2 CPU cores: Gram + factor + solve 17.5 s at n = 5 000, but 91 s at 10 000 and
  384 s / 12.3 GB at 20 000, ``O(n^3)`` time and ``n^2`` memory);
* beyond: ``"cg"`` (preconditioned CG, exact to its tolerance). The CG back-end itself keeps a
  dense Gram matrix while ``n^2 * itemsize <= min(25% of available memory, 8 GiB)``
  (a cached dense product is ~13x cheaper than re-evaluating the kernel) and switches to
  the matrix-free tiled operator past that; its ``diagnostics()["operator"]`` says which.
"""

from __future__ import annotations

__all__ = ["select_solver", "CHOLESKY_MAX_N"]

CHOLESKY_MAX_N = 5000


def select_solver(n_samples: int, n_features: int, itemsize: int = 8) -> str:
    """Name of the solver ``"auto"`` resolves to for a training set of ``n_samples`` rows."""
    return "cholesky" if n_samples <= CHOLESKY_MAX_N else "cg"
