"""Stationary kernels against scikit-learn (1e-12, float64) on both distance paths; ARD; exact diagonal."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.gaussian_process import kernels as skk

import skgpx.kernels as K
from skgpx.kernels._stationary import _DIRECT_JVP_MAX_FEATURES, _DIRECT_MAX_FEATURES, _column_sq_dist, sq_dist

RNG = np.random.default_rng(3)

PAIRS = {
    "rbf": (K.RBF(0.8), skk.RBF(0.8)),
    "matern05": (K.Matern(0.6, nu=0.5), skk.Matern(0.6, nu=0.5)),
    "matern15": (K.Matern(1.3, nu=1.5), skk.Matern(1.3, nu=1.5)),
    "matern25": (K.Matern(0.9, nu=2.5), skk.Matern(0.9, nu=2.5)),
    "matern_inf": (K.Matern(0.9, nu=np.inf), skk.Matern(0.9, nu=np.inf)),
    "rq": (K.RationalQuadratic(0.7, 1.7), skk.RationalQuadratic(0.7, 1.7)),
    "periodic": (K.ExpSineSquared(1.1, 2.3), skk.ExpSineSquared(1.1, 2.3)),
}


@pytest.mark.parametrize("d", [1, 3, 5])  # direct differences; with the product JVP; GEMM path
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_against_sklearn(name, d):
    k, sk = PAIRS[name]
    X, Y = RNG.normal(size=(9, d)), RNG.normal(size=(4, d))
    np.testing.assert_allclose(k.gram(X), sk(X), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k.cross(X, Y), sk(X, Y), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k.diag(X), sk.diag(X), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k.pairwise(X[1], Y[2]), sk(X[1:2], Y[2:3])[0, 0], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(np.diag(k.gram(X)), k.diag(X))  # exact diagonal


@pytest.mark.parametrize("nu", [0.5, 1.5, 2.5, np.inf])
def test_ard_against_sklearn(nu):
    ls = [0.5, 2.0, 1.3, 0.8]
    X, Y = RNG.normal(size=(8, 4)), RNG.normal(size=(5, 4))
    k, sk = K.Matern(ls, nu=nu), skk.Matern(ls, nu=nu)
    np.testing.assert_allclose(k.gram(X), sk(X), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k.cross(X, Y), sk(X, Y), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(K.RBF(ls).gram(X), skk.RBF(ls)(X), rtol=1e-12, atol=1e-12)
    assert k.anisotropic and k.theta.shape == (4,)


def test_sq_dist_paths_agree_and_clamp():
    A = RNG.normal(size=(20, 5)) + 1e3  # large offset: the GEMM identity cancels badly
    direct = np.sum((A[:, None] - A[None]) ** 2, -1)
    r2 = np.asarray(sq_dist(jnp.asarray(A), jnp.asarray(A), same=True))
    assert np.all(r2 >= 0)  # negatives from cancellation are clamped
    np.testing.assert_array_equal(np.diag(r2), 0.0)  # exact zero on the Gram diagonal
    np.testing.assert_allclose(r2, direct, atol=1e-6 * 1e6)
    a1 = RNG.normal(size=(6, _DIRECT_MAX_FEATURES))
    np.testing.assert_array_equal(sq_dist(a1, a1), np.sum((a1[:, None] - a1[None]) ** 2, -1))


@pytest.mark.parametrize("same", [True, False])
def test_sq_dist_product_jvp_equals_autodiff_of_the_column_sum(same):
    d = _DIRECT_JVP_MAX_FEATURES
    assert d > _DIRECT_MAX_FEATURES
    A = jnp.asarray(RNG.normal(size=(7, d)))
    B = A if same else jnp.asarray(RNG.normal(size=(5, d)))
    W = jnp.asarray(RNG.normal(size=(A.shape[0], B.shape[0])))

    def loss(f):
        # through a length scale per feature, as an ARD kernel differentiates it
        return lambda ls, A, B: jnp.sum(W * jnp.exp(-f(A / ls, B / ls)))

    ours = loss(lambda a, b: sq_dist(a, a if same else b, same=same))
    ref = loss(lambda a, b: _column_sq_dist(a, a if same else b))
    ls = jnp.asarray([0.7, 1.3, 2.0])
    np.testing.assert_array_equal(ours(ls, A, B), ref(ls, A, B))  # the forward is the column sum
    for f in (jax.grad, jax.jacfwd, jax.hessian):  # reverse, forward, second order
        for argnums in (0, 1, (0, 1, 2)):
            got, want = jax.jit(f(ours, argnums))(ls, A, B), jax.jit(f(ref, argnums))(ls, A, B)
            for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
                np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kernel", [K.Matern(0.7, nu=0.5), K.Matern(0.7, nu=1.5), K.ExpSineSquared(1.0, 2.0)])
def test_gradient_finite_at_zero_distance(kernel):
    X = jnp.asarray(RNG.normal(size=(5, 2)))
    X = X.at[3].set(X[1])  # duplicated row: zero distance off the diagonal
    g = jax.grad(lambda th: kernel.with_theta(th).gram(X).sum())(kernel.theta)
    gx = jax.grad(lambda x: kernel.gram(x).sum())(X)
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(gx))


def test_gradient_matches_sklearn_eval_gradient():
    for d in (2, 3, 5):  # each distance path
        sk = skk.RationalQuadratic(0.7, 1.7) + skk.Matern(np.linspace(0.5, 1.5, d), nu=2.5)
        k = K.from_sklearn(sk)
        X = RNG.normal(size=(6, d))
        _, dK = sk(X, eval_gradient=True)
        jac = jax.jit(jax.jacfwd(lambda th: k.with_theta(th).gram(X)))(k.theta)
        np.testing.assert_allclose(jac, dK, rtol=1e-10, atol=1e-12)
        rev = jax.jit(jax.jacrev(lambda th: k.with_theta(th).gram(X)))(k.theta)
        np.testing.assert_allclose(rev, dK, rtol=1e-10, atol=1e-12)


def test_matern_bad_nu():
    with pytest.raises(ValueError, match=r"nu in \{0.5, 1.5, 2.5\}"):
        K.Matern(1.0, nu=0.7)


def test_periodic_needs_scalar_hyperparameters():
    with pytest.raises(ValueError, match="ActiveDims"):
        K.ExpSineSquared([1.0, 2.0], 1.0)
    bk = K.Batched(K.ExpSineSquared(1.0, 2.0), 3, distinct=True)  # distinct leaves are fine
    assert bk.gram(RNG.normal(size=(3, 4, 2))).shape == (3, 4, 4)
