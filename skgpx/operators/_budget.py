"""The memory budget of a materialised Gram matrix (no JAX here: ``solver="auto"`` reads it first)."""

from __future__ import annotations

import os

__all__ = ["available_memory_bytes", "dense_memory_budget", "dense_fits"]

_GIB = 2**30


def available_memory_bytes() -> int:
    """Memory currently available to this process (psutil if present, else sysconf)."""
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # pragma: no cover - psutil is a test/bench dependency only
        try:
            return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return 4 * _GIB


def dense_memory_budget() -> int:
    """Bytes a materialised Gram matrix may take: ``min(25% of available memory, 8 GiB)``."""
    return int(min(0.25 * available_memory_bytes(), 8 * _GIB))


def dense_fits(n: int, itemsize: int = 8, budget: int | None = None) -> bool:
    """Whether an ``n x n`` Gram matrix of ``itemsize``-byte floats fits the budget."""
    budget = dense_memory_budget() if budget is None else budget
    return n * n * itemsize <= budget
