"""MagmaClust (MAGMA.md A.4, A.5): the variational EM against dense formulas, Magma at K = 1,
recovery of simulated clusters, selection of K, mixture predictions, bad input."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from skgpx import MultiTaskMagmaRegressor
from skgpx.datasets import make_magma_data, make_magmaclust_data
from skgpx.kernels import RBF, Constant, White
from skgpx.magma import MagmaParams, build_layout, canonical, run_em, task_data_from_layout
from skgpx.magma._clust import (
    ClustParams,
    _mean_objective_and_grad,
    _mean_terms,
    cluster_e_step,
    cluster_task_terms,
    run_vem,
    update_memberships,
    vem_elbo,
)
from skgpx.magma._em import EMOptions
from skgpx.magma._mixture import MixtureMoments
from skgpx.magma._objectives import task_objective_and_grad

JIT = 1e-8


def _data(shared_inputs, n_tasks=6, n_points=7, seed=3):
    X, y, g = make_magma_data(n_tasks, n_points, shared_inputs=shared_inputs, grid_size=25, random_state=seed)
    if not shared_inputs:  # ragged tasks: padding is exercised
        keep = np.ones(len(y), bool)
        keep[[0, 1, 9]] = False
        X, y, g = X[keep], y[keep], g[keep]
    layout = build_layout(X, (y - y.mean()) / y.std(), g, chunk_budget=2 * n_points * n_points)
    return layout, task_data_from_layout(layout)


def _params(layout, shared_hp, K=2, shared_mean=False):
    k0, kt = Constant(1.3) * RBF(0.9), Constant(0.6) * RBF(0.7) + White(0.05)
    rng = np.random.default_rng(1)
    th = np.asarray(kt.theta)
    if not shared_hp:
        th = th + 0.3 * rng.standard_normal((layout.X.shape[0], th.size))
    th0 = np.asarray(k0.theta)
    if not shared_mean:
        th0 = th0 + 0.2 * rng.standard_normal((K, th0.size))
    return canonical(ClustParams(k0, kt, th0, th, np.linspace(-0.3, 0.4, K), np.full(K, 1.0 / K), shared_hp,
                                 shared_mean))


def _tau(layout, K=2, seed=0):
    rng = np.random.default_rng(seed)
    tau = np.zeros((layout.X.shape[0], K))
    tau[: layout.n_tasks] = rng.dirichlet(np.ones(K), layout.n_tasks)
    return jnp.asarray(tau)


def _jittered(K):
    return K + JIT * np.mean(np.diag(K)) * np.eye(K.shape[0])


def _dense(params, layout, tau):
    """Per cluster (mhat_k, C_k) with explicit inverses, and E_ik, as written in MAGMA.md A.4."""
    T = layout.grid
    thetas = np.asarray(params.task_thetas(layout.X.shape[0]))
    blocks = []
    for i in range(layout.n_tasks):
        m = layout.mask[i]
        Psi = _jittered(np.asarray(params.task_kernel.with_theta(thetas[i]).gram(jnp.asarray(layout.X[i][m]))))
        blocks.append((layout.index[i][m], layout.y[i][m], Psi))
    post = []
    for k in range(params.n_clusters):
        K0 = _jittered(np.asarray(params.mean_kernel.with_theta(params.cluster_thetas()[k]).gram(jnp.asarray(T))))
        prec = np.linalg.inv(K0)
        rhs = prec @ np.full(len(T), float(params.m0[k]))
        for i, (idx, y, Psi) in enumerate(blocks):
            prec[np.ix_(idx, idx)] += tau[i, k] * np.linalg.inv(Psi)
            rhs[idx] += tau[i, k] * np.linalg.solve(Psi, y)
        C = np.linalg.inv(prec)
        post.append((C @ rhs, C))
    E = np.zeros((layout.n_tasks, params.n_clusters))
    for i, (idx, y, Psi) in enumerate(blocks):
        for k, (m, C) in enumerate(post):
            r = y - m[idx]
            E[i, k] = (-0.5 * r @ np.linalg.solve(Psi, r) - 0.5 * np.linalg.slogdet(Psi)[1]
                       - 0.5 * len(r) * np.log(2 * np.pi) - 0.5 * np.trace(np.linalg.solve(Psi, C[np.ix_(idx, idx)])))
    return post, E


@pytest.mark.parametrize("shared_inputs,shared_hp", [(True, True), (False, False)])
def test_variational_steps_and_gradients_match_dense(shared_inputs, shared_hp):
    layout, data = _data(shared_inputs)
    params = _params(layout, shared_hp)
    tau = _tau(layout)
    hyper = cluster_e_step(params, data, tau, JIT)
    E = cluster_task_terms(params, data, hyper, JIT)
    post, E_ref = _dense(params, layout, np.asarray(tau))
    for k, (m, C) in enumerate(post):
        np.testing.assert_allclose(np.asarray(hyper.mean[k]), m, rtol=1e-7, atol=1e-8)
        R = np.asarray(jax.scipy.linalg.solve_triangular(hyper.LB[k], hyper.L0[k].T, lower=True)).T
        np.testing.assert_allclose(R @ R.T, C, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(np.asarray(E)[: layout.n_tasks], E_ref, rtol=1e-8)
    assert np.all(np.asarray(E)[layout.n_tasks :] == 0)
    # The ELBO: its parts against the dense formulas.
    pi = jnp.asarray([0.3, 0.7])
    t = np.asarray(tau)[: layout.n_tasks]
    ref = np.sum(t * E_ref) + np.sum(t * (np.log(np.asarray(pi)) - np.log(t)))
    for k, (m, C) in enumerate(post):
        K0 = _jittered(np.asarray(params.mean_kernel.with_theta(params.cluster_thetas()[k]).gram(data.grid)))
        r = m - float(params.m0[k])
        # J0_k + entropy of q(mu_k): the log 2 pi terms cancel, N/2 remains
        ref += (-0.5 * r @ np.linalg.solve(K0, r) - 0.5 * np.linalg.slogdet(K0)[1]
                - 0.5 * np.trace(np.linalg.solve(K0, C)) + 0.5 * np.linalg.slogdet(C)[1] + 0.5 * len(m))
    got = float(vem_elbo(_mean_terms(params, hyper, JIT), E, tau, pi))
    np.testing.assert_allclose(got, ref, rtol=1e-9)
    # Gradients of the variational objective w.r.t. the task hyperparameters (Magma's task
    # M-step on the mixture moments, full and low-rank forms) == autodiff of the dense sum.
    C_full = jnp.stack([jnp.asarray(C) for _, C in post])

    def dense_obj(th):
        thetas = jnp.broadcast_to(th, (layout.X.shape[0],) + th.shape[-1:]) if shared_hp else th
        total = 0.0
        for i in range(layout.n_tasks):
            msk = layout.mask[i]
            x, yi, idx = layout.X[i][msk], layout.y[i][msk], layout.index[i][msk]
            Kx = params.task_kernel.with_theta(thetas[i]).gram(jnp.asarray(x))
            Psi = Kx + JIT * jnp.mean(jnp.diag(Kx)) * jnp.eye(len(idx))
            for k, (m, C) in enumerate(post):
                r = yi - m[idx]
                total += t[i, k] * (-0.5 * r @ jnp.linalg.solve(Psi, r) - 0.5 * jnp.linalg.slogdet(Psi)[1]
                                    - 0.5 * jnp.trace(jnp.linalg.solve(Psi, C[np.ix_(idx, idx)]))
                                    - 0.5 * len(idx) * np.log(2 * np.pi))
        return total

    th = params.task_view().theta_task
    v_ref, g_ref = jax.jit(jax.value_and_grad(dense_obj))(th)
    forms = [MixtureMoments(lowrank=False, means=hyper.mean, covs=C_full, tau=tau)]
    lam, U = np.linalg.eigh(np.asarray(C_full))
    F = jnp.asarray(U * np.sqrt(np.maximum(lam, 0.0))[:, None, :])  # exact factors C_k = F_k F_k^T
    forms.append(MixtureMoments(lowrank=True, means=hyper.mean, covs=F, tau=tau))
    for moments in forms:
        v, g = task_objective_and_grad(th, params.task_view(), data, moments, None, JIT, 1.0, moments.lowrank, 0)
        np.testing.assert_allclose(-float(v), float(v_ref), rtol=1e-9)
        np.testing.assert_allclose(-np.asarray(g), np.asarray(g_ref), rtol=1e-6, atol=1e-9)
    # ... and w.r.t. the mean-kernel hyperparameters (per cluster).
    R = jax.vmap(lambda L0, LB: jax.scipy.linalg.solve_triangular(LB, L0.T, lower=True).T)(hyper.L0, hyper.LB)

    def dense_mean(th0):
        total = 0.0
        for k, (m, C) in enumerate(post):
            Kk = params.mean_kernel.with_theta(th0[k]).gram(data.grid)
            K0 = Kk + JIT * jnp.mean(jnp.diag(Kk)) * jnp.eye(len(m))
            r = m - params.m0[k]
            total += (-0.5 * r @ jnp.linalg.solve(K0, r) - 0.5 * jnp.linalg.slogdet(K0)[1]
                      - 0.5 * jnp.trace(jnp.linalg.solve(K0, C)) - 0.5 * len(m) * np.log(2 * np.pi))
        return total

    v, g = _mean_objective_and_grad(params.theta0, params, hyper, R, JIT, 1.0)
    v_ref, g_ref = jax.jit(jax.value_and_grad(dense_mean))(params.theta0)
    np.testing.assert_allclose(-float(v), float(v_ref), rtol=1e-8)
    np.testing.assert_allclose(-np.asarray(g), np.asarray(g_ref), rtol=1e-6, atol=1e-9)


def test_memberships_with_an_empty_cluster_stay_finite():
    E = jnp.asarray([[-1.0, -2.0, -3.0], [-5.0, -1.0, 0.0], [0.0, 0.0, 0.0]])
    pi = jnp.asarray([0.5, 0.5, 0.0])
    tau = update_memberships(E, pi, jnp.asarray([True, True, False]))
    assert np.all(np.asarray(tau)[:, 2] == 0) and np.all(np.asarray(tau)[2] == 0)
    np.testing.assert_allclose(np.asarray(tau)[:2].sum(axis=1), 1.0)
    ref = np.exp(-1.0) / (np.exp(-1.0) + np.exp(-2.0))
    np.testing.assert_allclose(float(tau[0, 0]), ref, rtol=1e-12)


@pytest.mark.parametrize("shared_inputs,shared_hp", [(False, False)])
def test_one_cluster_is_magma(shared_inputs, shared_hp):
    """MagmaClust's VEM with K = 1 (tau = 1) follows Magma's EM: same ELBO (= log p(y | Theta))
    at every iteration, same hyperparameters."""
    layout, data = _data(shared_inputs, n_tasks=8, n_points=10, seed=5)
    k0, kt = Constant(1.0) * RBF(1.0), Constant(1.0) * RBF(1.0) + White(0.1)
    th = np.asarray(kt.theta) if shared_hp else np.tile(np.asarray(kt.theta), (layout.X.shape[0], 1))
    opts = dict(learn_prior_mean=True, max_iter=3, tol=0.0, m_step_max_iter=30, m_step_tol=1e-8, jitter=JIT)
    tau0 = np.zeros((layout.X.shape[0], 1))
    tau0[: layout.n_tasks] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        magma = run_em(MagmaParams(k0, kt, np.asarray(k0.theta), th, np.asarray(0.0), shared_hp), data, **opts)
        clust = run_vem(ClustParams(k0, kt, np.asarray(k0.theta), th, np.zeros(1), np.ones(1), shared_hp, True),
                        data, tau0, EMOptions(3, 0.0, 30, 1e-8, JIT, True))
    # Same objectives (equal to round-off), but batched over clusters (and, with distinct task
    # hyperparameters, under a population prior fitted to only 8 tasks, which amplifies round-off): L-BFGS-B's stop at a
    # projected gradient of 1e-8 (scaled objective) lands 1e-6 apart in a flat direction,
    # which moves log p(y | Theta) (not stationary in theta0 before EM converges) by ~1e-6.
    np.testing.assert_allclose(clust.elbo_history, magma.elbo_history, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(clust.params.theta_task), np.asarray(magma.params.theta_task), rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(np.asarray(clust.params.theta0), np.asarray(magma.params.theta0), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(clust.params.m0[0]), float(magma.params.m0), rtol=1e-6, atol=1e-7)


@pytest.fixture(scope="module")
def clustered():
    X, y, g, truth = make_magmaclust_data(24, 10, 3, shared_inputs=True, random_state=0, return_truth=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = MultiTaskMagmaRegressor(n_clusters=[2, 3, 4], prior_mean="constant", max_iter=10, random_state=0)
        est.fit(X, y, g)
    return est, X, y, g, truth


def test_recovers_clusters_and_selects_three(clustered):
    est, X, y, g, truth = clustered
    assert est.n_clusters_ == 3
    assert max(est.n_clusters_scores_, key=est.n_clusters_scores_.get) == 3
    assert adjusted_rand_score(truth.labels, np.argmax(est.memberships_, axis=1)) >= 0.9
    # The ELBO increases at every VEM iteration (up to round-off).
    h = est.elbo_history_
    assert len(h) > 2 and np.all(np.diff(h) >= -1e-7 * np.abs(h[1:]))
    np.testing.assert_allclose(est.cluster_proportions_.sum(), 1.0)
    assert est.memberships_.shape == (24, 3)
    text = est.summary()
    assert "K=3" in text and "variational BIC" in text and "cluster 2" in text


def test_mixture_predictions(clustered):
    est, X, y, g, truth = clustered
    rows = np.flatnonzero(g < 3)
    means, stds, proba = est.predict_clusters(X[rows], g[rows])
    mean, std = est.predict(X[rows], g[rows], return_std=True)
    np.testing.assert_allclose(mean, np.sum(proba * means, axis=1), rtol=1e-10)
    np.testing.assert_allclose(std**2, np.sum(proba * (stds**2 + (means - mean[:, None]) ** 2), axis=1), rtol=1e-8)
    mean_c, cov = est.predict(X[rows], g[rows], return_cov=True)
    np.testing.assert_allclose(mean_c, mean, rtol=1e-10)
    np.testing.assert_allclose(np.diag(cov), std**2, rtol=1e-7)
    assert np.all(cov[np.ix_(g[rows] == 0, g[rows] == 1)] == 0)  # tasks independent
    # A new task from its observations: its memberships are the clusters' posterior probabilities.
    obs = np.flatnonzero(g == 5)
    p = est.predict_cluster_proba([5, 99], X_obs=X[obs], y_obs=y[obs], groups_obs=np.full(obs.size, 99))
    assert np.argmax(p[1]) == np.argmax(est.memberships_[5]) and p[1].max() > 0.99
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    m_new = est.predict(X[obs], np.full(obs.size, 99), X_obs=X[obs], y_obs=y[obs], groups_obs=np.full(obs.size, 99))
    assert np.mean((m_new - y[obs]) ** 2) < 0.1 * np.var(y)
    # Mean processes: one per cluster.
    mu, sd = est.predict_mean_process(X[:4], return_std=True)
    assert mu.shape == (3, 4) and sd.shape == (3, 4)


def test_sample_y_draws_a_cluster_then_a_gp(clustered, monkeypatch):
    """With memberships split 50/50 between two far-apart clusters, every draw follows one
    cluster (bimodal), none their average. Targets far outside the data: each cluster then
    predicts its own prior mean."""
    est, X, y, g, truth = clustered
    tau = est.memberships_.copy()
    a, b = np.argsort(est.cluster_prior_means_)[[0, -1]]
    tau[0] = 0.0
    tau[0, [a, b]] = 0.5
    monkeypatch.setattr(est, "memberships_", tau)
    Xp, gp = np.array([[25.0], [30.0]]), np.zeros(2, int)
    means, stds, proba = est.predict_clusters(Xp, gp)
    np.testing.assert_allclose(proba[:, [a, b]], 0.5)
    assert np.all(np.abs(means[:, a] - means[:, b]) > 3 * (stds[:, a] + stds[:, b]))
    n = 400
    draws = est.sample_y(Xp, gp, n_samples=n, random_state=0)
    near = [np.all(np.abs(draws - means[:, [k]]) < 5 * stds[:, [k]], axis=0) for k in (a, b)]
    assert np.all(near[0] | near[1])
    assert abs(near[0].mean() - 0.5) < 4 * np.sqrt(0.25 / n)


def test_bad_input_and_edge_cases(monkeypatch):
    X, y, g = make_magmaclust_data(6, 5, 2, shared_inputs=False, random_state=1)
    with pytest.raises(ValueError, match="n_clusters=7 asks for 7 clusters but there are only 6"):
        MultiTaskMagmaRegressor(n_clusters=7).fit(X, y, g)
    with pytest.raises(ValueError, match="n_clusters"):
        MultiTaskMagmaRegressor(n_clusters=[0, 2]).fit(X, y, g)
    # A task with a single point is fitted and predicted like any other.
    keep = (g != 0) | (np.arange(len(g)) == 0)
    # An initial membership matrix with an empty cluster: the VEM keeps it at weight 0 and warns.
    from skgpx.estimators import _magma_clust
    from skgpx.magma import _clust

    def empty_third(layout, K, seed):
        tau = _clust.initial_memberships(layout, K - 1, seed)
        return np.concatenate([tau, np.zeros((tau.shape[0], 1))], axis=1)

    monkeypatch.setattr(_magma_clust, "initial_memberships", empty_third)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        with pytest.warns(RuntimeWarning, match="A cluster emptied"):
            est = MultiTaskMagmaRegressor(n_clusters=3, max_iter=3, random_state=0).fit(X[keep], y[keep], g[keep])
    assert np.all(est.memberships_[:, 2] < 1e-8) and est.cluster_proportions_[2] < 1e-8
    assert np.all(np.isfinite(est.elbo_history_))
    m, s = est.predict(X[keep][:1], g[keep][:1], return_std=True)
    assert np.isfinite(m).all() and np.isfinite(s).all() and est.memberships_.shape == (6, 3)
