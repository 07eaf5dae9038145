"""Pathwise (Matheron) posterior samples: moments against the posterior they target."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from skgpx.gp import available_solvers, make_inference
from skgpx.gp._pathwise import pathwise_sample
from skgpx.kernels import RBF, DotProduct, Matern, White

N_SAMPLES = 4000
FAMILY_FALSE_ALARM = 1e-4


def _problem(n=30, m=6, t=1, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 2))
    Y = np.sin(5 * X[:, :1]) + 0.1 * rng.normal(size=(n, t))
    Xs = rng.uniform(size=(m, 2))
    return X, Y, Xs, np.full(n, 0.01)


def _z_bound(n_checks):
    # Bonferroni: two-sided z bound with family-wise false alarm rate FAMILY_FALSE_ALARM.
    return stats.norm.isf(FAMILY_FALSE_ALARM / (2 * n_checks))


def _assert_moments(samples, mean, cov):
    """Sample mean and covariance agree with (mean, cov) within their own sampling error.

    Mean: z = (mean_hat - mean) / sqrt(cov_ii / S) ~ N(0, 1). Covariance: each entry is
    the mean of S i.i.d. products (f_i - mean_i)(f_j - mean_j) with expectation cov_ij; its
    standard error is estimated from the products themselves (CLT), so the check does not
    assume Gaussian samples.
    """
    S, m = samples.shape
    bound = _z_bound(m + m * (m + 1) // 2)
    z_mean = (samples.mean(0) - mean) / np.sqrt(np.diag(cov) / S)
    D = samples - mean
    prods = D[:, :, None] * D[:, None, :]
    z_cov = (prods.mean(0) - cov) / (prods.std(0, ddof=1) / np.sqrt(S))
    iu = np.triu_indices(m)
    assert np.max(np.abs(z_mean)) < bound, (z_mean, bound)
    assert np.max(np.abs(z_cov[iu])) < bound, (z_cov, bound)


SOLVERS = [
    ("cholesky", {}),
    ("rff", {"n_components": 64}),
    ("nystrom", {"n_components": 12, "landmark_method": "rpcholesky"}),
] + ([("cg", {"tol": 1e-10, "max_iter": 500})] if "cg" in available_solvers() else [])


@pytest.mark.parametrize("solver,opts", SOLVERS, ids=[s for s, _ in SOLVERS])
def test_pathwise_moments_match_posterior(solver, opts):
    X, Y, Xs, noise = _problem()
    k = 1.5 * Matern(0.3, nu=1.5) + White(0.02)  # White is part of the sampled quantity
    inf = make_inference(solver, opts)
    post = inf.condition(k, X, Y, noise, jax.random.key(0))
    # pathwise_sample is jitted once per shape/structure (no outer jit: the compiled call is shared
    # with the next test, which uses the same kernel structure and shapes)
    samples = np.asarray(pathwise_sample(inf, post, k, X, Y, noise, Xs, N_SAMPLES, jax.random.key(1), n_prior_features=256))
    assert samples.shape == (N_SAMPLES, 6, 1)
    _assert_moments(samples[:, :, 0], np.asarray(post.mean(Xs))[:, 0], np.asarray(post.cov(Xs)))


def test_latent_samples_exclude_white_and_noise_and_the_test_has_power():
    """include_white=False samples f alone; the moment test detects the White variance and alpha."""
    X, Y, Xs, noise = _problem()
    noise = np.full(30, 0.3)
    k = 1.5 * Matern(0.3, nu=1.5) + White(0.02)
    inf = make_inference("cholesky", {})
    post = inf.condition(k, X, Y, noise, jax.random.key(0))
    samples = pathwise_sample(
        inf, post, k, X, Y, noise, Xs, N_SAMPLES, jax.random.key(2), n_prior_features=256, include_white=False
    )
    samples = np.asarray(samples)[:, :, 0]
    mean, cov = np.asarray(post.mean(Xs))[:, 0], np.asarray(post.cov(Xs))
    latent = cov - 0.02 * np.eye(6)
    _assert_moments(samples, mean, latent)
    with pytest.raises(AssertionError):  # White left out: detected
        _assert_moments(samples, mean, cov)
    noisy = samples + np.random.default_rng(0).normal(scale=np.sqrt(0.3), size=samples.shape)
    with pytest.raises(AssertionError):  # alpha noise added: detected
        _assert_moments(noisy, mean, latent)


def test_multi_target_shapes_and_independent_targets():
    X, Y, Xs, noise = _problem(t=2)
    Y[:, 1] = -Y[:, 1]
    k = RBF(0.4)
    inf = make_inference("cholesky", {})
    post = inf.condition(k, X, Y, noise, jax.random.key(0))
    s = np.asarray(pathwise_sample(inf, post, k, X, Y, noise, Xs, 500, jax.random.key(3)))
    assert s.shape == (500, 6, 2)
    mean = np.asarray(post.mean(Xs))
    sd = np.sqrt(np.asarray(post.var(Xs)))[:, None]
    assert np.max(np.abs((s.mean(0) - mean) / (sd / np.sqrt(500)))) < _z_bound(12)
    # Target columns are sampled independently (different prior paths).
    assert abs(np.corrcoef(s[:, 0, 0], s[:, 0, 1])[0, 1]) < _z_bound(1) / np.sqrt(500)


def test_cross_covariance_is_tiled_no_m_by_n_block():
    X, Y, _, noise = _problem(n=300)
    Xs = jnp.asarray(np.random.default_rng(1).uniform(size=(500, 2)))
    k = Matern(0.3, nu=1.5)
    inf = make_inference("cholesky", {})
    post = inf.condition(k, X, Y, noise, jax.random.key(0))
    jaxpr = jax.make_jaxpr(
        lambda key: pathwise_sample(inf, post, k, X, Y, noise, Xs, 4, key, n_prior_features=64, tile_size=50)
    )(jax.random.key(0))
    shapes = {tuple(v.aval.shape) for eqn in jaxpr.jaxpr.eqns for v in eqn.outvars}

    def walk(jp):
        for eqn in jp.eqns:
            for v in eqn.outvars:
                shapes.add(tuple(v.aval.shape))
            for p in eqn.params.values():
                inner = getattr(p, "jaxpr", None)
                if inner is not None:
                    walk(getattr(inner, "jaxpr", inner))

    walk(jaxpr.jaxpr)
    assert (500, 300) not in shapes and (300, 500) not in shapes


def test_kernel_without_spectral_density_points_to_exact_sampling():
    X, Y, Xs, noise = _problem()
    k = DotProduct(1.0)
    inf = make_inference("cholesky", {})
    post = inf.condition(k, X, Y, noise, jax.random.key(0))
    with pytest.raises(ValueError, match="method='exact'"):
        pathwise_sample(inf, post, k, X, Y, noise, Xs, 3, jax.random.key(0))
