"""Block PCG: solution, stopping rule, preconditioning benefit, non-convergence flag."""

import jax.numpy as jnp
import numpy as np

from skgpx.kernels import Matern
from skgpx.operators import DenseKernelOperator, MatrixFreeKernelOperator
from skgpx.solvers import pcg, pivoted_cholesky


def _problem(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = jnp.asarray(rng.random((n, 3)))
    noise = jnp.full(n, 0.01)
    k = Matern(0.2, nu=1.5)
    B = jnp.asarray(rng.standard_normal((n, 3)))
    return k, X, noise, B


def test_block_solution_and_residual_rule():
    k, X, noise, B = _problem()
    B = B.at[:, 2].set(0.0)  # a zero column converges at x = 0
    op = DenseKernelOperator(k, X, noise)
    P = pivoted_cholesky(k, X, op.diag_noise, 100)
    res = pcg(op.mm, B, P.solve, tol=1e-8, max_iter=1000)
    ref = jnp.linalg.solve(op.as_matrix(), B)
    np.testing.assert_allclose(res.x, ref, rtol=1e-5, atol=1e-6)
    assert bool(res.converged)
    true_rel = jnp.linalg.norm(op.mm(res.x) - B, axis=0)[:2] / jnp.linalg.norm(B[:, :2], axis=0)
    assert np.all(np.asarray(true_rel) <= 1.5e-8)
    assert np.all(np.asarray(res.relative_residual) <= 1e-8)
    assert np.all(np.asarray(res.x[:, 2]) == 0.0)


def test_matrix_free_operator_gives_same_solution():
    k, X, noise, B = _problem(300)
    dense = DenseKernelOperator(k, X, noise)
    free = MatrixFreeKernelOperator(k, X, noise, tile_size=64)
    P = pivoted_cholesky(k, X, dense.diag_noise, 50)
    a = pcg(dense.mm, B, P.solve, tol=1e-10).x
    b = pcg(free.mm, B, P.solve, tol=1e-10).x
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_preconditioner_reduces_iterations():
    k, X, noise, B = _problem()
    op = DenseKernelOperator(k, X, noise)
    its = []
    for rank in (0, 50, 300):
        P = pivoted_cholesky(k, X, op.diag_noise, rank)
        its.append(int(pcg(op.mm, B, P.solve, tol=1e-6, max_iter=2000).iterations))
    assert its[0] > its[1] > its[2], its
    assert its[2] < 0.5 * its[0], its


def test_not_converged_is_reported():
    k, X, noise, B = _problem(300)
    op = DenseKernelOperator(k, X, noise)
    res = pcg(op.mm, B, None, tol=1e-10, max_iter=5)
    assert int(res.iterations) == 5
    assert not bool(res.converged)
    assert float(jnp.max(res.relative_residual)) > 1e-10


def _diag_problem(n=64):
    d = jnp.linspace(1.0, 1e4, n)
    B = jnp.ones((n, 2))
    return (lambda V: d[:, None] * V), B, d


def test_progress_lines_on_long_solves_only(monkeypatch, capsys):
    """A solve prints ``[skgpx] LABEL: i iterations, max relative residual ...`` lines once it has
    run for ``_progress.EVERY`` seconds (0 here), and a last line with ``done``; a solve below
    ``MIN_ROWS`` rows compiles without callbacks, and a quick one with the default EVERY is silent."""
    import jax

    from skgpx import _progress

    mm, B, d = _diag_problem()
    monkeypatch.setattr(_progress, "MIN_ROWS", 1)
    monkeypatch.setattr(_progress, "EVERY", 0.0)
    res = jax.jit(lambda B: pcg(mm, B, tol=1e-10, max_iter=500, label="test solve"))(B)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[skgpx] test solve:")]
    its = int(res.iterations)
    assert its > 20 and len(lines) == its // _progress.CHECK_EVERY + (its % _progress.CHECK_EVERY != 0)
    assert lines[-1].startswith(f"[skgpx] test solve: {its} iterations") and ", done" in lines[-1]
    assert "(target 1e-10)" in lines[-1]
    np.testing.assert_allclose(res.x, B / d[:, None], rtol=1e-8)

    monkeypatch.setattr(_progress, "EVERY", 5.0)  # a quick solve: silent
    jax.jit(lambda B: pcg(mm, B, tol=1e-10, max_iter=500, label="quick"))(B).x.block_until_ready()
    monkeypatch.setattr(_progress, "EVERY", 0.0)
    monkeypatch.setattr(_progress, "MIN_ROWS", 4096)  # below MIN_ROWS: no callback at all
    jax.jit(lambda B: pcg(mm, B, tol=1e-10, max_iter=500, label="small"))(B).x.block_until_ready()
    assert capsys.readouterr().out == ""
