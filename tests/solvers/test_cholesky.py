"""Adaptive-jitter Cholesky and the Gaussian log-density terms with their custom VJP."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skgpx.solvers import cho_inverse, cho_solve, cholesky_quad_logdet, jittered_cholesky, solve_lower
from skgpx.solvers._cholesky import jitter_schedule


def _spd(n=12, seed=0):
    rng = np.random.RandomState(seed)
    B = rng.randn(n, n)
    return B @ B.T / n + 0.1 * np.eye(n), rng.randn(n, 3)


def test_no_jitter_for_a_well_conditioned_matrix():
    A, _ = _spd()
    L, jit, ok = jax.jit(jittered_cholesky)(jnp.asarray(A))
    assert bool(ok) and float(jit) == 0.0
    np.testing.assert_allclose(L, np.linalg.cholesky(A), atol=1e-12)


def test_adaptive_jitter_rescues_a_singular_matrix():
    rng = np.random.RandomState(1)
    V = rng.randn(10, 4)
    A = V @ V.T  # rank 4
    L, jit, ok = jax.jit(jittered_cholesky)(jnp.asarray(A))
    start, growth, n_tries = jitter_schedule(np.float64)
    scale = np.mean(np.diag(A))
    assert bool(ok) and start * scale <= float(jit) <= start * scale * growth ** (n_tries - 1) * (1 + 1e-12)
    np.testing.assert_allclose(np.asarray(L) @ np.asarray(L).T, A + float(jit) * np.eye(10), atol=1e-10)
    # a fixed jitter policy of 0 fails where the adaptive one succeeds
    assert not bool(jittered_cholesky(jnp.asarray(A), 0.0).ok)


def test_a_function_of_the_matrix_gives_the_same_factor_and_jitter():
    # The matrix may be given as a function that rebuilds it (the first factorisation then
    # works in place); the retries and their jitter are those of the array form.
    A, _ = _spd()
    V = np.random.RandomState(1).randn(10, 4)
    for M in (A, V @ V.T):
        ref = jittered_cholesky(jnp.asarray(M))
        got = jax.jit(lambda M: jittered_cholesky(lambda: M * 1.0))(jnp.asarray(M))
        assert bool(got.ok) and float(got.jitter) == float(ref.jitter)
        np.testing.assert_allclose(got.L, ref.L, atol=1e-12)


def test_jitter_none_factorises_as_is_without_retries():
    A, _ = _spd()
    L, jit, ok = jax.jit(lambda A: jittered_cholesky(A, None))(jnp.asarray(A))
    assert bool(ok) and float(jit) == 0.0
    np.testing.assert_allclose(L, np.linalg.cholesky(A), atol=1e-12)
    V = np.random.RandomState(1).randn(10, 4)
    assert not bool(jittered_cholesky(jnp.asarray(V @ V.T), None).ok)  # "auto" would rescue it


def test_only_the_lower_triangle_is_read():
    A, _ = _spd()
    B = np.tril(A) + np.triu(np.full_like(A, 7.0), 1)  # garbage above the diagonal
    np.testing.assert_allclose(jittered_cholesky(jnp.asarray(B)).L, np.linalg.cholesky(A), atol=1e-12)


@pytest.mark.parametrize("recursive", [True, False])
@pytest.mark.parametrize("n", [1, 7, 128, 129, 300, 517])
def test_cho_inverse_matches_dense_inverse(n, recursive, monkeypatch):
    # sizes below, at and above the recursion leaf, odd splits, two levels; recursive=False is
    # the whole-matrix solve small matrices get (_INVERSE_DIRECT_MAX), True forces the recursion
    import skgpx.solvers._cholesky as chol

    if recursive:
        monkeypatch.setattr(chol, "_INVERSE_DIRECT_MAX", 0)
    A, _ = _spd(n, seed=n)
    L = jnp.linalg.cholesky(jnp.asarray(A))
    W = np.asarray(jax.jit(lambda L: cho_inverse(L))(L))
    ref = np.linalg.inv(A)
    np.testing.assert_allclose(W, ref, rtol=0, atol=1e-11 * np.abs(ref).max())
    np.testing.assert_allclose(W, W.T, rtol=0, atol=1e-12 * np.abs(ref).max())


def test_indefinite_matrix_reports_failure():
    A = np.diag([1.0, 2.0, -1.0])
    res = jittered_cholesky(jnp.asarray(A))
    assert not bool(res.ok)
    _, _, n_tries = jitter_schedule(np.float64)
    assert n_tries >= 2


def test_solves_match_numpy():
    A, B = _spd()
    L = np.linalg.cholesky(A)
    np.testing.assert_allclose(cho_solve(jnp.asarray(L), B), np.linalg.solve(A, B), atol=1e-10)
    np.testing.assert_allclose(solve_lower(jnp.asarray(L), B), np.linalg.solve(L, B), atol=1e-10)


def _reference(A, Y):
    L = jnp.linalg.cholesky(A)
    alpha = jax.scipy.linalg.cho_solve((L, True), Y)
    return -0.5 * jnp.sum(Y * alpha) - Y.shape[1] * jnp.sum(jnp.log(jnp.diagonal(L)))


def test_quad_logdet_value_and_gradient_match_autodiff_reference():
    A, Y = _spd()
    A, Y = jnp.asarray(A), jnp.asarray(Y)
    value, jit = cholesky_quad_logdet(A, Y)
    sign, logdet = np.linalg.slogdet(np.asarray(A))
    expected = -0.5 * np.sum(Y * np.linalg.solve(A, Y)) - 0.5 * Y.shape[1] * logdet
    np.testing.assert_allclose(value, expected, rtol=1e-12)
    assert float(jit) == 0.0

    # gradient through a symmetric parametrisation, vs autodiff through the plain factorisation
    def ours(P):
        return cholesky_quad_logdet(P @ P.T + 0.1 * jnp.eye(P.shape[0]), Y)[0]

    def ref(P):
        return _reference(P @ P.T + 0.1 * jnp.eye(P.shape[0]), Y)

    P = jnp.asarray(np.random.RandomState(3).randn(12, 12) / 4)
    np.testing.assert_allclose(jax.grad(ours)(P), jax.grad(ref)(P), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(jax.grad(lambda Y: cholesky_quad_logdet(A, Y)[0])(Y), -np.linalg.solve(A, Y), atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_jitter_schedule_depends_on_precision(dtype):
    start, growth, n_tries = jitter_schedule(dtype)
    eps = np.finfo(dtype).eps
    assert start >= eps and growth == 10.0
    assert start * growth ** (n_tries - 1) == pytest.approx(max(1e-6, 1e3 * eps), rel=0.5)

