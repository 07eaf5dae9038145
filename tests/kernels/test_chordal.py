"""Chordal: equals the kernel on explicit 3-D unit vectors; positive definite on the sphere."""

import numpy as np
import pytest

import skgpx.kernels as K


def _sphere_points(n, seed):
    rng = np.random.default_rng(seed)
    lon = rng.uniform(-180, 180, n)
    lat = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    return np.stack([lon, lat], axis=1)


def _xyz(lonlat, radius=1.0):
    lon, lat = np.radians(lonlat[:, 0]), np.radians(lonlat[:, 1])
    return radius * np.stack([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)], axis=1)


def test_equals_kernel_on_unit_vectors():
    P, Q = _sphere_points(12, 0), _sphere_points(5, 1)
    base = K.Matern(0.4, nu=1.5)
    k = K.Chordal(base)
    np.testing.assert_allclose(k.gram(P), base.gram(_xyz(P)), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(k.cross(P, Q), base.cross(_xyz(P), _xyz(Q)), rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(np.diag(k.gram(P)), 1.0)  # exact zero distance on the diagonal


def test_radians_radius_and_extra_columns_order():
    P = _sphere_points(7, 2)
    t = np.linspace(0, 1, 7)[:, None]
    X = np.concatenate([t, np.radians(P[:, [1, 0]])], axis=1)  # columns: time, lat, lon
    base = K.RBF([1.0, 1.0, 1.0, 0.3])
    k = K.Chordal(base, lonlat_dims=(2, 1), degrees=False, radius=6371.0)
    expected = np.concatenate([_xyz(P, 6371.0), t], axis=1)  # [x, y, z, time]
    np.testing.assert_allclose(k.embed(X), expected, rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(k.gram(X), base.gram(expected), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("nu", [1.5, 2.5])
def test_positive_definite_on_sphere(nu):
    P = _sphere_points(200, 3)
    G = np.asarray(K.Chordal(K.Matern(1.2, nu=nu)).gram(P))
    assert np.linalg.eigvalsh(G).min() >= -1e-10


def test_great_circle_matern_is_not_pd_but_chordal_is():
    # Why Chordal exists: Matérn 3/2 of the great-circle angle loses positive definiteness
    # for length scales comparable to the sphere (Gneiting 2013). Find a witness.
    P = _sphere_points(300, 4)
    xyz = _xyz(P)
    theta = np.arccos(np.clip(xyz @ xyz.T, -1, 1))
    s = np.sqrt(3.0) * theta / 2.0
    geo = (1 + s) * np.exp(-s)
    assert np.linalg.eigvalsh(geo).min() < -1e-8
    G = np.asarray(K.Chordal(K.Matern(2.0, nu=1.5)).gram(P))
    assert np.linalg.eigvalsh(G).min() >= -1e-10


def test_errors():
    with pytest.raises(ValueError, match="lonlat_dims"):
        K.Chordal(K.RBF(), lonlat_dims=(0, 0))
    with pytest.raises(ValueError, match="at least 3 input columns"):
        K.Chordal(K.RBF(), lonlat_dims=(0, 2)).gram(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="radius"):
        K.Chordal(K.RBF(), radius=-1.0)


def test_length_scales_are_angles_and_reach_ski_grids():
    """``length_scales`` gives Chordal its inner scale as an angle on both angle columns, so SKI's
    automatic grid (refined against the exact kernel) works on a lon/lat x time kernel."""
    from skgpx.gp import SKI
    from skgpx.kernels._structure import length_scales

    space = K.ActiveDims(K.Chordal(K.Matern(0.02, nu=2.5)), dims=(0, 1))
    kernel = space * K.ActiveDims(K.Matern(2.0, nu=2.5), dims=(2,))
    np.testing.assert_allclose(length_scales(kernel, 3), [np.degrees(0.02), np.degrees(0.02), 2.0])
    earth = K.Chordal(K.Matern([500.0, 300.0, 400.0]), lonlat_dims=(1, 0), degrees=False, radius=6371.0)
    np.testing.assert_allclose(length_scales(earth, 3), [300.0 / 6371.0, 300.0 / 6371.0, np.inf])
    assert length_scales(K.Chordal(K.DotProduct()), 2) is None

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(-70, -60, 400), rng.uniform(30, 36, 400), rng.uniform(0, 3, 400)])
    inf = SKI(points_per_length_scale=2.0).for_data(kernel, X)
    info = dict(inf.refinement)
    # refined until the measured interpolation error (against the exact kernel) met its tolerance
    assert not info["capped"] and info["interpolation_error_estimate"] <= info["tol"]
    np.testing.assert_allclose(inf.block_scales, [np.degrees(0.02), np.degrees(0.02), 2.0])
