"""skgpx._blas: the OpenBLAS dpotrf guard limits BLAS threads exactly when it must."""

import numpy as np
import pytest
import threadpoolctl

from skgpx import _blas
from skgpx import ScalableGPRegressor


def _blas_threads():
    return [lib["num_threads"] for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "blas"]


def test_guard_limits_threads_on_affected_hosts_only(monkeypatch):
    before = _blas_threads()
    monkeypatch.setattr(_blas, "affected_host", lambda: True)
    with _blas.dense_factorisation_guard(_blas.LARGE_FACTORISATION_N):
        inside = _blas_threads()
        if not inside:
            pytest.skip("threadpoolctl sees no BLAS library in this environment")
        assert all(t == 1 for t in inside)  # scipy's OpenBLAS was loaded and limited
    assert _blas_threads() == before
    with _blas.dense_factorisation_guard(_blas.LARGE_FACTORISATION_N - 1):
        assert _blas_threads() == before
    monkeypatch.setattr(_blas, "affected_host", lambda: False)
    with _blas.dense_factorisation_guard(10 * _blas.LARGE_FACTORISATION_N):
        assert _blas_threads() == before


def test_affected_host_respects_a_user_coretype(monkeypatch):
    _blas.affected_host.cache_clear()
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Zen")
    try:
        assert _blas.affected_host() is False
    finally:
        _blas.affected_host.cache_clear()


def test_cholesky_fit_runs_inside_the_guard(monkeypatch):
    seen = []
    real = _blas.dense_factorisation_guard

    def spy(n):
        seen.append(n)
        return real(n)

    import skgpx.estimators._gpr as gpr

    monkeypatch.setattr(gpr, "dense_factorisation_guard", spy)
    rng = np.random.RandomState(0)
    X = rng.rand(30, 2)
    y = np.sin(3 * X[:, 0])
    gp = ScalableGPRegressor(solver="cholesky").fit(X, y)
    gp.log_marginal_likelihood(gp.kernel_.theta)
    assert seen == [30, 30]
    ScalableGPRegressor(solver="cg", optimizer=None).fit(X, y)
    assert seen[-1] == 0  # iterative solvers factorise nothing large
