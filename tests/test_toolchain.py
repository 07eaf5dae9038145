"""Guards against toolchain miscompiles that would silently corrupt skgpx gradients.

jax/jaxlib 0.10.1 and 0.10.2 on CPU return wrong (sometimes garbage, ~1e135)
reverse-mode gradients under ``jit`` for the pattern every stationary kernel uses:
per-column scaled differences, the double-``where`` safe square root, and
``c * f(r)``. Eager evaluation is correct. jaxlib 0.10.0 deadlocks on CPU when two vmapped
triangular solves run concurrently (each holds an intra-op pool thread while
waiting for its own batch sub-tasks); Magma's M-step hung forever on it.
``pyproject.toml`` caps jax below 0.10; these tests fail loudly (the deadlock in a
subprocess with a timeout) if an installed version reintroduces either bug.
"""

import subprocess
import sys
import textwrap

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


_DEADLOCK = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, numpy as np
    import jax.scipy.linalg as jsl
    jax.config.update("jax_enable_x64", True)

    def per(x):
        K = jnp.exp(-0.5 * (x[:, None] - x[None, :]) ** 2) + 0.1 * jnp.eye(x.shape[0])
        return jnp.sum(jsl.cho_solve((jnp.linalg.cholesky(K), True), jnp.eye(x.shape[0])))

    @jax.jit
    def f(xs):
        def body(c, x):  # two independent batched solves the executor may run at once
            return c + jnp.sum(jax.vmap(per)(x)) + jnp.sum(jax.vmap(per)(2 * x)), None
        return jax.lax.scan(body, 0.0, xs)[0]

    xs = jnp.asarray(np.random.default_rng(0).normal(size=(2, 60, 30)))
    for _ in range(20):
        jax.grad(f)(xs).block_until_ready()
    print("ok")
    """
)


def test_concurrent_batched_triangular_solves_do_not_deadlock():
    try:
        out = subprocess.run([sys.executable, "-c", _DEADLOCK], capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail(f"jax {jax.__version__}: concurrent vmapped triangular solves deadlock (jaxlib 0.10.0 bug)")
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]
