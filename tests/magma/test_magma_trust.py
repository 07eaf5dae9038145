"""Issue 22 (MultiTaskMagmaRegressor): labels, warnings, float32, nested parameters, messages."""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from skgpx import MultiTaskMagmaRegressor
from skgpx.datasets import make_magma_data
from skgpx.estimators._quality import em_advice, warn_magma_bounds
from skgpx.kernels import RBF, Constant, White

FAST = dict(max_iter=3, m_step_max_iter=10)


@pytest.fixture(scope="module")
def data():
    return make_magma_data(n_tasks=4, n_points=6, random_state=0)


def _quiet_fit(est, X, y, groups):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y, groups=groups)


def test_1_mean_kernel_ard_too_long_is_refused(data):
    X, y, g = data
    with pytest.raises(ValueError, match=r"`mean_kernel`: anisotropic kernel .* 2 length scales .* 1 features"):
        MultiTaskMagmaRegressor(mean_kernel=RBF([1.0, 1.0])).fit(X, y, groups=g)
    with pytest.raises(ValueError, match=r"`task_kernel` hyperparameter k1__length_scale=-1.0 must be finite"):
        MultiTaskMagmaRegressor(task_kernel=RBF(-1.0) + White(0.1)).fit(X, y, groups=g)


def test_2_mixed_label_types_are_refused_and_object_labels_kept(data):
    X, y, g = data
    mixed = g.astype(object)
    mixed[g == 1] = "0"  # int 0 and str "0": two tasks that str() would merge
    with pytest.raises(ValueError, match=r"`groups` mixes label types \(number, str\)"):
        MultiTaskMagmaRegressor(**FAST).fit(X, y, groups=mixed)
    # object arrays of one type work, and predict with the plain labels afterwards
    est_obj = _quiet_fit(MultiTaskMagmaRegressor(**FAST), X, y, g.astype(object))
    est_int = _quiet_fit(MultiTaskMagmaRegressor(**FAST), X, y, g)
    np.testing.assert_array_equal(est_obj.tasks_, est_int.tasks_)
    np.testing.assert_allclose(est_obj.predict(X[:2], groups=[3, 3]), est_int.predict(X[:2], groups=[3, 3]), rtol=1e-10)
    names = np.array([f"t{i}" for i in g], dtype=object)
    est_str = _quiet_fit(MultiTaskMagmaRegressor(**FAST), X, y, names)
    np.testing.assert_allclose(est_str.predict(X[:2], groups=["t3", "t3"]), est_int.predict(X[:2], groups=[3, 3]), rtol=1e-10)


def test_3_hyperparameters_at_bounds_warn(data):
    X, y, g = data
    with pytest.warns(ConvergenceWarning, match=r"Magma's (mean|task)_kernel__.* ended at its (lower|upper) bound"):
        _ = MultiTaskMagmaRegressor(max_iter=5).fit(X * 1e-8, y, groups=g)


def test_3_bound_warning_counts_tasks():
    k = Constant(1.0, constant_value_bounds=(1e-3, 1e3)) * RBF(1.0, length_scale_bounds=(1e-2, 1e2))
    theta = np.log([[1e-3, 1.0], [1e-3, 2.0], [1.0, 1.0]])
    with pytest.warns(ConvergenceWarning, match=r"task_kernel__k1__constant_value \(dimension 0\) ended at its lower bound 0.001 for 2 of 3 tasks"):
        warn_magma_bounds(k, theta, "task_kernel")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_magma_bounds(k, np.log([1.0, 1.0]), "task_kernel")


def test_9_float32_fits_with_defaults_on_distinct_inputs():
    X, y, g = make_magma_data(n_tasks=4, n_points=6, shared_inputs=False, random_state=0)
    est32 = _quiet_fit(MultiTaskMagmaRegressor(dtype="float32", max_iter=4), X, y, g)
    est64 = _quiet_fit(MultiTaskMagmaRegressor(max_iter=4), X, y, g)
    assert est32.jitter_ == pytest.approx(10 * np.finfo(np.float32).eps) and est64.jitter_ == 1e-8
    p32, p64 = est32.predict(X, groups=g), est64.predict(X, groups=g)
    assert np.all(np.isfinite(p32))
    assert np.max(np.abs(p32 - p64)) < 0.05 * np.std(y)


def test_9_failure_message_says_what_failed():
    X, y, g = make_magma_data(n_tasks=5, n_points=8, shared_inputs=False, random_state=0)
    est = MultiTaskMagmaRegressor(dtype="float32", jitter=0.0, max_iter=2)
    try:
        est.fit(X, y, groups=g)
    except ValueError as e:
        msg = str(e)
        assert "not numerically positive definite with jitter=0" in msg and "dtype='float64'" in msg
        assert "normalize_y" not in msg  # it is already True
    else:  # a fit without jitter is allowed only when it is sound
        assert np.all(np.isfinite(est.predict(X, groups=g)))
    message = MultiTaskMagmaRegressor(normalize_y=False, jitter=1e-8)
    message._n_grid = 40
    assert "Set normalize_y=True" in message._initial_failure(np.float64, 1e-8)


def test_10_nested_kernel_parameters_for_skgpx_kernels(data):
    est = MultiTaskMagmaRegressor(mean_kernel=Constant(1.0) * RBF(1.0), task_kernel=Constant(1.0) * RBF(1.0) + White(0.1))
    params = est.get_params()
    assert params["task_kernel__k1__k2__length_scale"] == 1.0 and "mean_kernel__k2__length_scale" in params
    est.set_params(task_kernel__k1__k2__length_scale=2.0, mean_kernel__k2__length_scale=3.0, max_iter=2)
    assert float(est.task_kernel.k1.k2.length_scale) == 2.0 and float(est.mean_kernel.k2.length_scale) == 3.0
    assert est.max_iter == 2
    assert float(clone(est).task_kernel.k1.k2.length_scale) == 2.0
    with pytest.raises(ValueError, match="Invalid parameter"):
        est.set_params(task_kernel__k9__length_scale=1.0)


def test_11_sample_y_and_score_name_themselves_without_groups(data):
    X, y, g = data
    est = _quiet_fit(MultiTaskMagmaRegressor(**FAST), X, y, g)
    with pytest.raises(ValueError, match=r"^sample_y\(\) needs `groups`"):
        est.sample_y(X)
    with pytest.raises(ValueError, match=r"^score\(\) needs `groups`"):
        est.score(X, y)


def test_13_em_stopped_early_says_what_to_change(data):
    X, y, g = data
    with pytest.warns(ConvergenceWarning, match=r"stopped at max_iter=2 .* set max_iter=\d+ or more|Set max_iter higher"):
        MultiTaskMagmaRegressor(max_iter=2, m_step_max_iter=10).fit(X, y, groups=g)


def test_13_em_advice_extrapolates_the_increments():
    # increments 4, 2, 1 (halving): reaching |dL| < 1e-3 * 100 = 0.1 needs 4 more iterations (0.5 ... 0.0625)
    msg = em_advice([-107.0, -103.0, -101.0, -100.0], 3, 1e-3)
    assert "changing by 1 per iteration" in msg and "shrink by x0.50" in msg and "set max_iter=7 or more" in msg
    assert "Set max_iter higher (e.g. 6)" in em_advice([-110.0, -101.0, -100.0, -90.0], 3, 1e-3)
    assert "Set max_iter higher (e.g. 8)" in em_advice([-107.0, -103.0, -101.0, -100.0], 4, 0.0)  # tol=0
