"""Calibration on data drawn from the model: every solver's 95% intervals cover 95%, within the binomial band.

The data are exact GP draws with the hyperparameters fixed at their true values, where
calibration holds in expectation. Independent draws are the columns of a multi-output
``y`` (one fit serves them all); 5 test points spread over [0, 1] times 400 draws give
2000 values. Band: 0.95 +- 3 sqrt(0.95 * 0.05 / 2000) = [0.935, 0.965] (the values of
one draw are nearly independent: the points are 2-4 length scales apart and, for ``y``,
the noise dominates). Both the latent ``f`` interval (``predict``'s std, noise in
``alpha``) and the new-observation ``y`` interval (std^2 + alpha) are checked.
"""

from __future__ import annotations

import warnings

import jax.numpy as jnp
import numpy as np
import pytest
from scipy.stats import norm

from skgpx import ScalableGPRegressor, precision_scope
from skgpx.gp import RFF, SKI, Nystrom
from skgpx.estimators._calibration import CalibrationWarning, coverage_band, heldout_calibration
from skgpx.kernels import RBF, Matern

N_TRAIN, N_DRAWS, NOISE = 80, 400, 0.05
X_TEST = np.array([[0.05], [0.3], [0.5], [0.7], [0.95]])
Z95 = norm.ppf(0.975)


def _draws(kernel, n, d, n_draws, seed, X_test=None):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, d))
    A = X if X_test is None else np.vstack([X, X_test])
    with precision_scope(np.float64):
        K = np.asarray(kernel.gram(jnp.asarray(A)))
    F = np.linalg.cholesky(K + 1e-10 * np.eye(len(A))) @ rng.standard_normal((len(A), n_draws))
    return A, F, F + np.sqrt(NOISE) * rng.standard_normal(F.shape)


SOLVERS = {
    "cholesky": {"solver": "cholesky"},
    "cg-dense": {"solver": "cg-dense"},
    "cg-matrix-free": {"solver": "cg-matrix-free"},
    "nystrom": {"solver": Nystrom(n_components=20)},  # r = n / 4: the FITC residual is in play
    "rff": {"solver": RFF(n_components=2048)},
    # cubic interpolation on the automatic grid; few probes and check points (no LML is needed)
    "ski": {"solver": SKI(n_probes=2, love_rank=8, n_check=2, n_interp_check=8)},
}


@pytest.mark.parametrize("name", list(SOLVERS))
def test_95_coverage_on_draws_from_the_model(name):
    kernel = RBF(0.15)
    A, F, Y = _draws(kernel, N_TRAIN, 1, N_DRAWS, seed=0, X_test=X_TEST)
    n = N_TRAIN
    est = ScalableGPRegressor(kernel, alpha=NOISE, optimizer=None, random_state=0, **SOLVERS[name]).fit(A[:n], Y[:n])
    mean, std = est.predict(A[n:], return_std=True)
    lo, hi = coverage_band(F[n:].size)
    assert (round(lo, 3), round(hi, 3)) == (0.935, 0.965)
    cov_f = np.mean(np.abs(F[n:] - mean) <= Z95 * std)
    cov_y = np.mean(np.abs(Y[n:] - mean) <= Z95 * np.sqrt(std**2 + NOISE))
    assert lo <= cov_f <= hi, (name, cov_f)
    assert lo <= cov_y <= hi, (name, cov_y)


def test_ski_95_coverage_on_a_rough_kernel():
    """Matern-1/2 (the roughest kernel): SKI's automatic grid, refined until the interpolation
    error is small against the posterior variance, covers like the exact GP. Band as above:
    [0.935, 0.965] for 2000 values (5 test points x 400 draws). Without the refinement (4 grid
    points per length scale) its standard deviations were half the exact GP's here (coverage of
    f 0.62); with it, 1% low (0.942, exact GP 0.945)."""
    kernel = Matern(0.15, nu=0.5)
    A, F, Y = _draws(kernel, N_TRAIN, 1, N_DRAWS, seed=0, X_test=X_TEST)
    n = N_TRAIN
    est = ScalableGPRegressor(kernel, alpha=NOISE, optimizer=None, random_state=0, **SOLVERS["ski"]).fit(A[:n], Y[:n])
    info = est.solver_info_
    assert info["grid_refinement_steps"] > 0 and not info["grid_capped"]
    mean, std = est.predict(A[n:], return_std=True)
    lo, hi = coverage_band(F[n:].size)
    cov_f = np.mean(np.abs(F[n:] - mean) <= Z95 * std)
    cov_y = np.mean(np.abs(Y[n:] - mean) <= Z95 * np.sqrt(std**2 + NOISE))
    assert lo <= cov_f <= hi, cov_f
    assert lo <= cov_y <= hi, cov_y


def test_random_features_warn_when_their_intervals_are_too_narrow():
    """Variance starvation: 3-D Matern-3/2, n = 400 > 128 features. The leave-one-out check
    warns, and its measured coverage is close to the coverage on new test points."""
    kernel = Matern(0.3, nu=1.5)
    A, F, Y = _draws(kernel, 400 + 200, 3, 1, seed=1)
    with pytest.warns(CalibrationWarning, match="too narrow"):
        est = ScalableGPRegressor(kernel, alpha=NOISE, optimizer=None, solver=RFF(n_components=128),
                                  random_state=0).fit(A[:400], Y[:400, 0])
    info = est.solver_info_
    assert info["heldout_points"] == 400 and not info["heldout_calibrated"]
    assert info["heldout_coverage_95"] < info["heldout_band_95"][0]
    mean, std = est.predict(A[400:], return_std=True)
    test_cov = np.mean(np.abs(Y[400:, 0] - mean) <= Z95 * np.sqrt(std**2 + NOISE))
    assert test_cov < 0.9
    assert abs(test_cov - info["heldout_coverage_95"]) < 0.08


def test_calibrated_low_rank_fit_is_silent_and_exact_solvers_are_not_checked():
    kernel = RBF(0.15)
    A, _, Y = _draws(kernel, 300, 1, 1, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CalibrationWarning)
        est = ScalableGPRegressor(kernel, alpha=NOISE, optimizer=None, solver=Nystrom(n_components=40),
                                  random_state=0).fit(A, Y[:, 0])
        exact = ScalableGPRegressor(kernel, alpha=NOISE, optimizer=None, solver="cholesky").fit(A, Y[:, 0])
    assert est.solver_info_["heldout_calibrated"]
    assert "heldout_points" not in exact.solver_info_
    # Posteriors without a closed-form leave-one-out predictive are not checked.
    rng = np.random.default_rng(0)
    assert heldout_calibration(exact.posterior_, None, rng, "cholesky") == {}
