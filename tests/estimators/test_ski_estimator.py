"""ScalableGPRegressor(solver="ski") against the exact solver."""

import numpy as np

from skgpx import ScalableGPRegressor
from skgpx.gp import SKIInference
from skgpx.kernels import Matern, White


def test_ski_solver_works_with_nothing_else_set():
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (200, 1))
    y = np.sin(8 * X[:, 0]) + 0.1 * rng.standard_normal(200)
    kernel = 1.0 * Matern(0.3, nu=2.5) + White(0.01)
    Xs = rng.uniform(0.1, 0.9, (30, 1))
    ski = ScalableGPRegressor(kernel, solver="ski", random_state=0).fit(X, y)
    assert ski.solver_ == "ski" and ski.solver_info_["solver"] == "ski"
    assert ski.solver_info_["interpolation_error_max"] < 1e-2
    assert ski.log_marginal_likelihood_value_ > ScalableGPRegressor(
        kernel, solver="ski", optimizer=None, random_state=0).fit(X, y).log_marginal_likelihood_value_
    exact = ScalableGPRegressor(ski.kernel_, solver="cholesky", optimizer=None).fit(X, y)
    m_s, s_s = ski.predict(Xs, return_std=True)
    m_e, s_e = exact.predict(Xs, return_std=True)
    np.testing.assert_allclose(m_s, m_e, atol=2e-2)
    np.testing.assert_allclose(s_s, s_e, rtol=5e-2)
    samples = ski.sample_y(Xs, n_samples=3, random_state=1, method="pathwise")
    assert samples.shape == (30, 3) and np.all(np.isfinite(samples))
    assert np.all(np.isnan(ski.predict(np.array([[5.0]]))))  # outside the grid


def test_ski_solver_object():
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 1, (200, 1))
    y = np.sin(6 * X[:, 0]) + 0.1 * rng.standard_normal(200)
    gpr = ScalableGPRegressor(1.0 * Matern(0.2, nu=1.5), alpha=0.01, optimizer=None,
                              solver=SKIInference(points_per_length_scale=8.0, interpolation_order=1)).fit(X, y)
    assert gpr.solver_info_["interpolation_order"] == 1
    exact = ScalableGPRegressor(1.0 * Matern(0.2, nu=1.5), alpha=0.01, optimizer=None, solver="cholesky").fit(X, y)
    np.testing.assert_allclose(gpr.predict(X[:20]), exact.predict(X[:20]), atol=2e-2)
