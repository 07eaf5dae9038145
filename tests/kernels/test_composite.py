"""Composition: nested sums, products, powers and scalar scaling equal scikit-learn."""

import numpy as np
import pytest
from sklearn.gaussian_process import kernels as skk

import skgpx.kernels as K

RNG = np.random.default_rng(5)
X, Y = RNG.normal(size=(8, 2)), RNG.normal(size=(3, 2))


def _pair():
    sk = (
        3.0 * skk.RBF([0.5, 1.5]) * skk.ExpSineSquared(1.0, 2.0)
        + (skk.Matern(0.7, nu=0.5) + skk.RationalQuadratic(1.0, 0.8)) ** 2
        + 0.5 * skk.DotProduct(0.3)
        + skk.WhiteKernel(0.05)
    )
    k = (
        3.0 * K.RBF([0.5, 1.5]) * K.ExpSineSquared(1.0, 2.0)
        + (K.Matern(0.7, nu=0.5) + K.RationalQuadratic(1.0, 0.8)) ** 2
        + 0.5 * K.DotProduct(0.3)
        + K.White(0.05)
    )
    return k, sk


def test_nested_against_sklearn():
    k, sk = _pair()
    np.testing.assert_allclose(k.gram(X), sk(X), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k.cross(X, Y), sk(X, Y), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k.diag(X), sk.diag(X), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k.theta, sk.theta, atol=1e-15)
    np.testing.assert_allclose(k.bounds, sk.bounds, atol=1e-15)
    assert [h.name for h in K.hyperparameter_list(k)] == [h.name for h in sk.hyperparameters]


def test_scalar_scaling_structure():
    k = 2.0 * K.RBF(1.0)
    assert isinstance(k, K.Product) and isinstance(k.k1, K.Constant)
    k = K.RBF(1.0) * 2.0
    assert isinstance(k.k2, K.Constant)
    k = K.RBF(1.0) + 1.0
    assert isinstance(k, K.Sum) and float(k.k2.constant_value) == 1.0


def test_composition_errors():
    with pytest.raises(TypeError, match="from_sklearn"):
        K.RBF() + skk.RBF()
    with pytest.raises(ValueError, match="positive integer exponent"):
        K.RBF() ** 0.5
    with pytest.raises(TypeError, match="number"):
        K.RBF() * "2"
