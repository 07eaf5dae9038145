"""Name -> inference-method factory, so the estimator's ``solver="..."`` stays open.

Each back-end module registers a factory ``f(options) -> AbstractInference``
where ``options`` is the estimator's parameter dict (``n_components``, ``tol``,
``max_iter``, ``preconditioner_rank``, ``random_state``, ...). A factory reads only
the options that concern it.
"""

from __future__ import annotations

from typing import Callable

from ._abstract import AbstractInference

__all__ = ["register_solver", "make_inference", "available_solvers"]

_FACTORIES: dict[str, Callable[[dict], AbstractInference]] = {}


def register_solver(name: str):
    """Decorator: register ``factory(options) -> AbstractInference`` under ``name``."""

    def deco(factory):
        _FACTORIES[name] = factory
        return factory

    return deco


def available_solvers() -> list[str]:
    return sorted(_FACTORIES)


def make_inference(solver, options: dict) -> AbstractInference:
    """Build the inference method for ``solver`` (a registered name or an instance)."""
    if isinstance(solver, AbstractInference):
        return solver
    if isinstance(solver, str) and solver in _FACTORIES:
        return _FACTORIES[solver](options)
    raise ValueError(
        f"Unknown solver {solver!r}. Use one of {available_solvers() + ['auto']} or an "
        "`skgpx.gp.AbstractInference` instance."
    )
