"""Spectral densities and random Fourier features against exact kernels."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from skgpx.kernels import (
    RBF,
    Constant,
    DotProduct,
    Matern,
    RandomFourierFeatures,
    RationalQuadratic,
    White,
    draw_random_fourier_features,
    sample_base_frequencies,
    spectral_density,
)

# Two-sided z bound for a false alarm rate of about 1e-5 per check.
Z = 4.4


@pytest.mark.parametrize("kernel", [RBF(0.4), Matern(0.3, nu=1.5), 1.5 * Matern([0.2, 0.5], nu=0.5)])
def test_rff_error_decreases_as_inverse_sqrt_r(kernel):
    """Relative Frobenius error of phi phi^T vs K, averaged over independent draws, has slope -1/2
    in r on a log-log scale (Monte Carlo rate). Each rank uses the first r/2 frequencies of one
    draw per seed: marginally an r-feature draw, one RNG call for all ranks and seeds."""
    X = jnp.asarray(np.random.default_rng(0).uniform(size=(60, 2)))
    K = kernel.cross(X, X)
    ranks = np.array([64, 256, 1024, 4096])
    full = draw_random_fourier_features(kernel, 2, int(ranks[-1]), jax.random.key(0), batch_shape=(8,))

    @jax.jit
    def errors(bases):
        out = []
        for r in ranks:
            sub = tuple(tuple(b[:, : r // 2] for b in term) for term in bases)
            def err(base, r=r):
                P = RandomFourierFeatures(kernel, base, (int(r) // 2,))(X)
                return jnp.linalg.norm(P @ P.T - K) / jnp.linalg.norm(K)
            out.append(jnp.mean(jax.vmap(err)(sub)))
        return jnp.stack(out)

    errs = np.asarray(errors(full.base))
    slope = np.polyfit(np.log(ranks), np.log(errs), 1)[0]
    assert -0.65 <= slope <= -0.35, (slope, errs)


def _matern_1d(r, nu):
    if nu == 0.5:
        return np.exp(-r)
    if nu == 1.5:
        s = math.sqrt(3) * r
        return (1 + s) * np.exp(-s)
    s = math.sqrt(5) * r
    return (1 + s + s * s / 3) * np.exp(-s)


@pytest.mark.parametrize("nu", [0.5, 1.5, 2.5])
def test_matern_frequencies_give_isotropic_kernel_in_3d(nu):
    """E[cos(omega . tau)] is the isotropic Matérn, not the product of 1-D Matérns."""
    ls = 0.7
    tau = np.array([0.5, 0.5, 0.5]) * ls
    omega = sample_base_frequencies(Matern(ls, nu=nu), 3, 400_000, jax.random.key(1)) / ls
    c = np.cos(np.asarray(omega) @ tau)
    est, se = c.mean(), c.std() / math.sqrt(c.size)
    iso = _matern_1d(np.linalg.norm(tau) / ls, nu)
    product = np.prod(_matern_1d(np.abs(tau) / ls, nu))
    assert abs(est - iso) < Z * se, (est, iso, se)
    assert abs(est - product) > 10 * se, (est, product, se)


def test_ard_matern_features_match_kernel():
    k = 2.0 * Matern([0.3, 0.6, 1.2], nu=1.5)
    X = np.random.default_rng(2).uniform(size=(5, 3))
    phi = draw_random_fourier_features(k, 3, 2 * 100_000, jax.random.key(3))(X)
    approx, exact = np.asarray(phi @ phi.T), np.asarray(k(X))
    # Each entry averages 1e5 i.i.d. terms c*cos(.) with |.| <= c: std <= c / sqrt(1e5).
    assert np.max(np.abs(approx - exact)) < Z * 2.0 / math.sqrt(100_000)
    np.testing.assert_allclose(np.diag(approx), 2.0, rtol=1e-12)  # sin^2 + cos^2: exact prior variance


@pytest.mark.parametrize("kernel", [RBF(0.8), Matern(0.8, nu=0.5), Matern(0.8, nu=1.5), Matern(0.8, nu=2.5)])
def test_spectral_density_1d_is_fourier_pair(kernel):
    for tau in [0.0, 0.3, 1.1]:
        # p is even: integral over R of p cos = 2 * integral over [0, inf).
        half, _ = integrate.quad(
            lambda w: float(spectral_density(kernel, jnp.array([w]))), 0, np.inf, weight="cos", wvar=tau
        ) if tau > 0 else integrate.quad(lambda w: float(spectral_density(kernel, jnp.array([w]))), 0, np.inf)
        val = 2 * half
        exact = float(kernel(np.zeros((1, 1)), np.full((1, 1), tau))[0, 0])
        assert abs(val - exact) < 1e-6, (tau, val, exact)


@pytest.mark.parametrize("kernel", [RBF([0.5, 1.0]), Matern([0.5, 1.0], nu=2.5)])
def test_spectral_density_2d_integrates_to_kernel(kernel):
    w = np.linspace(-40, 40, 1601)
    W = np.stack(np.meshgrid(w, w, indexing="ij"), -1)
    p = np.asarray(spectral_density(kernel, jnp.asarray(W)))
    tau = np.array([0.3, -0.4])
    val = np.sum(p * np.cos(W @ tau)) * (w[1] - w[0]) ** 2
    exact = float(kernel(np.zeros((1, 2)), tau[None])[0, 0])
    assert abs(val - exact) < 2e-3, (val, exact)


def test_products_sums_powers_and_white():
    X = np.random.default_rng(4).uniform(size=(6, 2))
    k = RBF(0.5) * RBF(0.9) + 0.5 * Matern(0.4, nu=2.5) ** 2 + Constant(0.3) + White(0.2)
    f = draw_random_fourier_features(k, 2, 400_001, jax.random.key(5))
    assert f.n_features == 2 * 2 * (400_000 // 4) + 1  # two stationary terms, one constant column
    approx = np.asarray(f(X) @ f(X).T)
    exact = np.asarray(k.cross(X, X))  # cross: White excluded, as the features exclude it
    assert np.max(np.abs(approx - exact)) < Z * 1.8 / math.sqrt(100_000)


def test_features_differentiable_wrt_hyperparameters():
    X = np.random.default_rng(6).uniform(size=(20, 3))
    k = 1.3 * Matern([0.5, 0.7, 0.9], nu=1.5)
    f = draw_random_fourier_features(k, 3, 64, jax.random.key(7))

    def obj(theta):
        g = type(f)(k.with_theta(theta), f.base, f.n_frequencies)
        return jnp.sum(jnp.sin(g(X) @ jnp.arange(64.0)))

    theta = k.theta
    grad = jax.grad(obj)(theta)
    assert np.all(np.isfinite(grad)) and np.all(grad != 0)
    e = np.eye(theta.size) * 1e-6
    fd = np.array([(obj(theta + ei) - obj(theta - ei)) / 2e-6 for ei in e])
    np.testing.assert_allclose(grad, fd, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("kernel", [DotProduct(), RationalQuadratic(), RBF() * DotProduct(), (RBF() + RBF()) ** 2])
def test_unsupported_kernels_point_to_nystrom(kernel):
    with pytest.raises(ValueError, match="nystrom"):
        draw_random_fourier_features(kernel, 2, 64, jax.random.key(0))


def test_white_only_kernel_is_rejected():
    with pytest.raises(ValueError, match="White"):
        draw_random_fourier_features(White(1.0), 2, 64, jax.random.key(0))


def test_input_wrappers_chordal_and_active_dims():
    """Chordal (lon, lat) x time and ActiveDims factors: features of the inner kernels at the
    transformed inputs, so phi phi^T converges to the wrapped kernel."""
    from skgpx.kernels import ActiveDims, Chordal

    rng = np.random.default_rng(9)
    X = np.column_stack([rng.uniform(-30, 30, 6), rng.uniform(-40, 40, 6), rng.uniform(0, 2, 6)])
    k = 1.3 * Chordal(Matern([0.3, 0.3, 0.3, 1.0], nu=1.5)) + 0.7 * ActiveDims(RBF(1.5), dims=(2,)) * ActiveDims(
        Matern(20.0, nu=0.5), dims=(0, 1)
    )
    f = draw_random_fourier_features(k, 3, 4 * 100_000, jax.random.key(11))
    approx, exact = np.asarray(f(X) @ f(X).T), np.asarray(k(X))
    assert np.max(np.abs(approx - exact)) < Z * 2.0 / math.sqrt(100_000), np.max(np.abs(approx - exact))
    np.testing.assert_allclose(np.diag(approx), 2.0, rtol=1e-12)
