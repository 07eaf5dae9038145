"""Lineax operators for the noisy Gram matrix ``K(X, X) + diag(noise)`` of a GP.

Two final forms share one abstract base:

* :class:`DenseKernelOperator` materialises the matrix once (on a CPU a cached
  dense matvec is an order of magnitude cheaper than re-evaluating the kernel), for when
  ``n^2 * itemsize`` fits a memory budget;
* :class:`MatrixFreeKernelOperator` evaluates ``(K + diag(s)) @ V`` in square blocks
  with ``lax.scan`` and ``jax.checkpoint`` (:func:`symmetric_tiled_mm`: each block
  ``K_IJ``, ``I <= J``, is evaluated once and used for both ``K_IJ V_J`` and
  ``K_IJ^T V_I``, so half the kernel evaluations of row tiles): ``O(block^2 + n k)``
  memory in the forward *and* the backward pass, with several right-hand sides at once.

Both keep the kernel (hyperparameters traced) and the diagonal ``s`` (noise plus
any ``White`` term, traced) as leaves, and both expose :meth:`mm` for ``(n, k)``
blocks of right-hand sides. An optional ``mask`` (boolean ``(n,)``) flags the real rows
of a padded ``X`` (``skgpx.gp._fit``): padded rows and columns of ``K`` are zero and their
``s`` is one, a decoupled identity block. They are registered with lineax's dispatch functions
below, next to the classes, as lineax does for its own operators.
"""

from __future__ import annotations

import abc
import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx

from ._common import cross_diagonal, noise_diagonal, register_symmetric_psd, symmetric_tiled_mm

__all__ = ["AbstractKernelOperator", "DenseKernelOperator", "MatrixFreeKernelOperator"]


class AbstractKernelOperator(lx.AbstractLinearOperator):
    """``K(X, X) + diag(s)``: symmetric positive definite, ``(n,) -> (n,)``."""

    kernel: eqx.AbstractVar[object]
    X: eqx.AbstractVar[jax.Array]
    diag_noise: eqx.AbstractVar[jax.Array]
    mask: eqx.AbstractVar[jax.Array | None]

    @abc.abstractmethod
    def mm(self, V):
        """``(K + diag(s)) @ V`` for ``V`` of shape ``(n, k)``."""

    @property
    @abc.abstractmethod
    def kind(self) -> str:
        """``"dense"`` or ``"matrix-free"`` (reported in diagnostics)."""

    def mv(self, vector):
        return self.mm(vector[:, None])[:, 0]

    def transpose(self):
        return self

    def in_structure(self):
        return jax.ShapeDtypeStruct((self.X.shape[0],), self.diag_noise.dtype)

    def out_structure(self):
        return self.in_structure()


class DenseKernelOperator(AbstractKernelOperator):
    """The noisy Gram matrix, materialised once at construction."""

    kernel: object
    X: jax.Array
    diag_noise: jax.Array
    matrix: jax.Array
    mask: jax.Array | None

    def __init__(self, kernel, X, noise, mask=None):
        """**Arguments:** ``kernel`` (skgpx kernel), ``X`` ``(n, d)``, ``noise`` ``(n,)``, ``mask``
        (``None`` or boolean ``(n,)``: real rows)."""
        self.kernel = kernel
        self.X = X
        self.mask = mask
        self.diag_noise = _masked_noise(noise_diagonal(kernel, X, noise), mask)
        K = kernel.cross(X, X, mask, mask)
        self.matrix = K.at[jnp.diag_indices(X.shape[0])].add(self.diag_noise)

    @property
    def kind(self) -> str:
        return "dense"

    def mm(self, V):
        return self.matrix @ V

    def as_matrix(self):
        return self.matrix


class MatrixFreeKernelOperator(AbstractKernelOperator):
    """The noisy Gram matrix, evaluated tile by tile on every product (never ``n x n``)."""

    kernel: object
    X: jax.Array
    diag_noise: jax.Array
    tile_size: int | None = eqx.field(static=True)
    mask: jax.Array | None

    def __init__(self, kernel, X, noise, tile_size: int | None = None, mask=None):
        """**Arguments:** ``kernel``, ``X`` ``(n, d)``, ``noise`` ``(n,)``, ``tile_size``
        (side of the square kernel blocks, one pair of blocks per ``lax.scan`` step;
        ``None``: :func:`~skgpx.operators.auto_block_size`, ~1M kernel entries per block),
        ``mask`` (``None`` or boolean ``(n,)``: real rows)."""
        self.kernel = kernel
        self.X = X
        self.mask = mask
        self.diag_noise = _masked_noise(noise_diagonal(kernel, X, noise), mask)
        self.tile_size = tile_size

    @property
    def kind(self) -> str:
        return "matrix-free"

    def mm(self, V):
        m = None if self.mask is None else self.mask[:, None]
        KV = symmetric_tiled_mm(self.kernel, self.X, V if m is None else jnp.where(m, V, 0.0), self.tile_size)
        return (KV if m is None else jnp.where(m, KV, 0.0)) + self.diag_noise[:, None] * V

    def as_matrix(self):
        # Explicit request only (tests, debugging): this is the one place that forms n x n.
        K = self.kernel.cross(self.X, self.X, self.mask, self.mask)
        return K.at[jnp.diag_indices(self.X.shape[0])].add(self.diag_noise)


def _masked_noise(s, mask):
    # Padded rows: unit diagonal (their kernel rows and columns are zero).
    return s if mask is None else jnp.where(mask, s, 1.0)


# -- lineax dispatch ----------------------------------------------------------------------


def _diagonal(operator):
    d = cross_diagonal(operator.kernel, operator.X)
    return (d if operator.mask is None else jnp.where(operator.mask, d, 0.0)) + operator.diag_noise


for _cls in (DenseKernelOperator, MatrixFreeKernelOperator):
    register_symmetric_psd(_cls, _diagonal)

lx.materialise.register(DenseKernelOperator)(lambda operator: operator)


@lx.materialise.register(MatrixFreeKernelOperator)
def _(operator):
    # Never densify behind the user's back: lineax's direct solvers (LU, Cholesky, the
    # AutoLinearSolver) call materialise, which forms the n x n matrix here, so say so.
    n = operator.X.shape[0]
    warnings.warn(
        f"Materialising a MatrixFreeKernelOperator forms its {n} x {n} Gram matrix "
        f"({n * n * operator.diag_noise.dtype.itemsize / 2**20:.1f} MiB). Solve it with `skgpx.solvers.pcg` "
        "(or lineax.CG) to stay matrix-free, or build a DenseKernelOperator explicitly.",
        UserWarning,
        stacklevel=2,
    )
    # diag_noise holds the kernel's diagonal-only part too; the dense operator adds it back
    noise = operator.diag_noise - noise_diagonal(operator.kernel, operator.X, 0.0)
    return DenseKernelOperator(operator.kernel, operator.X, noise, operator.mask)


@lx.tridiagonal.register(DenseKernelOperator)
def _(operator):
    M = operator.matrix
    return jnp.diagonal(M), jnp.diagonal(M, 1), jnp.diagonal(M, -1)


@lx.tridiagonal.register(MatrixFreeKernelOperator)
def _(operator):
    d = _diagonal(operator)
    X = operator.X
    off = jax.vmap(lambda a, b: operator.kernel.cross(a[None], b[None])[0, 0])(X[:-1], X[1:])
    if operator.mask is not None:
        off = jnp.where(operator.mask[:-1] & operator.mask[1:], off, 0.0)
    return d, off, off
