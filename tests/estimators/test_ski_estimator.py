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


def test_auto_picks_the_masked_grid_for_gridded_data_only(monkeypatch):
    import skgpx.gp._auto as auto
    from skgpx.gp._auto import select_solver
    from skgpx.kernels import DotProduct

    rng = np.random.default_rng(2)
    ii, jj = np.meshgrid(np.arange(200.0), np.arange(150.0), indexing="ij")
    cells = np.column_stack([ii.ravel(), jj.ravel()])
    X = cells[rng.random(len(cells)) > 0.4]  # 18 000 cells of a 200 x 150 lattice
    n = len(X)
    k = 1.0 * Matern(10.0, nu=1.5)
    assert select_solver(n, 2, optimize=False, kernel=k, X=X) == "ski"
    assert select_solver(n, 2, optimize=False) != "ski"  # no kernel, no inputs: no grid decision
    assert select_solver(n, 2, optimize=False, kernel=DotProduct(1.0), X=X) != "ski"  # no grid structure
    jittered = X + rng.uniform(-0.1, 0.1, X.shape)
    assert select_solver(n, 2, optimize=False, kernel=k, X=jittered) != "ski"  # scattered: SKI is by name only
    assert select_solver(n, 2, optimize=False, kernel=k, X=np.concatenate([X[:-1], X[:1]])) != "ski"  # repeats
    # The estimator reports which solver ran; below the Cholesky range it stays exact by Cholesky.
    monkeypatch.setattr(auto, "CHOLESKY_MAX_N_FIXED", 100)
    small = cells[(cells[:, 0] < 20) & (cells[:, 1] < 20)]
    Xs = small[rng.random(len(small)) > 0.3]
    y = np.sin(Xs[:, 0] / 4) + np.cos(Xs[:, 1] / 5) + 0.1 * rng.standard_normal(len(Xs))
    kern = 1.0 * Matern(5.0, nu=1.5)
    gpr = ScalableGPRegressor(kern, alpha=0.01, optimizer=None, random_state=0).fit(Xs, y)
    assert gpr.solver_ == "ski" and gpr.solver_info_["interpolation_order"] == 0
    assert gpr.solver_info_["preconditioner"] == "circulant"
    exact = ScalableGPRegressor(kern, alpha=0.01, optimizer=None, solver="cholesky").fit(Xs, y)
    np.testing.assert_allclose(gpr.predict(small), exact.predict(small), atol=1e-5)


def test_auto_variances_past_exact_var_max():
    """``variance_method="auto"`` past ``exact_var_max`` test points (LOVE when its check-point error
    is within ``love_max_error``, else exact solves, chosen inside the compiled program: it once
    failed to trace) against scikit-learn's exact GP."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import Matern as SkMatern

    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (200, 1))
    y = np.sin(6 * X[:, 0]) + 0.1 * rng.standard_normal(200)
    kernel = SkMatern(0.2, length_scale_bounds="fixed", nu=1.5)
    Xs = np.linspace(0.05, 0.95, 40)[:, None]
    est = ScalableGPRegressor(kernel, alpha=0.01, optimizer=None, solver=SKIInference(exact_var_max=8)).fit(X, y)
    mean, std = est.predict(Xs, return_std=True)
    ref = GaussianProcessRegressor(kernel, alpha=0.01, optimizer=None).fit(X, y)
    ref_mean, ref_std = ref.predict(Xs, return_std=True)
    np.testing.assert_allclose(mean, ref_mean, atol=5e-3)  # SKI's interpolation_tol, relative to the prior variance
    np.testing.assert_allclose(std, ref_std, rtol=0.03)  # LOVE within love_max_error (2%) plus interpolation


def test_outside_the_grid_is_nan_in_cov_and_pathwise_samples():
    """Outside the grid (it covers the training data only) every prediction is NaN, as documented:
    ``return_cov`` once gave those rows zero covariance and pathwise samples gave zeros there."""
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (60, 1))
    y = np.sin(6 * X[:, 0]) + 0.1 * rng.standard_normal(60)
    est = ScalableGPRegressor(1.0 * Matern(0.3, nu=2.5), alpha=0.01, optimizer=None, solver="ski",
                              random_state=0).fit(X, y)
    Xs = np.array([[-3.0], [0.5], [9.0]])
    outside = np.array([True, False, True])
    _, cov = est.predict(Xs, return_cov=True)
    assert np.all(np.isnan(cov[outside])) and np.all(np.isnan(cov[:, outside]))
    assert np.isfinite(cov[1, 1]) and cov[1, 1] > 0
    for method in ("pathwise", "exact"):
        samples = est.sample_y(Xs, n_samples=2, random_state=0, method=method)
        assert np.all(np.isnan(samples[outside])) and np.all(np.isfinite(samples[~outside]))


def test_log_marginal_likelihood_of_theta_on_a_masked_grid_with_circulant_preconditioner():
    """``log_marginal_likelihood(theta)`` (the optimiser's objective) on a masked grid, where
    ``preconditioner="auto"`` is circulant: its SLQ probes once ran through the circulant PCG
    without ``log|P|`` (-168.5 against the exact 16.9)."""
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel
    from sklearn.gaussian_process.kernels import Matern as SkMatern

    rng = np.random.default_rng(1)
    cells = np.stack(np.meshgrid(np.arange(15) * 0.2, np.arange(12) * 0.25, indexing="ij"), -1).reshape(-1, 2)
    X = cells[rng.uniform(size=len(cells)) > 0.3]
    y = np.sin(X[:, 0]) * np.cos(X[:, 1]) + 0.1 * rng.standard_normal(len(X))
    kernel = ConstantKernel(1.0) * SkMatern(0.8, nu=1.5)
    est = ScalableGPRegressor(kernel, alpha=0.01, optimizer=None, solver="ski", random_state=0).fit(X, y)
    assert est.solver_info_["preconditioner"] == "circulant"
    exact = GaussianProcessRegressor(kernel, alpha=0.01, optimizer=None).fit(X, y)
    theta = est.kernel_.theta
    value, grad = est.log_marginal_likelihood(theta, eval_gradient=True)
    ref, ref_grad = exact.log_marginal_likelihood(theta, eval_gradient=True)
    # The SLQ probes run through block-Jacobi, one block of all 129 cells here: log|A| is exact
    # (plain probes had a standard error of 10.3), and the fit's value is the exact GP's.
    stderr = est.solver_info_["logdet_stderr"]
    assert stderr < 1e-6
    assert abs(est.log_marginal_likelihood_value_ - exact.log_marginal_likelihood_value_) < 3 * stderr + 1e-6 * abs(ref)
    tol = 3 * stderr + 1e-2 * abs(ref)  # the objective solves to train_tol = 1e-2
    assert abs(est.log_marginal_likelihood(theta) - ref) < tol
    assert abs(value - ref) < tol
    np.testing.assert_allclose(grad, ref_grad, rtol=0.1)
