"""Magma's predictive intervals on data drawn from the model, and the new-task hyperparameter prior.

Data: ``make_magma_data`` with fixed values (prior mean 0, mean process 9 * SE(1.5), tasks
2 * SE(1.0) + noise 0.1), fitted with those kernels fixed except the noise (learned), so
calibration holds in expectation. New tasks: 100 tasks observed at their first 10 inputs,
the other 10 predicted: 1000 values, band 0.95 +- 3 sqrt(0.95 * 0.05 / 1000) = [0.929, 0.971].
Training tasks: 25% of the points of 40 tasks held out before fitting (about 200 values,
band about [0.904, 0.996]). Tasks share the mean process, so their errors are slightly
correlated through its posterior; its variance is small next to the task variance.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process.kernels import RBF, ConstantKernel as C, WhiteKernel

from skgpx import MultiTaskMagmaRegressor
from skgpx.datasets import make_magma_data
from skgpx.estimators._calibration import coverage_band
from skgpx.magma import new_task_objective_and_grad, population_prior

Z95 = norm.ppf(0.975)


@pytest.mark.parametrize("shared", [True, False])
def test_95_coverage_of_new_and_training_tasks_on_draws_from_the_model(shared):
    """With distinct hyperparameters every task learns its own noise from ~15 points, under
    the population prior (a task's maximum-likelihood noise alone often collapses)."""
    n_train, n_new = 40, 100
    X, y, g = make_magma_data(n_train + n_new, 20, shared_inputs=False, mean_intercept=0.0, mean_slope=0.0,
                              mean_variance=9.0, mean_length_scale=1.5, task_variance=2.0, task_length_scale=1.0,
                              noise=0.1, random_state=0)
    rng = np.random.default_rng(1)
    train = g < n_train
    held = train & (rng.uniform(size=len(y)) < 0.25)
    est = MultiTaskMagmaRegressor(C(9.0, "fixed") * RBF(1.5, "fixed"),
                                  C(2.0, "fixed") * RBF(1.0, "fixed") + WhiteKernel(0.1),
                                  normalize_y=False, prior_mean=0.0, max_iter=3, shared_hyperparameters=shared)
    est.fit(X[train & ~held], y[train & ~held], g[train & ~held])
    first = np.zeros(len(y), bool)
    for task in range(n_train, n_train + n_new):
        first[np.flatnonzero(g == task)[:10]] = True  # rows are sorted by input within a task
    tgt = (g >= n_train) & ~first
    mean, std = est.predict(X[tgt], g[tgt], return_std=True, X_obs=X[first], y_obs=y[first], groups_obs=g[first])
    lo, hi = coverage_band(tgt.sum())
    assert tgt.sum() == 1000 and (round(lo, 3), round(hi, 3)) == (0.929, 0.971)
    assert lo <= np.mean(np.abs(y[tgt] - mean) <= Z95 * std) <= hi
    mean, std = est.predict(X[held], g[held], return_std=True)
    lo, hi = coverage_band(held.sum())
    assert held.sum() > 150
    assert lo <= np.mean(np.abs(y[held] - mean) <= Z95 * std) <= hi


def test_population_prior_and_the_map_objective():
    assert population_prior(np.tile([0.1, -2.0, 1.0], (5, 1))) is None  # shared: no spread
    rng = np.random.default_rng(0)
    T = rng.normal(size=(30, 3)) * [1.0, 0.5, 2.0] + [0.0, 1.0, -3.0]
    mean, prec = population_prior(T)
    np.testing.assert_allclose(mean, T.mean(axis=0))
    cov = np.cov(T, rowvar=False)
    np.testing.assert_allclose(np.linalg.inv(prec), cov + 1e-3 * np.trace(cov) / 3 * np.eye(3), rtol=1e-10)
    # Few tasks for the dimension: diagonal covariance.
    _, prec_small = population_prior(T[:4])
    assert np.count_nonzero(prec_small - np.diag(np.diag(prec_small))) == 0

    # The MAP objective is the likelihood one minus scale * log prior, with the prior's gradient.
    X, y, g = make_magma_data(6, 8, random_state=0)
    est = MultiTaskMagmaRegressor(shared_hyperparameters=False, max_iter=2).fit(X[g < 4], y[g < 4], g[g < 4])
    Xo = jnp.asarray(X[g >= 4].reshape(2, 8, 1))
    yo = jnp.asarray(((y[g >= 4] - est._y_mean) / est._y_std).reshape(2, 8))
    mo = jnp.ones((2, 8), bool)
    with jax.enable_x64(True):
        th = jnp.asarray(est.task_theta_[:2] + 0.3)
        args = (est.hyperposterior_, est._mean_kernel_skgpx, est._task_template, Xo, yo, mo, 1e-8, 0.5)
        v0, g0 = new_task_objective_and_grad(th, *args)
        prior = tuple(jnp.asarray(a) for a in (mean, prec))
        v1, g1 = new_task_objective_and_grad(th, *args, prior)
        delta = np.asarray(th) - mean
        np.testing.assert_allclose(v1 - v0, 0.5 * 0.5 * np.sum((delta @ prec) * delta), rtol=1e-10)
        np.testing.assert_allclose(np.asarray(g1 - g0), 0.5 * delta @ prec, rtol=1e-8, atol=1e-12)


def test_distinct_task_hyperparameters_do_not_collapse_under_the_population_prior():
    """30 tasks of 8 points, task variance, length scale and noise learned per task. By
    maximum likelihood alone (the M-step before the population prior) this data put one
    task's noise on its lower bound (1e-5), another's variance at 0.013 and the length
    scales from 0.14 to 12.6 (truth: 0.1, 2.0, 1.0 for every task)."""
    X, y, g = make_magma_data(30, 8, shared_inputs=False, mean_intercept=0.0, mean_slope=0.0, mean_variance=9.0,
                              mean_length_scale=1.5, task_variance=2.0, task_length_scale=1.0, noise=0.1,
                              random_state=0)
    est = MultiTaskMagmaRegressor(C(9.0, "fixed") * RBF(1.5, "fixed"), C(2.0) * RBF(1.0) + WhiteKernel(0.1),
                                  normalize_y=False, prior_mean=0.0, max_iter=12, shared_hyperparameters=False)
    with warnings.catch_warnings():
        # The population's spread shrinks slowly where the truth has none (EM on a variance
        # component); 12 iterations are enough to check where it is heading.
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y, g)
    variance, length_scale, noise = np.exp(est.task_theta_).T
    assert noise.min() > 1e-2 and variance.min() > 0.5
    assert 0.5 < length_scale.min() and length_scale.max() < 2.0
    assert np.ptp(est.task_theta_, axis=0).min() > 0  # still distinct


def test_distinct_task_hyperparameters_keep_their_spread():
    """40 tasks of 15 points whose task variances and noises differ (log-uniform spreads of
    sd 0.59 and 0.52). Re-fitting the population prior to the modes it shrank (the M-step
    before the Laplace covariance term) collapsed the fitted spread of the log-noises
    to 0.02 in 6 iterations; with it the fitted spreads are 0.50 and 0.41 and follow the
    truth task by task (correlation 0.69 and 0.68)."""
    X, y, g, truth = make_magma_data(40, 15, shared_inputs=False, shared_hyperparameters=False, mean_intercept=0.0,
                                     mean_slope=0.0, mean_variance=9.0, mean_length_scale=1.5,
                                     task_variance=(0.5, 4.0), task_length_scale=1.0, noise=(0.02, 0.3),
                                     random_state=0, return_truth=True)
    est = MultiTaskMagmaRegressor(C(9.0, "fixed") * RBF(1.5, "fixed"), C(2.0) * RBF(1.0, "fixed") + WhiteKernel(0.1),
                                  normalize_y=False, prior_mean=0.0, max_iter=6, shared_hyperparameters=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y, g)
    fitted = est.task_theta_  # log variance, log noise
    true = np.log(np.stack([truth.task_variance, truth.noise], axis=1))
    assert np.all(np.std(fitted, axis=0) > 0.6 * np.std(true, axis=0))
    for j in range(2):
        assert np.corrcoef(fitted[:, j], true[:, j])[0, 1] > 0.5
    # The prior kept for new tasks is the EM's (spread plus Laplace covariance), wider than
    # the modes' spread alone.
    spread_only = np.linalg.inv(population_prior(fitted)[1])
    assert np.all(np.diag(np.linalg.inv(est._task_prior[1])) > np.diag(spread_only))


def test_population_prior_adds_the_task_covariance():
    rng = np.random.default_rng(0)
    T = rng.normal(size=(30, 2))
    extra = np.array([[0.5, 0.1], [0.1, 0.2]])
    cov = np.cov(T, rowvar=False) + extra
    _, prec = population_prior(T, task_covariance=extra)
    np.testing.assert_allclose(np.linalg.inv(prec), cov + 1e-3 * np.trace(cov) / 2 * np.eye(2), rtol=1e-10)
