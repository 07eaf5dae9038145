"""Block-Jacobi preconditioner: the partition, and solve / product / log-determinant / samples
against the dense block-diagonal matrix; PCG benefit and preconditioned SLQ."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skgpx.kernels import Matern, White
from skgpx.solvers import block_jacobi, local_blocks, pcg, slq_logdet


def _setup(n, seed=0):
    rng = np.random.default_rng(seed)
    X = jnp.asarray(rng.random((n, 2)) * np.array([4.0, 1.0]))
    s = jnp.asarray(0.01 + 0.01 * rng.random(n))
    return X, s


def _dense(P, n):
    """The n x n matrix P, block by block from the partition and its factors."""
    M = np.zeros((n, n))
    for ix, C in zip(np.asarray(P.index), np.asarray(P.chol)):
        real = ix < n
        B = (C @ C.T)[np.ix_(real, real)]
        M[np.ix_(ix[real], ix[real])] = B
    return M


@pytest.mark.parametrize("n, size", [(1, 4), (37, 8), (64, 16), (101, 256)])
def test_partition_covers_every_row_once_in_local_blocks(n, size):
    X, _ = _setup(n)
    index = np.asarray(jax.jit(local_blocks, static_argnums=(1, 2))(X, (1.0, np.inf), size))
    real = index[index < n]
    assert index.shape[1] <= size and index.shape[0] & (index.shape[0] - 1) == 0  # a power of two
    np.testing.assert_array_equal(np.sort(real), np.arange(n))
    if n > size:  # the second axis is ignored: blocks are slabs in the first coordinate
        x = np.asarray(X[:, 0])
        spans = [np.ptp(x[ix[ix < n]]) for ix in index]
        assert max(spans) < 0.5 * np.ptp(x)


def test_solve_mm_logdet_and_samples_match_dense():
    n = 90
    X, s = _setup(n)
    k = Matern(0.3, nu=0.5) + White(1e-3)
    P = eqx.filter_jit(lambda k, X, s: block_jacobi(k, X, s, (0.3, 0.3), 16))(k, X, s)
    D = _dense(P, n)
    # the blocks are the exact kernel (its White part once) plus the added noise
    K = np.asarray(k.gram(X)) + np.diag(np.asarray(s))
    mask = D != 0
    np.testing.assert_allclose(D[mask], K[mask], rtol=1e-8, atol=1e-12)
    V = jnp.asarray(np.random.default_rng(1).standard_normal((n, 3)))
    np.testing.assert_allclose(P.solve(V), np.linalg.solve(D, V), rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(P.mm(V), D @ V, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(float(P.logdet()), np.linalg.slogdet(D)[1], rtol=1e-8)
    Z = np.asarray(P.sample(jax.random.key(0), 4000))
    np.testing.assert_allclose(Z @ Z.T / 4000, D, atol=0.12 * np.max(np.diag(D)))


def test_pcg_needs_fewer_iterations_and_preconditioned_slq_is_unbiased():
    n = 400
    rng = np.random.default_rng(2)
    X = jnp.asarray(rng.random((n, 1)) * 20.0)
    s = jnp.full((n,), 1e-3)
    k = Matern(1.0, nu=1.5)
    A = np.asarray(k.gram(X)) + 1e-3 * np.eye(n)
    P = eqx.filter_jit(lambda k, X, s: block_jacobi(k, X, s, (1.0,), 32))(k, X, s)
    B = jnp.asarray(rng.standard_normal((n, 1)))
    A = jnp.asarray(A)
    solve = jax.jit(lambda P, B, precondition, record: pcg(lambda V: A @ V, B, P.solve if precondition else None,
                                                           tol=1e-8 if record == 0 else 1e-10, max_iter=2000,
                                                           record=record, label=None), static_argnums=(2, 3))
    plain = solve(P, B, False, 0)
    pre = solve(P, B, True, 0)
    np.testing.assert_allclose(pre.x, np.linalg.solve(A, B), rtol=1e-6, atol=1e-8)
    assert int(pre.iterations) < 0.5 * int(plain.iterations)
    # log|A| by SLQ on N(0, P) probes: within a few standard errors of the exact value
    Z = P.sample(jax.random.key(3), 64)
    res = solve(P, Z, True, 100)
    logdet, samples = slq_logdet(res, slice(0, 64), Z, P.solve(Z), P.logdet())
    exact = np.linalg.slogdet(A)[1]
    assert abs(float(logdet) - exact) < 4 * float(np.std(samples)) / 8 + 1e-6 * abs(exact)
