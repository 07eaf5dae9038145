"""Property-based trust suite (issue 22): generated shapes, dtypes, scales, labels and parameter values.

Every example ends in a clear error naming the offending argument (``ValueError`` /
``TypeError`` / ``LinAlgError`` whose message names it), or in a finite answer equal to a
dense reference: scikit-learn's ``GaussianProcessRegressor`` for ``ScalableGPRegressor``
(``solver="cholesky"``, fixed hyperparameters), a NumPy hyper-posterior for Magma (fixed
hyperparameters). Never a JAX traceback, never a silent wrong result.

Budget: 30 examples for ScalableGPRegressor, 12 for Magma (``max_examples``). Shapes are
drawn from a few values so compiled functions are reused across examples.
"""

import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel as C, WhiteKernel as W

from skgpx import MultiTaskMagmaRegressor, ScalableGPRegressor

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, event, given, settings, strategies as st  # noqa: E402

SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
BAD_VALUES = [-1.0, 0.0, np.nan, np.inf]


def _expect_named_error(fn, names):
    """``fn()`` must raise an error whose message names one of ``names``; returns the error."""
    with pytest.raises((ValueError, TypeError, np.linalg.LinAlgError)) as info:
        fn()
    msg = str(info.value)
    assert any(name in msg for name in names), f"error does not name {names}: {msg}"
    assert "jax" not in type(info.value).__module__, msg
    return info.value


@st.composite
def gpr_case(draw):
    n = draw(st.sampled_from([6, 9]))
    d = draw(st.sampled_from([1, 2]))
    x_scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    y_scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    x_dtype = draw(st.sampled_from(["float64", "float32", "int64"]))
    seed = draw(st.integers(0, 3))
    rng = np.random.default_rng(seed)
    X = rng.uniform(0, 5, size=(n, d))
    if x_dtype == "int64":
        X = np.round(X * 3).astype(np.int64) + np.arange(n)[:, None] * 7  # distinct integer rows
    X = (X * x_scale).astype(x_dtype) if x_dtype != "int64" else X
    y = y_scale * (np.sin(np.asarray(X, float).sum(1) / (x_scale if x_dtype != "int64" else 7.0))
                   + 0.1 * rng.normal(size=n))
    ls_kind = draw(st.sampled_from(["iso", "iso", "ard", "ard", "bad", "long"]))
    ls_unit = (x_scale if x_dtype != "int64" else 7.0) * draw(st.sampled_from([0.5, 1.0, 3.0]))
    if ls_kind == "iso":
        ls, bad = ls_unit, None
    elif ls_kind == "ard":
        ls, bad = [ls_unit] * d, None
    elif ls_kind == "long":
        ls, bad = [ls_unit] * (d + 1), "kernel"
    else:
        ls, bad = draw(st.sampled_from(BAD_VALUES)), "kernel"
    alpha_kind = draw(st.sampled_from(["scalar", "scalar", "array", "bad"]))
    if alpha_kind == "scalar":
        alpha = draw(st.sampled_from([1e-10, 1e-2, 1.0]))
    elif alpha_kind == "array":
        alpha = np.full(n, 1e-2) * np.linspace(1, 2, n)
    else:
        alpha = np.full(n, 1e-2)
        alpha[draw(st.integers(0, n - 1))] = draw(st.sampled_from([np.nan, -1.0]))
        bad = bad or "alpha"
    dtype = draw(st.sampled_from(["float64"] * 5 + ["floaty"]))
    if dtype == "floaty":
        bad = "dtype"
    normalize_y = draw(st.booleans())
    return X, y, ls, alpha, dtype, normalize_y, bad


@settings(max_examples=30, **SETTINGS)
@given(gpr_case())
def test_scalable_gpr_is_refused_clearly_or_equals_scikit_learn(case):
    X, y, ls, alpha, dtype, normalize_y, bad = case
    kernel = C(1.3, "fixed") * RBF(ls, "fixed")
    est = ScalableGPRegressor(kernel=kernel, alpha=alpha, optimizer=None, normalize_y=normalize_y,
                              solver="cholesky", dtype=dtype)
    if bad is not None:
        names = {"kernel": ["`kernel`"], "alpha": ["`alpha`"], "dtype": ["`dtype`"]}[bad]
        if bad == "kernel" and not np.all(np.isfinite(np.asarray(alpha))):
            names = names + ["`alpha`"]  # two bad arguments: either may be named first
        event(f"refused: {bad}")
        _expect_named_error(lambda: est.fit(X, y), names)
        return
    Xq = np.asarray(X, float)[:4] * 1.01 + 0.003 * np.ptp(np.asarray(X, float)) + 1e-6
    ref = GaussianProcessRegressor(kernel=kernel, alpha=alpha, optimizer=None, normalize_y=normalize_y)
    try:
        ref.fit(np.asarray(X, float), y)
        ref_mean, ref_std = ref.predict(Xq, return_std=True)
    except np.linalg.LinAlgError:
        ref = None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            est.fit(X, y)
        except np.linalg.LinAlgError as e:  # scikit-learn's own failure, with its advice
            assert ref is None and "alpha" in str(e)
            event("LinAlgError as scikit-learn")
            return
        mean, std = est.predict(Xq, return_std=True)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(std))
    if est.jitter_ > 0:  # skgpx regularised where scikit-learn failed or would have: it must say so
        assert any("jitter" in str(w.message) for w in caught)
        event("jitter added, warned")
        return
    assert ref is not None
    event("compared with scikit-learn")
    tol = 1e-6 * max(np.std(y), np.abs(y).max())
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-6, atol=tol)
    np.testing.assert_allclose(std, ref_std, rtol=1e-5, atol=tol)


# -- Magma: fixed hyperparameters, a NumPy hyper-posterior as the reference --------------------


def _hyperposterior(grid, X, y, tasks, mk, tk, m0):
    """Mean and covariance of mu0 on ``grid`` given every task (MAGMA.md A.1), densely."""
    K0 = mk(grid)
    prec = np.linalg.inv(K0)
    rhs = prec @ np.full(len(grid), m0)
    for t in np.unique(tasks):
        Xi, yi = X[tasks == t], y[tasks == t]
        A = np.array([np.all(np.isclose(grid, xi, rtol=0, atol=0), axis=1) for xi in Xi], float)
        Psi_inv = np.linalg.inv(tk(Xi))
        prec += A.T @ Psi_inv @ A
        rhs += A.T @ Psi_inv @ yi
    cov = np.linalg.inv(prec)
    return cov @ rhs, cov


@st.composite
def magma_case(draw):
    n_tasks, n_points = 3, 4
    x_scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    y_scale = draw(st.sampled_from([1e-3, 1.0, 1e3]))
    rng = np.random.default_rng(draw(st.integers(0, 3)))
    t = np.linspace(0, 3, n_points)
    X = np.tile(t, n_tasks)[:, None] * x_scale
    tasks = np.repeat(np.arange(n_tasks), n_points)
    y = y_scale * (np.sin(np.tile(t, n_tasks)) + 0.3 * tasks + 0.1 * rng.normal(size=tasks.size))
    label_kind = draw(st.sampled_from(["int", "str", "object-int", "object-str", "mixed"]))
    groups = {
        "int": tasks, "str": np.array([f"task{i}" for i in tasks]), "object-int": tasks.astype(object),
        "object-str": np.array([f"t{i}" for i in tasks], dtype=object),
        "mixed": np.array([i if i else "0" for i in tasks], dtype=object),
    }[label_kind]
    ls = draw(st.sampled_from([0.7, 1.5] + BAD_VALUES[:2])) * x_scale
    which_bad = draw(st.sampled_from(["mean_kernel", "task_kernel"]))
    mk_ls, tk_ls = (ls, 1.0 * x_scale) if which_bad == "mean_kernel" else (1.2 * x_scale, ls)
    bad = [] if ls > 0 else [which_bad]
    if label_kind == "mixed":
        bad.append("groups")  # with a bad kernel too, either may be named first
    normalize_y = draw(st.booleans())
    prior_mean = draw(st.sampled_from([0.0, 0.5]))
    return X, y, groups, tasks, mk_ls, tk_ls, normalize_y, prior_mean * y_scale, bad


@settings(max_examples=12, **SETTINGS)
@given(magma_case())
def test_magma_is_refused_clearly_or_equals_dense_hyperposterior(case):
    X, y, groups, tasks, mk_ls, tk_ls, normalize_y, prior_mean, bad = case
    mk = C(1.5, "fixed") * RBF(mk_ls, "fixed")
    tk = C(0.7, "fixed") * RBF(tk_ls, "fixed") + W(0.1, "fixed")
    est = MultiTaskMagmaRegressor(mk, tk, max_iter=1, normalize_y=normalize_y, prior_mean=prior_mean)
    if bad:
        event(f"refused: {' or '.join(bad)}")
        _expect_named_error(lambda: est.fit(X, y, groups=groups), [f"`{b}`" for b in bad])
        return
    event("compared with the dense hyper-posterior")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, y, groups=groups)
    mean, cov = est.predict_mean_process(est.grid_, return_cov=True)
    y_mean, y_std = (np.mean(y), np.std(y)) if normalize_y else (0.0, 1.0)
    ref_mean, ref_cov = _hyperposterior(est.grid_, X, (y - y_mean) / y_std, tasks, mk, tk,
                                        (prior_mean - y_mean) / y_std)
    assert np.all(np.isfinite(mean)) and np.all(np.isfinite(cov))
    # the estimator's jitter (1e-8 of the mean diagonal) is the only difference
    np.testing.assert_allclose(mean, ref_mean * y_std + y_mean, rtol=1e-5, atol=1e-5 * y_std)
    np.testing.assert_allclose(cov, ref_cov * y_std**2, rtol=1e-5, atol=1e-5 * y_std**2)
    # a training task is predicted under any of its label spellings
    label = groups[0]
    assert np.all(np.isfinite(est.predict(X[:2], groups=[label, label])))
