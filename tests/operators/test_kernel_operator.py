"""Kernel operators: matrix-free == dense, lineax dispatch, bounded backward-pass memory."""

import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

from skgpx.kernels import RBF, Matern, White
from skgpx.operators import DenseKernelOperator, MatrixFreeKernelOperator, kernel_operator, tiled_cross_mm


def _data(n=203, d=3, seed=0):
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.random((n, d))), jnp.asarray(0.01 + 0.02 * rng.random(n))


KERNELS = [Matern(0.2, nu=1.5), 1.3 * RBF(0.4) + White(0.05), Matern(np.array([0.2, 0.5, 0.3]), nu=2.5)]


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("tile", [None, 16, 64])
def test_matrix_free_equals_dense(kernel, tile):
    X, noise = _data()
    V = jnp.asarray(np.random.default_rng(1).standard_normal((X.shape[0], 3)))
    ref = (kernel.gram(X) + jnp.diag(noise)) @ V
    dense = DenseKernelOperator(kernel, X, noise)
    free = MatrixFreeKernelOperator(kernel, X, noise, tile)
    np.testing.assert_allclose(dense.mm(V), ref, rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(free.mm(V), ref, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(free.mv(V[:, 0]), ref[:, 0], rtol=1e-10, atol=1e-10)


def test_tiled_cross_matches_cross():
    X, _ = _data(150)
    Xs, _ = _data(37, seed=3)
    V = jnp.ones((150, 2))
    k = Matern(0.3, nu=0.5)
    np.testing.assert_allclose(tiled_cross_mm(k, Xs, X, V, tile_size=8), k.cross(Xs, X) @ V, rtol=1e-11)


def test_lineax_dispatch():
    X, noise = _data(50)
    k = RBF(0.3) + White(0.1)
    K = k.gram(X) + jnp.diag(noise)
    for op in (DenseKernelOperator(k, X, noise), MatrixFreeKernelOperator(k, X, noise, 8)):
        assert lx.is_symmetric(op) and lx.is_positive_semidefinite(op)
        assert not lx.is_diagonal(op) and not lx.is_negative_semidefinite(op)
        np.testing.assert_allclose(lx.diagonal(op), jnp.diag(K), rtol=1e-12)
        if isinstance(op, MatrixFreeKernelOperator):  # densifying is said out loud
            with pytest.warns(UserWarning, match="Materialising"):
                dense = lx.materialise(op)
        else:
            dense = lx.materialise(op)
        np.testing.assert_allclose(dense.as_matrix(), K, rtol=1e-10, atol=1e-12)
        d, lo, up = lx.tridiagonal(op)
        np.testing.assert_allclose(lo, jnp.diagonal(K, -1), rtol=1e-10)
        b = jnp.arange(50.0)
        sol = lx.linear_solve(op, b, lx.CG(rtol=1e-10, atol=1e-10, max_steps=2000)).value
        np.testing.assert_allclose(K @ sol, b, rtol=1e-6, atol=1e-6)


def test_auto_kind_and_bad_kind():
    X, noise = _data(30)
    assert kernel_operator(RBF(1.0), X, noise).kind == "dense"
    assert kernel_operator(RBF(1.0), X, noise, "matrix-free").kind == "matrix-free"
    with pytest.raises(ValueError, match="operator"):
        kernel_operator(RBF(1.0), X, noise, "sparse")


def _max_var_size(jaxpr):
    """Largest number of elements of any variable in a closed jaxpr, sub-jaxprs included."""
    best = 0

    def visit(jp):
        nonlocal best
        for v in list(jp.invars) + list(jp.constvars) + list(jp.outvars):
            if hasattr(v, "aval") and hasattr(v.aval, "shape"):
                best = max(best, int(np.prod(v.aval.shape)))
        for eqn in jp.eqns:
            for v in list(eqn.outvars) + list(eqn.invars):
                if hasattr(v, "aval") and hasattr(v.aval, "shape"):
                    best = max(best, int(np.prod(v.aval.shape)))
            for p in eqn.params.values():
                for sub in p if isinstance(p, (tuple, list)) else (p,):
                    if isinstance(sub, jax.extend.core.ClosedJaxpr):
                        visit(sub.jaxpr)
                    elif isinstance(sub, jax.extend.core.Jaxpr):
                        visit(sub)

    visit(jaxpr.jaxpr)
    return best


def test_gradient_jaxpr_has_no_n_by_n_array():
    n = 400
    X, noise = _data(n)
    rng = np.random.default_rng(2)
    A = jnp.asarray(rng.standard_normal((n, 4)))
    B = jnp.asarray(rng.standard_normal((n, 4)))
    k = 1.5 * Matern(0.2, nu=1.5) + White(0.01)

    def f(theta, noise):
        op = MatrixFreeKernelOperator(k.with_theta(theta), X, noise, tile_size=32)
        return jnp.sum(A * op.mm(B))

    grad_fn = jax.grad(f, argnums=(0, 1))
    biggest = _max_var_size(jax.make_jaxpr(grad_fn)(jnp.asarray(k.theta), noise))
    assert biggest < n * n / 4, biggest
    # And the dense reference really does contain one (the test can fail).
    def g(theta, noise):
        return jnp.sum(A * ((k.with_theta(theta).gram(X) + jnp.diag(noise)) @ B))

    assert _max_var_size(jax.make_jaxpr(jax.grad(g))(jnp.asarray(k.theta), noise)) >= n * n
    # The gradient itself is right.
    g1 = grad_fn(jnp.asarray(k.theta), noise)
    g2 = jax.grad(g, argnums=(0, 1))(jnp.asarray(k.theta), noise)
    np.testing.assert_allclose(g1[0], g2[0], rtol=1e-8)
    np.testing.assert_allclose(g1[1], g2[1], rtol=1e-8)
