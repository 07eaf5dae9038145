"""skgpx.parallel on a Dask LocalCluster: many fits equal to the serial loop, a killed worker is
rescheduled, and GridSearchCV under joblib's Dask backend."""

import os
import signal

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.gaussian_process.kernels import RBF, ConstantKernel as C, WhiteKernel

distributed = pytest.importorskip("distributed")

from skgpx import ScalableGPRegressor  # noqa: E402
from skgpx.parallel import dask_client, fit_many, gather_fits, submit_fits  # noqa: E402


def _windows(n_windows=8, n=40, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for w in range(n_windows):
        X = rng.uniform(size=(n, 2))
        y = np.sin(4 * X[:, 0] + 0.3 * w) + X[:, 1] + 0.05 * rng.normal(size=n)
        out.append((X, y))
    return out


def _estimator():
    return ScalableGPRegressor(C(1.0) * RBF(0.5) + WhiteKernel(0.01), random_state=0)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cl, distributed.Client(cl) as client:
        yield cl, client


def test_eight_windows_equal_serial_with_a_worker_killed(cluster):
    cl, client = cluster
    windows = _windows()
    est = _estimator()
    futures = submit_fits(client, est, windows)
    # Kill a worker (SIGKILL: no goodbye) once the first fit is back, while others are queued or running.
    distributed.wait(futures, return_when="FIRST_COMPLETED")
    busy = [addr for addr, keys in client.processing().items() if keys] or list(client.scheduler_info()["workers"])
    nanny = next(w for w in cl.workers.values() if w.worker_address == busy[0])
    os.kill(nanny.process.process.pid, signal.SIGKILL)
    fitted = gather_fits(futures)
    assert len(fitted) == 8
    Xs = np.random.default_rng(1).uniform(size=(15, 2))
    for (X, y), got in zip(windows, fitted):
        want = clone(est).fit(X, y)
        np.testing.assert_allclose(got.kernel_.theta, want.kernel_.theta, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(got.log_marginal_likelihood_value_, want.log_marginal_likelihood_value_,
                                   rtol=1e-10)
        m_got, s_got = got.predict(Xs, return_std=True)
        m_want, s_want = want.predict(Xs, return_std=True)
        np.testing.assert_allclose(m_got, m_want, rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(s_got, s_want, rtol=1e-10, atol=1e-12)


def test_fit_many_mapping_params_and_progress(cluster, capsys):
    _, client = cluster
    (X, y), = _windows(1)
    settings = {"short": {"kernel__k1__k2__length_scale": 0.2}, "long": {"kernel__k1__k2__length_scale": 2.0}}
    fitted = fit_many(_estimator().set_params(optimizer=None), {"short": (X, y), "long": (X, y)},
                      params=settings, client=client, verbose=1)
    assert list(fitted) == ["short", "long"]
    for name, est in fitted.items():
        want = _estimator().set_params(optimizer=None, **settings[name]).fit(X, y)
        np.testing.assert_allclose(est.predict(X[:5]), want.predict(X[:5]), rtol=1e-10, atol=1e-12)
    out = capsys.readouterr().out
    assert "fit_many: 2/2 fitted" in out


def test_fit_many_bad_input_names_the_argument(cluster):
    _, client = cluster
    with pytest.raises(ValueError, match=r"datasets\[0\].*\(X, y\) pair"):
        fit_many(_estimator(), [np.zeros((3, 2))], client=client)
    with pytest.raises(ValueError, match="`params` has 1 settings for 2 datasets"):
        fit_many(_estimator(), _windows(2), params=[{}], client=client)
    with pytest.raises(TypeError, match="`client` must be None"):
        fit_many(_estimator(), _windows(1), client=42)


def test_a_failing_fit_names_its_dataset(cluster):
    _, client = cluster
    X, y = _windows(1)[0]
    with pytest.raises(RuntimeError, match="dataset 'bad'"):
        fit_many(_estimator(), {"ok": (X, y), "bad": (X, y[:-3])}, client=client, retries=0)


def test_grid_search_under_joblib_dask_backend(cluster):
    joblib = pytest.importorskip("joblib")
    from sklearn.model_selection import GridSearchCV

    _, client = cluster
    X, y = _windows(1, n=30)[0]
    grid = {"alpha": [1e-3, 1e-1], "kernel__k1__k2__length_scale": [0.3, 1.0]}
    est = _estimator().set_params(optimizer=None)
    serial = GridSearchCV(est, grid, cv=2).fit(X, y)
    with dask_client(client), joblib.parallel_config(backend="dask"):
        on_dask = GridSearchCV(est, grid, cv=2, n_jobs=-1).fit(X, y)
    np.testing.assert_allclose(on_dask.cv_results_["mean_test_score"], serial.cv_results_["mean_test_score"],
                               rtol=1e-10)
    assert on_dask.best_params_ == serial.best_params_
