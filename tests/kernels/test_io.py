"""save/load round trip via Equinox leaf serialisation."""

import numpy as np
import pytest

import skgpx.kernels as K


def test_round_trip(tmp_path):
    k = 2.0 * K.Matern([0.3, 0.7], nu=2.5) + K.White(0.1, noise_level_bounds="fixed")
    k = k.with_theta(np.asarray(k.theta) + 0.25)
    path = tmp_path / "kernel.eqx"
    K.save(path, k)
    like = 1.0 * K.Matern([1.0, 1.0], nu=2.5) + K.White(1.0, noise_level_bounds="fixed")
    out = K.load(path, like)
    np.testing.assert_array_equal(out.theta, k.theta)
    np.testing.assert_array_equal(out.k2.noise_level, 0.1)
    X = np.random.default_rng(0).normal(size=(4, 2))
    np.testing.assert_array_equal(out.gram(X), k.gram(X))


def test_round_trip_batched(tmp_path):
    bk = K.Batched(K.RBF(0.5), 4, distinct=True)
    bk = bk.with_theta(np.log([0.1, 0.2, 0.3, 0.4]))
    K.save(tmp_path / "b.eqx", bk)
    out = K.load(tmp_path / "b.eqx", K.Batched(K.RBF(1.0), 4, distinct=True))
    np.testing.assert_allclose(out.kernel.length_scale, [0.1, 0.2, 0.3, 0.4], rtol=1e-15)


def test_shape_mismatch_is_a_value_error(tmp_path):
    K.save(tmp_path / "k.eqx", K.RBF([1.0, 2.0]))
    with pytest.raises(ValueError, match="same structure"):
        K.load(tmp_path / "k.eqx", K.RBF(1.0))
    with pytest.raises(TypeError, match="skgpx kernel"):
        K.save(tmp_path / "x.eqx", "rbf")
