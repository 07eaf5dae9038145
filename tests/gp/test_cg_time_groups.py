"""CG with time groups (``CG(time_dim=...)``) == CG without them, to the CG tolerance."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skgpx.estimators import ScalableGPRegressor
from skgpx.gp import CG
from skgpx.kernels import ActiveDims, Constant, Matern, White

N = 150


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    t = rng.choice([0.0, 1.0, 2.0], N)
    X = np.column_stack([rng.random((N, 2)), t])
    y = np.sin(5 * X[:, 0]) * np.cos(3 * X[:, 1]) + 0.3 * t + 0.1 * rng.standard_normal(N)
    kernel = (Constant(1.2) * ActiveDims(Matern(0.3, nu=1.5), dims=(0, 1))
              * ActiveDims(Matern(2.0, nu=0.5), dims=(2,)) + White(0.01))
    Xs = np.column_stack([rng.random((20, 2)), np.full(20, 1.5)])  # one time, between the days
    return kernel, X, y, Xs


def _exact(kernel, X, y, Xs, noise):
    K = kernel.gram(X) + jnp.diag(noise)
    a = jnp.linalg.solve(K, y[:, None])
    Ks = kernel.cross(X, Xs)
    var = kernel.diag(Xs) - jnp.sum(Ks * jnp.linalg.solve(K, Ks), axis=0)
    lml = -0.5 * float(y @ a[:, 0]) - 0.5 * float(jnp.linalg.slogdet(K)[1]) - 0.5 * len(y) * np.log(2 * np.pi)
    return a, Ks.T @ a, var, lml


def test_fit_and_predict_match_the_exact_gp(problem, operator="matrix-free"):
    """(The dense operator: through the estimator below.)"""
    kernel, X, y, Xs = problem
    groups = CG(time_dim="auto", tol=1e-10, operator=operator, tile_size=32, variance_method="exact").for_data(kernel, X)
    assert groups.time_groups[0] == 2 and len(groups.time_groups[1]) == 3
    Xj, noise, Xsj = jnp.asarray(X), jnp.full(N, 1e-3), jnp.asarray(Xs)
    post = groups.condition(kernel, Xj, jnp.asarray(y[:, None]), noise, jax.random.key(0))
    d = post.diagnostics()
    assert d["operator"] == f"time-groups-{operator}" and d["time_groups"] == 3 and d["converged"]
    a, mean, var, lml = _exact(kernel, Xj, jnp.asarray(y), Xsj, noise)
    np.testing.assert_allclose(post.alpha, a, rtol=1e-6, atol=1e-7 * float(jnp.max(jnp.abs(a))))
    np.testing.assert_allclose(post.mean(Xsj), mean, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(post.var(Xsj), var, rtol=1e-6, atol=1e-9)
    assert abs(float(post.log_marginal_likelihood_value) - lml) < 4 * d["logdet_stderr"] + 1e-3 * abs(lml)


def test_gradient_matches_plain_cg_draw_for_draw(problem):
    """Same probes, same solves: the stochastic LML gradients of CG with and without time groups
    agree to the solve tolerance (matrix-free: the weighted block-pair pass)."""
    kernel, X, y, _ = problem
    opts = dict(tol=1e-10, train_tol=None, operator="matrix-free", tile_size=32)
    Xj, Yj, noise, key = jnp.asarray(X), jnp.asarray(y[:, None]), jnp.full(N, 1e-3), jax.random.key(0)

    def grad(inf):
        return jax.jit(jax.grad(lambda th: inf.log_marginal_likelihood(kernel.with_theta(th), Xj, Yj, noise, key)))(
            jnp.asarray(kernel.theta))

    np.testing.assert_allclose(grad(CG(time_dim=2, **opts).for_data(kernel, X)), grad(CG(**opts)), rtol=1e-6, atol=1e-8)


def test_estimator_auto_runs_time_groups_and_checks_options(problem, monkeypatch):
    """``solver="auto"`` past the Cholesky range (lowered here) on daily data: CG on the dense
    time-group operator, named in ``solver_``, with the exact GP's predictions to the CG tolerance."""
    from skgpx.gp import _auto

    kernel, X, y, Xs = problem
    monkeypatch.setattr(_auto, "CHOLESKY_MAX_N_FIXED", N // 2)
    # the training set is padded to a size bucket (mask): padded rows join no group
    est = ScalableGPRegressor(kernel, optimizer=None, alpha=1e-3).fit(X, y)
    assert est.solver_ == "cg-time-groups" and est.solver_info_["operator"] == "time-groups-dense"
    assert est.solver_info_["time_dim"] == 2
    _, mean, var, _ = _exact(kernel, jnp.asarray(X), jnp.asarray(y), jnp.asarray(Xs), jnp.full(N, 1e-3))
    m, s = est.predict(Xs, return_std=True)
    tol = est.solver_info_["tol"]  # CG's relative residual: predictions within a few times that
    np.testing.assert_allclose(m, mean[:, 0], rtol=20 * tol, atol=20 * tol * float(np.max(np.abs(mean))))
    np.testing.assert_allclose(s, np.sqrt(var), rtol=20 * tol)
    with pytest.raises(ValueError, match="time_dim"):
        CG(time_dim=-1)
    with pytest.raises(ValueError, match="for_data"):
        CG(time_dim=2).condition(kernel, jnp.asarray(X), jnp.asarray(y[:, None]), jnp.full(N, 1e-3),
                                 jax.random.key(0))
    assert CG(time_dim="auto").for_data(Matern(0.3), X).time_groups is None  # nothing to group: plain CG

