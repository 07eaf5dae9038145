"""Property tests in the style of scikit-learn's own test_gpr.py."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process.kernels import RBF, ConstantKernel as C, WhiteKernel

from skgpx import ScalableGPRegressor
from skgpx.gp import Cholesky
from skgpx.kernels import RBF as XRBF, Constant, White


def f(x):
    return x * np.sin(x)


X = np.atleast_2d([1.0, 3.0, 5.0, 6.0, 7.0, 8.0]).T
X2 = np.atleast_2d([2.0, 4.0, 5.5, 6.5, 7.5]).T
y = f(X).ravel()

KERNELS = [
    RBF(length_scale=1.0),
    C(1.0, (1e-2, 1e2)) * RBF(length_scale=1.0, length_scale_bounds=(1e-2, 1e2)),
    C(1.0) * RBF(1.0) + WhiteKernel(1e-3, (1e-6, 1e-1)),
    Constant(1.0, (1e-2, 1e2)) * XRBF(1.0, (1e-2, 1e2)),  # an skgpx kernel
]
IDS = ["rbf", "c_rbf", "c_rbf_white", "skgpx_c_rbf"]


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


@pytest.mark.parametrize("kernel", KERNELS[:2] + KERNELS[3:], ids=IDS[:2] + IDS[3:])
def test_interpolation_at_training_points(kernel):
    gpr = ScalableGPRegressor(kernel=kernel).fit(X, y)
    mean, std = gpr.predict(X, return_std=True)
    np.testing.assert_allclose(mean, y, atol=1e-6)
    np.testing.assert_allclose(std, 0.0, atol=1e-4)


@pytest.mark.parametrize("kernel", KERNELS, ids=IDS)
def test_lml_improves_and_gradient_matches_finite_differences(kernel):
    gpr = ScalableGPRegressor(kernel=kernel).fit(X, y)
    start = ScalableGPRegressor(kernel=kernel, optimizer=None).fit(X, y)
    assert gpr.log_marginal_likelihood_value_ > start.log_marginal_likelihood_value_
    # Gradient at a point away from the optimum vs central differences.
    theta = np.asarray(gpr.kernel_.theta) + 0.3
    lml, grad = gpr.log_marginal_likelihood(theta, eval_gradient=True)
    eps = 1e-5
    fd = np.array(
        [
            (gpr.log_marginal_likelihood(theta + eps * e) - gpr.log_marginal_likelihood(theta - eps * e)) / (2 * eps)
            for e in np.eye(len(theta))
        ]
    )
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-6)
    assert np.isclose(lml, gpr.log_marginal_likelihood(theta))
    # At the optimum the gradient vanishes (interior optimum) or points out of the box.
    _, g_opt = gpr.log_marginal_likelihood(gpr.kernel_.theta, eval_gradient=True)
    b = gpr.kernel_skgpx_.bounds
    interior = (gpr.kernel_.theta > b[:, 0] + 1e-3) & (gpr.kernel_.theta < b[:, 1] - 1e-3)
    np.testing.assert_allclose(g_opt[interior], 0.0, atol=1e-3)


def test_std_is_sqrt_diag_cov_and_multi_output_shapes():
    Y = np.column_stack([y, 2 * y, -y])
    gpr = ScalableGPRegressor(kernel=KERNELS[1]).fit(X, Y)
    m, std = gpr.predict(X2, return_std=True)
    m2, cov = gpr.predict(X2, return_cov=True)
    assert m.shape == (5, 3) and std.shape == (5, 3) and cov.shape == (5, 5, 3)
    np.testing.assert_allclose(m, m2)
    np.testing.assert_allclose(std, np.sqrt(np.einsum("iit->it", cov)), rtol=1e-6, atol=1e-10)
    # single target given as a column: mean squeezed as scikit-learn does.
    g1 = ScalableGPRegressor(kernel=KERNELS[1]).fit(X, y[:, None])
    assert g1.predict(X2).shape == (5,)
    with pytest.raises(ValueError, match="number of targets seen"):
        ScalableGPRegressor(n_targets=2).fit(X, y)


def test_sample_y_moments_within_sampling_error():
    gpr = ScalableGPRegressor(kernel=KERNELS[1], alpha=1e-2).fit(X, y)
    mean, cov = gpr.predict(X2, return_cov=True)
    n_samples = 4000
    s = gpr.sample_y(X2, n_samples=n_samples, random_state=0)
    assert s.shape == (len(X2), n_samples)
    std = np.sqrt(np.diag(cov))
    # sample mean: standard error std / sqrt(N); allow 5 standard errors
    assert np.all(np.abs(s.mean(axis=1) - mean) < 5 * std / np.sqrt(n_samples))
    # sample variance: standard error of s^2 is about var * sqrt(2 / (N - 1)) for a Gaussian
    var = std**2
    assert np.all(np.abs(s.var(axis=1, ddof=1) - var) < 5 * var * np.sqrt(2 / (n_samples - 1)))
    # reproducible for a fixed random_state, different for another
    np.testing.assert_array_equal(gpr.sample_y(X2, 3, random_state=1), gpr.sample_y(X2, 3, random_state=1))
    assert not np.allclose(gpr.sample_y(X2, 3, random_state=1), gpr.sample_y(X2, 3, random_state=2))


def test_prior_before_fit():
    gpr = ScalableGPRegressor(kernel=C(2.0) * RBF(1.0))
    m, std = gpr.predict(X2, return_std=True)
    np.testing.assert_allclose(m, 0.0)
    np.testing.assert_allclose(std, np.sqrt(2.0))
    _, cov = gpr.predict(X2, return_cov=True)
    np.testing.assert_allclose(np.diag(cov), 2.0)
    s = gpr.sample_y(X2, n_samples=2)
    assert s.shape == (5, 2)


def test_restarts_improve_and_are_reproducible():
    kernel = C(1.0, (1e-3, 1e3)) * RBF(1e-2, (1e-3, 1e3)) + WhiteKernel(1e-1, (1e-5, 1e1))
    one = ScalableGPRegressor(kernel=kernel, random_state=0).fit(X, y)
    many = ScalableGPRegressor(kernel=kernel, n_restarts_optimizer=4, random_state=0).fit(X, y)
    again = ScalableGPRegressor(kernel=kernel, n_restarts_optimizer=4, random_state=0).fit(X, y)
    assert len(many.optimizer_runs_) == 5
    assert many.log_marginal_likelihood_value_ >= one.log_marginal_likelihood_value_ - 1e-9
    assert many.log_marginal_likelihood_value_ == again.log_marginal_likelihood_value_
    with pytest.raises(ValueError, match="requires that all bounds are finite"):
        ScalableGPRegressor(kernel=RBF(1.0, (1e-5, np.inf)), n_restarts_optimizer=1).fit(X, y)


@pytest.mark.filterwarnings("ignore:K \\+ alpha was not numerically:UserWarning")  # the fixed jitter
@pytest.mark.parametrize("jitter", ["auto", 1e-10])
def test_objective_compiled_once_across_iterations_and_restarts(jitter, count_traces):
    kernel = C(1.0, (1e-3, 1e3)) * RBF(1.0, (1e-3, 1e3))
    Xr = np.linspace(0, 10, 11 if jitter == "auto" else 12)[:, None]
    with count_traces() as traces:
        gpr = ScalableGPRegressor(kernel=kernel, n_restarts_optimizer=3, random_state=0, solver=Cholesky(jitter=jitter))
        gpr.fit(Xr, f(Xr).ravel())
        n_evals = sum(r["n_evals"] for r in gpr.optimizer_runs_)
        assert n_evals > 10
        # jitter="auto": the as-is program and, once a factorisation fails, the adaptive one
        most = 2 if jitter == "auto" else 1
        assert traces["neg_lml_and_grad"] <= most and traces["condition_program"] <= most
        # a second fit with the same shapes reuses them as well
        before = dict(traces)
        ScalableGPRegressor(kernel=kernel, random_state=1, solver=Cholesky(jitter=jitter)).fit(Xr, f(Xr).ravel() + 1)
        assert traces["neg_lml_and_grad"] == before.get("neg_lml_and_grad", 0)


def test_objective_falls_back_to_adaptive_jitter_when_the_first_attempt_fails():
    # Duplicate inputs, no noise: K is singular and the jitter search runs.
    Xd = np.vstack([X, X])
    yd = f(Xd).ravel()
    gpr = ScalableGPRegressor(kernel=RBF(1.0), alpha=0.0, optimizer=None).fit(Xd, yd)
    assert gpr.jitter_ > 0
    value, grad = gpr.log_marginal_likelihood(gpr.kernel_.theta, eval_gradient=True)
    assert np.isfinite(value) and np.all(np.isfinite(grad))
    np.testing.assert_allclose(value, gpr.log_marginal_likelihood_value_, rtol=1e-10)


def test_predict_does_not_recompile(count_traces):
    gpr = ScalableGPRegressor(kernel=KERNELS[1]).fit(X, y)
    Xa, Xb = np.linspace(0, 9, 13)[:, None], np.linspace(1, 8, 13)[:, None]
    gpr.predict(Xa, return_std=True)
    with count_traces() as traces:
        m1, s1 = gpr.predict(Xb, return_std=True)
        gpr.predict(Xa, return_std=True)
    assert traces["_mean"] == traces["_var"] == 0
    assert np.all(np.isfinite(m1)) and np.all(s1 >= 0)
    # the mean does not depend on what else is requested, to the last bit
    np.testing.assert_array_equal(gpr.predict(Xb), m1)
    np.testing.assert_array_equal(gpr.predict(Xb, return_cov=True)[0], m1)


def test_callable_optimizer_and_verbose(capsys):
    calls = []

    def optimizer(obj_func, initial_theta, bounds):
        value, grad = obj_func(initial_theta, eval_gradient=True)
        assert np.shape(grad) == np.shape(initial_theta)
        calls.append(value)
        # one projected gradient step: enough to check the sign convention (negative LML)
        theta = np.clip(initial_theta - 1e-3 * grad, bounds[:, 0], bounds[:, 1])
        return theta, obj_func(theta, eval_gradient=False)

    gpr = ScalableGPRegressor(kernel=KERNELS[1], optimizer=optimizer).fit(X, y)
    assert len(calls) == 1
    assert gpr.log_marginal_likelihood_value_ > -calls[0]
    ScalableGPRegressor(kernel=KERNELS[1], verbose=2, solver="cholesky").fit(X, y)
    out = capsys.readouterr().out
    assert "optimiser run 1/1" in out and "|grad|" in out and "log-marginal-likelihood" in out
    assert "conditioning on n=" in out and "conditioned in" in out and "cholesky_ok=True" in out
    ScalableGPRegressor(kernel=KERNELS[1], verbose=2).fit(X, y)  # small n: the NumPy host path says so
    out = capsys.readouterr().out
    assert "NumPy host path" in out and "optimiser run 1/1" in out and "|grad|" in out


def test_convergence_warning_near_bounds():
    kernel = C(1.0, (1e-2, 1e2)) * RBF(1.0, (1e-5, 1e-1))  # optimum wants a much longer length scale
    with pytest.warns(ConvergenceWarning, match="close to the specified upper bound 0.1"):
        ScalableGPRegressor(kernel=kernel).fit(X, y)


def test_sample_y_pathwise_moments_and_auto_switch(monkeypatch):
    gpr = ScalableGPRegressor(kernel=KERNELS[1], alpha=1e-2, normalize_y=True).fit(X, y)
    mean, cov = gpr.predict(X2, return_cov=True)
    n_samples = 2000
    s = gpr.sample_y(X2, n_samples=n_samples, random_state=0, method="pathwise")
    assert s.shape == (len(X2), n_samples)
    std = np.sqrt(np.diag(cov))
    # the prior path uses random features, so allow its (small) bias on top of 5 standard errors
    assert np.all(np.abs(s.mean(axis=1) - mean) < 5 * std / np.sqrt(n_samples) + 0.05 * std.max())
    np.testing.assert_array_equal(s, gpr.sample_y(X2, n_samples=n_samples, random_state=0, method="pathwise"))
    # "auto" switches to pathwise above the exact-sampling threshold
    from skgpx.estimators import _gpr

    monkeypatch.setattr(_gpr, "EXACT_SAMPLING_MAX_POINTS", 3)
    np.testing.assert_array_equal(gpr.sample_y(X2, 5, random_state=3), gpr.sample_y(X2, 5, random_state=3, method="pathwise"))
    with pytest.raises(ValueError, match="`method` must be"):
        gpr.sample_y(X2, method="nope")
