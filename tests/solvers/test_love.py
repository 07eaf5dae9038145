"""Preconditioned LOVE: exact at full rank, accurate when the preconditioner captures the spectrum."""

import jax
import jax.numpy as jnp
import numpy as np

from skgpx.kernels import RBF, Matern
from skgpx.operators import DenseKernelOperator
from skgpx.solvers import love_cache, pivoted_cholesky


def _setup(n, kernel, rank, seed=0):
    rng = np.random.default_rng(seed)
    X = jnp.asarray(rng.random((n, 3)))
    Xs = jnp.asarray(rng.random((40, 3)))
    op = DenseKernelOperator(kernel, X, jnp.full(n, 0.01))
    P = pivoted_cholesky(kernel, X, op.diag_noise, rank)
    Ks = kernel.cross(X, Xs)
    exact = jnp.sum(Ks * jnp.linalg.solve(op.as_matrix(), Ks), axis=0)
    return X, op, P, Ks, exact


def test_full_krylov_space_is_exact():
    n = 60
    k = Matern(0.2, nu=1.5)
    X, op, P, Ks, exact = _setup(n, k, 10)
    cache = love_cache(op.mm, P.solve, P.mm, jnp.ones(n), n)
    np.testing.assert_allclose(cache.quad(Ks, P.solve), exact, rtol=1e-6)
    # The basis is P-orthonormal; the recurrence stops at a numerical breakdown (beta at
    # rounding level: the Krylov space is invariant), leaving the remaining columns zero.
    built = np.asarray(jnp.any(cache.V != 0, axis=0))
    assert built.sum() >= n // 2 and np.all(built[: built.sum()])
    np.testing.assert_allclose(cache.V.T @ P.mm(cache.V), np.diag(built.astype(float)), atol=1e-8)


def test_accurate_variances_when_preconditioner_is_good():
    n = 800
    k = RBF(0.5)
    X, op, P, Ks, exact = _setup(n, k, 150)
    kbar = jnp.mean(Ks, axis=1)
    cache = love_cache(op.mm, P.solve, P.mm, P.solve(kbar[:, None])[:, 0], 60)
    var_exact = 1.0 - exact  # RBF prior variance is 1
    var_love = 1.0 - cache.quad(Ks, P.solve)
    rel = jnp.abs(jnp.sqrt(jnp.maximum(var_love, 0)) - jnp.sqrt(var_exact)) / jnp.sqrt(var_exact)
    assert float(jnp.median(rel)) < 1e-2, rel
    # Preconditioner alone (rank 0 Krylov correction) is worse than with the correction.
    base = 1.0 - jnp.sum(Ks * P.solve(Ks), axis=0)
    rel0 = jnp.abs(jnp.sqrt(jnp.maximum(base, 0)) - jnp.sqrt(var_exact)) / jnp.sqrt(var_exact)
    assert float(jnp.median(rel)) < float(jnp.median(rel0))


def test_checked_lanczos_reports_progress(monkeypatch, capsys):
    """``lanczos_checked`` prints ``[skgpx] LOVE: i Lanczos steps, ...`` at each check once the
    loop has run for ``_progress.EVERY`` seconds (0 here), ending with ``done``."""
    import jax

    from skgpx import _progress
    from skgpx.solvers import lanczos_checked

    monkeypatch.setattr(_progress, "MIN_ROWS", 1)
    monkeypatch.setattr(_progress, "EVERY", 0.0)
    n = 40
    d = jnp.linspace(1.0, 100.0, n)
    start = jnp.ones(n)
    # The check's "error" falls with the step count and is met after 24 steps.
    check = lambda V, dd, e: 24.5 - jnp.sum(jnp.any(V != 0, axis=0))
    _, _, _, steps, _ = jax.jit(lambda s: lanczos_checked(lambda V: d[:, None] * V, s, n, check, 8))(start)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[skgpx] LOVE:")]
    assert int(steps) == 32
    assert [ln.split(":")[1].split(",")[0].strip() for ln in lines] == ["8 Lanczos steps", "16 Lanczos steps",
                                                                       "24 Lanczos steps", "32 Lanczos steps"]
    assert ", done" in lines[-1]
