"""Pieces shared by the kernel operators: the noise diagonal and the tiled cross product.

The noisy Gram matrix of a GP is ``K(X, X) + diag(s)`` where ``s`` is the
observation noise plus any diagonal-only kernel term (``White``). The
vectorised ``kernel._cross`` has no ``White`` contribution (as scikit-learn's
``k(X, Y)``), so :func:`noise_diagonal` adds ``kernel.diag(X) - diag(cross(X, X))``
to the noise: with it, ``cross`` rows plus ``s`` reproduce ``kernel.gram(X) + diag(noise)``
exactly, without ever forming the Gram matrix.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = ["noise_diagonal", "cross_diagonal", "tiled_cross_mm", "auto_tile_size", "row_tiles"]

# Elements of one kernel tile (rows x n). 2^22 float64 = 32 MiB: large enough for a
# GEMM-sized step, small enough that the handful of temporaries per tile stay in memory.
_TILE_ELEMENTS = 2**22


def auto_tile_size(n_rows: int, n_cols: int) -> int:
    """Rows per tile so that one ``(tile, n_cols)`` kernel block holds about 4M entries."""
    t = max(8, _TILE_ELEMENTS // max(n_cols, 1))
    return int(min(t, max(n_rows, 1)))


def row_tiles(A, tile_size: int, fill=None):
    """``A`` ``(m, ...)`` as ``(n_tiles, tile_size, ...)``, padded at the end.

    Padded rows are copies of ``A[0]`` (``fill=None``: finite kernel inputs) or ``fill``
    (e.g. 0.0 for weights that must contribute nothing). Outputs of padded rows are
    dropped by the caller with ``[:m]``.
    """
    m = A.shape[0]
    n_tiles = math.ceil(m / tile_size)
    pad = n_tiles * tile_size - m
    if pad:
        extra = jnp.broadcast_to(A[:1], (pad,) + A.shape[1:]) if fill is None else jnp.full(
            (pad,) + A.shape[1:], fill, A.dtype)
        A = jnp.concatenate([A, extra], axis=0)
    return A.reshape((n_tiles, tile_size) + A.shape[1:])


def cross_diagonal(kernel, X):
    """``diag(kernel._cross(X, X))`` evaluated row by row (``O(n)`` kernel evaluations)."""
    return jax.vmap(lambda x: kernel._cross(x[None], x[None])[0, 0])(X)


def noise_diagonal(kernel, X, noise):
    """Diagonal ``s`` with ``kernel.gram(X) + diag(noise) == cross(X, X) + diag(s)``."""
    return noise + (kernel.diag(X) - cross_diagonal(kernel, X))


def tiled_cross_mm(kernel, Xs, X, V, tile_size: int | None = None, checkpoint: bool = True):
    """``kernel._cross(Xs, X) @ V`` without forming the ``(m, n)`` matrix.

    Rows of ``Xs`` are processed in tiles of ``tile_size`` by ``lax.scan`` (one
    ``(tile, n)`` kernel block and one GEMM per step). ``Xs`` is padded to a
    multiple of the tile with copies of its first row; the padded outputs are
    discarded, so no row is dropped and gradients of padded rows are zero. With
    ``checkpoint=True`` each tile is recomputed in the backward pass, so the
    reverse-mode memory is bounded by one tile too.

    **Arguments:** ``Xs`` ``(m, d)``, ``X`` ``(n, d)``, ``V`` ``(n, k)``.
    **Returns:** ``(m, k)``.
    """
    m = Xs.shape[0]
    n = X.shape[0]
    T = auto_tile_size(m, n) if tile_size is None else int(min(tile_size, m))
    tiles = row_tiles(Xs, T)

    def block(kernel, Xt, X, V):
        return kernel._cross(Xt, X) @ V

    if checkpoint:
        block = jax.checkpoint(block)

    def step(carry, Xt):
        return carry, block(kernel, Xt, X, V)

    _, out = jax.lax.scan(step, None, tiles)
    return out.reshape(-1, V.shape[1])[:m]
