"""Guards against toolchain bugs that would silently corrupt skgpx gradients or hang.

From jaxlib 0.10.1 (still in 0.12.0.1), XLA's CPU backend contracts ``x * s - y * s``
into a fused multiply-add in some fusions and not others: the smallest trigger is
``a = X * s; d = a[:, None] - a[None, :]; where(d * d > 0, 1, 0)``, which is 1 on the
diagonal under ``jit`` (``d`` is the rounding error of ``x * s``, ~1e-19) and 0 eagerly.
The double-``where`` safe square root that skgpx's kernels used then took different
branches in the forward and backward passes (``_double_where_matern32_sum`` below:
d/dlog c = 5.03 under ``jit(grad)``, 9.96 eagerly). The kernels now use a custom-JVP
square root; these tests check every stationary kernel's compiled gradient against finite
differences and a closed form, and the first-use guard ``skgpx._toolchain.check_toolchain``.
jaxlib 0.10.0 deadlocks on CPU when two vmapped triangular solves run concurrently
(each holds an intra-op pool thread while waiting for its own batch sub-tasks); Magma's
M-step hung forever on it. It is excluded in ``pyproject.toml`` and refused by the
guard; the test below runs the pattern in a subprocess with a timeout.
"""

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import skgpx._toolchain as toolchain
from skgpx.kernels import RBF, ExpSineSquared, Matern, RationalQuadratic


def _double_where_matern32_sum(theta, X):
    """The formulation JAX >= 0.10.1 miscompiles (kept to show the guard would catch it)."""
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


def _all_kernels(d):
    """One sum of every stationary kernel: one compiled gradient checks them all."""
    ls = list(np.linspace(0.3, 0.8, d))
    return (
        1.2 * Matern(ls, nu=0.5) + 1.2 * Matern(ls, nu=1.5) + 1.2 * Matern(ls, nu=2.5) + 1.2 * Matern(0.4, nu=1.5)
        + 1.3 * RBF(ls) + RationalQuadratic(0.5, 2.0) + ExpSineSquared(0.7, 2.0)
    )


@pytest.mark.parametrize("d", [1, 2, 3, 5])  # the column, custom-JVP column and GEMM distance paths
def test_kernel_gradients_under_jit_match_finite_differences(d):
    X = np.random.default_rng(d).normal(size=(7, d))
    k = _all_kernels(d)
    th = jnp.asarray(k.theta)
    # A cross with coinciding points; not with the GEMM identity (d > 3), whose rounding there
    # (r2 ~1e-16, so r ~1e-8 under Matern-0.5's kink) no finite difference resolves.
    X2 = X[::-1] if d <= 3 else X[::-1] + 0.05
    f = lambda t: k.with_theta(t).gram(X).sum() + k.with_theta(t).cross(X, X2).sum()  # noqa: E731
    # Central differences of the compiled value (error ~1e-9 here; the miscompile was 50%).
    # Cheaper than an eager gradient, which dispatches every operation separately.
    h = 1e-6 * jnp.eye(th.size)
    fd = (jax.jit(jax.vmap(f))(th + h) - jax.jit(jax.vmap(f))(th - h)) / 2e-6
    np.testing.assert_allclose(
        jax.jit(jax.grad(f))(th), fd, rtol=1e-6, atol=1e-8,
        err_msg=f"jax {jax.__version__}: compiled kernel gradients differ from finite differences",
    )


def test_kernel_gram_gradient_matches_closed_form():
    X = np.random.default_rng(1).normal(size=(6, 2))
    k = 1.2 * Matern([0.3, 0.5], nu=1.5)
    f = lambda th: k.with_theta(th).gram(X).sum()  # noqa: E731
    th = jnp.asarray(k.theta)
    want = toolchain._closed_form(X, 1.2, np.array([0.3, 0.5]))
    np.testing.assert_allclose(jax.jit(jax.grad(f))(th), want, rtol=1e-10)
    np.testing.assert_allclose(jax.grad(f)(th), want, rtol=1e-10)


def test_guard_passes_on_this_jax():
    toolchain.check_toolchain.cache_clear()
    toolchain.check_toolchain(_force=True)  # raises if this JAX compiles the kernels' gradients wrongly


def test_guard_skips_the_compiled_check_only_on_verified_jaxlib(monkeypatch):
    import jaxlib

    monkeypatch.setattr(toolchain, "_closed_form", lambda X, c, ls: np.array([5.03, 1.0, 1.0]))
    for version, raises in [("0.9.2", False), ("0.12.0.1", False), ("0.12.1", True)]:
        monkeypatch.setattr(jaxlib, "__version__", version)
        toolchain.check_toolchain.cache_clear()
        try:
            if raises:
                with pytest.raises(RuntimeError, match="wrongly"):
                    toolchain.check_toolchain(jax.devices("cpu")[0])
            else:
                toolchain.check_toolchain(jax.devices("cpu")[0])
        finally:
            toolchain.check_toolchain.cache_clear()


def test_guard_refuses_wrong_gradients(monkeypatch):
    toolchain.check_toolchain.cache_clear()
    monkeypatch.setattr(toolchain, "_closed_form", lambda X, c, ls: np.array([5.03, 1.0, 1.0]))
    with pytest.raises(RuntimeError, match=r"compiles the gradient of an skgpx kernel wrongly.*tested with jax"):
        toolchain.check_toolchain(_force=True)
    toolchain.check_toolchain.cache_clear()


def test_guard_catches_the_double_where_formulation_where_jax_miscompiles_it(monkeypatch):
    X = np.random.default_rng(0).normal(size=(6, 2))
    th = jnp.log(jnp.array([1.2, 0.3, 0.5]))
    eager = jax.grad(_double_where_matern32_sum)(th, X)
    miscompiles = not np.allclose(jax.jit(jax.grad(_double_where_matern32_sum))(th, X), eager, rtol=1e-10)
    import skgpx.kernels._stationary as stationary

    def double_where(r2):
        pos = r2 > 0
        return jnp.where(pos, jnp.sqrt(jnp.where(pos, r2, 1.0)), 0.0)

    monkeypatch.setattr(stationary, "safe_sqrt", double_where)
    toolchain.check_toolchain.cache_clear()
    try:
        if miscompiles:
            with pytest.raises(RuntimeError, match="wrongly"):
                toolchain.check_toolchain(_force=True)
        else:
            toolchain.check_toolchain(_force=True)
    finally:
        toolchain.check_toolchain.cache_clear()


def test_guard_refuses_deadlocking_jaxlib(monkeypatch):
    import jaxlib

    monkeypatch.setattr(jaxlib, "__version__", "0.10.0")
    toolchain.check_toolchain.cache_clear()
    try:
        with pytest.raises(RuntimeError, match="deadlocks"):
            toolchain.check_toolchain(jax.devices("cpu")[0])
    finally:
        toolchain.check_toolchain.cache_clear()


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
