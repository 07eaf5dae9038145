"""The M-step optimisers: SciPy's L-BFGS-B wrapper and the per-task (separable) BFGS."""

from __future__ import annotations

import numpy as np
import scipy.optimize

from skgpx.magma._optimize import minimize_lbfgsb, minimize_separable


def _rosenbrock_rows(a):
    """Row ``i``: ``(a_i - x)^2 + 5 (y - x^2)^2``, minimum at ``(a_i, a_i^2)``."""

    def vg(X, needed=None):
        x, y = X[:, 0], X[:, 1]
        f = (a - x) ** 2 + 5.0 * (y - x * x) ** 2
        g = np.stack([-2.0 * (a - x) - 20.0 * x * (y - x * x), 10.0 * (y - x * x)], axis=1)
        return f, g

    return vg


def test_separable_rows_reach_their_own_optima():
    a = np.linspace(-1.0, 1.5, 7)
    vg = _rosenbrock_rows(a)
    calls = []

    def counted(X, needed):
        calls.append(needed.copy())
        return vg(X)

    bounds = np.tile([-3.0, 3.0], (7 * 2, 1))
    res = minimize_separable(counted, np.zeros((7, 2)), bounds, max_iter=200, tol=1e-14)
    assert res.success
    np.testing.assert_allclose(res.x[:, 0], a, atol=1e-5)
    np.testing.assert_allclose(res.x[:, 1], a**2, atol=1e-5)
    assert res.n_eval == len(calls)  # one batched evaluation per round
    assert res.fun <= res.fun_start
    np.testing.assert_allclose(res.fun_rows, vg(res.x)[0])
    # Only rows still moving are asked for: the last rounds need fewer than all 7.
    assert calls[0].all() and calls[-1].sum() < 7
    # Warm start from the returned curvature: a nearby problem needs fewer rounds.
    calls.clear()
    again = minimize_separable(counted, res.x + 0.05, bounds, max_iter=200, tol=1e-14,
                               inverse_hessians=res.state)
    cold = minimize_separable(vg, res.x + 0.05, bounds, max_iter=200, tol=1e-14)
    np.testing.assert_allclose(again.x, res.x, atol=1e-5)
    assert again.n_eval < cold.n_eval


def test_separable_respects_bounds_and_never_increases_a_row():
    a = np.array([2.0, -0.5, 0.7])
    vg = _rosenbrock_rows(a)
    lo_hi = np.array([[-1.0, 1.0], [-1.0, 4.0]] * 3)  # row 0's optimum x = 2 is outside
    x0 = np.array([[0.0, 0.0], [0.9, 3.0], [0.7, 0.49]])  # row 2 starts at its optimum
    f0, _ = vg(x0)
    res = minimize_separable(vg, x0, lo_hi, max_iter=100, tol=1e-12)
    f, g = vg(res.x)
    assert np.all(f <= f0 + 1e-15)
    assert np.all(res.x >= -1.0) and np.all(res.x[:, 0] <= 1.0)
    np.testing.assert_allclose(res.x[0], [1.0, 1.0], atol=1e-6)  # on the bound, KKT point
    np.testing.assert_allclose(res.x[2], x0[2], atol=1e-8)
    one = _rosenbrock_rows(a[1:2])
    ref = scipy.optimize.minimize(lambda z: one(z[None])[0][0], x0[1], jac=lambda z: one(z[None])[1][0],
                                  method="L-BFGS-B", bounds=lo_hi[2:4], options={"ftol": 1e-15, "gtol": 1e-10})
    np.testing.assert_allclose(res.x[1], ref.x, atol=1e-5)


def test_separable_skips_non_finite_trials():
    def vg(X, needed):
        f = np.sum((X - 1.0) ** 2, axis=1)
        f = np.where(X[:, 0] > 1.5, np.nan, f)  # a "failed factorisation" region
        return f, 2.0 * (X - 1.0)

    res = minimize_separable(vg, np.full((2, 2), -2.0), np.tile([-5.0, 5.0], (4, 1)), max_iter=50, tol=1e-14)
    np.testing.assert_allclose(res.x, 1.0, atol=1e-6)


def test_separable_optimises_only_the_rows_asked_for():
    a = np.linspace(-1.0, 1.0, 5)
    vg = _rosenbrock_rows(a)
    rows = np.array([True, False, True, False, False])
    seen = []

    def counted(X, needed):
        seen.append(needed.copy())
        return vg(X)

    x0 = np.zeros((5, 2))
    res = minimize_separable(counted, x0, np.tile([-3.0, 3.0], (10, 1)), max_iter=200, tol=1e-14, rows=rows)
    assert not np.any(np.stack(seen)[:, ~rows])  # the other rows are never evaluated
    np.testing.assert_array_equal(res.x[~rows], 0.0)
    np.testing.assert_allclose(res.x[rows, 0], a[rows], atol=1e-5)


def test_lbfgsb_wrapper_returns_the_start_when_nothing_improves():
    res = minimize_lbfgsb(lambda x: (np.sum(x**2), 2 * x), np.zeros(2), np.tile([-1.0, 1.0], (2, 1)),
                          max_iter=10, tol=1e-12)
    np.testing.assert_allclose(res.x, 0.0)
    assert res.fun == res.fun_start == 0.0
