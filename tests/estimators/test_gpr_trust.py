"""Issue 22 (ScalableGPRegressor): bad inputs refused before JAX, poor answers warned about.

One test per numbered finding; the property-based suite is tests/estimators/test_trust_properties.py.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process.kernels import RBF as SkRBF

from skgpx import ScalableGPRegressor
from skgpx.gp import RFF, Nystrom
from skgpx.estimators._quality import APPROX_ERROR_WARN, warn_if_poor_approximation
from skgpx.estimators._validation import check_kernel
from skgpx.kernels import RBF, ActiveDims, Chordal, Matern, White


def _data(n=30, d=1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 5, size=(n, d))
    return X, np.sin(X).sum(1) + 0.1 * rng.normal(size=n)


@pytest.mark.parametrize("kernel", [RBF([1.0, 1.0]), SkRBF([1.0, 1.0]), 2.0 * Matern([1.0, 1.0, 1.0]) + RBF(1.0)])
def test_1_5_ard_length_scales_longer_than_features_are_refused(kernel):
    X, y = _data()
    with pytest.raises(ValueError, match=r"`kernel`: anisotropic kernel .* length scales but the data it sees have 1"):
        ScalableGPRegressor(kernel=kernel, alpha=0.01).fit(X, y)


def test_1_ard_counts_follow_active_dims_and_chordal():
    check_kernel(ActiveDims(RBF([1.0, 1.0]), (0, 2)), 3)  # sees 2 features
    check_kernel(Chordal(Matern([1.0, 1.0, 1.0, 2.0])), 3)  # (lon, lat, t) -> (x, y, z, t)
    check_kernel(RBF([1.0]), 4)  # a one-element vector is isotropic, as in scikit-learn
    with pytest.raises(ValueError, match="has 3 length scales but the data it sees have 2"):
        check_kernel(ActiveDims(RBF([1.0, 1.0, 1.0]), (0, 2)), 3)
    with pytest.raises(ValueError, match=r"selects column 5 but X has 3 features"):
        check_kernel(ActiveDims(RBF(1.0), (0, 5)), 3)


@pytest.mark.parametrize("value", [-1.0, 0.0, np.nan, np.inf])
def test_4_non_positive_or_non_finite_hyperparameters_are_named(value):
    X, y = _data()
    with pytest.raises(ValueError, match=r"`kernel` hyperparameter length_scale=(-1.0|0.0|nan|inf) must be finite and positive"):
        ScalableGPRegressor(kernel=RBF(value), alpha=0.01).fit(X, y)
    with pytest.raises(ValueError, match=r"hyperparameter k2__length_scale=\[1.0, "):
        ScalableGPRegressor(kernel=1.0 * RBF([1.0, value]), alpha=0.01).fit(np.c_[X, X], y)
    check_kernel(RBF(1.0) + White(0.0, noise_level_bounds="fixed"), 1)  # a fixed amplitude may be 0
    with pytest.raises(ValueError, match="length_scale=0.0"):
        check_kernel(RBF(0.0, length_scale_bounds="fixed"), 1)


@pytest.mark.parametrize("bad", [np.nan, -0.5, np.inf])
def test_4_bad_per_sample_alpha_is_named(bad):
    X, y = _data()
    alpha = np.full(len(y), 0.01)
    alpha[3] = bad
    with pytest.raises(ValueError, match=r"`alpha` must be finite and non-negative .* at index 3"):
        ScalableGPRegressor(alpha=alpha).fit(X, y)


def test_6_pathwise_sampling_of_zero_samples_matches_exact_shapes():
    X, y = _data()
    gp = ScalableGPRegressor(kernel=RBF(1.0), alpha=0.01, optimizer=None).fit(X, y)
    for method in ("exact", "pathwise"):
        assert gp.sample_y(X[:4], n_samples=0, method=method).shape == (4, 0)
    gp2 = ScalableGPRegressor(kernel=RBF(1.0), alpha=0.01, optimizer=None).fit(X, np.c_[y, -y])
    for method in ("exact", "pathwise"):
        assert gp2.sample_y(X[:4], n_samples=0, method=method).shape == (4, 2, 0)
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="`n_samples` must be a non-negative integer"):
            gp.sample_y(X[:4], n_samples=bad)


def test_7_unknown_dtype_is_a_value_error_naming_dtype():
    X, y = _data()
    with pytest.raises(ValueError, match="`dtype` must be float64 or float32, got 'floaty'"):
        ScalableGPRegressor(dtype="floaty").fit(X, y)


def test_8_categorical_column_is_refused_before_jax():
    pd = pytest.importorskip("pandas")
    X, y = _data()
    df = pd.DataFrame({"a": X[:, 0], "c": pd.Categorical(["u", "v", "w"] * 10)})
    with pytest.raises(ValueError, match=r"`X` must be numeric.*OneHotEncoder"):
        ScalableGPRegressor(alpha=0.01).fit(df, y)
    gp = ScalableGPRegressor(kernel=RBF(1.0), alpha=0.01, optimizer=None).fit(pd.DataFrame({"c": X[:, 0]}), y)
    with pytest.raises(ValueError, match=r"`X` must be numeric"):
        gp.predict(pd.DataFrame({"c": pd.Categorical(["u", "v"])}))


def test_12_coarse_kernel_approximation_warns_and_says_what_to_raise():
    X, y = _data(n=60)
    with pytest.warns(ConvergenceWarning, match=r"kernel approximation has relative Frobenius error .* Raise the solver's `n_components` \(now 4;"):
        gp = ScalableGPRegressor(kernel=RBF(0.3), alpha=0.01, optimizer=None, solver=RFF(n_components=4),
                                 random_state=0).fit(X, y)
    assert gp.solver_info_["kernel_approx_rel_frobenius_error"] > APPROX_ERROR_WARN
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        warn_if_poor_approximation({"solver": "nystrom", "kernel_approx_rel_frobenius_error": APPROX_ERROR_WARN}, 8)
        gp = ScalableGPRegressor(kernel=RBF(1.0), alpha=0.01, optimizer=None, solver=Nystrom(n_components=60),
                                 random_state=0).fit(X, y)
    assert gp.solver_info_["kernel_approx_rel_frobenius_error"] <= APPROX_ERROR_WARN
