"""theta / bounds / with_theta / replace / freezing / parameters."""

import numpy as np
import pytest

import skgpx.kernels as K

KERNEL = 2.0 * K.RBF([0.5, 2.0], length_scale_bounds=[[1e-2, 1.0], [1e-1, 10.0]]) + K.White(
    0.1, noise_level_bounds="fixed"
)


def test_theta_and_bounds():
    np.testing.assert_allclose(KERNEL.theta, np.log([2.0, 0.5, 2.0]))
    np.testing.assert_allclose(KERNEL.bounds, np.log([[1e-5, 1e5], [1e-2, 1.0], [1e-1, 10.0]]))
    hs = K.hyperparameter_list(KERNEL)
    assert [h.fixed for h in hs] == [False, False, True]
    assert hs[1].shape == (2,) and hs[1].n_elements == 2


def test_with_theta_round_trip_and_frozen_untouched():
    th = np.log([3.0, 0.25, 4.0])
    k = KERNEL.with_theta(th)
    np.testing.assert_allclose(k.theta, th, rtol=1e-15)
    assert float(k.k2.noise_level) == 0.1
    with pytest.raises(ValueError, match=r"theta must have shape \(3,\)"):
        KERNEL.with_theta(np.zeros(4))


def test_replace_values_and_bounds():
    k = KERNEL.replace(k1__k2__length_scale=[1.0, 1.0], k2__noise_level_bounds=(1e-3, 1.0))
    assert k.theta.shape == (4,)
    np.testing.assert_allclose(k.theta[1:3], 0.0)
    frozen = KERNEL.replace(k1__k1__constant_value_bounds="fixed")
    assert frozen.theta.shape == (2,)
    with pytest.raises(ValueError, match="Valid parameters"):
        KERNEL.replace(k1__lengthscale=1.0)
    assert "k1__k2__length_scale_bounds" in KERNEL.parameters()


def test_bad_bounds():
    with pytest.raises(ValueError, match="0 < low <= high"):
        K.RBF(1.0, length_scale_bounds=(0.0, 1.0))
    with pytest.raises(ValueError, match="'fixed'"):
        K.RBF(1.0, length_scale_bounds="frozen")
    with pytest.raises(ValueError, match="one \\(low, high\\) pair or one per element"):
        K.RBF([1.0, 2.0, 3.0], length_scale_bounds=[[1e-2, 1.0], [1e-1, 10.0]]).bounds
