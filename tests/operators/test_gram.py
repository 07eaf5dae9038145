"""noisy_gram: its tiled backward pass equals autodiff of the plain Gram, in every input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skgpx.kernels import (
    RBF,
    ActiveDims,
    Chordal,
    Constant,
    DotProduct,
    ExpSineSquared,
    Matern,
    RationalQuadratic,
    White,
)
from skgpx.operators import _gram, noisy_gram

KERNELS = [
    Matern(0.3, nu=0.5),
    2.0 * Matern(0.4, nu=1.5) + White(0.1),
    Matern(np.array([0.2, 0.5]), nu=2.5),
    RBF(np.array([0.3, 0.7])) * RationalQuadratic(0.5, alpha=2.0),
    ExpSineSquared(0.8, 1.3) + Constant(0.5),
    (DotProduct(0.4) + White(0.2)) ** 2,
    ActiveDims(RBF(0.5), (1,)) + 0.3 * Matern(0.6, nu=1.5),
    Chordal(Matern(0.5, nu=1.5), lonlat_dims=(0, 1)),
]


def _plain(kernel, X, noise):
    return kernel.gram(X) + jnp.diag(noise)


@pytest.mark.parametrize("kernel", KERNELS, ids=lambda k: type(k).__name__)
@pytest.mark.parametrize("n", [1, 7, 123])
def test_backward_equals_autodiff(kernel, n, monkeypatch):
    monkeypatch.setattr(_gram, "_TILE_ROWS", 50)  # n = 123: two full tiles and a short one
    rng = np.random.default_rng(n)
    X = jnp.asarray(rng.random((n, 2)))
    noise = jnp.asarray(0.01 + rng.random(n))
    W = jnp.asarray(rng.standard_normal((n, n)))
    W = W + W.T

    np.testing.assert_allclose(noisy_gram((kernel, X, noise)), _plain(kernel, X, noise), rtol=1e-14)
    ref = jax.vjp(_plain, kernel, X, noise)[1](W)
    got = jax.vjp(lambda k, x, s: noisy_gram((k, x, s)), kernel, X, noise)[1](W)
    for r, g in zip(jax.tree.leaves(ref), jax.tree.leaves(got)):
        np.testing.assert_allclose(g, r, rtol=1e-10, atol=1e-10 * float(jnp.max(jnp.abs(r))))


def test_only_perturbed_inputs_get_gradients():
    # Under jit and grad in the hyperparameters alone (what the optimiser does).
    kernel = 1.5 * Matern(0.4, nu=2.5) + White(0.05)
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.random((60, 3)))
    noise = jnp.full(60, 1e-3)
    W = jnp.asarray(rng.standard_normal((60, 60)))

    @jax.jit
    def grads(theta):
        f = lambda t, g: jnp.sum(W * g((kernel.with_theta(t), X, noise)))
        return jax.grad(f)(theta, noisy_gram), jax.grad(f)(theta, lambda a: _plain(*a))

    got, ref = grads(kernel.theta)
    np.testing.assert_allclose(got, ref, rtol=1e-11)
