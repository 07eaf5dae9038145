"""ScalableGPRegressor(solver="cholesky") gives scikit-learn's numbers."""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import (
    RBF,
    ConstantKernel as C,
    ExpSineSquared,
    Matern,
    RationalQuadratic,
    WhiteKernel,
)

from skgpx import ScalableGPRegressor

KERNELS = {
    "rbf": C(1.5) * RBF(0.7),
    "matern05": Matern(0.6, nu=0.5),
    "matern15": C(0.8) * Matern(0.9, nu=1.5),
    "matern25": Matern(0.5, nu=2.5) + WhiteKernel(0.05),
    "rq": RationalQuadratic(length_scale=0.8, alpha=0.7),
    "periodic": ExpSineSquared(length_scale=1.1, periodicity=2.5) * RBF(3.0) + WhiteKernel(0.01),
    "ard": C(1.2) * RBF([0.5, 1.5]) + WhiteKernel(0.02),
    "sum_product": C(1.0) * RBF(0.5) + C(0.3) * Matern(1.0, nu=1.5) + WhiteKernel(0.1),
}
# ExpSineSquared of a Euclidean distance is positive definite only in one dimension.
N_FEATURES = {"periodic": 1}


def _data(n=25, d=2, seed=0, n_test=9):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-2, 2, (n, d))
    y = np.sin(2 * X[:, 0]) + 0.5 * np.cos(X[:, -1]) + 0.05 * rng.randn(n)
    return X, y, rng.uniform(-2.5, 2.5, (n_test, d))


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_fixed_hyperparameters_match_sklearn(name):
    X, y, Xs = _data(d=N_FEATURES.get(name, 2))
    kw = dict(kernel=KERNELS[name], alpha=1e-4, optimizer=None)
    ref = GaussianProcessRegressor(**kw).fit(X, y)
    est = ScalableGPRegressor(solver="cholesky", **kw).fit(X, y)
    m_ref, s_ref = ref.predict(Xs, return_std=True)
    m, s = est.predict(Xs, return_std=True)
    _, c_ref = ref.predict(Xs, return_cov=True)
    _, c = est.predict(Xs, return_cov=True)
    np.testing.assert_allclose(m, m_ref, rtol=0, atol=1e-8)
    np.testing.assert_allclose(s, s_ref, rtol=0, atol=1e-8)
    np.testing.assert_allclose(c, c_ref, rtol=0, atol=1e-8)
    np.testing.assert_allclose(est.log_marginal_likelihood_value_, ref.log_marginal_likelihood_value_, atol=1e-8)
    np.testing.assert_allclose(est.L_, ref.L_, atol=1e-8)
    np.testing.assert_allclose(est.alpha_, ref.alpha_, rtol=1e-8, atol=1e-8)
    # LML and its gradient at other hyperparameters, too.
    theta = ref.kernel_.theta + 0.1
    lml_ref, g_ref = ref.log_marginal_likelihood(theta, eval_gradient=True)
    lml, g = est.log_marginal_likelihood(theta, eval_gradient=True)
    np.testing.assert_allclose(lml, lml_ref, atol=1e-8)
    np.testing.assert_allclose(g, g_ref, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("name", ["rbf", "matern25", "ard", "rq"])
def test_optimised_lml_at_least_sklearn(name):
    X, y, Xs = _data(seed=1)
    kw = dict(kernel=KERNELS[name], alpha=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ref = GaussianProcessRegressor(**kw).fit(X, y)
        est = ScalableGPRegressor(solver="cholesky", **kw).fit(X, y)
    assert est.log_marginal_likelihood_value_ >= ref.log_marginal_likelihood_value_ - 1e-6
    # kernel_ is a scikit-learn kernel with the learned values.
    assert type(est.kernel_) is type(ref.kernel_)
    np.testing.assert_allclose(est.kernel_.theta, ref.kernel_.theta, atol=1e-3)
    np.testing.assert_allclose(
        est.log_marginal_likelihood(est.kernel_.theta), est.log_marginal_likelihood_value_, atol=1e-8
    )


def test_default_kernel_matches_sklearn():
    X, y, Xs = _data(seed=2)
    ref = GaussianProcessRegressor().fit(X, y)
    est = ScalableGPRegressor().fit(X, y)
    assert repr(est.kernel_) == repr(ref.kernel_)
    np.testing.assert_allclose(est.predict(Xs), ref.predict(Xs), atol=1e-6)


def test_multi_output_normalize_y_array_alpha_match_sklearn():
    X, y, Xs = _data(seed=3)
    Y = np.column_stack([y, 3 * y + 10, -y])
    alpha = np.linspace(1e-3, 1e-2, len(y))
    kw = dict(kernel=C(1.0) * RBF(0.8), alpha=alpha, normalize_y=True, optimizer=None)
    ref = GaussianProcessRegressor(**kw).fit(X, Y)
    est = ScalableGPRegressor(**kw).fit(X, Y)
    for kind in ("return_std", "return_cov"):
        m_ref, u_ref = ref.predict(Xs, **{kind: True})
        m, u = est.predict(Xs, **{kind: True})
        assert m.shape == m_ref.shape and u.shape == u_ref.shape
        np.testing.assert_allclose(m, m_ref, atol=1e-8)
        np.testing.assert_allclose(u, u_ref, atol=1e-8)
    np.testing.assert_allclose(est.log_marginal_likelihood_value_, ref.log_marginal_likelihood_value_, atol=1e-8)
    np.testing.assert_allclose(est._y_train_mean, ref._y_train_mean)
    np.testing.assert_allclose(est._y_train_std, ref._y_train_std)


def test_constant_target_and_duplicates_match_sklearn():
    X, _, Xs = _data(seed=4)
    X = np.vstack([X, X[:5]])
    y = np.full(len(X), 3.0)
    kw = dict(kernel=RBF(1.0), alpha=1e-5, normalize_y=True, optimizer=None)
    ref = GaussianProcessRegressor(**kw).fit(X, y)
    est = ScalableGPRegressor(**kw).fit(X, y)
    m_ref, s_ref = ref.predict(Xs, return_std=True)
    m, s = est.predict(Xs, return_std=True)
    np.testing.assert_allclose(m, m_ref, atol=1e-8)
    np.testing.assert_allclose(s, s_ref, atol=1e-8)
    np.testing.assert_allclose(m, 3.0, atol=1e-12)


def test_sample_y_exact_reproduces_sklearn():
    X, y, Xs = _data(seed=5)
    kw = dict(kernel=C(1.0) * RBF(0.8), alpha=1e-3, optimizer=None)
    ref = GaussianProcessRegressor(**kw).fit(X, y)
    est = ScalableGPRegressor(**kw).fit(X, y)
    np.testing.assert_allclose(
        est.sample_y(Xs, n_samples=4, random_state=7, method="exact"), ref.sample_y(Xs, 4, random_state=7), atol=1e-7
    )
    Y = np.column_stack([y, 2 * y])
    ref2 = GaussianProcessRegressor(**kw).fit(X, Y)
    est2 = ScalableGPRegressor(**kw).fit(X, Y)
    s_ref, s = ref2.sample_y(Xs, 3, random_state=1), est2.sample_y(Xs, 3, random_state=1)
    assert s.shape == s_ref.shape == (len(Xs), 2, 3)
    np.testing.assert_allclose(s, s_ref, atol=1e-7)


def test_prior_predictions_match_sklearn():
    _, _, Xs = _data(seed=6)
    for kernel in (None, C(2.0) * Matern(0.5, nu=1.5)):
        ref, est = GaussianProcessRegressor(kernel=kernel), ScalableGPRegressor(kernel=kernel)
        for kw in ({}, {"return_std": True}, {"return_cov": True}):
            a, b = ref.predict(Xs, **kw), est.predict(Xs, **kw)
            for u, v in zip(np.atleast_1d(a) if not kw else a, np.atleast_1d(b) if not kw else b):
                np.testing.assert_allclose(v, u, atol=1e-12)
    ref = GaussianProcessRegressor(n_targets=3)
    est = ScalableGPRegressor(n_targets=3)
    for kw in ({"return_std": True}, {"return_cov": True}):
        (m_ref, u_ref), (m, u) = ref.predict(Xs, **kw), est.predict(Xs, **kw)
        assert m.shape == m_ref.shape and u.shape == u_ref.shape
        np.testing.assert_allclose(u, u_ref, atol=1e-12)
