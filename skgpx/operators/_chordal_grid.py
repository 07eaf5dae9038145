"""The ``Chordal`` kernel on a regular longitude-latitude grid: FFT in longitude, dense in latitude.

For a kernel of the chord between the 3-D points of the sphere that is isotropic in R^3
(``Chordal(Matern(l))``, ``Chordal(RBF(l))``...), the chord between ``(lon, lat)`` and
``(lon', lat')`` depends on the longitudes only through ``cos(lon - lon')``. On a grid of
``n_lon`` longitudes (spacing ``h``) by ``n_lat`` latitudes the covariance is therefore block
Toeplitz in longitude, ``K[(a, b), (a', b')] = C_{a - a'}[b, b']`` with ``n_lat x n_lat`` blocks
``C_l`` (``C_{-l} = C_l``, each symmetric):

* on a *global* grid (``n_lon h`` = 360 degrees or 2 pi) it is block *circulant*: ``l`` taken
  modulo ``n_lon``, no padding;
* on a regional one it is embedded in a block circulant of ``N >= 2 n_lon - 1`` longitudes
  (wrapped lags, as :class:`~skgpx.operators.ToeplitzOperator`), or, for exact prior draws, in the
  whole circle when the spacing divides it (:meth:`ChordalGridOperator.with_psd_embedding`).

A product is a real FFT along longitude, ``N/2 + 1`` independent ``n_lat x n_lat`` real
symmetric block products (the blocks' spectrum, ``rfft`` of ``C_l`` along ``l``) and the inverse
FFT: ``O(n_lat N log N + N n_lat^2)`` per column instead of ``(n_lon n_lat)^2``. Only the
``N`` blocks (``N n_lat^2`` kernel values) and their spectrum are stored; both are
differentiable in the hyperparameters. The square root for prior draws uses each frequency's
symmetric square root (eigenvalues clipped at zero): exact on a global grid.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..kernels import Chordal, Constant, White
from ..kernels._composite import Exponentiation, Product, Sum
from ..kernels._stationary import AbstractStationaryKernel, ExpSineSquared
from ._grid import AbstractGridOperator, Grid, register_grid_operator
from ._toeplitz import fft_size

__all__ = ["ChordalGridOperator", "chordal_structure"]


def _isotropic(kernel) -> bool:
    """Whether ``kernel`` on R^3 depends on ``|x - x'|`` only (rotation invariant)."""
    if isinstance(kernel, (Constant, White)):
        return True
    if isinstance(kernel, (AbstractStationaryKernel, ExpSineSquared)):
        return np.ndim(kernel.length_scale) == 0
    if isinstance(kernel, (Sum, Product)):
        return _isotropic(kernel.k1) and _isotropic(kernel.k2)
    if isinstance(kernel, Exponentiation):
        return _isotropic(kernel.kernel)
    return False


def chordal_structure(kernel):
    """``(lonlat_dims, degrees)`` when ``kernel`` (on two input columns) is built from ``Chordal``
    terms of isotropic kernels, with the same ``lonlat_dims`` and ``degrees``, and ``Constant``
    or ``White`` terms by sums, products and powers (so it depends on longitude only through
    the difference); ``None`` otherwise. Structure only (works on traced kernels)."""
    found = set()

    def walk(k):
        if isinstance(k, Chordal):
            found.add((k.lonlat_dims, k.degrees))
            return _isotropic(k.kernel)
        if isinstance(k, (Constant, White)):
            return True
        if isinstance(k, (Sum, Product)):
            return walk(k.k1) and walk(k.k2)
        if isinstance(k, Exponentiation):
            return walk(k.kernel)
        return False

    ok = walk(kernel)
    if not ok or len(found) != 1:
        return None
    (dims, degrees), = found
    return (dims, degrees) if sorted(dims) == [0, 1] else None


class ChordalGridOperator(AbstractGridOperator):
    """``K(U, U)`` of a :func:`chordal_structure` kernel on a 2-D (longitude, latitude) ``grid``.

    **Arguments:** ``kernel``, ``grid`` (two axes, in the kernel's input column order), ``dtype``.
    The longitude axis is global (circulant) when its ``shape * spacing`` is one full turn.
    """

    kernel: object
    grid: Grid
    blocks: jax.Array  # (N, n_lat, n_lat): C_l at the (wrapped) longitude lags
    spectrum: jax.Array  # (N // 2 + 1, n_lat, n_lat): rfft of the blocks along l, real symmetric
    lon_axis: int = eqx.field(static=True)
    periodic: bool = eqx.field(static=True)

    def __init__(self, kernel, grid: Grid, dtype=None, n_embed: int | None = None):
        """``n_embed``: longitudes of the circulant embedding of a regional grid (``None``: the
        smallest fast FFT length ``>= 2 n_lon - 1``; see :meth:`with_psd_embedding`)."""
        structure = chordal_structure(kernel)
        if structure is None or grid.ndim != 2:
            raise ValueError(
                f"ChordalGridOperator needs a 2-D (longitude, latitude) grid and a kernel built from Chordal terms "
                f"of isotropic kernels (and Constant/White), got {kernel!r} on a {grid.ndim}-D grid."
            )
        (lon, lat), degrees = structure
        n_lon, n_lat = grid.shape[lon], grid.shape[lat]
        h = grid.spacing[lon]
        turn = 360.0 if degrees else 2 * math.pi
        if n_embed is None:
            global_grid = n_lon > 1 and abs(n_lon * h - turn) <= 1e-9 * turn
            n_embed = n_lon if (global_grid or n_lon == 1) else fft_size(2 * n_lon - 1)
        N = int(n_embed)
        periodic = N > 1 and abs(N * h - turn) <= 1e-9 * turn  # the embedding is the full circle
        lags = np.arange(N) if periodic else np.where(np.arange(N) <= N // 2, np.arange(N), np.arange(N) - N)
        dtype = jnp.result_type(float) if dtype is None else dtype
        lats = grid.axis(lat)
        P = np.zeros((N, n_lat, 2))
        P[:, :, lon] = grid.origin[lon] + lags[:, None] * h
        P[:, :, lat] = lats[None, :]
        Q = np.zeros((n_lat, 2))
        Q[:, lon] = grid.origin[lon]
        Q[:, lat] = lats
        self.kernel, self.grid, self.lon_axis, self.periodic = kernel, grid, int(lon), bool(periodic)
        self.blocks = kernel.cross(jnp.asarray(P.reshape(-1, 2), dtype), jnp.asarray(Q, dtype)).reshape(N, n_lat, n_lat)
        self.spectrum = jnp.fft.rfft(self.blocks, axis=0).real

    @property
    def dtype(self):
        return self.blocks.dtype

    @property
    def n_embed(self) -> int:
        return self.blocks.shape[0]

    @property
    def embed_size(self) -> int:
        return self.n_embed * self.blocks.shape[1]

    def _to_lon_lat(self, V):
        """``(M, k)`` in grid order -> ``(n_lon, n_lat, k)``."""
        T = V.reshape(tuple(self.grid.shape) + (V.shape[1],))
        return T if self.lon_axis == 0 else jnp.swapaxes(T, 0, 1)

    def _from_lon_lat(self, T):
        T = T if self.lon_axis == 0 else jnp.swapaxes(T, 0, 1)
        return T.reshape(-1, T.shape[-1])

    def _filter(self, T, spectrum, n_out):
        N = self.n_embed
        F = jnp.fft.rfft(T, n=N, axis=0)  # (N/2 + 1, n_lat, k) complex
        spectrum = spectrum.astype(F.real.dtype)
        G = jnp.einsum("qab,qbk->qak", spectrum, F.real) + 1j * jnp.einsum("qab,qbk->qak", spectrum, F.imag)
        return jnp.fft.irfft(G, n=N, axis=0)[:n_out]

    def mm(self, V):
        n_lon = self.grid.shape[self.lon_axis]
        return self._from_lon_lat(self._filter(self._to_lon_lat(V), self.spectrum, n_lon))

    def _sqrt_spectrum(self):
        lam, U = jnp.linalg.eigh(self.spectrum)
        return jnp.einsum("qab,qb,qcb->qac", U, jnp.sqrt(jnp.maximum(lam, 0.0)), U)

    def sqrt_mm(self, Z):
        n_lon = self.grid.shape[self.lon_axis]
        T = Z.reshape(self.n_embed, self.blocks.shape[1], Z.shape[1])
        return self._from_lon_lat(self._filter(T, self._sqrt_spectrum(), n_lon))

    def embedding_negativity(self):
        """``max(-lambda_min, 0) / lambda_max`` over the frequencies' blocks (0: prior draws exact;
        always 0 up to rounding on a global grid)."""
        lam = jnp.linalg.eigvalsh(self.spectrum)
        return jnp.maximum(-jnp.min(lam), 0.0) / jnp.max(lam)

    def with_psd_embedding(self, tol: float = 1e-10, max_factor: int = 16) -> "ChordalGridOperator":
        """Host side: on a regional grid whose longitude spacing divides a full turn, and whose
        Toeplitz embedding is not positive semi-definite to ``tol``, the same operator embedded
        in the whole circle of longitudes: the regional matrix is then a principal block of the
        global (block-circulant, positive semi-definite) one, so prior draws are exact. ``self``
        otherwise (a widened embedding does not help on the sphere: the chord comes back)."""
        if self.periodic or float(self.embedding_negativity()) <= tol:
            return self
        _, degrees = chordal_structure(self.kernel)
        turns = (360.0 if degrees else 2 * math.pi) / self.grid.spacing[self.lon_axis]
        n = int(round(turns))
        if abs(turns - n) > 1e-9 * turns or n < self.grid.shape[self.lon_axis]:
            return self
        return ChordalGridOperator(self.kernel, self.grid, self.dtype, n)

    def entries(self, I, J):
        i = jnp.unravel_index(I, self.grid.shape)
        j = jnp.unravel_index(J, self.grid.shape)
        lon, lat = self.lon_axis, 1 - self.lon_axis
        return self.blocks[jnp.mod(i[lon] - j[lon], self.n_embed), i[lat], j[lat]]

    def diagonal(self):
        d = jnp.diagonal(self.blocks[0])  # (n_lat,)
        n_lon = self.grid.shape[self.lon_axis]
        T = jnp.broadcast_to(d[None, :, None], (n_lon, d.shape[0], 1))
        return self._from_lon_lat(T)[:, 0]


register_grid_operator(ChordalGridOperator, lambda operator: operator.diagonal())
