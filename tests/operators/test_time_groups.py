"""Time-group operator (space x time product kernel, few distinct times) == the dense Gram matrix."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skgpx.kernels import RBF, ActiveDims, Constant, Matern, White
from skgpx.operators import find_time_groups, split_space_time, time_group_operator, time_group_surrogate_grad


def _kernel(ls_t=3.0, ls_s=0.3):
    return (Constant(1.7) * ActiveDims(Matern(ls_s, nu=1.5), dims=(0, 1))
            * ActiveDims(Matern(ls_t, nu=0.5), dims=(2,)) + White(0.02))


def _data(n=97, days=(0.0, 1.0, 2.0, 5.0), seed=0):
    rng = np.random.default_rng(seed)
    t = rng.choice(np.asarray(days), n)  # unbalanced groups, rows in random order
    X = np.column_stack([rng.random((n, 2)), t])
    return jnp.asarray(X), jnp.asarray(0.01 + 0.02 * rng.random(n))


@pytest.mark.parametrize("kind, block", [("dense", None), ("matrix-free", 8)])
def test_matches_dense_gram(kind, block):
    k = _kernel()
    X, noise = _data()
    dim, sizes = find_time_groups(k, np.asarray(X), "auto")
    assert (dim, len(sizes), sum(sizes)) == (2, 4, X.shape[0])
    op = time_group_operator(k, X, noise, dim, sizes, kind, block)
    K = k.gram(X) + jnp.diag(noise)
    V = jnp.asarray(np.random.default_rng(1).standard_normal((X.shape[0], 3)))
    np.testing.assert_allclose(op.mm(V), K @ V, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(op.transpose().mv(V[:, 0]), K @ V[:, 0], rtol=1e-11, atol=1e-11)
    import lineax as lx

    np.testing.assert_allclose(lx.diagonal(op), jnp.diag(K), rtol=1e-12)
    # prediction cross-covariance (Exploit A) at one time and at scattered times
    Xs = jnp.asarray(np.column_stack([np.random.default_rng(2).random((11, 2)), np.r_[np.full(6, 3.0), np.arange(5.0)]]))
    np.testing.assert_allclose(op.cross_mm(Xs, V, tile_size=4), k.cross(Xs, X) @ V, rtol=1e-11, atol=1e-11)
    # a padded set: padded rows are a unit block
    mask = jnp.arange(X.shape[0]) < 90
    opm = time_group_operator(k, X, noise, dim, find_time_groups(k, np.asarray(X[:90]), 2)[1], kind, block, mask)
    Km = (K[:90, :90] @ V[:90])
    out = opm.mm(V)
    np.testing.assert_allclose(out[:90], Km, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(out[90:], V[90:], rtol=1e-12)


@pytest.mark.parametrize("kind, fixed_space", [("dense", True), ("dense", False), ("matrix-free", True)])
def test_surrogate_gradient(kind, fixed_space):
    """Gradient of sum(Wt * K V) through the surrogate == autodiff of the dense Gram, and the
    operator's own gradient (through mm) too; fixed spatial hyperparameters skip their pass."""
    X, noise = _data(61)
    rng = np.random.default_rng(3)
    V, Wt = (jnp.asarray(rng.standard_normal((61, 2))) for _ in range(2))
    k0 = _kernel()
    if fixed_space:
        k0 = (Constant(1.7, "fixed") * ActiveDims(Matern(0.3, nu=1.5, length_scale_bounds="fixed"), dims=(0, 1))
              * ActiveDims(RBF(3.0), dims=(2,)) + White(0.02))
    dim, sizes = find_time_groups(k0, np.asarray(X), 2)
    op = time_group_operator(jax.lax.stop_gradient(k0), X, noise, dim, sizes, kind, 16)

    def ref(theta):
        k = k0.with_theta(theta)
        return jnp.sum(Wt * (k.cross(X, X) @ V))  # the kernel part: White lives on the diagonal

    def sur(theta):
        return time_group_surrogate_grad(k0.with_theta(theta), op, V, Wt)

    def through_mm(theta):
        k = k0.with_theta(theta)
        return jnp.sum(Wt * time_group_operator(k, X, jnp.zeros(61), dim, sizes, kind, 16).mm(V))

    th = jnp.asarray(k0.theta)
    g_ref = jax.grad(ref)(th)
    assert float(sur(th)) == 0.0
    # (free spatial hyperparameters: the block-pair pass, the same for both kinds)
    np.testing.assert_allclose(jax.jit(jax.grad(sur))(th), g_ref, rtol=1e-9, atol=1e-10)
    # through mm the White part joins the diagonal: compare the smooth part's gradient
    k_s = lambda theta: k0.with_theta(theta)  # noqa: E731
    g_mm = jax.jit(jax.grad(through_mm))(th)
    g_dense = jax.grad(lambda t: jnp.sum(Wt * (k_s(t).gram(X) @ V)))(th)
    np.testing.assert_allclose(g_mm, g_dense, rtol=1e-9, atol=1e-10)


def test_with_kernel_reuses_blocks_and_errors():
    k = _kernel()
    X, noise = _data()
    dim, sizes = find_time_groups(k, np.asarray(X), 2)
    op = time_group_operator(k, X, noise, dim, sizes, "dense")
    k2 = k.replace(k1__k2__kernel__length_scale=0.7)  # temporal length scale
    op2 = op.with_kernel(k2)
    assert op2.blocks is op.blocks
    V = jnp.ones((X.shape[0], 1))
    np.testing.assert_allclose(op2.mm(V), (k2.gram(X) + jnp.diag(noise)) @ V, rtol=1e-11)
    with pytest.raises(ValueError, match="time_dim"):
        split_space_time(ActiveDims(Matern(0.3), dims=(0, 1, 2)), 2)
    with pytest.raises(ValueError, match="max_time_groups"):
        find_time_groups(k, np.asarray(X), 2, max_groups=3)
    assert find_time_groups(RBF(1.0), np.asarray(X), "auto") is None
