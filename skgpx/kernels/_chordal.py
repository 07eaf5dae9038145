"""Chordal embedding of longitude/latitude: a positive-definite way to put kernels on the sphere.

A Matérn kernel of the great-circle (geodesic) distance is not positive definite
on the sphere for ``nu > 1/2`` (Gneiting 2013, "Strictly and non-strictly positive
definite functions on spheres", Bernoulli 19(4), Sec. 4.3). Evaluating a kernel
that is positive definite on R^3 at the 3-D points of the sphere instead is
always positive definite (a restriction of a PD function to a subset), and its
distance is the chord ``|p - p'| = 2 R sin(theta / 2)``, ``theta`` the
great-circle angle (Yadrenko 1983; Guinness & Fuentes 2016, "Isotropic
covariance functions on spheres", J. Multivariate Anal. 143).
"""

from __future__ import annotations

import math
import numbers

import equinox as eqx
import jax.numpy as jnp

from ._base import AbstractKernel

__all__ = ["Chordal"]


class Chordal(AbstractKernel):
    """Replace the (longitude, latitude) columns by 3-D points on a sphere, then apply ``kernel``.

    **Arguments:**

    - `kernel`: any kernel on the embedded features, typically stationary (e.g.
      ``Matern(nu=1.5)``), which is then positive definite on the sphere.
    - `lonlat_dims`: the input columns holding longitude and latitude, in that order.
    - `degrees`: whether angles are in degrees (``True``) or radians.
    - `radius`: sphere radius (static). With ``radius=1`` the length scale is in
      units of the radius; with ``radius=6371.0`` (Earth, km) it is in km of chord.

    Column order seen by ``kernel``: ``[x, y, z, *other columns]`` with
    ``x = R cos(lat) cos(lon)``, ``y = R cos(lat) sin(lon)``, ``z = R sin(lat)``,
    followed by the remaining input columns in their original order (e.g. time).
    An ARD length scale therefore lists 3 spatial entries first.
    """

    kernel: AbstractKernel
    lonlat_dims: tuple = eqx.field(static=True, default=(0, 1))
    degrees: bool = eqx.field(static=True, default=True)
    radius: float = eqx.field(static=True, default=1.0)

    def __check_init__(self):
        if not isinstance(self.kernel, AbstractKernel):
            raise TypeError(f"Chordal(kernel=...) must be an skgpx kernel, got {type(self.kernel).__name__}.")
        dims = self.lonlat_dims
        ok = (
            isinstance(dims, tuple)
            and len(dims) == 2
            and all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 0 for d in dims)
            and dims[0] != dims[1]
        )
        if not ok:
            raise ValueError(
                f"Chordal(lonlat_dims=...) must be a tuple of two distinct column indices "
                f"(longitude, latitude), got {dims!r}."
            )
        if not (isinstance(self.radius, numbers.Real) and self.radius > 0):
            raise ValueError(f"Chordal(radius=...) must be a positive number, got {self.radius!r}.")

    def embed(self, X):
        """The features the wrapped kernel sees: ``[x, y, z, *other columns]``."""
        i, j = self.lonlat_dims
        d = X.shape[-1]
        if max(i, j) >= d:
            raise ValueError(
                f"Chordal(lonlat_dims={self.lonlat_dims}) needs at least {max(i, j) + 1} input columns, "
                f"got {d}."
            )
        lon, lat = X[..., i], X[..., j]
        if self.degrees:
            lon, lat = lon * (math.pi / 180.0), lat * (math.pi / 180.0)
        coslat = jnp.cos(lat)
        xyz = jnp.stack([coslat * jnp.cos(lon), coslat * jnp.sin(lon), jnp.sin(lat)], axis=-1)
        if self.radius != 1.0:
            xyz = self.radius * xyz
        rest = [c for c in range(d) if c not in (i, j)]
        if not rest:
            return xyz
        return jnp.concatenate([xyz, X[..., rest]], axis=-1)

    def pairwise(self, x1, x2):
        return self.kernel.pairwise(self.embed(x1), self.embed(x2))

    def _cross(self, X1, X2):
        return self.kernel._cross(self.embed(X1), self.embed(X2))

    def _gram(self, X):
        # The wrapped Gram path keeps the exact zero distance on its diagonal.
        return self.kernel._gram(self.embed(X))

    def _diag(self, X):
        return self.kernel._diag(self.embed(X))

    def __repr__(self):
        return (
            f"Chordal({self.kernel!r}, lonlat_dims={self.lonlat_dims}, degrees={self.degrees}, "
            f"radius={self.radius})"
        )
