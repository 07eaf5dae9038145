"""SKI in space, exact in time (TimeSliceSKIOperator) == the dense Gram matrix it stands for."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skgpx.kernels import RBF, ActiveDims, Constant, Matern, White
from skgpx.operators import Grid, interpolation_weights, time_slice_operator, time_slices


def _kernel(time_kernel):
    return Constant(1.7) * ActiveDims(Matern(0.3, nu=1.5), dims=(0, 1)) * ActiveDims(time_kernel, dims=(2,)) + White(0.02)


GRID = Grid([0.0, 0.0, 0.0], [0.1, 0.125, 1.0], [11, 9, 1])  # space 1 x 1, one node in time


def _data(n=70, on_nodes=True, seed=0):
    """Points at 6 distinct (irregular) times, in random order; on the grid's nodes or scattered."""
    rng = np.random.default_rng(seed)
    t = rng.choice(np.array([0.0, 0.3, 1.1, 1.2, 4.0, 9.5]), n)
    if on_nodes:
        S = np.column_stack([rng.integers(0, 11, n) * 0.1, rng.integers(0, 9, n) * 0.125])
    else:
        S = 0.2 + 0.6 * rng.random((n, 2))
    return jnp.asarray(np.column_stack([S, t])), jnp.asarray(0.01 + 0.02 * rng.random(n))


@pytest.mark.parametrize("time_kernel", [Matern(2.0, nu=0.5), RBF(1.5)], ids=["markov", "dense-time"])
def test_on_grid_nodes_equals_exact_gram(time_kernel):
    """Order 0 with every point on a spatial node: the operator is the exact noisy Gram matrix
    (any times: no time grid), in both the two-sweep (Matern-1/2) and the dense-K_t mixing."""
    k = _kernel(time_kernel)
    X, noise = _data()
    tau, slots = time_slices(X, 2)
    op = time_slice_operator(k, X, noise, GRID, 2, tau, slots, order=0)
    assert op.markov == isinstance(time_kernel, Matern) and op.n_slots == 6
    ref = k.gram(X) + jnp.diag(noise)
    np.testing.assert_allclose(op.as_matrix(), ref, rtol=1e-12, atol=1e-12)
    V = jnp.asarray(np.random.default_rng(1).standard_normal((X.shape[0], 3)))
    np.testing.assert_allclose(op.mm(V), ref @ V, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(op.diagonal(), jnp.diag(ref), rtol=1e-12)
    # Test points at new times (before, between and after the data's) on spatial nodes: exact too.
    rng = np.random.default_rng(2)
    Xs = jnp.asarray(np.column_stack([rng.integers(0, 11, 9) * 0.1, rng.integers(0, 9, 9) * 0.125,
                                      [-1.0, 0.0, 0.2, 0.7, 1.15, 3.0, 9.5, 9.9, 20.0]]))
    np.testing.assert_allclose(op.cross_mm(Xs, V), k.cross(Xs, X) @ V, rtol=1e-10, atol=1e-11)


def test_scattered_points_interpolate_space_only():
    """Cubic interpolation in space, exact in time: the operator equals ``(W K_ss W^T) * K_t`` built
    densely, and the only error against the exact Gram matrix is the spatial interpolation's."""
    k = _kernel(Matern(2.0, nu=0.5))
    X, noise = _data(on_nodes=False)
    tau, slots = time_slices(X, 2)
    op = time_slice_operator(k, X, noise, GRID, 2, tau, slots, order=3)
    V = jnp.asarray(np.random.default_rng(1).standard_normal((X.shape[0], 2)))
    np.testing.assert_allclose(op.mm(V), op.as_matrix() @ V, rtol=1e-10, atol=1e-10)
    W = interpolation_weights(X[:, :2], Grid(GRID.origin[:2], GRID.spacing[:2], GRID.shape[:2]), 3).as_matrix()
    U = Grid(GRID.origin[:2], GRID.spacing[:2], GRID.shape[:2]).points()
    Kss = 1.7 * Matern(0.3, nu=1.5).cross(U, U)
    Kt = Matern(2.0, nu=0.5).cross(X[:, 2:], X[:, 2:])
    np.testing.assert_allclose(op.as_matrix(), (W @ Kss @ W.T) * Kt + jnp.diag(noise + 0.02), rtol=1e-10, atol=1e-12)
    err = jnp.max(jnp.abs(op.as_matrix() - k.gram(X) - jnp.diag(noise))) / 1.7
    fine = time_slice_operator(k, X, noise, Grid([0.0, 0.0, 0.0], [0.05, 0.05, 1.0], [21, 21, 1]), 2, tau, slots)
    err_fine = jnp.max(jnp.abs(fine.as_matrix() - k.gram(X) - jnp.diag(noise))) / 1.7
    # Cubic in space: 2.4-3.3 nodes per length scale, then 6: the error falls ~8x (measured 0.038 -> 0.0048).
    assert float(err_fine) < float(err) / 6 and float(err_fine) < 6e-3


def test_gradient_matches_dense():
    """Hyperparameter gradients through the product (sweeps, per-slot FFTs) equal the dense matrix's."""
    X, noise = _data(n=40, on_nodes=False)
    tau, slots = time_slices(X, 2)
    V = jnp.asarray(np.random.default_rng(2).standard_normal((X.shape[0], 2)))
    Wt = jnp.asarray(np.random.default_rng(3).standard_normal((X.shape[0], 2)))

    def f(k, dense):
        op = time_slice_operator(k, X, noise, GRID, 2, tau, slots, order=3)
        return jnp.sum(Wt * (op.as_matrix() @ V if dense else op.mm(V)))

    k = _kernel(Matern(2.0, nu=0.5))
    g = eqx.filter_jit(eqx.filter_grad(lambda k: f(k, False)))(k)
    ref = eqx.filter_jit(eqx.filter_grad(lambda k: f(k, True)))(k)
    a, b = jax.tree_util.tree_leaves(g), jax.tree_util.tree_leaves(ref)
    assert len(a) >= 3
    for x, y in zip(a, b):
        np.testing.assert_allclose(x, y, rtol=1e-8, atol=1e-10)
    assert any(float(jnp.abs(x)) > 1e-3 for x in a)


def test_needs_a_single_time_node():
    X, noise = _data()
    tau, slots = time_slices(X, 2)
    with pytest.raises(ValueError, match="one node on the time axis 2"):
        time_slice_operator(_kernel(Matern(2.0, nu=0.5)), X, noise, Grid([0, 0, 0], [0.1, 0.1, 1.0], [11, 11, 3]),
                            2, tau, slots)
