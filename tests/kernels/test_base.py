"""The kernel contract: padding masks, jit/vmap/grad, no retrace, custom pairwise-only kernels, errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import skgpx.kernels as K

RNG = np.random.default_rng(6)
N, D = 8, 3
X = RNG.normal(size=(N, D))
Y = RNG.normal(size=(5, D))
MASK = np.array([True, True, False, True, True, True, False, True])
KERNEL = 1.5 * K.Matern([0.5, 1.0, 2.0], nu=2.5) + K.RationalQuadratic(0.8, 1.2) + K.White(0.1)


class MyRBF(K.AbstractKernel):
    """A user kernel written with only its pairwise formula."""

    length_scale: object = K.hyperparameter_field(default=1.0)
    length_scale_bounds: object = K.bounds_field()
    hyperparameters = ("length_scale",)

    def pairwise(self, x1, x2):
        d = (x1 - x2) / self.length_scale
        return jnp.exp(-0.5 * jnp.dot(d, d))


def test_padded_gram_values():
    G = np.asarray(KERNEL.gram(X, MASK))
    v, p = MASK, ~MASK
    np.testing.assert_allclose(G[np.ix_(v, v)], KERNEL.gram(X[v]), rtol=1e-14)
    np.testing.assert_array_equal(G[np.ix_(p, p)], np.eye(p.sum()))
    np.testing.assert_array_equal(G[np.ix_(v, p)], 0.0)
    np.testing.assert_array_equal(KERNEL.diag(X, MASK)[p], 1.0)
    C = np.asarray(KERNEL.cross(X, Y, MASK, None))
    np.testing.assert_array_equal(C[p], 0.0)
    np.testing.assert_allclose(C[v], KERNEL.cross(X[v], Y), rtol=1e-14)
    np.linalg.cholesky(G)  # padded Gram stays positive definite


def test_nan_rows_equal_explicit_mask_and_grad_is_finite():
    Xnan = np.where(MASK[:, None], X, np.nan)
    Xnan[0, 1] = X[0, 1]
    np.testing.assert_array_equal(KERNEL.gram(Xnan, "nan"), KERNEL.gram(X, MASK))
    np.testing.assert_array_equal(KERNEL.cross(Y, Xnan, None, "nan"), KERNEL.cross(Y, X, None, MASK))

    def logdet(theta, X, mask):
        L = jnp.linalg.cholesky(KERNEL.with_theta(theta).gram(X, mask))
        return jnp.sum(jnp.log(jnp.diag(L)))

    grad = jax.jit(jax.grad(logdet), static_argnums=2)
    g = grad(KERNEL.theta, Xnan, "nan")
    assert np.all(np.isfinite(g))
    # equal to the gradient on the valid rows only (padded blocks are constant)
    np.testing.assert_allclose(g, grad(KERNEL.theta, X[MASK], None), rtol=1e-12)
    gx = jax.jit(jax.grad(lambda x: KERNEL.gram(x, "nan").sum()))(jnp.asarray(Xnan))
    assert np.all(np.isfinite(gx[MASK]))


def test_no_retrace_and_jit_matches_eager():
    @eqx.filter_jit
    @eqx.debug.assert_max_traces(max_traces=1)
    def gram(kernel, X, mask):
        return kernel.gram(X, mask)

    G1 = gram(KERNEL, X, MASK)
    k2 = KERNEL.with_theta(KERNEL.theta + 0.3)
    G2 = gram(k2, X, MASK)
    np.testing.assert_allclose(G1, KERNEL.gram(X, MASK), rtol=1e-14)
    np.testing.assert_allclose(G2, k2.gram(X, MASK), rtol=1e-14)
    assert not np.allclose(G1, G2)


def test_vmap_over_inputs_and_hyperparameters():
    Xs = RNG.normal(size=(4, N, D))
    out = jax.jit(jax.vmap(KERNEL.gram))(Xs)
    for i in range(4):
        np.testing.assert_allclose(out[i], KERNEL.gram(Xs[i]), rtol=1e-14)
    thetas = KERNEL.theta[None] + jnp.linspace(-0.5, 0.5, 3)[:, None]
    outs = jax.jit(jax.vmap(lambda th: KERNEL.with_theta(th).gram(X)))(thetas)
    np.testing.assert_allclose(outs[2], KERNEL.with_theta(thetas[2]).gram(X), rtol=1e-14)


def test_grad_against_finite_differences():
    f = jax.jit(lambda th: jnp.sum(KERNEL.with_theta(th).cross(X, Y) ** 2))
    th = jnp.asarray(KERNEL.theta)
    g = jax.grad(f)(th)
    eps = 1e-6
    fd = np.array([(f(th.at[i].add(eps)) - f(th.at[i].add(-eps))) / (2 * eps) for i in range(th.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-8)


def test_custom_pairwise_kernel_matches_builtin():
    mine, ref = MyRBF(np.array([0.5, 1.0, 2.0])), K.RBF([0.5, 1.0, 2.0])
    np.testing.assert_allclose(mine.gram(X), ref.gram(X), rtol=1e-13)
    np.testing.assert_allclose(mine.cross(X, Y), ref.cross(X, Y), rtol=1e-13)
    np.testing.assert_allclose(mine.diag(X), ref.diag(X), rtol=1e-13)
    np.testing.assert_allclose(mine.gram(X, MASK), ref.gram(X, MASK), rtol=1e-13)
    np.testing.assert_allclose(mine.theta, ref.theta)
    combo_mine, combo_ref = 2.0 * mine + K.White(0.1), 2.0 * ref + K.White(0.1)
    np.testing.assert_allclose(combo_mine.gram(X), combo_ref.gram(X), rtol=1e-13)
    bm = K.Batched(mine, 2, distinct=True).with_theta(np.log([0.3, 0.6, 0.9, 1.2, 1.5, 1.8]))
    br = K.Batched(ref, 2, distinct=True).with_theta(bm.theta)
    Xb = np.stack([X, X[::-1]])
    np.testing.assert_allclose(bm.gram(Xb), br.gram(Xb), rtol=1e-13)


def test_missing_pairwise_error():
    class Empty(K.AbstractKernel):
        pass

    with pytest.raises(NotImplementedError, match="must implement `pairwise"):
        Empty().gram(X)


def test_shape_and_mask_errors():
    with pytest.raises(ValueError, match="Batched"):
        K.RBF().gram(X[None])
    with pytest.raises(ValueError, match="one flag per row"):
        K.RBF().gram(X, MASK[:-1])
    with pytest.raises(ValueError, match="'nan'"):
        K.RBF().gram(X, "missing")
