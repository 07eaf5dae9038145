"""The staged CPU evaluation (LAPACK potri between two compiled stages) against compiled autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skgpx.gp import ExactInference
from skgpx.gp._exact_lapack import lapack_lml_and_grad, uses_lapack
from skgpx.kernels import RBF, Constant, Matern, RationalQuadratic, White


def _data(n, t, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(0, 3, (n, 2))
    Y = np.column_stack([np.sin(2 * X[:, 0]) + X[:, 1] + 0.1 * rng.randn(n) for _ in range(t)])
    return jnp.asarray(X), jnp.asarray(Y), jnp.asarray(np.linspace(1e-4, 1e-3, n))


@pytest.mark.parametrize(
    "kernel",
    [
        Constant(1.3) * Matern(0.8, nu=2.5) + White(0.05),
        Constant(0.7) * RBF(jnp.array([0.5, 1.5])) + White(0.1),
        RationalQuadratic(length_scale=0.9, alpha=1.7) * Constant(2.0),
    ],
)
@pytest.mark.parametrize("t", [1, 3])
def test_value_and_gradient_equal_compiled_autodiff(kernel, t):
    X, Y, noise = _data(130, t)  # 130 rows: two full backward tiles and a short one
    theta = jnp.asarray(kernel.theta)
    inference = ExactInference(jitter=None)

    def lml(th):
        return inference.log_marginal_likelihood(kernel.with_theta(th), X, Y, noise)

    value, grad = jax.value_and_grad(lml)(theta)
    v, g = inference.host_lml_and_grad(X)(theta, kernel, X, Y, noise)
    assert isinstance(v, float) and g.dtype == np.float64
    np.testing.assert_allclose(v, float(value), rtol=1e-12)
    np.testing.assert_allclose(g, np.asarray(grad), rtol=1e-9, atol=1e-9)


def test_failed_factorisation_gives_nan_and_only_the_as_is_inference_is_staged():
    X = jnp.asarray(np.repeat(np.linspace(0, 1, 5), 2)[:, None])  # duplicate rows, no noise: singular
    Y = jnp.asarray(np.arange(10.0)[:, None])
    kernel = RBF(1.0)
    v, g = lapack_lml_and_grad(ExactInference(jitter=None), jnp.asarray(kernel.theta), kernel, X, Y, jnp.zeros(10))
    assert np.isnan(v) and np.all(g == 0)
    assert uses_lapack(X)
    assert ExactInference().host_lml_and_grad(X) is None  # "auto": the retries stay compiled
    assert ExactInference(jitter=1e-6).host_lml_and_grad(X) is None
