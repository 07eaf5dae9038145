"""Grid operators (Toeplitz, multilevel Toeplitz, Kronecker) against their dense matrices:
products, transpose, entries, diagonal, hyperparameter gradients and square roots."""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

from skgpx.kernels import RBF, ActiveDims, DotProduct, Matern, RationalQuadratic, White
from skgpx.operators import (
    DenseGridOperator,
    Grid,
    KroneckerOperator,
    ToeplitzOperator,
    auto_grid,
    grid_operator,
)

CASES = {
    "toeplitz-1d": (Matern(0.3, nu=1.5), Grid([0.1], [0.07], [9]), ToeplitzOperator),
    # A Matern of the 2-D distance: multilevel Toeplitz, not a Kronecker product.
    "multilevel-2d-isotropic": (2.0 * Matern(0.25, nu=0.5), Grid([0.0, -1.0], [0.1, 0.06], [6, 5]), ToeplitzOperator),
    "multilevel-3d-ard-plus-white": (RationalQuadratic([0.3, 0.2, 0.4], alpha=1.5) + White(0.1),
                                     Grid([0, 0, 0], [0.1, 0.05, 0.15], [3, 4, 3]), ToeplitzOperator),
    "kronecker-space-time": (1.5 * ActiveDims(Matern(0.3, nu=1.5), (0, 1)) * ActiveDims(Matern(0.5, nu=0.5), (2,)),
                             Grid([0, 0, 0], [0.1, 0.12, 0.2], [4, 3, 5]), KroneckerOperator),
    "kronecker-permuted-dense": (ActiveDims(RBF([0.4, 0.3]), (2, 0)) * ActiveDims(DotProduct(0.5), (1,)),
                                 Grid([0.0, 0.5, 0.0], [0.1, 0.2, 0.15], [3, 4, 5]), KroneckerOperator),
}


def _dense(kernel, grid):
    U = grid.points()
    return np.asarray(kernel._cross(U, U))


@pytest.mark.parametrize("name", list(CASES))
def test_grid_operator_equals_dense(name):
    kernel, grid, cls = CASES[name]
    assert isinstance(grid_operator(kernel, grid), cls)
    K = _dense(kernel, grid)
    M = grid.size
    V = jax.random.normal(jax.random.key(0), (M, 3))
    I = jax.random.randint(jax.random.key(1), (50,), 0, M)
    J = jax.random.randint(jax.random.key(2), (50,), 0, M)

    A = jax.random.normal(jax.random.key(3), (M, 2))
    B = jax.random.normal(jax.random.key(4), (M, 2))
    U = grid.points()

    def structured(theta):
        return jnp.sum(A * grid_operator(kernel.with_theta(theta), grid).mm(B))

    def dense(theta):
        return jnp.sum(A * (kernel.with_theta(theta)._cross(U, U) @ B))

    @jax.jit
    def run(kernel, V, I, J):  # one compilation instead of one per eager op
        op = grid_operator(kernel, grid)
        return (op.mm(V), op.mv(V[:, 0]), op.transpose().mv(V[:, 1]), op.as_matrix(), lx.diagonal(op),
                op.entries(I, J), jax.grad(structured)(kernel.theta), jax.grad(dense)(kernel.theta))

    mm, mv, tmv, mat, diag, ent, g_s, g_d = run(kernel, V, I, J)
    np.testing.assert_allclose(g_s, g_d, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(mm, K @ V, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mv, K @ V[:, 0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(tmv, K.T @ V[:, 1], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(mat, K, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(diag, np.diag(K), rtol=1e-12)
    np.testing.assert_allclose(ent, K[np.asarray(I), np.asarray(J)], rtol=1e-12, atol=1e-14)


def test_no_grid_squared_array_in_gradient():
    kernel = 1.5 * ActiveDims(Matern(0.3, nu=1.5), (0, 1)) * ActiveDims(Matern(0.5, nu=0.5), (2,))
    grid = Grid([0, 0, 0], [0.1, 0.12, 0.2], [12, 10, 9])
    M = grid.size
    B = jnp.ones((M, 2))

    def f(theta):
        return jnp.sum(grid_operator(kernel.with_theta(theta), grid).mm(B) ** 2)

    jaxpr = jax.make_jaxpr(jax.value_and_grad(f))(kernel.theta)
    sizes = []

    def walk(jx):
        for eqn in jx.eqns:
            for v in eqn.outvars:
                sizes.append(int(np.prod(v.aval.shape)) if hasattr(v.aval, "shape") else 0)
            for p in eqn.params.values():
                if hasattr(p, "jaxpr"):
                    walk(p.jaxpr)

    walk(jaxpr.jaxpr)
    assert max(sizes) <= 2**3 * M * 2  # O(2^d M k) (the padded FFT); M^2 = 1.2e6
    assert max(sizes) < M * M // 50


@pytest.mark.parametrize("name", ["toeplitz-1d", "multilevel-2d-isotropic", "kronecker-space-time",
                                  "kronecker-permuted-dense"])
def test_sqrt_factor_reproduces_covariance(name):
    kernel, grid, _ = CASES[name]
    op = grid_operator(kernel, grid).with_psd_embedding(tol=1e-12)

    @jax.jit
    def SSt(op):  # S (S^T I) without forming S (its embedding can be large)
        M = op.grid.size
        (St,) = jax.linear_transpose(op.sqrt_mm, jnp.zeros((op.embed_size, M)))(jnp.eye(M))
        return op.sqrt_mm(St)

    K = _dense(kernel, grid)
    negativity = [f.embedding_negativity() for f in getattr(op, "factors", (op,)) if isinstance(f, ToeplitzOperator)]
    assert max(float(x) for x in negativity) < 1e-12
    np.testing.assert_allclose(SSt(op), K, atol=1e-8 * np.max(K))


def test_dense_factor_refuses_large_grid():
    with pytest.raises(ValueError, match="neither stationary"):
        grid_operator(DotProduct(1.0), Grid([0.0], [1.0], [5000]))
    with pytest.raises(ValueError, match="materialised"):
        DenseGridOperator(DotProduct(1.0), Grid([0.0], [1.0], [5000]))


def test_auto_grid_covers_data_with_stencil_padding():
    X = np.array([[0.0, 10.0], [1.0, 12.0], [0.5, 11.0]])
    g = auto_grid(X, np.array([0.2, np.inf]), points_per_scale=4.0)
    assert g.shape[1] == 1 and g.spacing[0] == pytest.approx(0.05)
    assert g.contains(X, margin=2.0).all()
    with pytest.warns(UserWarning, match="widened"):
        g2 = auto_grid(X, np.array([0.001, 0.001]), max_size=10_000)
    assert g2.size <= 10_000
