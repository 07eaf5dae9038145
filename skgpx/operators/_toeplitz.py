"""A stationary kernel on a regular grid: (multilevel) Toeplitz, products by FFT.

For ``k(x, x') = f(x - x')`` on a regular ``d``-dimensional grid, ``K[i, j] = f((i - j) h)``
depends on the index difference only: a ``d``-level Toeplitz matrix, whatever ``f`` (a
Matérn of the 2-D distance as well as a product of 1-D kernels). Embedding each axis of
length ``m`` into a circle of ``N >= 2 m - 1`` points makes it a ``d``-level circulant
``C`` whose first column ``c`` holds ``f`` at the wrapped lags (``j`` for ``j <= N/2``,
``j - N`` above), so (Wood & Chan 1994; Dietrich & Newsam 1997)

    K V = crop(IFFT_d(FFT_d(c) * FFT_d(pad(V)))),     O(N log N) per column,

and, ``c`` being even, ``C = F* diag(lambda) F`` with real ``lambda = FFT_d(c)``: when
``lambda >= 0`` the crop of ``C^{1/2} z`` is an exact draw from ``N(0, K)``. Negative
eigenvalues of the embedding (it is not always positive semi-definite) are clipped in
``sqrt_mm`` and reported by :meth:`ToeplitzOperator.embedding_negativity`; a larger
embedding for the square root alone (:meth:`ToeplitzOperator.with_psd_embedding`) removes them
for kernels that have decayed within it.

Only ``c`` (``prod N`` kernel values) and its spectrum are stored, both differentiable in
the kernel's hyperparameters: no ``M x M`` array exists in the forward or backward pass.
"""

from __future__ import annotations

import math

import equinox as eqx  # noqa: F401 (static fields)
import jax
import jax.numpy as jnp
import numpy as np

from ._grid import AbstractGridOperator, Grid, register_grid_operator

__all__ = ["ToeplitzOperator", "fft_size"]


def fft_size(n: int) -> int:
    """Smallest 5-smooth integer ``>= n`` (fast FFT length)."""
    n = max(int(n), 1)
    while True:
        r = n
        for p in (2, 3, 5):
            while r % p == 0:
                r //= p
        if r == 1:
            return n
        n += 1


def _wrapped_lags(N: int) -> np.ndarray:
    j = np.arange(N)
    return np.where(j <= N // 2, j, j - N)


def _embedding(kernel, grid, N, dtype):
    """The kernel at the wrapped lags of an ``N``-point circulant embedding of ``grid``."""
    mesh = np.meshgrid(*[_wrapped_lags(n) * h for n, h in zip(N, grid.spacing)], indexing="ij")
    dtype = jnp.result_type(float) if dtype is None else dtype
    lags = jnp.asarray(np.stack([m.ravel() for m in mesh], axis=1), dtype)
    return kernel.cross(lags, jnp.zeros((1, grid.ndim), dtype))[:, 0].reshape(N)


class ToeplitzOperator(AbstractGridOperator):
    """``K(U, U)`` of a stationary ``kernel`` on ``grid`` (``d``-level Toeplitz).

    **Arguments:** ``kernel`` (stationary: ``skgpx.kernels.is_stationary``; its ``White``
    part is not included, as in ``kernel.cross``), ``grid`` (a :class:`Grid` with one axis per
    input column of ``kernel``). The embedding ``c`` and its spectrum are computed once here.
    """

    kernel: object
    grid: Grid
    column: jax.Array  # (N_1, ..., N_d): kernel at the wrapped lags
    spectrum: jax.Array  # (N_1, ..., N_d // 2 + 1): rfftn(column), real
    sqrt_shape: tuple = eqx.field(static=True)  # embedding of the square root (>= column's)

    def __init__(self, kernel, grid: Grid, dtype=None, sqrt_shape=None):
        self.kernel = kernel
        self.grid = grid
        N = tuple(1 if m == 1 else fft_size(2 * m - 1) for m in grid.shape)
        self.column = _embedding(kernel, grid, N, dtype)
        self.spectrum = jnp.fft.rfftn(self.column).real
        self.sqrt_shape = N if sqrt_shape is None else tuple(int(n) for n in sqrt_shape)

    @property
    def dtype(self):
        return self.column.dtype

    @property
    def padded_shape(self) -> tuple:
        return tuple(self.column.shape)

    @property
    def embed_size(self) -> int:
        return math.prod(self.sqrt_shape)

    def mm(self, V):
        k = V.shape[1]
        N = self.padded_shape
        axes = tuple(range(1, self.grid.ndim + 1))
        F = jnp.fft.rfftn(V.T.reshape((k,) + self.grid.shape), s=N, axes=axes)
        out = jnp.fft.irfftn(F * self.spectrum[None], s=N, axes=axes)
        out = out[(slice(None),) + tuple(slice(0, m) for m in self.grid.shape)]
        return out.reshape(k, -1).T

    def circulant_solve(self, V, shift):
        """``R (C_+ + shift I)^{-1} R^T V``: the grid block of the inverse of the circulant
        embedding (its spectrum clipped at 0) plus ``shift``, for ``V`` ``(M, k)``. An SPD
        approximation of ``(K + shift I)^{-1}`` (Chan-type circulant preconditioner), exact up
        to the embedding's wrap-around; one FFT pair per column."""
        k = V.shape[1]
        N = self.padded_shape
        axes = tuple(range(1, self.grid.ndim + 1))
        F = jnp.fft.rfftn(V.T.reshape((k,) + self.grid.shape), s=N, axes=axes)
        out = jnp.fft.irfftn(F / (jnp.maximum(self.spectrum, 0.0) + shift)[None], s=N, axes=axes)
        out = out[(slice(None),) + tuple(slice(0, m) for m in self.grid.shape)]
        return out.reshape(k, -1).T

    def _sqrt_spectrum(self):
        if self.sqrt_shape == self.padded_shape:
            return self.spectrum
        return jnp.fft.rfftn(_embedding(self.kernel, self.grid, self.sqrt_shape, self.dtype)).real

    def sqrt_mm(self, Z):
        lam = self._sqrt_spectrum()
        k = Z.shape[1]
        d = self.grid.ndim
        N = self.sqrt_shape
        axes = tuple(range(1, d + 1))
        F = jnp.fft.rfftn(Z.T.reshape((k,) + N), axes=axes)
        out = jnp.fft.irfftn(F * jnp.sqrt(jnp.maximum(lam, 0.0))[None], s=N, axes=axes)
        out = out[(slice(None),) + tuple(slice(0, m) for m in self.grid.shape)]
        return out.reshape(k, -1).T

    def embedding_negativity(self):
        """``max(-lambda_min, 0) / lambda_max`` of the square root's circulant embedding (0:
        prior draws exact; the clipped part is the draws' covariance error, relative)."""
        lam = self._sqrt_spectrum()
        return jnp.maximum(-jnp.min(lam), 0.0) / jnp.max(lam)

    def with_psd_embedding(self, tol: float = 1e-10, max_factor: int = 16) -> "ToeplitzOperator":
        """Host side: the same operator whose square root uses the smallest embedding, growing
        by 2x per axis up to ``max_factor`` times the minimal one, with
        :meth:`embedding_negativity` ``<= tol`` (the largest tried when none is)."""
        op = self
        base = self.padded_shape
        f = 1
        while float(op.embedding_negativity()) > tol and f < max_factor:
            f *= 2
            op = ToeplitzOperator(self.kernel, self.grid, self.dtype,
                                  tuple(1 if n == 1 else fft_size(f * n) for n in base))
        return op

    def entries(self, I, J):
        N = self.padded_shape
        i = jnp.unravel_index(I, self.grid.shape)
        j = jnp.unravel_index(J, self.grid.shape)
        return self.column[tuple(jnp.mod(a - b, n) for a, b, n in zip(i, j, N))]

    def diagonal(self):
        return jnp.full((self.grid.size,), self.column.reshape(-1)[0])


register_grid_operator(ToeplitzOperator, lambda operator: operator.diagonal())
