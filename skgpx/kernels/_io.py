"""Save and load kernel hyperparameters with Equinox leaf serialisation.

Only the array leaves (hyperparameter values) are written; the structure and the
static fields (bounds, ``nu``, batch sizes, ...) come from the ``like`` kernel
given to :func:`load`, as with ``eqx.tree_deserialise_leaves``.
"""

from __future__ import annotations

import equinox as eqx

from ._base import AbstractKernel

__all__ = ["save", "load"]


def save(path, kernel: AbstractKernel) -> None:
    """Write the hyperparameter values of ``kernel`` to ``path`` (a file name or binary file)."""
    if not isinstance(kernel, AbstractKernel):
        raise TypeError(f"save(kernel=...) must be an skgpx kernel, got {type(kernel).__name__}.")
    eqx.tree_serialise_leaves(path, kernel)


def load(path, like: AbstractKernel) -> AbstractKernel:
    """Read values saved by :func:`save` into a kernel with the structure of ``like``.

    ``like`` must have the same kernel structure and leaf shapes as the saved
    kernel (e.g. the same constructor call with default values).
    """
    if not isinstance(like, AbstractKernel):
        raise TypeError(f"load(like=...) must be an skgpx kernel of the saved structure, got {type(like).__name__}.")
    try:
        return eqx.tree_deserialise_leaves(path, like)
    except RuntimeError as err:  # Equinox reports shape/dtype changes as RuntimeError
        raise ValueError(
            f"load(path={path!r}): {err} Build `like` with the same structure (ARD length scales, "
            "batch sizes, distinct hyperparameters) and dtype as the saved kernel."
        ) from err
