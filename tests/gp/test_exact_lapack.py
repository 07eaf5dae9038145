"""The exact GP by LAPACK between compiled stages (CPU) against the compiled inference."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skgpx.gp import ExactInference
from skgpx.gp._exact import LAPACK_MIN_N, _lapack_condition
from skgpx.gp._exact_lapack import lapack_factor, lapack_lml_and_grad, on_cpu
from skgpx.gp._fit import TrainingData, condition_program
from skgpx.kernels import RBF, Constant, Matern, RationalQuadratic, White

KERNELS = [
    Constant(1.3) * Matern(0.8, nu=2.5) + White(0.05),
    Constant(0.7) * RBF(jnp.array([0.5, 1.5])) + White(0.1),
    RationalQuadratic(length_scale=0.9, alpha=1.7) * Constant(2.0),
]


def _data(n, t, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(0, 3, (n, 2))
    Y = np.column_stack([np.sin(2 * X[:, 0]) + X[:, 1] + 0.1 * rng.randn(n) for _ in range(t)])
    return jnp.asarray(X), jnp.asarray(Y), jnp.asarray(np.linspace(1e-4, 1e-3, n))


def _singular():
    X = jnp.asarray(np.repeat(np.linspace(0, 1, 5), 2)[:, None])  # duplicate rows, no noise: singular
    return RBF(1.0), X, jnp.asarray(np.arange(10.0)[:, None]), jnp.zeros(10)


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("t", [1, 3])
def test_value_and_gradient_equal_compiled_autodiff(kernel, t):
    X, Y, noise = _data(130, t)  # 130 rows: two full backward tiles and a short one
    theta = jnp.asarray(kernel.theta)
    inference = ExactInference(jitter=None)

    def lml(th):
        return inference.log_marginal_likelihood(kernel.with_theta(th), X, Y, noise)

    value, grad = jax.value_and_grad(lml)(theta)
    v, g = lapack_lml_and_grad(theta, kernel, X, Y, noise)
    assert isinstance(v, float) and g.dtype == np.float64
    np.testing.assert_allclose(v, float(value), rtol=1e-11)  # rounding: two summation orders
    np.testing.assert_allclose(g, np.asarray(grad), rtol=1e-9, atol=1e-9)
    assert lapack_lml_and_grad(theta, kernel, X, Y, noise, gradient=False) == (v, None)  # the value alone


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("t", [1, 3])
def test_host_posterior_equals_compiled_condition(kernel, t):
    X, Y, noise = _data(130, t)
    inference = ExactInference(jitter=None)
    data = TrainingData(X, Y, noise, None)
    compiled = condition_program(inference, kernel, data, None)
    host = _lapack_condition(kernel, data)
    assert jax.tree.structure(host) == jax.tree.structure(compiled)  # predict reuses its compiled code
    for a, b in zip(jax.tree.leaves(host), jax.tree.leaves(compiled)):
        assert a.dtype == b.dtype and a.shape == b.shape
    np.testing.assert_allclose(host.L, compiled.L, rtol=1e-10, atol=1e-12)  # rounding, |L| ~ 1
    assert np.all(np.triu(np.asarray(host.L), 1) == 0)  # zeros above the diagonal, as scikit-learn's L_
    # alpha = K^{-1} Y carries K's condition number (RQ without White: ~1e4): relative to its scale
    scale = float(jnp.abs(compiled.alpha).max())
    np.testing.assert_allclose(host.alpha, compiled.alpha, rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(float(host.lml), float(compiled.lml), rtol=1e-10)
    assert float(host.jitter) == 0.0 and bool(host.ok)
    # the factor is taken in place: no copy beyond the one out of JAX's immutable buffer
    U, _, _ = lapack_factor(None, kernel, X, Y, noise)
    assert U.flags.f_contiguous and U.flags.owndata is False


def test_failed_factorisation_gives_none_or_nan_and_only_the_as_is_inference_is_staged():
    kernel, X, Y, noise = _singular()
    v, g = lapack_lml_and_grad(jnp.asarray(kernel.theta), kernel, X, Y, noise)
    assert np.isnan(v) and np.all(g == 0)
    v, g = lapack_lml_and_grad(jnp.asarray(kernel.theta), kernel, X, Y, noise, gradient=False)
    assert np.isnan(v) and g is None
    assert lapack_factor(None, kernel, X, Y, noise) is None
    assert _lapack_condition(kernel, TrainingData(X, Y, noise, None)) is None
    assert on_cpu()


def test_lapack_only_above_its_crossover_and_for_the_as_is_factorisation():
    # Below LAPACK_MIN_N rows one compiled program wins (and the data are padded); a fixed
    # jitter always stays compiled.
    assert on_cpu()
    assert ExactInference()._lapack(LAPACK_MIN_N) and ExactInference(jitter=None)._lapack(LAPACK_MIN_N)
    assert not ExactInference()._lapack(LAPACK_MIN_N - 1)
    assert not ExactInference(jitter=1e-6)._lapack(10 * LAPACK_MIN_N)
    n = LAPACK_MIN_N - 7
    assert ExactInference().prepare(np.zeros((n, 1)), np.zeros((n, 1)), np.zeros(n)).mask is not None
    n = LAPACK_MIN_N + 7
    assert ExactInference().prepare(np.zeros((n, 1)), np.zeros((n, 1)), np.zeros(n)).mask is None
