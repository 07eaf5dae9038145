"""Choosing between the dense and the matrix-free kernel operator by memory."""

from __future__ import annotations

from .._mesh import context_row_mesh
from ._budget import available_memory_bytes, dense_fits, dense_memory_budget
from ._kernel_operator import DenseKernelOperator, MatrixFreeKernelOperator
from ._sharded import ShardedKernelOperator

__all__ = ["available_memory_bytes", "dense_memory_budget", "dense_fits", "operator_kind", "kernel_operator"]


def operator_kind(kind: str, n: int, itemsize: int = 8) -> str:
    """``kind`` with ``"auto"`` resolved: ``"dense"`` while :func:`dense_fits`, else ``"matrix-free"``.

    Under a context mesh of ``p`` devices (see :func:`kernel_operator`) the budget is per device:
    dense while ``n * ceil(n / p)`` entries fit one device's budget."""
    if kind == "auto":
        mesh = context_row_mesh()
        p = 1 if mesh is None else int(mesh.size)
        fits = n * -(-n // p) * itemsize <= dense_memory_budget()
        return "dense" if fits else "matrix-free"
    return kind


def kernel_operator(kernel, X, noise, kind: str = "auto", tile_size: int | None = None, mask=None):
    """``K(X, X) + diag(noise)`` as a lineax operator.

    ``kind`` is ``"dense"``, ``"matrix-free"`` or ``"auto"`` (dense while
    :func:`dense_fits`). The decision uses static shapes only, so it is safe under ``jit``.
    Under a context mesh of more than one device (``jax.set_mesh``; ``device=[...]`` on the
    estimators) the operator is a :class:`ShardedKernelOperator` of that layout, its rows split
    over the devices (``"auto"`` budgets the rows of one device). ``mask`` (``None`` or boolean
    ``(n,)``, real rows of a padded ``X``): padded rows form an identity block (dense and
    matrix-free operators; the sharded one runs unpadded).
    """
    kind = operator_kind(kind, X.shape[0], X.dtype.itemsize)
    mesh = context_row_mesh()
    if mesh is not None and kind in ("dense", "matrix-free"):
        if mask is not None:
            raise ValueError("The sharded kernel operator takes no row `mask`: pass the training set unpadded.")
        return ShardedKernelOperator(kernel, X, noise, mesh, kind, tile_size)
    if kind == "dense":
        return DenseKernelOperator(kernel, X, noise, mask)
    if kind == "matrix-free":
        return MatrixFreeKernelOperator(kernel, X, noise, tile_size, mask)
    raise ValueError(f"`operator` must be 'auto', 'dense' or 'matrix-free', got {kind!r}.")
