"""Constant, White, DotProduct, Linear, Polynomial against scikit-learn / NumPy references."""

import numpy as np
import pytest
from sklearn.gaussian_process import kernels as skk

import skgpx.kernels as K

RNG = np.random.default_rng(4)
X, Y = RNG.normal(size=(7, 3)), RNG.normal(size=(4, 3))


@pytest.mark.parametrize(
    "k, sk",
    [
        (K.Constant(2.3), skk.ConstantKernel(2.3)),
        (K.White(0.4), skk.WhiteKernel(0.4)),
        (K.DotProduct(0.7), skk.DotProduct(0.7)),
    ],
    ids=["constant", "white", "dot"],
)
def test_against_sklearn(k, sk):
    np.testing.assert_allclose(k.gram(X), sk(X), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k.cross(X, Y), sk(X, Y), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(k.diag(X), sk.diag(X), rtol=1e-12, atol=1e-12)


def test_white_is_zero_between_sets_even_on_equal_rows():
    k = K.White(0.5)
    np.testing.assert_array_equal(k.cross(X, X), 0.0)
    np.testing.assert_array_equal(k.gram(X), 0.5 * np.eye(7))


def test_linear_and_polynomial_against_numpy():
    np.testing.assert_allclose(K.Linear(1.7).gram(X), 1.7 * X @ X.T, rtol=1e-13)
    np.testing.assert_allclose(K.Linear(1.7).cross(X, Y), 1.7 * X @ Y.T, rtol=1e-13)
    np.testing.assert_allclose(K.Linear(1.7).diag(X), 1.7 * np.sum(X * X, 1), rtol=1e-13)
    p = K.Polynomial(0.6, degree=3)
    np.testing.assert_allclose(p.gram(X), (0.36 + X @ X.T) ** 3, rtol=1e-12)
    np.testing.assert_allclose(p.cross(X, Y), (0.36 + X @ Y.T) ** 3, rtol=1e-12)
    np.testing.assert_allclose(p.diag(X), (0.36 + np.sum(X * X, 1)) ** 3, rtol=1e-12)
    # Polynomial is DotProduct ** degree, value for value
    np.testing.assert_allclose(p.gram(X), skk.DotProduct(0.6)(X) ** 3, rtol=1e-12)


def test_polynomial_degree_error():
    with pytest.raises(ValueError, match="positive integer"):
        K.Polynomial(1.0, degree=1.5)


def test_split_white():
    k = K.Constant(0.4) * K.RBF(2.5) + K.White(0.01) + K.White(0.02)
    smooth, noise = k.split_white()
    assert isinstance(smooth, type(K.Constant(0.4) * K.RBF(2.5)))
    np.testing.assert_allclose(float(noise), 0.03)
    assert K.RBF(1.0).split_white() == (K.RBF(1.0), 0.0)
    smooth, noise = K.White(0.5).split_white()
    assert smooth is None and float(noise) == 0.5


def test_without_white_and_white_diagonal():
    # White terms anywhere in the tree (a sum, a product, an active-dims wrapper) are zeroed;
    # the structure, and so theta's layout, is kept.
    k = K.Constant(0.4) * K.RBF(2.5) + K.ActiveDims(K.White(0.3), dims=(0,)) + K.White(0.1) * K.Constant(2.0)
    base = k.without_white()
    assert base.theta.shape == k.theta.shape
    np.testing.assert_allclose(base.gram(X), (K.Constant(0.4) * K.RBF(2.5)).gram(X), rtol=1e-12)
    np.testing.assert_allclose(k.white_diagonal(X), np.full(len(X), 0.3 + 0.2), rtol=1e-12)
    np.testing.assert_allclose(k.gram(X) - base.gram(X), np.diag(k.white_diagonal(X)), atol=1e-12)
    np.testing.assert_allclose(K.RBF(1.0).white_diagonal(X), np.zeros(len(X)))
