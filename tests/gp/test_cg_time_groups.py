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


@pytest.mark.parametrize("operator", ["dense", "matrix-free"])
def test_fit_predict_and_gradient_match_plain_cg(problem, operator):
    kernel, X, y, Xs = problem
    opts = dict(tol=1e-10, operator=operator, tile_size=32, variance_method="exact")
    plain = CG(**opts)
    groups = CG(time_dim="auto", **opts).for_data(kernel, X)
    assert groups.time_groups[:2] == (2, 3)
    Xj, Yj, noise = jnp.asarray(X), jnp.asarray(y[:, None]), jnp.full(N, 1e-3)
    key = jax.random.key(0)
    p0 = plain.condition(kernel, Xj, Yj, noise, key)
    p1 = groups.condition(kernel, Xj, Yj, noise, key)
    assert p1.diagnostics()["operator"] == f"time-groups-{operator}" and p1.diagnostics()["time_groups"] == 3
    np.testing.assert_allclose(p1.alpha, p0.alpha, rtol=1e-7, atol=1e-7 * float(jnp.max(jnp.abs(p0.alpha))))
    Xsj = jnp.asarray(Xs)
    np.testing.assert_allclose(p1.mean(Xsj), p0.mean(Xsj), rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(p1.var(Xsj), p0.var(Xsj), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(p1.log_marginal_likelihood_value, p0.log_marginal_likelihood_value, rtol=1e-7)

    def grad(inf):
        return jax.jit(jax.grad(lambda th: inf.log_marginal_likelihood(kernel.with_theta(th), Xj, Yj, noise, key)))(
            jnp.asarray(kernel.theta))

    # Same probes, same solves (train_tol): the stochastic gradients agree draw for draw.
    np.testing.assert_allclose(grad(groups), grad(plain), rtol=1e-6, atol=1e-8)


def test_estimator_reports_time_groups_and_checks_options(problem):
    kernel, X, y, Xs = problem
    est = ScalableGPRegressor(kernel, solver=CG(time_dim=2), optimizer=None, alpha=1e-3).fit(X, y)
    ref = ScalableGPRegressor(kernel, solver="cg", optimizer=None, alpha=1e-3).fit(X, y)
    assert est.solver_info_["operator"] == "time-groups-dense" and est.solver_info_["time_dim"] == 2
    np.testing.assert_allclose(est.predict(Xs), ref.predict(Xs), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="time_dim"):
        CG(time_dim=-1)
    with pytest.raises(ValueError, match="for_data"):
        CG(time_dim=2).condition(kernel, jnp.asarray(X), jnp.asarray(y[:, None]), jnp.full(N, 1e-3),
                                 jax.random.key(0))
    assert CG(time_dim="auto").for_data(Matern(0.3), X).time_groups is None  # nothing to group: plain CG
