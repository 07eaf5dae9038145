"""Batched: shared/distinct hyperparameters equal a Python loop; masks; nesting; theta; jit/grad."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import skgpx.kernels as K

B, N, M, D = 3, 6, 4, 2
RNG = np.random.default_rng(1)
X = RNG.normal(size=(B, N, D))
Y = RNG.normal(size=(B, M, D))
BASE = 1.5 * K.RBF([0.7, 1.2], length_scale_bounds=[[1e-2, 1e2], [1e-3, 1e3]]) + K.White(0.1)


def _distinctify(kernel):
    """Give every distinct leaf different per-element values, returning the batched kernel."""
    theta = np.asarray(kernel.theta)
    return kernel.with_theta(theta + 0.1 * np.arange(theta.size))


def _element(batched, b):
    """The unbatched kernel of element ``b`` (distinct leaves indexed, shared ones kept)."""
    out = batched.kernel
    for h in K.hyperparameter_list(batched.kernel):
        name = h.name
        if name in batched.distinct:
            path = h.path
            value = out
            for p in path:
                value = getattr(value, p)
            out = eqx.tree_at(lambda k: _leaf(k, path), out, value[b])
    return out


def _leaf(k, path):
    for p in path:
        k = getattr(k, p)
    return k


@pytest.mark.parametrize("distinct", [False, True, ("k1__k2__length_scale",), ("k2__noise_level",)])
def test_matches_python_loop(distinct):
    bk = _distinctify(K.Batched(BASE, B, distinct=distinct))
    G, C, d = bk.gram(X), bk.cross(X, Y), bk.diag(X)
    assert G.shape == (B, N, N) and C.shape == (B, N, M) and d.shape == (B, N)
    for b in range(B):
        kb = _element(bk, b)
        np.testing.assert_allclose(G[b], kb.gram(X[b]), rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(C[b], kb.cross(X[b], Y[b]), rtol=1e-13, atol=1e-14)
        np.testing.assert_allclose(d[b], kb.diag(X[b]), rtol=1e-13, atol=1e-14)
    if distinct is not False:  # distinct values really differ between elements
        assert not np.allclose(G[0], G[1])


def test_theta_sizes_and_bounds():
    bk = K.Batched(BASE, B, distinct=("k1__k2__length_scale",))
    # shared constant (1) + distinct ARD length scales (B * 2) + shared noise (1)
    assert bk.theta.shape == (1 + B * D + 1,)
    lo = np.log([1e-2, 1e-3] * B)
    np.testing.assert_allclose(bk.bounds[1 : 1 + B * D, 0], lo)
    th = np.asarray(bk.theta) + 0.2
    np.testing.assert_allclose(bk.with_theta(th).theta, th, rtol=1e-14)
    names = [h.name for h in K.hyperparameter_list(bk)]
    assert names == ["kernel__k1__k1__constant_value", "kernel__k1__k2__length_scale", "kernel__k2__noise_level"]


def test_unbatched_inputs_equal_tiled_inputs():
    bk = _distinctify(K.Batched(BASE, B, distinct=True, batch_inputs=False))
    bk_tiled = K.Batched(BASE, B, distinct=True).with_theta(bk.theta)
    Xt = np.broadcast_to(X[0], (B, N, D))
    np.testing.assert_allclose(bk.gram(X[0]), bk_tiled.gram(Xt), rtol=1e-14)
    np.testing.assert_allclose(bk.cross(X[0], Y[0]), bk_tiled.cross(Xt, np.broadcast_to(Y[0], (B, M, D))))


def test_nested_matches_double_loop():
    B2 = 2
    inner = K.Batched(K.Matern(0.8, nu=2.5), B2, distinct=True)
    outer = _distinctify(K.Batched(inner, B, distinct=("kernel__length_scale",)))
    assert outer.kernel.kernel.length_scale.shape == (B, B2)
    Xn = RNG.normal(size=(B, B2, N, D))
    G = outer.gram(Xn)
    assert G.shape == (B, B2, N, N)
    for b in range(B):
        for c in range(B2):
            ls = outer.kernel.kernel.length_scale[b, c]
            np.testing.assert_allclose(G[b, c], K.Matern(ls, nu=2.5).gram(Xn[b, c]), rtol=1e-13)


def test_masks_batched_and_nan():
    bk = _distinctify(K.Batched(BASE, B, distinct=True))
    mask = np.ones((B, N), bool)
    mask[0, -2:] = False
    mask[2, 1] = False
    Xnan = np.where(mask[..., None], X, np.nan)
    G, Gn = bk.gram(X, mask), bk.gram(Xnan, "nan")
    np.testing.assert_array_equal(G, Gn)
    for b in range(B):
        kb = _element(bk, b)
        np.testing.assert_allclose(G[b], kb.gram(X[b], mask[b]), rtol=1e-13)
    np.testing.assert_array_equal(G[0, -2:, -2:], np.eye(2))
    C = bk.cross(Xnan, Y, "nan", None)
    assert np.all(C[0, -2:] == 0) and np.all(np.isfinite(C))
    np.testing.assert_array_equal(bk.diag(Xnan, "nan")[2, 1], 1.0)


def test_jit_vmap_grad_no_retrace():
    bk = K.Batched(BASE, B, distinct=("k1__k2__length_scale",))

    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def loss_once(kernel, X):
        return jnp.sum(kernel.gram(X, "nan") ** 2)

    def loss(kernel, X):
        return jnp.sum(kernel.gram(X, "nan") ** 2)

    v1 = loss_once(bk, X)
    v2 = loss_once(_distinctify(bk), X)
    assert v1 != v2
    # grad wrt theta equals the sum of per-element gradients of a Python loop
    g = jax.jit(jax.grad(lambda th: loss(bk.with_theta(th), X)))(bk.theta)
    assert np.all(np.isfinite(g))
    per_ls = []
    for b in range(B):
        kb = _element(bk, b)
        gb = jax.jit(jax.grad(lambda th: jnp.sum(kb.with_theta(th).gram(X[b]) ** 2)))(kb.theta)
        per_ls.append(np.asarray(gb[1:3]))
    np.testing.assert_allclose(g[1 : 1 + B * D], np.concatenate(per_ls), rtol=1e-10)
    # vmap from outside over a stack of inputs
    out = jax.vmap(lambda x: bk.gram(x))(np.stack([X, X]))
    assert out.shape == (2, B, N, N)


def test_errors():
    with pytest.raises(ValueError, match="Valid names"):
        K.Batched(BASE, B, distinct=("length_scale",))
    with pytest.raises(ValueError, match="same matrix batch_size times"):
        K.Batched(BASE, B, distinct=False, batch_inputs=False)
    with pytest.raises(ValueError, match="batch_size=3"):
        K.Batched(BASE, B).gram(X[0])
    with pytest.raises(ValueError, match="positive integer"):
        K.Batched(BASE, 0)
    with pytest.raises(ValueError, match="mask for Batched"):
        K.Batched(BASE, B).gram(X, np.ones(N, bool))
    bk = K.Batched(BASE, B, distinct=("k2__noise_level",))
    with pytest.raises(ValueError, match="leading axis of size"):
        bk.replace(kernel__k2__noise_level=0.3).gram(X)
    with pytest.raises(TypeError, match="batch the whole"):
        bk + K.RBF()
    with pytest.raises(TypeError, match="batch the whole"):
        K.RBF() * bk


def test_batched_of_wrappers():
    inner = K.Chordal(K.Matern(0.5, nu=1.5)) + K.ActiveDims(K.RBF(2.0), (2,))
    bk = K.Batched(inner, 2, distinct=("k1__kernel__length_scale",))
    bk = bk.replace(kernel__k1__kernel__length_scale=np.array([0.3, 0.9]))
    Xw = np.concatenate([RNG.uniform(-90, 90, (2, N, 2)), RNG.normal(size=(2, N, 1))], axis=-1)
    G = bk.gram(Xw)
    for b, ls in enumerate([0.3, 0.9]):
        np.testing.assert_allclose(G[b], inner.replace(k1__kernel__length_scale=ls).gram(Xw[b]), rtol=1e-13)
