"""Guards against toolchain miscompiles that would silently corrupt skgpx gradients.

jax/jaxlib 0.10.1 and 0.10.2 on CPU return wrong (sometimes garbage, ~1e135)
reverse-mode gradients under ``jit`` for the pattern every stationary kernel uses:
per-column scaled differences, the double-``where`` safe square root, and
``c * f(r)``. Eager evaluation is correct. ``pyproject.toml`` caps jax below 0.10.1;
this test fails loudly if an installed version reintroduces the bug.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skgpx.kernels import Matern


def _matern32_sum(theta, X):
    c, ls = jnp.exp(theta[0]), jnp.exp(theta[1:])
    a, b = X / ls, X / ls  # two scalings, as in cross(X1, X2) with X1 is X2
    d2 = jnp.zeros((X.shape[0], X.shape[0]))
    for j in range(X.shape[1]):
        d = a[:, j][:, None] - b[:, j][None, :]
        d2 = d2 + d * d
    pos = d2 > 0
    r = jnp.where(pos, jnp.sqrt(jnp.where(pos, d2, 1.0)), 0.0)
    s = np.sqrt(3.0) * r
    return jnp.sum(c * (1.0 + s) * jnp.exp(-s))


@pytest.mark.parametrize("n", [6, 40])
def test_jit_gradient_equals_eager_gradient(n):
    X = np.random.default_rng(0).normal(size=(n, 2))
    theta = jnp.log(jnp.array([1.2, 0.3, 0.5]))
    eager = jax.grad(_matern32_sum)(theta, X)
    jitted = jax.jit(jax.grad(_matern32_sum))(theta, X)
    np.testing.assert_allclose(jitted, eager, rtol=1e-12, err_msg=f"jax {jax.__version__} miscompiles this gradient")


def test_kernel_gram_gradient_jit_equals_eager():
    X = np.random.default_rng(1).normal(size=(6, 2))
    k = 1.2 * Matern([0.3, 0.5], nu=1.5)
    f = lambda th: k.with_theta(th).gram(X).sum()  # noqa: E731
    th = jnp.asarray(k.theta)
    np.testing.assert_allclose(jax.jit(jax.grad(f))(th), jax.grad(f)(th), rtol=1e-12)
    # and against the closed form for the amplitude: d/dlog c sum(c K) = sum(c K)
    np.testing.assert_allclose(jax.jit(jax.grad(f))(th)[0], np.sum(k.gram(X)), rtol=1e-12)
