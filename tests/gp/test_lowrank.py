"""Low-rank back-ends (RFF, Nyström) and the Woodbury solver against dense references."""

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np
import pytest

from skgpx.gp import make_inference
from skgpx.gp._lowrank import NystromInference, RFFInference, select_landmarks
from skgpx.kernels import RBF, DotProduct, Matern, White, draw_random_fourier_features
from skgpx.operators import LowRankPlusDiagonal
from skgpx.solvers import Woodbury, woodbury_factor, woodbury_quad_logdet, woodbury_solve


def _data(n=60, d=2, t=1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, d))
    Y = np.sin(5 * X[:, :1]) * np.cos(3 * X[:, -1:]) + 0.1 * rng.normal(size=(n, t))
    return X, Y, rng.uniform(size=(15, d))


def _dense_posterior(K, Ks, Kss, Y, noise):
    C = K + np.diag(noise)
    alpha = np.linalg.solve(C, Y)
    mean = Ks @ alpha
    cov = Kss - Ks @ np.linalg.solve(C, Ks.T)
    _, logdet = np.linalg.slogdet(C)
    n, t = Y.shape
    lml = -0.5 * np.sum(Y * alpha) - 0.5 * t * logdet - 0.5 * n * t * np.log(2 * np.pi)
    return mean, cov, lml


@pytest.mark.parametrize("batch_size", [1000, 7])
def test_woodbury_solve_and_logdet_match_dense(batch_size):
    X, Y, _ = _data(n=50, t=3)
    k = 2.0 * Matern(0.4, nu=2.5)
    feats = draw_random_fourier_features(k, 2, 30, jax.random.key(0))
    d = np.random.default_rng(1).uniform(0.05, 0.5, size=50)
    op = LowRankPlusDiagonal(feats, jnp.asarray(X), jnp.asarray(d), batch_size)
    C = np.asarray(op.as_matrix())
    fac = woodbury_factor(op)
    np.testing.assert_allclose(woodbury_solve(fac, Y), np.linalg.solve(C, Y), rtol=1e-8, atol=1e-10)
    assert abs(float(fac.logdet()) - np.linalg.slogdet(C)[1]) < 1e-8
    value, _ = woodbury_quad_logdet(op, Y)
    expected = -0.5 * np.sum(Y * np.linalg.solve(C, Y)) - 1.5 * np.linalg.slogdet(C)[1]
    assert abs(float(value) - expected) < 1e-8 * abs(expected)
    v = Y[:, 0]
    np.testing.assert_allclose(op.mv(jnp.asarray(v)), C @ v, rtol=1e-10)
    np.testing.assert_allclose(lx.diagonal(op), np.diag(C), rtol=1e-10)
    sol = lx.linear_solve(op, jnp.asarray(v), Woodbury())
    np.testing.assert_allclose(sol.value, np.linalg.solve(C, v), rtol=1e-8)


@pytest.mark.parametrize("method", ["uniform", "rpcholesky", "kmeans++"])
def test_nystrom_with_all_points_recovers_exact_posterior(method):
    X, Y, Xs = _data(n=60, t=2)
    k = 1.5 * Matern(0.3, nu=1.5) + White(0.02)
    noise = np.full(60, 1e-2)
    inf = make_inference("nystrom", {"n_components": 60, "landmark_method": method, "jitter": "auto"})
    post = inf.condition(k, X, Y, noise, jax.random.key(3))
    mean, cov, lml = _dense_posterior(np.asarray(k(X)), np.asarray(k(Xs, X)), np.asarray(k(Xs)), Y, noise)
    np.testing.assert_allclose(post.mean(Xs), mean, atol=1e-6)
    np.testing.assert_allclose(post.var(Xs), np.diag(cov), atol=1e-6)
    assert abs(float(post.log_marginal_likelihood_value) - lml) < 1e-6
    assert abs(float(inf.log_marginal_likelihood(k, X, Y, noise, jax.random.key(3))) - lml) < 1e-6
    assert post.diagnostics()["kernel_approx_rel_frobenius_error"] < 1e-8


@pytest.mark.parametrize("solver", ["rff", "nystrom"])
def test_lowrank_posterior_is_exact_gp_of_the_approximate_kernel(solver):
    """Mean, var, cov, LML and solves all belong to ONE GP: kernel phi phi^T (+ FITC residual
    diagonal for Nyström) + White, batched or not."""
    X, Y, Xs = _data(n=70, t=2)
    k = 1.6 * RBF([0.3, 0.6]) + White(0.05)
    noise = np.full(70, 0.02)
    key = jax.random.key(4)
    cls = RFFInference if solver == "rff" else NystromInference
    posts = [cls(n_components=12, batch_size=b).condition(k, X, Y, noise, key) for b in (None, 9)]
    phi = posts[0].features
    P, Ps = np.asarray(phi(X)), np.asarray(phi(Xs))
    res = lambda Z, F: np.maximum(1.6 - np.sum(F * F, 1), 0) if solver == "nystrom" else 0.0  # noqa: E731
    K = P @ P.T + np.diag(0.05 + res(X, P) * np.ones(70))
    Kss = Ps @ Ps.T + np.diag(0.05 + res(Xs, Ps) * np.ones(15))
    mean, cov, lml = _dense_posterior(K, Ps @ P.T, Kss, Y, noise)
    R = np.random.default_rng(0).normal(size=(70, 3))
    # One compiled program per posterior for every prediction path (op by op, each primitive
    # compiles on its own).
    predict = eqx.filter_jit(lambda post, Xs, R: (post.mean(Xs), post.cov(Xs), post.var(Xs), post.solve_train(R)))
    for post in posts:
        m, c, v, sol = predict(post, jnp.asarray(Xs), jnp.asarray(R))
        np.testing.assert_allclose(m, mean, atol=1e-9)
        np.testing.assert_allclose(c, cov, atol=1e-9)
        np.testing.assert_allclose(v, np.diag(cov), atol=1e-9)
        assert abs(float(post.log_marginal_likelihood_value) - lml) < 1e-8
        np.testing.assert_allclose(sol, np.linalg.solve(K + np.diag(noise), R), atol=1e-9)


@pytest.mark.parametrize("solver", ["rff", "nystrom"])
def test_lowrank_lml_gradient_matches_finite_differences(solver):
    X, Y, _ = _data(n=50)
    k = 1.2 * Matern([0.3, 0.5], nu=1.5) + White(0.01)
    noise = np.full(50, 1e-2)
    opts = {"n_components": 20, "batch_size": 16, **({"landmark_method": "kmeans++"} if solver == "nystrom" else {})}
    inf = make_inference(solver, opts)
    key = jax.random.key(5)

    @jax.jit
    def f(theta):
        return inf.log_marginal_likelihood(k.with_theta(theta), X, Y, noise, key)

    theta = jnp.asarray(k.theta)
    g = jax.grad(f)(theta)
    assert np.all(np.isfinite(g))
    e = 1e-5 * np.eye(theta.size)
    fd = np.array([(f(theta + ei) - f(theta - ei)) / 2e-5 for ei in e])
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-6)


def test_approximation_error_reported_and_decreases_with_rank():
    X, Y, _ = _data(n=150)
    k = Matern(0.2, nu=1.5)
    noise = np.full(150, 1e-2)
    errs = {}
    for solver in ("rff", "nystrom"):
        for r in (16, 128):
            inf = make_inference(solver, {"n_components": r})
            post = eqx.filter_jit(inf.condition)(k, X, Y, noise, jax.random.key(6))
            diag = post.diagnostics()
            assert diag["solver"] == solver and diag["n_features_used"] <= r
            errs[solver, r] = diag["kernel_approx_rel_frobenius_error"]
    assert errs["rff", 128] < errs["rff", 16] and errs["nystrom", 128] < errs["nystrom", 16]
    assert errs["nystrom", 128] < 0.05  # RPCholesky on a smooth 2-D kernel converges fast


def test_condition_jits_and_does_not_retrace():
    X, Y, Xs = _data(n=40)
    k = Matern(0.3, nu=2.5)
    inf = NystromInference(n_components=10)
    cond = eqx.filter_jit(inf.condition)
    p1 = cond(k.with_theta(k.theta), X, Y, np.full(40, 0.01), jax.random.key(0))
    # the compiled cache is shared by every filter_jit of this method in the session:
    # count what the second call adds, not the absolute size
    size = cond._cached._cache_size()
    p2 = cond(k.with_theta(k.theta + 0.1), X, Y, np.full(40, 0.01), jax.random.key(0))
    assert np.all(np.isfinite(p1.mean(Xs))) and np.all(np.isfinite(p2.var(Xs)))
    assert cond._cached._cache_size() == size


def test_rpcholesky_landmarks_are_distinct_and_cover_the_data():
    X = np.random.default_rng(7).uniform(size=(500, 2))
    Z = np.asarray(select_landmarks(RBF(0.1), jnp.asarray(X), 40, "rpcholesky", jax.random.key(0))[0])
    assert len({tuple(z) for z in Z}) == 40
    Zu = np.asarray(select_landmarks(RBF(0.1), jnp.asarray(X), 40, "kmeans++", jax.random.key(0))[0])
    assert len({tuple(z) for z in Zu}) == 40


def test_nystrom_handles_kernels_without_spectral_density_and_rff_refuses():
    X, Y, Xs = _data(n=40)
    k = DotProduct(0.5) * RBF(0.5)
    noise = np.full(40, 1e-2)
    post = make_inference("nystrom", {"n_components": 40, "landmark_method": "uniform"}).condition(
        k, X, Y, noise, jax.random.key(0)
    )
    mean, cov, _ = _dense_posterior(np.asarray(k(X)), np.asarray(k(Xs, X)), np.asarray(k(Xs)), Y, noise)
    np.testing.assert_allclose(post.mean(Xs), mean, atol=1e-6)
    with pytest.raises(ValueError, match="nystrom"):
        make_inference("rff", {}).condition(k, X, Y, noise, jax.random.key(0))


def test_bad_options_raise():
    with pytest.raises(ValueError, match="landmark_method"):
        make_inference("nystrom", {"landmark_method": "random"})
    with pytest.raises(ValueError, match="n_components"):
        make_inference("rff", {"n_components": 0})
    with pytest.raises(ValueError, match="key"):
        make_inference("rff", {}).log_marginal_likelihood(RBF(), np.zeros((3, 1)), np.zeros((3, 1)), np.ones(3), None)


@pytest.mark.parametrize("solver", ["rff", "nystrom"])
def test_estimator_fit_predict_optimise_and_pathwise_sample(solver):
    from scipy import stats
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern as SkMatern, WhiteKernel

    from skgpx.estimators import ScalableGPRegressor

    rng = np.random.default_rng(0)
    X = rng.uniform(size=(150, 2))
    y = np.sin(5 * X[:, 0]) * np.cos(3 * X[:, 1]) + 0.1 * rng.normal(size=150)
    kernel = ConstantKernel(1.0) * SkMatern(1.0, nu=1.5) + WhiteKernel(0.1)
    est = ScalableGPRegressor(kernel, solver=make_inference(solver, {"n_components": 64}), random_state=0).fit(X, y)
    # The optimiser improved the (approximate) marginal likelihood over the initial kernel.
    assert est.log_marginal_likelihood_value_ > est.log_marginal_likelihood(np.log([1.0, 1.0, 0.1])) + 10
    info = est.solver_info_  # the fitted attribute reporting the approximation
    assert info["solver"] == solver and 0 < info["n_features_used"] <= 64
    assert 0 <= info["kernel_approx_rel_frobenius_error"] < 0.5
    Xt = rng.uniform(size=(40, 2))
    mu, sd = est.predict(Xt, return_std=True)
    truth = np.sin(5 * Xt[:, 0]) * np.cos(3 * Xt[:, 1])
    assert np.sqrt(np.mean((mu - truth) ** 2)) < 0.15
    S = 400
    samples = est.sample_y(Xt[:5], n_samples=S, random_state=1, method="pathwise")
    assert samples.shape == (5, S)
    z = (samples.mean(1) - mu[:5]) / (sd[:5] / np.sqrt(S))
    assert np.max(np.abs(z)) < stats.norm.isf(1e-4 / 10)


def _all_shapes(closed):
    shapes = set()

    def walk(jp):
        for eqn in jp.eqns:
            shapes.update(tuple(v.aval.shape) for v in eqn.outvars if hasattr(v.aval, "shape"))
            for p in eqn.params.values():
                for sub in p if isinstance(p, (tuple, list)) else (p,):
                    inner = getattr(sub, "jaxpr", None)
                    if inner is not None:
                        walk(getattr(inner, "jaxpr", inner))

    walk(closed.jaxpr)
    return shapes


@pytest.mark.parametrize("solver", ["rff", "nystrom"])
def test_memory_is_batched_no_n_by_r_feature_matrix(solver):
    """LML gradient, condition and predict never hold a full (n, r) / (m, r) feature block
    (nor an n x n one): features exist only in blocks of `batch_size` rows (traced, not run)."""
    n, m, r, b = 900, 700, 24, 50
    rng = np.random.default_rng(8)
    X, Y, Xs = rng.uniform(size=(n, 3)), rng.normal(size=(n, 1)), rng.uniform(size=(m, 3))
    k = 1.2 * Matern(0.4, nu=1.5) + White(0.01)
    noise = np.full(n, 1e-2)
    extra = {"landmark_method": "kmeans++"} if solver == "nystrom" else {}
    inf = make_inference(solver, {"n_components": r, "batch_size": b, **extra})
    key = jax.random.key(0)
    widths = {r, r // 2}  # Nyström: r columns; RFF: r/2 frequencies (cos and sin blocks)

    grad = jax.make_jaxpr(jax.grad(lambda th: inf.log_marginal_likelihood(k.with_theta(th), X, Y, noise, key)))(k.theta)
    pred = jax.make_jaxpr(lambda Z: inf.condition(k, X, Y, noise, key).mean_and_var(Z))(jnp.asarray(Xs))
    for closed in (grad, pred):
        shapes = _all_shapes(closed)
        assert any(s[-2:] == (b, w) for s in shapes for w in widths)  # features formed in blocks...
        rows = [s for s in shapes if n in s or m in s]
        bad = [s for s in rows if set(s) & widths or s.count(n) + s.count(m) > 1]
        assert not bad, bad  # ...never for all rows at once


@pytest.mark.parametrize("pad", [False, True])
def test_rff_lml_with_fewer_rows_than_features_is_the_dense_one(pad):
    # n = 37 rows (padded to 40), r = 256 features: the optimiser's LML is formed on the n x n side
    # (skgpx.solvers.gaussian_lml_value); value and gradient are the r x r Woodbury ones and
    # the dense reference's, padded or not.
    from skgpx.solvers import gaussian_lml, gaussian_lml_value

    X, Y, _ = _data(n=37, t=2)
    k = 1.5 * Matern(0.3, nu=1.5) + White(0.02)
    noise = np.full(37, 1e-2)
    inf, key = RFFInference(n_components=256), jax.random.key(3)
    data = inf.prepare(X, Y, noise) if pad else None
    if pad:
        assert data.mask is not None and data.X.shape[0] == 40

    def lml(kern, value_only):
        if pad:
            op = inf._operator(kern, data.X, data.noise, key, data.mask)
            args = (op, data.Y, None, data.mask)
        else:
            op = inf._operator(kern, jnp.asarray(X), jnp.asarray(noise), key)
            args = (op, jnp.asarray(Y))
        return gaussian_lml_value(*args) if value_only else gaussian_lml(*args)[0]

    op = inf._operator(k, jnp.asarray(X), jnp.asarray(noise), key)
    assert op.n_features == 256
    C = np.asarray(op.as_matrix())
    dense = -0.5 * np.sum(Y * np.linalg.solve(C, Y)) - np.linalg.slogdet(C)[1] - 37 * np.log(2 * np.pi)
    # Compiled (value_only static): op by op, each primitive of the pipeline compiles on its own.
    jlml = eqx.filter_jit(lml)
    for value in (jlml(k, True), jlml(k, False)):
        assert abs(float(value) - dense) < 1e-10 * abs(dense)
    if pad:
        assert float(inf.log_marginal_likelihood(k, data.X, data.Y, data.noise, key, mask=data.mask)) == float(lml(k, True))
    g_n, g_r = (eqx.filter_jit(jax.grad(lml))(k, v) for v in (True, False))
    for a, b in zip(jax.tree_util.tree_leaves(eqx.filter(g_n, eqx.is_inexact_array)),
                    jax.tree_util.tree_leaves(eqx.filter(g_r, eqx.is_inexact_array))):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
