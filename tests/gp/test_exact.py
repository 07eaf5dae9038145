"""Exact (Cholesky) inference against dense NumPy formulas (Rasmussen & Williams, Alg. 2.1)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skgpx.gp import ExactInference, available_solvers, make_inference
from skgpx.kernels import RBF, Constant, Matern, White


def _problem(n=15, m=6, d=2, t=2, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    Y = np.column_stack([np.sin(X[:, 0]) + 0.1 * rng.randn(n) for _ in range(t)])
    noise = np.linspace(1e-3, 1e-2, n)
    return jnp.asarray(X), jnp.asarray(Y), jnp.asarray(noise), jnp.asarray(rng.randn(m, d))


KERNEL = Constant(1.3) * Matern(0.8, nu=1.5) + White(0.05)


def _dense_reference(kernel, X, Y, noise, Xs):
    K = np.asarray(kernel.gram(X)) + np.diag(np.asarray(noise))
    Ks = np.asarray(kernel.cross(X, Xs))
    Kinv = np.linalg.inv(K)
    mean = Ks.T @ Kinv @ np.asarray(Y)
    cov = np.asarray(kernel.gram(Xs)) - Ks.T @ Kinv @ Ks
    _, logdet = np.linalg.slogdet(K)
    n, t = Y.shape
    lml = -0.5 * np.sum(np.asarray(Y) * (Kinv @ np.asarray(Y))) - 0.5 * t * logdet - 0.5 * n * t * np.log(2 * np.pi)
    return mean, cov, lml, Kinv


def test_registered_and_built_from_options():
    assert "cholesky" in available_solvers()
    inf = make_inference("cholesky", {"jitter": 0.0})
    assert isinstance(inf, ExactInference) and inf.jitter == 0.0
    assert make_inference(inf, {}) is inf
    with pytest.raises(ValueError, match=r"Invalid option\(s\) \['tol'\] for solver Cholesky"):
        make_inference("cholesky", {"tol": 1e-3})  # an option of another solver is an error, not ignored
    with pytest.raises(ValueError, match="`jitter` must be 'auto', a number >= 0 or None, got -1"):
        make_inference("cholesky", {"jitter": -1})


def test_posterior_matches_dense_formulas():
    X, Y, noise, Xs = _problem()
    post = jax.jit(lambda X, Y, noise: ExactInference().condition(KERNEL, X, Y, noise, None))(X, Y, noise)
    mean, cov, lml, Kinv = _dense_reference(KERNEL, X, Y, noise, Xs)
    np.testing.assert_allclose(post.mean(Xs), mean, atol=1e-10)
    np.testing.assert_allclose(post.cov(Xs), cov, atol=1e-10)
    np.testing.assert_allclose(post.var(Xs), np.diag(cov), atol=1e-10)
    np.testing.assert_allclose(post.log_marginal_likelihood_value, lml, rtol=1e-12)
    R = np.random.RandomState(1).randn(X.shape[0], 4)
    np.testing.assert_allclose(post.solve_train(jnp.asarray(R)), Kinv @ R, atol=1e-9)
    d = post.diagnostics()
    assert d["jitter"] == 0.0 and d["cholesky_ok"] and d["n_train"] == X.shape[0]


def test_lml_and_gradient_match_dense_reference_and_finite_differences():
    X, Y, noise, _ = _problem(seed=2)
    inf = ExactInference()

    def lml(theta):
        return inf.log_marginal_likelihood(KERNEL.with_theta(theta), X, Y, noise, None)

    theta = KERNEL.theta
    _, _, ref, _ = _dense_reference(KERNEL, X, Y, noise, X[:1])
    np.testing.assert_allclose(lml(theta), ref, rtol=1e-12)
    grad = jax.jit(jax.grad(lml))(theta)
    eps = 1e-6
    fd = np.array([(lml(theta + eps * e) - lml(theta - eps * e)) / (2 * eps) for e in np.eye(theta.shape[0])])
    np.testing.assert_allclose(grad, fd, rtol=1e-6, atol=1e-7)
    # noise is differentiable too (heteroscedastic-noise models build on this)
    g_noise = jax.grad(lambda nz: inf.log_marginal_likelihood(KERNEL, X, Y, nz, None))(noise)
    K = np.asarray(KERNEL.gram(X)) + np.diag(np.asarray(noise))
    Kinv = np.linalg.inv(K)
    a = Kinv @ np.asarray(Y)
    np.testing.assert_allclose(g_noise, 0.5 * np.diag(a @ a.T - Y.shape[1] * Kinv), atol=1e-8)


def test_duplicate_inputs_need_jitter_and_report_it():
    X, Y, _, Xs = _problem(n=8, t=1, seed=3)
    X2, Y2 = jnp.concatenate([X, X]), jnp.concatenate([Y, Y])
    post = ExactInference().condition(RBF(1.0), X2, Y2, jnp.zeros(16), None)
    assert bool(post.ok) and 0 < float(post.jitter) <= 1e-6
    assert np.all(np.isfinite(np.asarray(post.mean(Xs))))
    failed = ExactInference(jitter=0.0).condition(RBF(1.0), X2, Y2, jnp.zeros(16), None)
    assert not bool(failed.ok)
