"""Structured-grid inference (masked grids and SKI) against the exact GP."""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from sklearn.exceptions import ConvergenceWarning

from skgpx.gp._ski import SKIInference
from skgpx.kernels import RBF, ActiveDims, DotProduct, Matern
from skgpx.operators import Grid, interpolation_weights
from skgpx.solvers import pcg

LIGHT = dict(n_probes=2, love_rank=4, n_check=2, n_interp_check=16)


@eqx.filter_jit
def _kernel_blocks(kernel, X, Xs):  # one program, not one per operation
    return kernel.gram(X), kernel.cross(X, Xs), kernel.diag(Xs)


# Posterior methods by name, compiled together: ``_moments(post, Xs, ("mean", "var"))``.
_moments = eqx.filter_jit(lambda post, Xs, names: tuple(getattr(post, name)(Xs) for name in names))


def _exact(kernel, X, Y, noise, Xs):
    K, Ks, prior = (np.asarray(a) for a in _kernel_blocks(kernel, jnp.asarray(X), jnp.asarray(Xs)))
    K = K + np.diag(noise)
    factor = scipy.linalg.cho_factor(K)  # one factorisation for every solve and the log-determinant
    alpha = scipy.linalg.cho_solve(factor, Y)
    mean = Ks.T @ alpha
    var = prior - np.sum(Ks * scipy.linalg.cho_solve(factor, Ks), axis=0)
    logdet = 2.0 * np.sum(np.log(np.diag(factor[0])))
    lml = -0.5 * float(np.sum(Y * alpha)) - 0.5 * logdet - 0.5 * len(X) * np.log(2 * np.pi)
    return mean, var, lml


def test_masked_grid_cg_equals_cholesky_60x60():
    rng = np.random.default_rng(0)
    grid = Grid([0.0, 0.0], [1 / 59, 1 / 59], [60, 60])
    P = np.asarray(grid.points())
    observed = rng.random(P.shape[0]) > 0.4
    X = P[observed]
    kernel = 1.3 * Matern(0.15, nu=1.5)
    noise = np.full(X.shape[0], 0.05)
    Y = (np.sin(6 * X[:, 0]) * np.cos(4 * X[:, 1]) + 0.2 * rng.standard_normal(X.shape[0]))[:, None]
    inf = SKIInference(tol=1e-11, variance_method="exact", **LIGHT).for_data(kernel, X)
    assert inf.grid.shape == (60, 60) and inf.interpolation_order == 0  # the data's own lattice
    post = inf.condition(kernel, jnp.asarray(X), jnp.asarray(Y), jnp.asarray(noise), jax.random.key(0))
    assert post.diagnostics()["converged"]
    assert post.diagnostics()["interpolation_error_max"] < 1e-12  # selection: exact
    Xs = P[~observed][:8]
    mean, var, _ = _exact(kernel, X, Y, noise, Xs)
    m, v = _moments(post, jnp.asarray(Xs), ("mean", "var"))
    np.testing.assert_allclose(m, mean, atol=1e-8)
    np.testing.assert_allclose(v, var, atol=1e-8)


def test_ski_converges_to_exact_as_grid_refines():
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 1, (300, 2))
    kernel = Matern(0.25, nu=2.5)
    noise = np.full(300, 0.01)
    Y = (np.sin(5 * X[:, 0]) + X[:, 1] ** 2 + 0.1 * rng.standard_normal(300))[:, None]
    Xs = rng.uniform(0.05, 0.95, (20, 2))
    mean, _, _ = _exact(kernel, X, Y, noise, Xs)
    errors = []
    for ppl in (3.0, 6.0, 12.0):
        inf = SKIInference(points_per_length_scale=ppl, tol=1e-10, interpolation_tol=None).for_data(kernel, X)
        assert inf.interpolation_order == 3

        @jax.jit
        def ski_mean(X, Y, noise, Xs):  # the posterior mean's pieces, without the fit's diagnostics
            op = inf.operator(kernel, X, noise)
            alpha = pcg(op.mm, Y, tol=1e-10, max_iter=2000).x
            return interpolation_weights(Xs, inf.grid, 3).gather(op.grid_op.mm(op.interp.scatter(alpha)))

        out = ski_mean(jnp.asarray(X), jnp.asarray(Y), jnp.asarray(noise), jnp.asarray(Xs))
        errors.append(float(np.max(np.abs(np.asarray(out) - mean))))
    assert errors[0] > 4 * errors[1] > 16 * errors[2]  # at least second order in the spacing
    assert errors[2] < 1e-3 * np.std(Y)


def test_love_on_grid_and_pathwise_moments_match_exact():
    rng = np.random.default_rng(2)
    n = 1000
    X = np.sort(rng.uniform(0, 1, (n, 1)), axis=0)
    kernel = 0.8 * RBF(0.1)
    noise = np.full(n, 0.1)
    Y = (np.sin(8 * X[:, 0]) + 0.3 * rng.standard_normal(n))[:, None]
    inf = SKIInference(points_per_length_scale=8.0, variance_method="love", love_rank=64, n_check=8, n_probes=4,
                       n_interp_check=64).for_data(kernel, X)
    post = inf.condition(kernel, jnp.asarray(X), jnp.asarray(Y), jnp.asarray(noise), jax.random.key(2))
    info = post.diagnostics()
    assert info["love_std_rel_error_max"] < 1e-2 and info["love_accepted"]
    Xs = np.linspace(0.02, 0.98, 40)[:, None]
    mean, var, _ = _exact(kernel, X, Y, noise, Xs)
    m, v = _moments(post, jnp.asarray(Xs), ("mean", "var"))
    np.testing.assert_allclose(m, mean, atol=1e-3)
    np.testing.assert_allclose(np.sqrt(v), np.sqrt(var), rtol=1e-2)
    S = 2000
    samples = np.asarray(post.pathwise(jnp.asarray(Y), jnp.asarray(Xs[::4]), S, jax.random.key(3)))[:, :, 0]
    sd = np.sqrt(var[::4])
    z_mean = (samples.mean(0) - mean[::4, 0]) / (sd / np.sqrt(S))
    assert np.max(np.abs(z_mean)) < 4.5
    ratio = samples.var(0, ddof=1) / var[::4]
    assert np.max(np.abs(ratio - 1.0)) < 4.5 * np.sqrt(2.0 / S) + 0.01


def test_ski_log_marginal_likelihood_and_gradient_match_exact():
    rng = np.random.default_rng(3)
    X = rng.uniform(0, 1, (400, 2))
    kernel = 1.0 * ActiveDims(Matern(0.3, nu=2.5), (0,)) * ActiveDims(RBF(0.4), (1,))
    noise = np.full(400, 0.05)
    Y = (np.cos(4 * X[:, 0]) * X[:, 1] + 0.2 * rng.standard_normal(400))[:, None]
    inf = SKIInference(points_per_length_scale=6.0, n_probes=64, tol=1e-8, train_tol=None).for_data(kernel, X)
    Xj, Yj, nj = jnp.asarray(X), jnp.asarray(Y), jnp.asarray(noise)

    def ski(theta):
        return inf.log_marginal_likelihood(kernel.with_theta(theta), Xj, Yj, nj, jax.random.key(4))

    def exact(theta):
        k = kernel.with_theta(theta)
        K = k.gram(Xj) + jnp.diag(nj)
        L = jnp.linalg.cholesky(K)
        a = jax.scipy.linalg.cho_solve((L, True), Yj)
        return -0.5 * jnp.sum(Yj * a) - jnp.sum(jnp.log(jnp.diag(L))) - 200 * jnp.log(2 * jnp.pi)

    theta = kernel.theta
    v_s, g_s = jax.jit(jax.value_and_grad(ski))(theta)
    v_e, g_e = jax.jit(jax.value_and_grad(exact))(theta)
    assert abs(float(v_s) - float(v_e)) < 0.02 * abs(float(v_e)) + 5.0
    np.testing.assert_allclose(g_s, g_e, rtol=0.15, atol=0.05 * float(np.max(np.abs(g_e))))


def test_prepare_errors_name_the_fix():
    X = np.random.default_rng(4).uniform(0, 1, (20, 2))
    with pytest.raises(ValueError, match="length scales"):
        SKIInference().for_data(DotProduct(1.0), X)
    with pytest.raises(ValueError, match="regular lattice"):
        SKIInference(interpolation_order=0).for_data(RBF(0.3), X)
    with pytest.raises(ValueError, match=r"points_per_length_scale.*one per input column.*3 columns"):
        SKIInference(points_per_length_scale=(4.0, 4.0)).for_data(RBF(0.3), np.c_[X, X[:, :1]])
    for option in ("n_check", "n_interp_check"):
        with pytest.raises(ValueError, match=f"`{option}` must be >= 1"):
            SKIInference(**{option: 0})
    with pytest.raises(ValueError, match="for_data"):
        SKIInference().condition(RBF(0.3), jnp.asarray(X), jnp.ones((20, 1)), jnp.ones(20), jax.random.key(0))


def test_a_size_cap_below_the_smallest_grid_is_an_error_not_a_hang():
    """A cap smaller than the smallest automatic grid (two cells plus the stencil's two nodes each
    side per axis: 36 points in 2-D) once widened the spacing forever."""
    X = np.random.default_rng(4).uniform(0, 1, (20, 2))
    for ski in (SKIInference(max_grid_size=20), SKIInference(max_refined_size=20),
                SKIInference(max_grid_size=20, interpolation_tol=None)):
        with pytest.raises(ValueError, match="at least 36 points"):
            ski.for_data(RBF(0.3), X)
    assert SKIInference(max_grid_size=36, interpolation_tol=None).for_data(RBF(0.3), X).grid.size <= 36


def test_sample_variances_on_grid_are_unbiased():
    rng = np.random.default_rng(5)
    n = 300
    X = rng.uniform(0, 1, (n, 1))
    kernel = 1.0 * Matern(0.1, nu=2.5)
    noise = np.full(n, 0.1)
    Y = (np.sin(8 * X[:, 0]) + 0.1 * rng.standard_normal(n))[:, None]
    S = 400
    inf = SKIInference(points_per_length_scale=16.0, variance_method="samples", n_variance_samples=S,
                       **LIGHT).for_data(kernel, X)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        post = jax.block_until_ready(inf.condition(kernel, jnp.asarray(X), jnp.asarray(Y), jnp.asarray(noise),
                                                   jax.random.key(5)))
    assert not [w for w in caught if "variance_method='samples'" in str(w.message)]  # no false alarm
    Xs = np.linspace(0.05, 0.95, 30)[:, None]
    _, var, _ = _exact(kernel, X, Y, noise, Xs)
    v, v_exact = _moments(post, jnp.asarray(Xs), ("var", "var_exact"))  # var_exact: the same model, solved exactly
    sd, sd_ski = np.sqrt(np.asarray(v)), np.sqrt(np.asarray(v_exact))
    # sd error of a variance from S draws: ~ 1 / sqrt(2 S) = 3.5%.
    rel = np.abs(sd - sd_ski) / sd_ski
    assert np.median(rel) < 2.0 / np.sqrt(2 * S) and np.max(rel) < 4.5 / np.sqrt(2 * S)
    assert np.median(np.abs(sd - np.sqrt(var)) / np.sqrt(var)) < 0.05


def test_sample_variances_from_a_clipped_embedding_warn():
    """A kernel smooth over the grid's extent (RBF, length scale 1.5 on [0, 2]): the smallest
    circulant embedding has negative eigenvalues, the clipped prior draws the wrong covariance,
    and the sample standard deviations are several times off; the fit says so (it once was
    silent, the error only in ``love_std_rel_error_max``)."""
    rng = np.random.default_rng(0)
    n = 150
    X = rng.uniform(0, 2, (n, 1))
    Y = (np.sin(X[:, 0]) + 0.1 * rng.standard_normal(n))[:, None]
    kernel = RBF(1.5)
    inf = SKIInference(variance_method="samples", n_probes=2, n_check=8, n_interp_check=16).for_data(kernel, X)
    with pytest.warns(ConvergenceWarning, match="negative eigenvalues"):
        post = jax.block_until_ready(inf.condition(kernel, jnp.asarray(X), jnp.asarray(Y), jnp.full(n, 1e-2),
                                                   jax.random.key(0)))
    assert post.diagnostics()["love_std_rel_error_max"] > 4.0 / np.sqrt(2 * inf.n_variance_samples)


def test_love_rank_grows_until_held_out_check_points_meet_tolerance():
    # A rough, data-rich problem: a rank-8 LOVE cache is far off, so the rank must grow.
    rng = np.random.default_rng(6)
    n = 300
    X = rng.uniform(0, 1, (n, 2))
    kernel = 1.0 * Matern(0.2, nu=1.5)
    noise = np.full(n, 0.05)
    Y = (np.sin(9 * X[:, 0]) * np.cos(7 * X[:, 1]) + 0.1 * rng.standard_normal(n))[:, None]
    Xs = jnp.asarray(rng.uniform(0.05, 0.95, (40, 2)))
    args = (kernel, jnp.asarray(X), jnp.asarray(Y), jnp.asarray(noise), jax.random.key(6))
    opts = dict(points_per_length_scale=4.0, interpolation_tol=None, variance_method="love", love_rank=8, n_probes=2,
                n_interp_check=16)  # the grid as it was: this test is about LOVE
    with pytest.warns(ConvergenceWarning, match="LOVE standard deviations are off"):
        capped = SKIInference(love_max_rank=8, **opts).for_data(kernel, X).condition(*args)
    info = capped.diagnostics()
    assert info["love_rank"] == 8 and not info["love_accepted"] and info["love_std_rel_error_max"] > 0.02
    post = SKIInference(love_max_rank=512, **opts).for_data(kernel, X).condition(*args)
    info = post.diagnostics()
    assert 8 < info["love_rank"] < n and info["love_rank"] % 8 == 0
    assert info["love_accepted"] and info["love_std_rel_error_max"] <= 0.02  # held-out check points
    v_exact, v_cached = _moments(post, Xs, ("var_exact", "var_cached"))  # var_exact: CG at every point
    sd_exact = np.sqrt(np.asarray(v_exact))
    rel = np.abs(np.sqrt(np.asarray(v_cached)) - sd_exact) / sd_exact
    assert np.median(rel) < 0.02 and np.max(rel) < 0.05
    rel_capped = np.abs(np.sqrt(np.asarray(_moments(capped, Xs, ("var_cached",))[0])) - sd_exact) / sd_exact
    assert np.median(rel_capped) > 0.05  # rank 8 is visibly wrong here


def test_circulant_preconditioner_on_a_masked_grid_cuts_iterations_not_accuracy():
    rng = np.random.default_rng(7)
    grid = Grid([0.0, 0.0], [1.0, 1.0], [40, 40])
    P = np.asarray(grid.points())
    X = P[rng.random(P.shape[0]) > 0.4]
    kernel = 1.0 * Matern(6.0, nu=1.5)
    noise = jnp.full(X.shape[0], 0.01)
    inf = SKIInference(**LIGHT).for_data(kernel, X)
    assert inf.preconditioner == "circulant" and inf.interpolation_order == 0
    assert SKIInference(preconditioner="none", **LIGHT).for_data(kernel, X).preconditioner == "none"
    with pytest.raises(ValueError, match="regular lattice"):
        SKIInference(preconditioner="circulant").for_data(kernel, X + 0.1 * rng.random(X.shape))
    B = jnp.asarray(rng.standard_normal((X.shape[0], 2)))

    @jax.jit
    def solve(X, B):
        op = inf.operator(kernel, X, noise)
        plain = pcg(op.mm, B, tol=1e-10, max_iter=3000)
        pre = pcg(op.mm, B, inf.precond(op), tol=1e-10, max_iter=3000)
        return plain.x, plain.iterations, pre.x, pre.iterations

    x0, it0, x1, it1 = solve(jnp.asarray(X), B)
    K = np.asarray(kernel.gram(jnp.asarray(X))) + 0.01 * np.eye(X.shape[0])
    np.testing.assert_allclose(x1, np.linalg.solve(K, np.asarray(B)), rtol=1e-7, atol=1e-7)
    assert int(it1) < 0.6 * int(it0), (int(it0), int(it1))  # 498 -> 263 when written


def test_block_jacobi_on_scattered_ski_cuts_iterations_not_accuracy():
    # Dense along-track lines of a rough kernel: the ill-conditioning block-Jacobi removes.
    rng = np.random.default_rng(8)
    s = np.linspace(0.0, 1.0, 100)
    X = np.concatenate([np.column_stack([s, np.full(100, c) + 0.05 * s]) for c in rng.uniform(0, 1, 6)])
    n = X.shape[0]
    kernel = 1.0 * Matern(0.2, nu=1.5)
    noise = jnp.full(n, 1e-3)
    Y = jnp.asarray(np.sin(5 * X[:, :1]) + 0.03 * rng.standard_normal((n, 1)))
    pre = SKIInference(n_probes=16, tol=1e-8, interpolation_tol=None).for_data(kernel, X)  # 4 blocks of 150
    plain = SKIInference(n_probes=16, tol=1e-8, preconditioner="none", interpolation_tol=None).for_data(kernel, X)
    assert pre.preconditioner == "block-jacobi" and plain.preconditioner == "none"

    @jax.jit
    def solve(X, Y):
        out = []
        for inf in (pre, plain):
            _, _, res, alpha, _, _, lml, stderr, _ = inf._solve_all(kernel, X, Y, noise, jax.random.key(0))
            out.append((alpha, res.iterations, lml, stderr))
        return out, pre.operator(kernel, X, noise).as_matrix()  # and the same interpolated kernel, densely

    ((a1, it1, lml1, se1), (a0, it0, lml0, se0)), A = solve(jnp.asarray(X), Y)
    np.testing.assert_allclose(a1, a0, rtol=1e-6, atol=1e-6 * float(jnp.max(jnp.abs(a0))))
    assert int(it1) < 0.5 * int(it0), (int(it1), int(it0))
    # the dense log-likelihood of the same interpolated kernel: both estimates within their errors
    A = np.asarray(A)
    exact = -0.5 * float(Y[:, 0] @ np.linalg.solve(A, Y[:, 0])) - 0.5 * np.linalg.slogdet(A)[1] - 0.5 * n * np.log(
        2 * np.pi)
    assert abs(float(lml1) - exact) < 4 * float(se1) + 1e-6 * abs(exact), (float(lml1), exact, float(se1))
    assert abs(float(lml0) - exact) < 4 * float(se0) + 1e-6 * abs(exact), (float(lml0), exact, float(se0))
    assert float(se1) < float(se0)  # N(0, P) probes: the preconditioned estimate varies less


def test_pair_interpolation_error_equals_the_dense_ski_kernel():
    """The refinement's error (kernel on each pair's stencil nodes, no grid operator) is
    ``|W K_UU W^T - K|`` from the dense grid matrix, on every pair type."""
    from skgpx.gp._ski_grid import check_pairs, pair_interpolation_error
    from skgpx.operators import auto_grid, grid_operator

    rng = np.random.default_rng(7)
    X = rng.uniform(0, 1, (40, 2))
    kernel = 0.7 * ActiveDims(Matern(0.3, nu=0.5), (0,)) * ActiveDims(RBF(0.4), (1,))
    grid = auto_grid(X, np.array([0.3, 0.4]), 3.0)
    pairs = check_pairs(X, 10, seed=1)
    A, step, far, lo, hi = pairs
    near = np.clip(A + np.asarray(grid.spacing) * step, lo, hi)
    P, Q = np.concatenate([A, A, A]), np.concatenate([A, near, far])

    @jax.jit
    def dense(P, Q):  # W_P K_UU W_Q^T and K(P, Q) from dense matrices, in one program
        K_UU = grid_operator(kernel, grid).as_matrix()
        Wp = interpolation_weights(P, grid, 3).as_matrix()
        Wq = interpolation_weights(Q, grid, 3).as_matrix()
        return jnp.einsum("im,mk,ik->i", Wp, K_UU, Wq), jnp.diag(kernel.cross(P, Q))

    approx, exact = (np.asarray(a) for a in dense(jnp.asarray(P), jnp.asarray(Q)))
    dense = np.max(np.abs(approx - exact)) / 0.7
    assert dense > 1e-3  # a rough axis at 3 points per length scale: a visible error
    np.testing.assert_allclose(pair_interpolation_error(kernel, pairs, grid, 3), dense, rtol=1e-9)
    # One axis at a time: the smooth RBF axis alone is far more accurate than the Matern-1/2 one.
    rough = pair_interpolation_error(kernel, pairs, grid, 3, axes=(0,))
    smooth = pair_interpolation_error(kernel, pairs, grid, 3, axes=(1,))
    assert smooth < 0.1 * rough


def test_grid_refinement_meets_interpolation_tol_and_moves_ski_toward_exact():
    """Matern-1/2 x RBF: the refined grid spends its points on the rough axis, meets the
    tolerance, and SKI's mean and standard deviations get close to the exact GP's (the
    coarse default grid is 50% off in std here: the posterior variance is 3% of the prior)."""
    rng = np.random.default_rng(8)
    n = 150
    X = rng.uniform(0, 1, (n, 2))
    kernel = 1.0 * ActiveDims(Matern(0.5, nu=0.5), (0,)) * ActiveDims(RBF(0.4), (1,))
    noise = np.full(n, 0.05)
    Y = (np.sin(5 * X[:, 0]) * np.cos(3 * X[:, 1]) + 0.2 * rng.standard_normal(n))[:, None]
    Xs = rng.uniform(0.05, 0.95, (16, 2))
    mean, var, _ = _exact(kernel, X, Y, noise, Xs)
    errs = {}
    for tol in (None, 2e-3):
        inf = SKIInference(interpolation_tol=tol, **LIGHT).for_data(kernel, X)

        @jax.jit
        def ski_mean_var(X, Y, noise, Xs):  # the posterior's pieces, without the fit's diagnostics
            op = inf.operator(kernel, X, noise)
            Ws = interpolation_weights(Xs, inf.grid, 3)
            KG = op.grid_op.mm(Ws.scatter(jnp.eye(Xs.shape[0], dtype=Xs.dtype)))  # K_UU w*, (M, m)
            Ks = op.interp.gather(KG)
            sol = pcg(op.mm, jnp.concatenate([Y, Ks], axis=1), tol=1e-10, max_iter=2000).x
            prior = jnp.sum(Ws.scatter(jnp.eye(Xs.shape[0], dtype=Xs.dtype)) * KG, axis=0)
            return Ks.T @ sol[:, :1], prior - jnp.sum(Ks * sol[:, 1:], axis=0)

        m, v = ski_mean_var(jnp.asarray(X), jnp.asarray(Y), jnp.asarray(noise), jnp.asarray(Xs))
        sd = np.sqrt(np.asarray(v))
        errs[tol] = (np.max(np.abs(np.asarray(m)[:, 0] - mean[:, 0])),
                     np.median(np.abs(sd - np.sqrt(var)) / np.sqrt(var)))
    info = dict(inf.refinement)
    assert info["interpolation_error_estimate"] <= 2e-3 and not info["capped"] and info["refinement_steps"] > 0
    ppl = info["points_per_length_scale"]
    assert ppl[0] > 4 * ppl[1]  # the rough axis got the points
    coarse, fine = errs[None], errs[2e-3]
    assert coarse[0] > 0.05 and coarse[1] > 0.2  # the default grid is far off on this rough axis
    assert fine[0] < 0.01 and fine[1] < 0.03  # measured 0.0035 and 1.4%


def test_grid_refinement_stops_at_the_size_cap_with_a_warning():
    rng = np.random.default_rng(9)
    X = rng.uniform(0, 1, (100, 2))
    kernel = 1.0 * Matern(0.2, nu=0.5)
    with pytest.warns(ConvergenceWarning, match="interpolation_tol"):
        inf = SKIInference(interpolation_tol=1e-4, max_grid_size=900, **LIGHT).for_data(kernel, X)
    info = dict(inf.refinement)
    assert info["capped"] and info["interpolation_error_estimate"] > 1e-4
    assert inf.grid.size <= 900 and info["cap"] == 900
    with pytest.raises(ValueError, match="interpolation_tol"):
        SKIInference(interpolation_tol=0.0)
