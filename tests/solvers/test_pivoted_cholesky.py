"""Pivoted partial Cholesky: exactness at full rank, trace error, Woodbury solve/logdet, adaptivity."""

import jax
import jax.numpy as jnp
import numpy as np

from skgpx.kernels import RBF, Matern
from skgpx.solvers import pivoted_cholesky


def _setup(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = jnp.asarray(rng.random((n, 3)))
    s = jnp.asarray(0.01 + 0.01 * rng.random(n))
    return X, s


def test_full_rank_reproduces_gram_and_trace_error():
    X, s = _setup(80)
    k = Matern(0.3, nu=1.5)
    K = k.gram(X)
    P = pivoted_cholesky(k, X, s, max_rank=80)
    np.testing.assert_allclose(P.L @ P.L.T, K, atol=1e-8)
    P30 = pivoted_cholesky(k, X, s, max_rank=30)
    assert int(P30.rank) == 30
    np.testing.assert_allclose(float(P30.trace_error), float(jnp.trace(K - P30.L @ P30.L.T)), rtol=1e-8)
    # Pivoting is greedy on the residual diagonal, so the error trace decreases with the rank.
    P10 = pivoted_cholesky(k, X, s, max_rank=10)
    assert float(P10.trace_error) > float(P30.trace_error)


def test_woodbury_solve_logdet_and_mm_match_dense():
    X, s = _setup()
    k = RBF(0.4)
    P = pivoted_cholesky(k, X, s, max_rank=25)
    Pd = P.L @ P.L.T + jnp.diag(s)
    V = jnp.asarray(np.random.default_rng(1).standard_normal((X.shape[0], 3)))
    np.testing.assert_allclose(P.solve(V), jnp.linalg.solve(Pd, V), rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(P.mm(V), Pd @ V, rtol=1e-12)
    np.testing.assert_allclose(P.logdet(), jnp.linalg.slogdet(Pd)[1], rtol=1e-10)


def test_adaptive_rank_stops_on_trace_tolerance():
    X, s = _setup(200)
    k = RBF(1.0)  # smooth kernel: numerically low rank
    P = pivoted_cholesky(k, X, s, max_rank=150, trace_tol=1e-3)
    r = int(P.rank)
    assert 0 < r < 40
    assert float(P.trace_error) <= 1e-3 * float(jnp.sum(s))
    assert np.all(np.asarray(P.L[:, r:]) == 0.0)


def test_samples_have_covariance_P():
    X, s = _setup(30)
    P = pivoted_cholesky(RBF(0.5), X, s, max_rank=5)
    Z = P.sample(jax.random.key(0), 40000)
    emp = Z @ Z.T / Z.shape[1]
    Pd = P.L @ P.L.T + jnp.diag(s)
    # Entry-wise sampling error of a Wishart average: sqrt((P_ij^2 + P_ii P_jj) / N).
    se = jnp.sqrt((Pd**2 + jnp.outer(jnp.diag(Pd), jnp.diag(Pd))) / Z.shape[1])
    assert float(jnp.max(jnp.abs(emp - Pd) / se)) < 5.5
