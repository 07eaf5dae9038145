"""Low-rank task covariances (skgpx.magma._taskcov) against Magma's dense path and dense formulas."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skgpx import MultiTaskMagmaRegressor
from skgpx.datasets import make_magma_data
from skgpx.kernels import RBF, Constant, Matern, White
from skgpx.magma import MagmaParams, build_layout, canonical, e_step, elbo, task_data_from_layout
from skgpx.magma._objectives import m_step_covariance, task_objective_and_grad
from skgpx.magma._taskcov import (
    choose_task_rank,
    task_factor,
    woodbury_density,
    woodbury_precision,
    woodbury_trace_factor,
    woodbury_trace_full,
)

JIT = 1e-8


def _data(shared_hp, n_tasks=8, n_points=128, ragged=True):
    X, y, g = make_magma_data(n_tasks, n_points, shared_inputs=False, grid_size=2 * n_points, random_state=5)
    if ragged:  # short tasks (fewer points than the rank) and padding
        keep = np.ones(len(y), bool)
        keep[np.flatnonzero(g == g[0])[:120]] = False  # first task keeps 8 points
        keep[np.flatnonzero(g == g[-1])[:40]] = False
        X, y, g = X[keep], y[keep], g[keep]
    layout = build_layout(X, (y - y.mean()) / y.std(), g)
    kt = Constant(0.4) * RBF(2.5) + White(0.01)
    th = np.asarray(kt.theta)
    if not shared_hp:
        th = th + 0.1 * np.random.default_rng(2).standard_normal((layout.X.shape[0], th.size))
    k0 = Constant(1.0) * RBF(1.5)
    params = canonical(MagmaParams(k0, kt, np.asarray(k0.theta), th, np.asarray(0.1), shared_hp))
    return layout, task_data_from_layout(layout), params


def test_woodbury_pieces_match_dense_formulas():
    rng = np.random.default_rng(0)
    n, r = 30, 5
    Phi = jnp.asarray(rng.standard_normal((n, r)))
    D = jnp.asarray(rng.uniform(0.1, 1.0, n))
    Psi = np.asarray(Phi @ Phi.T + jnp.diag(D))
    res = jnp.asarray(rng.standard_normal(n))
    F = jnp.asarray(rng.standard_normal((n, 3)))
    C = np.asarray(F @ F.T)
    W = np.linalg.inv(Psi)
    value, core = woodbury_density(Phi, D, res)
    ref = -0.5 * res @ W @ res - 0.5 * np.linalg.slogdet(Psi)[1]
    np.testing.assert_allclose(float(value), ref, rtol=1e-12)
    np.testing.assert_allclose(float(woodbury_trace_factor(core, D, F)), np.trace(W @ C), rtol=1e-12)
    np.testing.assert_allclose(float(woodbury_trace_full(core, D, jnp.asarray(C))), np.trace(W @ C), rtol=1e-12)
    mask = jnp.arange(n) < 25
    P, logdet = woodbury_precision(Phi, D, mask)
    P = np.asarray(P)
    np.testing.assert_allclose(P[:25, :25], W[:25, :25], rtol=1e-10, atol=1e-12)
    assert np.all(P[25:] == 0) and np.all(P[:, 25:] == 0)
    np.testing.assert_allclose(float(logdet), np.linalg.slogdet(Psi)[1], rtol=1e-12)


def test_factor_is_exact_on_the_diagonal_and_close_off_it():
    rng = np.random.default_rng(1)
    x = jnp.asarray(np.sort(rng.uniform(0, 10, 90))[:, None])
    mask = jnp.arange(90) < 80
    k = Constant(0.4) * RBF(2.5) + White(0.01)
    Phi, D = task_factor(k, x, mask, JIT, 24)
    m = np.asarray(mask)
    approx = np.asarray(Phi @ Phi.T + jnp.diag(D))[np.ix_(m, m)]
    K = np.asarray(k.gram(x))[np.ix_(m, m)]
    dense = K + JIT * np.mean(np.diag(K)) * np.eye(80)
    np.testing.assert_allclose(np.diag(approx), np.diag(dense), rtol=1e-14)
    # Off the diagonal the neglected part is below the jitter added to the diagonal.
    assert np.max(np.abs(approx - dense)) <= JIT * np.mean(np.diag(K))
    assert np.all(np.asarray(Phi)[~m] == 0) and np.all(np.asarray(D)[~m] == 1)


def test_rank_choice():
    layout, data, params = _data(True)
    rank = choose_task_rank(params, data, JIT)
    assert 8 <= rank <= 0.25 * layout.X.shape[1] and rank % 8 == 0
    assert choose_task_rank(params, data, JIT, current=rank + 8) == rank + 8  # still covers: kept
    assert choose_task_rank(params, data, JIT, current=8) == rank  # too small: chosen anew
    rough = canonical(MagmaParams(params.mean_kernel, Constant(0.4) * Matern(2.5, nu=0.5) + White(0.01),
                                  params.theta0, params.theta_task, params.m0, True))
    assert choose_task_rank(rough, data, JIT) == 0  # full numerical rank: dense path
    noiseless = canonical(MagmaParams(params.mean_kernel, Constant(0.4) * RBF(2.5), params.theta0,
                                      params.theta_task[:2], params.m0, True))
    assert choose_task_rank(noiseless, data, JIT) == 0  # no White term: no diagonal to stand on
    assert choose_task_rank(params, data, 0.0) == 0


@pytest.mark.parametrize("shared_hp", [True, False])
def test_low_rank_matches_dense_path(shared_hp):
    layout, data, params = _data(shared_hp)
    rank = choose_task_rank(params, data, JIT)
    assert rank > 0
    J = jnp.asarray(JIT)
    dense, low = e_step(params, data, J), e_step(params, data, J, rank)
    # The low-rank error is below the jitter's own effect (dense path, jitter 1e-8 vs 1e-10).
    J10 = jnp.asarray(1e-10)
    small = e_step(params, data, J10)
    mean_jitter_effect = float(jnp.max(jnp.abs(small.mean - dense.mean)))
    assert 0 < float(jnp.max(jnp.abs(low.mean - dense.mean))) <= 0.05 * mean_jitter_effect
    np.testing.assert_allclose(float(low.logdet_cov()), float(dense.logdet_cov()), rtol=1e-9)
    e_dense, e_low = float(elbo(params, data, dense, J)), float(elbo(params, data, dense, J, rank))
    assert abs(e_low - e_dense) <= 0.05 * abs(float(elbo(params, data, dense, J10)) - e_dense)
    np.testing.assert_allclose(e_low, e_dense, rtol=1e-8)
    # The E-step's own log p(y | Theta) is the ELBO at its q, on either path.
    np.testing.assert_allclose(float(low.lml), float(elbo(params, data, low, J, rank)), rtol=1e-10)
    np.testing.assert_allclose(float(dense.lml), e_dense, rtol=1e-10)
    F, lowrank = m_step_covariance(dense, J, data.X.shape[1])
    scale = jnp.asarray(1.0 / float(data.n_obs))
    vd, gd = task_objective_and_grad(params.theta_task, params, data, dense.mean, F, J, scale, lowrank)
    vl, gl = task_objective_and_grad(params.theta_task, params, data, dense.mean, F, J, scale, lowrank, rank)
    np.testing.assert_allclose(float(vl), float(vd), rtol=1e-8)
    _, g10 = task_objective_and_grad(params.theta_task, params, data, dense.mean, F, J10, scale, lowrank)
    assert float(jnp.max(jnp.abs(gl - gd))) <= float(jnp.max(jnp.abs(g10 - gd)))


def test_low_rank_gradient_is_its_objectives_gradient():
    layout, data, params = _data(True, n_tasks=4)
    rank = choose_task_rank(params, data, JIT)
    post = e_step(params, data, jnp.asarray(JIT), rank)
    F, lowrank = m_step_covariance(post, jnp.asarray(JIT), data.X.shape[1])
    scale = jnp.asarray(1.0 / float(data.n_obs))

    def f(t):
        return task_objective_and_grad(t, params, data, post.mean, F, jnp.asarray(JIT), scale, lowrank, rank)

    th = np.asarray(params.theta_task)
    _, g = f(jnp.asarray(th))
    for j in range(th.size):
        e = np.zeros_like(th)
        e[j] = 1e-5
        fd = (float(f(jnp.asarray(th + e))[0]) - float(f(jnp.asarray(th - e))[0])) / 2e-5
        np.testing.assert_allclose(float(g[j]), fd, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("shared_hp", [True, False])
def test_estimator_low_rank_equals_dense(shared_hp):
    X, y, g = make_magma_data(8, 128, shared_inputs=False, shared_hyperparameters=shared_hp, grid_size=256,
                              task_length_scale=(2.0, 3.0), random_state=6)
    task_kernel = Constant(0.4) * RBF(2.5, length_scale_bounds=(1.5, 10.0)) + White(0.05)
    # Distinct hyperparameters: a second EM iteration runs the per-task M-step under the tasks'
    # population prior (the first starts from the shared M-step). Shared ones: every iteration
    # runs the same programs, one suffices.
    kw = dict(mean_kernel=Constant(1.0) * RBF(1.5), task_kernel=task_kernel,
              shared_hyperparameters=shared_hp, max_iter=1 if shared_hp else 2, tol=0.0, m_step_max_iter=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        low = MultiTaskMagmaRegressor(**kw).fit(X, y, groups=g)
        dense = MultiTaskMagmaRegressor(low_rank_tasks=False, **kw).fit(X, y, groups=g)
    assert np.all(low.task_cov_ranks_ > 0), low.task_cov_ranks_
    assert np.all(dense.task_cov_ranks_ == 0)
    # Converged M-steps; the two objectives differ at the jitter's level, so L-BFGS-B stops
    # at points a little apart (task-specific case: 6e-4 in 580, 1.0e-6 relative, unchanged
    # with m_step_tol=1e-9; the last-bit rounding of the kernel decides on which side of 1e-6).
    np.testing.assert_allclose(low.elbo_history_, dense.elbo_history_, rtol=3e-6)
    Xt = np.linspace(0, 10, 7)[:, None]
    mu_l, sd_l = low.predict_mean_process(Xt, return_std=True)
    mu_d, sd_d = dense.predict_mean_process(Xt, return_std=True)
    np.testing.assert_allclose(mu_l, mu_d, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sd_l, sd_d, rtol=1e-4)


def test_m_step_reuses_the_start_evaluation():
    from skgpx.magma._optimize import minimize_lbfgsb

    calls = []

    def vg(x):
        calls.append(np.array(x))
        return jnp.sum((x - 1.0) ** 2), 2.0 * (x - 1.0)

    res = minimize_lbfgsb(vg, np.zeros(3), np.tile([-5.0, 5.0], (3, 1)), max_iter=20, tol=1e-12)
    np.testing.assert_allclose(res.x, 1.0, atol=1e-6)
    assert len(calls) == res.n_eval  # SciPy's own evaluation of the start is not repeated
    assert jax.numpy.all(jnp.asarray(calls[0]) == 0)


@pytest.mark.parametrize("shared_hp", [True, False])
def test_distinct_hyperparameters_start_from_the_shared_m_step(shared_hp, monkeypatch):
    from skgpx.magma import _em

    calls = []
    original = _em._shared_start

    def spy(params, *args):
        out = original(params, *args)
        calls.append((np.asarray(params.theta_task), np.asarray(out.theta_task)))
        return out

    monkeypatch.setattr(_em, "_shared_start", spy)
    X, y, g = make_magma_data(6, 40, shared_inputs=False, shared_hyperparameters=False, grid_size=80,
                              random_state=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MultiTaskMagmaRegressor(shared_hyperparameters=shared_hp, max_iter=2, tol=0.0).fit(X, y, groups=g)
    assert np.all(np.diff(est.elbo_history_) >= -1e-7 * np.abs(est.elbo_history_[1:]))
    if shared_hp:
        assert calls == []
        return
    assert len(calls) == 1  # the first M-step only: afterwards the rows differ
    before, after = calls[0]
    assert np.all(after == after[:1]) and not np.allclose(after, before)
    assert not np.all(est.task_theta_ == est.task_theta_[:1])  # then each task moves on its own
