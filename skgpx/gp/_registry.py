"""Solver names -> default solver objects, so ``solver="cg"`` and ``solver=CG()`` are the same.

Each back-end module registers its names with ``register_solver(name, factory)`` where
``factory()`` returns the solver object (an :class:`AbstractInference`) that the name
stands for, e.g. ``"cg-dense"`` -> ``CG(operator="dense")``. Options are set on the object
itself (``CG(tol=1e-4)``), never through the name.
"""

from __future__ import annotations

from typing import Callable

from ._abstract import AbstractInference

__all__ = ["register_solver", "make_inference", "available_solvers"]

_FACTORIES: dict[str, Callable[[], AbstractInference]] = {}


def register_solver(name: str, factory: Callable[[], AbstractInference] | None = None):
    """Register ``factory() -> AbstractInference`` under ``name`` (usable as a decorator)."""

    def deco(f):
        _FACTORIES[name] = f
        return f

    return deco if factory is None else deco(factory)


def available_solvers() -> list[str]:
    return sorted(_FACTORIES)


def make_inference(solver, options: dict | None = None) -> AbstractInference:
    """The solver object for ``solver`` (a registered name or an instance), with ``options`` replaced."""
    if isinstance(solver, AbstractInference):
        return solver.replace(**options) if options else solver
    if isinstance(solver, str) and solver in _FACTORIES:
        inference = _FACTORIES[solver]()
        return inference.replace(**options) if options else inference
    raise ValueError(
        f"Unknown solver {solver!r}. Use one of {available_solvers() + ['auto']} or a solver object "
        "such as skgpx.gp.CG(tol=1e-4) (any skgpx.gp.AbstractInference)."
    )
