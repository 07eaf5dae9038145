"""skgpx.optimizers: budgeted L-BFGS-B and projected Adam, against scipy / scikit-learn."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process.kernels import ConstantKernel as C, Matern, WhiteKernel

from skgpx import ScalableGPRegressor
from skgpx.optimizers import LBFGSB, Adam


def _data(n=60, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(-2, 2, (n, 2))
    y = np.sin(2 * X[:, 0]) + 0.5 * np.cos(X[:, 1]) + 0.1 * rng.randn(n)
    return X, y


def _kernel():
    return C(1.0) * Matern(1.0, nu=1.5) + WhiteKernel(0.1)


class Counting:
    """A smooth objective with known minimum: an ill-conditioned quadratic."""

    def __init__(self, centre, scales):
        self.centre, self.scales, self.n = np.asarray(centre), np.asarray(scales), 0

    def __call__(self, theta, eval_gradient=True):
        self.n += 1
        r = (theta - self.centre) * self.scales
        return 0.5 * float(r @ r), r * self.scales


def test_lbfgsb_without_budget_is_sklearn_default():
    X, y = _data()
    ref = ScalableGPRegressor(_kernel(), solver="cholesky").fit(X, y)
    got = ScalableGPRegressor(_kernel(), solver="cholesky", optimizer=LBFGSB()).fit(X, y)
    np.testing.assert_allclose(got.kernel_.theta, ref.kernel_.theta, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got.log_marginal_likelihood_value_, ref.log_marginal_likelihood_value_, rtol=1e-12)


def test_lbfgsb_budget_is_hard_and_returns_best_seen():
    obj = Counting([0.3, -1.0, 2.0], [1.0, 30.0, 0.1])
    theta0, bounds = np.zeros(3), np.array([[-5.0, 5.0]] * 3)
    with pytest.warns(ConvergenceWarning, match="max_evals=4"):
        theta, value = LBFGSB(max_evals=4)(obj, theta0, bounds)
    assert obj.n == 4
    assert value <= obj(theta0)[0]
    np.testing.assert_allclose(value, obj(theta)[0])
    # Enough budget: converges silently to the minimum.
    obj = Counting([0.3, -1.0, 2.0], [1.0, 3.0, 0.5])
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        theta, value = LBFGSB(max_evals=200)(obj, theta0, bounds)
    np.testing.assert_allclose(theta, [0.3, -1.0, 2.0], atol=1e-4)


def test_adam_reaches_the_exact_optimum_and_respects_bounds():
    X, y = _data()
    ref = ScalableGPRegressor(_kernel(), solver="cholesky").fit(X, y)
    got = ScalableGPRegressor(_kernel(), solver="cholesky", optimizer=Adam(max_iter=400, learning_rate=0.05)).fit(X, y)
    # Within 1e-3 of the optimum's log likelihood (Adam has no line search; it stops after max_iter).
    assert got.log_marginal_likelihood_value_ >= ref.log_marginal_likelihood_value_ - 1e-3
    assert got.optimizer_runs_[0]["n_evals"] == 400
    # An optimum outside the box: Adam stops on the bound, never past it.
    obj = Counting([3.0, -7.0], [1.0, 1.0])
    bounds = np.array([[-1.0, 1.0], [-2.0, 2.0]])
    theta, _ = Adam(max_iter=100, learning_rate=0.2)(obj, np.zeros(2), bounds)
    np.testing.assert_allclose(theta, [1.0, -2.0])


def test_adam_is_deterministic_and_skips_failed_evaluations():
    calls = []

    def obj(theta, eval_gradient=True):
        calls.append(theta.copy())
        if theta[0] > 0.25:  # a "failed factorisation" region
            return np.inf, np.zeros(1)
        return float((theta[0] - 1.0) ** 2), np.array([2 * (theta[0] - 1.0)])

    bounds = np.array([[-5.0, 5.0]])
    t1, v1 = Adam(max_iter=30, learning_rate=0.1)(obj, np.zeros(1), bounds)
    t2, v2 = Adam(max_iter=30, learning_rate=0.1)(obj, np.zeros(1), bounds)
    assert t1 == t2 and v1 == v2 and np.isfinite(v1) and t1[0] <= 0.25
    assert len(calls) == 60


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: Adam(max_iter=0), r"Adam\(max_iter=...\)"),
        (lambda: Adam(learning_rate=-1.0), r"Adam\(learning_rate=...\)"),
        (lambda: Adam(beta1=1.0), r"Adam\(beta1=...\)"),
        (lambda: LBFGSB(max_evals=2.5), r"LBFGSB\(max_evals=...\)"),
        (lambda: LBFGSB(max_iter=True), r"LBFGSB\(max_iter=...\)"),
    ],
)
def test_bad_arguments_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_optimizers_survive_clone_and_params():
    est = ScalableGPRegressor(_kernel(), optimizer=Adam(max_iter=5))
    cloned = clone(est)
    assert cloned.get_params()["optimizer"] == Adam(max_iter=5)
    assert "Adam(max_iter=5" in repr(est)
