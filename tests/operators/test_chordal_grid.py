"""Chordal kernel on a longitude-latitude grid (FFT in longitude, dense in latitude) == dense matrix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skgpx.gp._ski import SKIInference
from skgpx.kernels import RBF, ActiveDims, Chordal, Matern
from skgpx.operators import ChordalGridOperator, Grid, KroneckerOperator, grid_operator
from skgpx.solvers import pcg


def _check(op, kernel, grid, sqrt_exact):
    U = grid.points()
    K = kernel.cross(U, U)
    M = grid.size
    V = jnp.asarray(np.random.default_rng(0).standard_normal((M, 3)))
    np.testing.assert_allclose(op.mm(V), K @ V, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(op.transpose().mv(V[:, 0]), K @ V[:, 0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(op.as_matrix(), K, rtol=1e-12, atol=1e-14)  # entries
    np.testing.assert_allclose(op.diagonal(), jnp.diag(K), rtol=1e-12)
    if sqrt_exact:
        S = op.sqrt_mm(jnp.eye(op.embed_size))
        np.testing.assert_allclose(S @ S.T, K, atol=1e-10)
        assert float(op.embedding_negativity()) < 1e-12


def test_global_grid_is_circulant_and_exact():
    grid = Grid([-180.0, -60.0], [15.0, 15.0], [24, 9])  # 24 x 15 degrees: a full turn
    kernel = 1.3 * Chordal(Matern(0.6, nu=1.5))
    op = grid_operator(kernel, grid)
    assert isinstance(op, ChordalGridOperator) and op.periodic and op.n_embed == 24
    _check(op, kernel, grid, sqrt_exact=True)


def test_regional_grid_latitude_first_and_gradient():
    grid = Grid([-30.0, 10.0], [5.0, 4.0], [7, 11])  # axes (lat, lon): lonlat_dims=(1, 0)
    kernel = Chordal(RBF(0.3), lonlat_dims=(1, 0))
    op = grid_operator(kernel, grid)
    assert isinstance(op, ChordalGridOperator) and not op.periodic and op.lon_axis == 1
    _check(op, kernel, grid, sqrt_exact=False)
    psd = op.with_psd_embedding(tol=1e-12)  # embedded in the whole circle: prior draws exact
    assert psd.periodic and psd.n_embed == 90
    _check(psd, kernel, grid, sqrt_exact=True)
    U = grid.points()
    rng = np.random.default_rng(1)
    V, W = (jnp.asarray(rng.standard_normal((grid.size, 2))) for _ in range(2))
    th = jnp.asarray(kernel.theta)
    g = jax.grad(lambda t: jnp.sum(W * ChordalGridOperator(kernel.with_theta(t), grid).mm(V)))(th)
    g_ref = jax.grad(lambda t: jnp.sum(W * (kernel.with_theta(t).cross(U, U) @ V)))(th)
    np.testing.assert_allclose(g, g_ref, rtol=1e-9)


def test_kronecker_factor_and_masked_grid_route():
    """Chordal(space) x Matern(time) on a (lon, lat, t) lattice with gaps: the masked-grid route
    (solver="ski" on gridded data) uses the Chordal factor and equals the exact GP."""
    kernel = ActiveDims(Chordal(Matern(0.5, nu=1.5)), (0, 1)) * ActiveDims(Matern(2.0, nu=0.5), (2,))
    grid = Grid([0.0, -40.0, 0.0], [30.0, 20.0, 1.0], [12, 5, 3])
    op = grid_operator(kernel, grid)
    assert isinstance(op, KroneckerOperator) and isinstance(op.factors[0], ChordalGridOperator)
    V = jnp.asarray(np.random.default_rng(2).standard_normal((grid.size, 2)))
    U = grid.points()
    np.testing.assert_allclose(op.mm(V), kernel.cross(U, U) @ V, rtol=1e-10, atol=1e-12)
    rng = np.random.default_rng(0)
    P = np.asarray(U)
    observed = rng.random(P.shape[0]) > 0.3
    X, Xs = P[observed], P[~observed][:6]
    Y = (np.sin(np.deg2rad(X[:, 0])) * np.cos(np.deg2rad(X[:, 1])) + 0.1 * rng.standard_normal(len(X)))[:, None]
    noise = np.full(len(X), 0.05)
    inf = SKIInference(tol=1e-11).for_data(kernel, X)
    assert inf.interpolation_order == 0 and inf.grid.shape == (12, 5, 3)

    # The fit's operator and a CG solve, then the mean by the grid product, in one program
    # (the whole masked-grid condition path is tests/gp/test_ski.py's 60 x 60 case).
    @jax.jit
    def ski_mean(X, Y, noise, Xs):
        op = inf.operator(kernel, X, noise)
        assert isinstance(op.grid_op.factors[0], ChordalGridOperator)
        alpha = pcg(op.mm, Y, tol=1e-11, max_iter=2000).x
        return op.cross_from(op.fields(alpha), Xs)

    K = np.asarray(kernel.gram(X)) + np.diag(noise)
    mean = np.asarray(kernel.cross(Xs, X)) @ np.linalg.solve(K, Y)
    out = ski_mean(jnp.asarray(X), jnp.asarray(Y), jnp.asarray(noise), jnp.asarray(Xs))
    np.testing.assert_allclose(out, mean, atol=1e-8)


def test_refuses_what_is_not_longitude_invariant():
    grid = Grid([0.0, 0.0], [10.0, 10.0], [5, 5])
    with pytest.raises(ValueError, match="isotropic"):
        ChordalGridOperator(Chordal(Matern(np.array([0.2, 0.3, 0.4]))), grid)  # ARD: x and y differ
