"""ActiveDims: equals the kernel on the selected columns; additive models; errors."""

import numpy as np
import pytest
from sklearn.gaussian_process import kernels as skk

import skgpx.kernels as K

RNG = np.random.default_rng(2)
X = RNG.normal(size=(6, 4))
Y = RNG.normal(size=(3, 4))


@pytest.mark.parametrize("dims", [(1,), (0, 1), (3, 0, 2), 2])
def test_equals_kernel_on_columns(dims):
    cols = [dims] if isinstance(dims, int) else list(dims)
    base = K.Matern(np.linspace(0.5, 1.5, len(cols)), nu=1.5)
    k = K.ActiveDims(base, dims)
    np.testing.assert_allclose(k.gram(X), base.gram(X[:, cols]), rtol=1e-14)
    np.testing.assert_allclose(k.cross(X, Y), base.cross(X[:, cols], Y[:, cols]), rtol=1e-14)
    np.testing.assert_allclose(k.diag(X), base.diag(X[:, cols]), rtol=1e-14)
    np.testing.assert_allclose(k.pairwise(X[0], Y[1]), base.pairwise(X[0, cols], Y[1, cols]), rtol=1e-14)


def test_additive_model_against_sklearn_reference():
    k = K.ActiveDims(K.RBF(0.7), (0,)) + 2.0 * K.ActiveDims(K.ExpSineSquared(1.0, 2.0), (2, 3))
    ref = skk.RBF(0.7)(X[:, [0]]) + 2.0 * skk.ExpSineSquared(1.0, 2.0)(X[:, [2, 3]])
    np.testing.assert_allclose(k.gram(X), ref, rtol=1e-12, atol=1e-12)
    assert k.theta.shape == (4,)
    assert [h.name for h in K.hyperparameter_list(k)][0] == "k1__kernel__length_scale"


def test_padding_through_active_dims():
    k = K.ActiveDims(K.RBF([1.0, 2.0]), (1, 3))
    Xn = X.copy()
    Xn[2, 0] = np.nan  # NaN in an inactive column still marks the row as padded
    G = k.gram(Xn, "nan")
    np.testing.assert_array_equal(G[2], np.eye(6)[2])


def test_errors():
    with pytest.raises(ValueError, match="non-empty tuple"):
        K.ActiveDims(K.RBF(), ())
    with pytest.raises(ValueError, match="non-empty tuple"):
        K.ActiveDims(K.RBF(), (0, 0))
    with pytest.raises(ValueError, match="only has|only 4 features|has only"):
        K.ActiveDims(K.RBF(), (5,)).gram(X)
    with pytest.raises(TypeError, match="skgpx kernel"):
        K.ActiveDims(skk.RBF(), (0,))
