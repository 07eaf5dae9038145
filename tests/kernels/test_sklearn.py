"""from_sklearn / to_sklearn: identical values, theta, bounds and fixed flags; round trips; errors."""

import numpy as np
import pytest
from sklearn.gaussian_process import kernels as skk

import skgpx.kernels as K

RNG = np.random.default_rng(0)
X = RNG.normal(size=(7, 3))
Y = RNG.normal(size=(5, 3))

SK_KERNELS = {
    "rbf": skk.RBF(0.7),
    "rbf_ard": skk.RBF([0.5, 1.3, 2.0], length_scale_bounds=[[1e-2, 1e1], [1e-3, 1e2], [0.1, 5.0]]),
    "rbf_fixed": skk.RBF(0.9, length_scale_bounds="fixed"),
    "matern05": skk.Matern(0.8, nu=0.5),
    "matern15_ard": skk.Matern([0.5, 1.3, 2.0], nu=1.5),
    "matern25": skk.Matern(1.1, (1e-3, 1e3), nu=2.5),
    "rq": skk.RationalQuadratic(0.9, 2.5, alpha_bounds="fixed"),
    "periodic": skk.ExpSineSquared(1.2, 2.3, periodicity_bounds=(0.1, 10.0)),
    "dot": skk.DotProduct(0.4),
    "const": skk.ConstantKernel(2.5, (1e-2, 1e2)),
    "white": skk.WhiteKernel(0.3),
    "sum_prod": skk.ConstantKernel(2.0) * skk.RBF([1.0, 2.0, 0.5]) + skk.WhiteKernel(0.1, "fixed"),
    "nested": (skk.Matern(0.5, nu=2.5) + skk.RationalQuadratic(1.0, 0.5)) * skk.ExpSineSquared(1.0, 3.0)
    + skk.DotProduct(1.0) ** 2,
    "power": skk.Exponentiation(skk.RBF(1.5) + skk.ConstantKernel(0.5), 3.0),
}


def _assert_same(sk, k):
    np.testing.assert_allclose(np.asarray(k(X)), sk(X), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(k(X, Y)), sk(X, Y), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(k.diag(X)), sk.diag(X), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(k.theta), sk.theta, rtol=0, atol=1e-15)
    # scikit-learn returns shape (0,) when all are fixed; skgpx keeps (0, 2).
    np.testing.assert_allclose(k.bounds, sk.bounds.reshape(-1, 2), rtol=0, atol=1e-15)
    free = [h.name for h in K.hyperparameter_list(k) if not h.fixed]
    sk_free = [h.name for h in sk.hyperparameters if not h.fixed]
    assert free == sk_free


@pytest.mark.parametrize("name", sorted(SK_KERNELS))
def test_from_sklearn_identical(name):
    sk = SK_KERNELS[name]
    _assert_same(sk, K.from_sklearn(sk))


@pytest.mark.parametrize("name", sorted(SK_KERNELS))
def test_round_trip(name):
    sk = SK_KERNELS[name]
    k = K.from_sklearn(sk)
    sk2 = K.to_sklearn(k)
    assert type(sk2) is type(sk)
    _assert_same(sk2, k)
    # skgpx -> sklearn -> skgpx rebuilds the same tree (same static bounds, same leaves).
    k2 = K.from_sklearn(sk2)
    assert K.hyperparameter_list(k2) == K.hyperparameter_list(k)
    np.testing.assert_array_equal(np.asarray(k2.theta), np.asarray(k.theta))


def test_with_theta_matches_sklearn_clone_with_theta():
    sk = SK_KERNELS["sum_prod"]
    k = K.from_sklearn(sk)
    theta = sk.theta + 0.3
    _assert_same(sk.clone_with_theta(theta), k.with_theta(theta))


def test_matern_inf_becomes_rbf():
    k = K.from_sklearn(skk.Matern(0.6, nu=np.inf))
    assert type(k) is K.RBF
    _assert_same(skk.Matern(0.6, nu=np.inf), k)


def test_to_sklearn_from_skgpx_built_kernel():
    k = 2.0 * K.Matern([0.3, 0.4, 0.5], nu=0.5) + K.White(0.2, noise_level_bounds="fixed")
    _assert_same(K.to_sklearn(k), k)


@pytest.mark.parametrize(
    "sk, needle",
    [
        (skk.PairwiseKernel(metric="laplacian"), "PairwiseKernel"),
        (skk.CompoundKernel([skk.RBF(), skk.RBF()]), "CompoundKernel"),
        (skk.Exponentiation(skk.RBF(), 1.5), "Exponentiation"),
        (skk.Matern(nu=0.7), "Matern"),
        (skk.RBF() + skk.PairwiseKernel(), "PairwiseKernel"),
    ],
)
def test_unsupported_sklearn_kernels(sk, needle):
    with pytest.raises(ValueError, match=needle) as info:
        K.from_sklearn(sk)
    assert "Supported kernels: RBF" in str(info.value)


@pytest.mark.parametrize(
    "k, needle",
    [
        (K.Linear(2.0), "ConstantKernel\\(variance\\)"),
        (K.Polynomial(1.0, degree=3), "DotProduct\\(sigma_0\\) \\*\\* degree"),
        (K.RBF() + K.Linear(), "Linear"),
    ],
)
def test_to_sklearn_without_exact_equivalent(k, needle):
    with pytest.raises(ValueError, match=needle):
        K.to_sklearn(k)


def test_type_errors():
    with pytest.raises(TypeError, match="scikit-learn kernel"):
        K.from_sklearn("rbf")
    with pytest.raises(TypeError, match="skgpx kernel"):
        K.to_sklearn(skk.RBF())
    with pytest.raises(TypeError, match="got NoneType"):
        K.as_skgpx_kernel(None)


def test_as_skgpx_kernel():
    k = K.RBF(0.5)
    assert K.as_skgpx_kernel(k) is k
    _assert_same(skk.RBF(0.5), K.as_skgpx_kernel(skk.RBF(0.5)))
