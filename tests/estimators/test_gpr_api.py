"""scikit-learn integration, errors, persistence, devices and dtypes of ScalableGPRegressor."""

import pickle
import warnings

import jax
import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process.kernels import RBF, ConstantKernel as C, ExpSineSquared, Kernel as SkKernel, Matern, WhiteKernel
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skgpx import ScalableGPRegressor
from skgpx.gp import Cholesky
from skgpx.kernels import RBF as XRBF, Constant as XConstant, Matern as XMatern

rng = np.random.RandomState(0)
X = rng.uniform(0, 5, (30, 2))
y = np.sin(X[:, 0]) + 0.1 * X[:, 1] + 0.05 * rng.randn(30)
Xs = rng.uniform(0, 5, (8, 2))


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        yield


def test_pipeline_with_scaler():
    pipe = make_pipeline(StandardScaler(), ScalableGPRegressor(kernel=C(1.0) * RBF(1.0) + WhiteKernel(0.1)))
    pipe.fit(X * 100, y)
    assert pipe.score(X * 100, y) > 0.9
    assert pipe.predict(Xs * 100).shape == (8,)


def test_grid_search_over_three_kernels():
    grid = GridSearchCV(
        ScalableGPRegressor(alpha=1e-2),
        {"kernel": [C(1.0) * RBF(1.0), Matern(1.0, nu=1.5), XMatern(1.0, nu=2.5)]},
        cv=3,
    ).fit(X, y)
    assert grid.best_score_ > 0.5
    assert len(grid.cv_results_["params"]) == 3


@pytest.mark.parametrize("kernel", [RBF(1.0, "fixed"), XRBF(1.0, "fixed")], ids=["sklearn", "skgpx"])
def test_nested_kernel_parameters(kernel):
    est = ScalableGPRegressor(kernel=kernel, alpha=1e-2, optimizer=None)
    assert "kernel__length_scale" in est.get_params(deep=True)
    est2 = clone(est).set_params(kernel__length_scale=2.5)
    assert float(est2.get_params()["kernel__length_scale"]) == 2.5
    assert float(est.get_params()["kernel__length_scale"]) == 1.0  # the original is untouched
    grid = GridSearchCV(est, {"kernel__length_scale": [0.05, 1.0, 50.0]}, cv=3).fit(X, y)
    assert float(grid.best_params_["kernel__length_scale"]) == 1.0
    assert float(np.asarray(grid.best_estimator_.kernel_.length_scale)) == 1.0


def test_bad_inputs_give_sklearn_errors():
    est = ScalableGPRegressor(optimizer=None)
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.fit(Xn, y)
    yi = y.copy()
    yi[3] = np.inf
    with pytest.raises(ValueError, match="Input y contains infinity"):
        est.fit(X, yi)
    with pytest.raises(ValueError, match="Expected 2D array"):
        est.fit(X[:, 0], y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        est.fit(X, y[:-1])
    est.fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features, but ScalableGPRegressor is expecting 2 features"):
        est.predict(np.ones((2, 3)))
    with pytest.raises(RuntimeError, match="At most one of return_std or return_cov can be requested."):
        est.predict(Xs, return_std=True, return_cov=True)
    with pytest.raises(ValueError, match=r"alpha must be a scalar or an array with same number of entries as y. \(3 != 30\)"):
        ScalableGPRegressor(alpha=np.ones(3)).fit(X, y)
    with pytest.raises(ValueError, match="alpha"):
        ScalableGPRegressor(alpha=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="Unknown solver 'nope'"):
        ScalableGPRegressor(solver="nope").fit(X, y)
    with pytest.raises(ValueError, match="Gradient can only be evaluated for theta!=None"):
        est.log_marginal_likelihood(eval_gradient=True)


def test_non_positive_definite_kernel_error():
    # ExpSineSquared of a 2-D Euclidean distance is not positive definite.
    kernel = ExpSineSquared(1.1, 2.5) * RBF(3.0)
    with pytest.raises(np.linalg.LinAlgError, match="is not returning a positive definite matrix. Try gradually increasing the 'alpha'"):
        ScalableGPRegressor(kernel=kernel, optimizer=None).fit(X, y)


def test_adaptive_jitter_is_reported_and_warned():
    Xd = np.vstack([X, X])  # duplicated inputs: K is singular without noise
    yd = np.concatenate([y, y])
    with pytest.warns(UserWarning, match="added jitter"):
        est = ScalableGPRegressor(kernel=RBF(1.0), alpha=0.0, optimizer=None).fit(Xd, yd)
    assert 0 < est.jitter_ <= 1e-6
    assert "jitter" in est.summary()
    with pytest.raises(np.linalg.LinAlgError):
        ScalableGPRegressor(kernel=RBF(1.0), alpha=0.0, optimizer=None, solver=Cholesky(jitter=0.0)).fit(Xd, yd)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        ok = ScalableGPRegressor(kernel=RBF(1.0), alpha=1e-10, optimizer=None).fit(X, y)
    assert ok.jitter_ == 0.0


def test_pickle_and_joblib_round_trip(tmp_path):
    est = ScalableGPRegressor(kernel=XConstant(1.0) * XRBF(1.0), alpha=1e-3).fit(X, y)
    m, s = est.predict(Xs, return_std=True)
    state = est.__getstate__()
    assert not any(isinstance(leaf, jax.Array) for leaf in jax.tree_util.tree_leaves(state))
    est2 = pickle.loads(pickle.dumps(est))
    m2, s2 = est2.predict(Xs, return_std=True)
    np.testing.assert_array_equal(m, m2)
    np.testing.assert_array_equal(s, s2)
    joblib.dump(est, tmp_path / "gp.joblib")
    est3 = joblib.load(tmp_path / "gp.joblib")
    np.testing.assert_array_equal(est3.predict(Xs), m)
    np.testing.assert_array_equal(est3.sample_y(Xs, 2, random_state=0), est.sample_y(Xs, 2, random_state=0))
    assert est3.summary() == est.summary()


def test_devices_and_dtypes():
    est = ScalableGPRegressor(kernel=C(1.0) * RBF(1.0), alpha=1e-2, device="cpu").fit(X, y)
    assert est.device_ == "cpu:0"
    assert est.posterior_.L.devices() == {jax.devices("cpu")[0]}
    assert est.device_ in est.summary()
    if not any(d.platform == "gpu" for d in jax.devices()):
        with pytest.raises(ValueError, match="device='gpu' was requested but JAX sees no GPU"):
            ScalableGPRegressor(device="gpu").fit(X, y)
    with pytest.raises(ValueError, match="`device` must be"):
        ScalableGPRegressor(device="tpu-ish").fit(X, y)
    with pytest.raises(ValueError, match="`dtype` must be float64 or float32"):
        ScalableGPRegressor(dtype="int32").fit(X, y)
    f32 = ScalableGPRegressor(kernel=C(1.0) * RBF(1.0), alpha=1e-2, dtype="float32", optimizer=None).fit(X, y)
    f64 = ScalableGPRegressor(kernel=C(1.0) * RBF(1.0), alpha=1e-2, optimizer=None).fit(X, y)
    m32, m64 = f32.predict(Xs), f64.predict(Xs)
    assert m32.dtype == np.float32
    np.testing.assert_allclose(m32, m64, atol=1e-3)


def test_kernel_attributes_and_summary():
    sk = ScalableGPRegressor(kernel=C(1.0) * RBF(1.0), alpha=1e-2).fit(X, y)
    assert isinstance(sk.kernel_, SkKernel)
    np.testing.assert_allclose(sk.kernel_.theta, np.asarray(sk.kernel_skgpx_.theta), rtol=1e-12)
    np.testing.assert_allclose(sk.kernel_.bounds, sk.kernel_skgpx_.bounds)
    xg = ScalableGPRegressor(kernel=XRBF(1.0), alpha=1e-2, copy_X_train=False).fit(X, y)
    assert isinstance(xg.kernel_, XRBF) and xg.kernel_ is xg.kernel_skgpx_
    assert xg.X_train_ is not None and xg.solver_ == "cholesky" and xg.n_iter_ > 0
    text = sk.summary()
    for needle in ("kernel", "solver", "cholesky", "log marginal", "optimiser", "jitter"):
        assert needle in text
    # clone_kernel=False moves kernel_ to theta, as scikit-learn does
    theta = sk.kernel_.theta + 0.5
    sk.log_marginal_likelihood(theta, clone_kernel=False)
    np.testing.assert_allclose(sk.kernel_.theta, theta)
