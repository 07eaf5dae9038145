"""Size buckets for Magma's compiled programs: the task count, the rows per task and the union
grid padded (``build_layout(pad=True)``, what the estimator uses) give the results of the
unpadded layout, and nearby sizes reuse every compiled EM program."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.gaussian_process.kernels import RBF as SkRBF, ConstantKernel as SkC, WhiteKernel as SkWhite

import skgpx.estimators._magma as magma_estimator
import skgpx.estimators._magma_clust as clust_estimator
from skgpx import MultiTaskMagmaRegressor
from skgpx.datasets import make_magma_data
from skgpx.kernels import RBF, Constant, White
from skgpx.magma import MagmaParams, build_layout, canonical, e_step, elbo, task_data_from_layout
from skgpx.magma._objectives import gls_prior_mean, mean_objective_and_grad, task_objective_and_grad

JIT = 1e-8
EM_PROGRAMS = ("e_step", "elbo", "mean_objective_and_grad", "task_objective_and_grad", "gls_prior_mean",
               "task_objectives_and_grads", "cluster_e_step", "cluster_task_terms", "_memberships_and_elbo",
               "_mean_objective_and_grad", "_gls_means", "task_posteriors", "mean_process_at")


def _ragged(shared_inputs, n_tasks=7, n_points=9, seed=4):
    X, y, g = make_magma_data(n_tasks, n_points, shared_inputs=shared_inputs, grid_size=40, random_state=seed)
    if not shared_inputs:  # ragged tasks
        keep = np.ones(len(y), bool)
        keep[[0, 1, 12]] = False
        X, y, g = X[keep], y[keep], g[keep]
    return X, (y - y.mean()) / y.std(), g


def _params(n_pad, shared_hp):
    k0, kt = Constant(1.2) * RBF(0.8), Constant(0.6) * RBF(0.7) + White(0.05)
    th = np.asarray(kt.theta)
    if not shared_hp:
        rng = np.random.default_rng(2)
        th = th + 0.3 * rng.standard_normal((n_pad, th.size))
    return canonical(MagmaParams(k0, kt, np.asarray(k0.theta), th, np.asarray(0.2), shared_hp))


def _pad_rows(theta, n_pad):
    """Distinct task hyperparameters of the unpadded layout, repeated for the padded tasks."""
    return np.concatenate([theta, np.repeat(theta[-1:], n_pad - theta.shape[0], axis=0)])


@pytest.mark.parametrize("shared_inputs", [True, False])
@pytest.mark.parametrize("shared_hp", [True, False])
def test_padded_layout_gives_the_unpadded_posterior_and_objectives(shared_inputs, shared_hp):
    X, y, g = _ragged(shared_inputs)
    plain, padded = build_layout(X, y, g), build_layout(X, y, g, pad=True)
    N, M = plain.n_grid, plain.n_tasks
    assert padded.n_grid == N and padded.grid.shape[0] > N and padded.X.shape[0] > plain.X.shape[0]
    assert padded.n_max > plain.n_max
    np.testing.assert_array_equal(padded.real_grid, plain.grid)
    p0 = _params(plain.X.shape[0], shared_hp)
    p1 = p0 if shared_hp else canonical(
        MagmaParams(p0.mean_kernel, p0.task_kernel, p0.theta0, _pad_rows(np.asarray(p0.theta_task), padded.X.shape[0]),
                    p0.m0, False))
    d0, d1 = task_data_from_layout(plain), task_data_from_layout(padded)
    assert d1.n_tasks == M and d1.longest == d0.longest
    q0, q1 = e_step(p0, d0, JIT), e_step(p1, d1, JIT)
    np.testing.assert_allclose(float(q1.lml), float(q0.lml), rtol=1e-11)
    np.testing.assert_allclose(np.asarray(q1.mean)[:N], np.asarray(q0.mean), rtol=1e-10, atol=1e-11)
    np.testing.assert_allclose(np.asarray(q1.cov())[:N, :N], np.asarray(q0.cov()), rtol=1e-9, atol=1e-12)
    assert np.all(np.asarray(q1.cov())[N:] == 0.0)  # no variance on padded grid points
    np.testing.assert_allclose(float(elbo(p1, d1, q1, JIT)), float(elbo(p0, d0, q0, JIT)), rtol=1e-11)
    # M-step objectives and their gradients (scale 1: the values are compared as they are). Terms
    # solved with L0 (condition ~ 1 / jitter) carry round-off of about 1e-16 / 1e-8 relative.
    one = np.asarray(1.0)
    f0, g0 = mean_objective_and_grad(p0.theta0, p0.m0, p0.mean_kernel, d0.grid, q0.mean, q0.cov_sqrt(), JIT, one)
    f1, g1 = mean_objective_and_grad(p1.theta0, p1.m0, p1.mean_kernel, d1.grid, q1.mean, q1.cov_sqrt(), JIT, one,
                                     d1.grid_mask)
    np.testing.assert_allclose(float(f1), float(f0), rtol=1e-9)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g0), rtol=1e-8, atol=1e-10)
    m0 = gls_prior_mean(p0.theta0, p0.mean_kernel, d0.grid, q0.mean, JIT)
    m1 = gls_prior_mean(p1.theta0, p1.mean_kernel, d1.grid, q1.mean, JIT, d1.grid_mask)
    np.testing.assert_allclose(float(m1), float(m0), rtol=1e-10)
    C0, C1 = q0.cov(), q1.cov()
    t0, tg0 = task_objective_and_grad(p0.theta_task, p0, d0, q0.mean, C0, JIT, one)
    t1, tg1 = task_objective_and_grad(p1.theta_task, p1, d1, q1.mean, C1, JIT, one)
    np.testing.assert_allclose(float(t1), float(t0), rtol=1e-11)
    tg1 = np.asarray(tg1) if shared_hp else np.asarray(tg1)[:M]
    tg0 = np.asarray(tg0) if shared_hp else np.asarray(tg0)[:M]
    np.testing.assert_allclose(tg1, tg0, rtol=1e-9, atol=1e-12)


@pytest.fixture
def unpadded(monkeypatch):
    """The estimator on unpadded layouts (the reference; test-side switch, no production flag)."""

    def plain(*args, **kwargs):
        return build_layout(*args, **{**kwargs, "pad": False})

    def use():
        monkeypatch.setattr(magma_estimator, "build_layout", plain)
        monkeypatch.setattr(clust_estimator, "build_layout", plain)

    return use


def _est(**kw):
    kw.setdefault("max_iter", 3)
    kw.setdefault("prior_mean", "constant")
    kw.setdefault("random_state", 0)
    return MultiTaskMagmaRegressor(SkC(1.0) * SkRBF(1.5), SkC(0.5) * SkRBF(1.0) + SkWhite(0.1), **kw)


def _fit(est, X, y, g):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return est.fit(X, y, g)


@pytest.mark.parametrize(
    "kw",
    [
        dict(shared_hyperparameters=True),
        dict(shared_hyperparameters=False),
        dict(shared_hyperparameters=True, n_clusters=2),
    ],
    ids=["magma-shared", "magma-distinct", "magmaclust"],
)
def test_padded_fit_equals_unpadded_fit(kw, unpadded):
    X, y, g = make_magma_data(13, 9, shared_inputs=False, grid_size=50, random_state=1)
    tr, new = g < 11, g >= 11
    obs, tgt = new & (X[:, 0] < 5.0), new & (X[:, 0] >= 5.0)
    Xs = np.linspace(0.0, 10.0, 7)[:, None]

    def run():
        est = _fit(_est(**kw), X[tr], y[tr], g[tr])
        pred = est.predict(X[tgt], g[tgt], return_std=True, X_obs=X[obs], y_obs=y[obs], groups_obs=g[obs])
        train = est.predict(X[tr][:20], g[tr][:20], return_std=True)
        return est, pred, train, est.predict_mean_process(Xs, return_cov=True)

    padded = run()
    assert padded[0]._layout.grid.shape[0] > padded[0].grid_.shape[0]  # the grid was padded
    unpadded()
    plain = run()
    assert plain[0]._layout.grid.shape[0] == plain[0].grid_.shape[0]
    a, b = padded[0], plain[0]
    assert a.n_iter_ == b.n_iter_
    # Round-off of the factorisations (condition ~ 1 / jitter), carried through the EM's
    # L-BFGS-B runs: measured at most 2.2e-10 relative.
    np.testing.assert_allclose(a.log_marginal_likelihood_value_, b.log_marginal_likelihood_value_, rtol=1e-9)
    np.testing.assert_allclose(a.elbo_history_, b.elbo_history_, rtol=1e-9)
    # The hyperparameters are L-BFGS-B's stopping points (m_step_tol=1e-8) on objectives that
    # agree to 1e-10: measured 5e-8 apart (relative), and so are the predictions. Solving the
    # M-steps to round-off does not bring them closer: long runs on flat optima drift apart.
    tol = dict(rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(a.mean_kernel_.theta, b.mean_kernel_.theta, **tol)
    np.testing.assert_allclose(a.task_theta_, b.task_theta_, **tol)
    np.testing.assert_array_equal(a.grid_, b.grid_)
    if a.n_clusters_ > 1:
        np.testing.assert_allclose(a.memberships_, b.memberships_, **tol)
    for x, z in zip(padded[1:], plain[1:]):
        for u, v in zip(x, z):
            np.testing.assert_allclose(u, v, **tol)


def _counted_fits(count_traces, clusters, longer=True, **kw):
    """Fit 10 tasks, then (counted) 11 tasks, then (``longer``) a task one row longer, and predict."""
    X, y, g = make_magma_data(12, 10, shared_inputs=False, grid_size=40, random_state=3)
    extra = make_magma_data(1, 11, shared_inputs=False, grid_size=40, random_state=5)
    sizes = []

    def fit(mask, more=None):
        Xf, yf, gf = X[mask], y[mask], g[mask]
        if more is not None:
            Xf, yf, gf = np.vstack([Xf, more[0]]), np.concatenate([yf, more[1]]), np.concatenate([gf, more[2] + 100])
        est = _fit(_est(n_clusters=clusters, max_iter=3, tol=0.0, **kw), Xf, yf, gf)
        est.predict(Xf[:15], gf[:15], return_std=True)
        est.predict_mean_process(Xf[:9])
        sizes.append((est.tasks_.shape[0], est._layout.n_max, est.grid_.shape[0]))
        return est

    fit(g < 10)
    with count_traces() as traces:
        fit(g < 11)
        if longer:
            fit(g < 11, extra)
    return traces, sizes


@pytest.mark.parametrize("clusters", [1, 2])
def test_more_tasks_and_longer_tasks_compile_no_new_em_program(clusters, count_traces):
    traces, sizes = _counted_fits(count_traces, clusters)
    assert [s[0] for s in sizes] == [10, 11, 12]  # one task more each time, a longer one last
    compiled = {name: traces[name] for name in EM_PROGRAMS if traces[name]}
    assert not compiled, (compiled, sizes)


def test_the_compile_counter_sees_unpadded_recompilation(count_traces, unpadded):
    """The reference: without buckets the same first two fits compile the E-step again (the counter works)."""
    unpadded()
    traces, sizes = _counted_fits(count_traces, 1, longer=False)  # one task more is enough to recompile
    assert [s[0] for s in sizes] == [10, 11]
    assert traces["e_step"] >= 1
