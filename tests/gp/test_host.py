"""The NumPy host path against the compiled exact path on the same (translatable) kernel.

``skgpx.gp._host`` calls a scikit-learn kernel's own ``__call__``; for a kernel that
also translates (``from_sklearn``) its posterior, log marginal likelihood, gradient and
jitter must be those of :class:`skgpx.gp.ExactInference` to rounding.
"""

import jax
import jax.numpy as jnp
import numpy as np
from numpy.testing import assert_allclose
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Matern, WhiteKernel

from skgpx.gp import ExactInference, HostPosterior, host_condition, host_log_marginal_likelihood
from skgpx.gp._host import host_cholesky
from skgpx.kernels import from_sklearn
from skgpx.solvers import jittered_cholesky

SK_KERNEL = ConstantKernel(1.3) * Matern(0.8, nu=1.5) + WhiteKernel(0.05)


def _problem(n=15, m=6, d=2, t=2, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n, d)
    Y = np.column_stack([np.sin(X[:, 0]) + 0.1 * rng.randn(n) for _ in range(t)])
    return X, Y, np.linspace(1e-3, 1e-2, n), rng.randn(m, d)


def test_posterior_matches_compiled_exact_path():
    X, Y, noise, Xs = _problem()
    post = host_condition(SK_KERNEL, X, Y, noise)
    ref = ExactInference().condition(from_sklearn(SK_KERNEL), *map(jnp.asarray, (X, Y, noise)), None)
    assert isinstance(post, HostPosterior) and post.ok and post.jitter == 0.0
    assert_allclose(post.L, ref.L, rtol=1e-12, atol=1e-12)
    assert_allclose(post.mean(Xs), ref.mean(jnp.asarray(Xs)), rtol=1e-10, atol=1e-12)
    assert_allclose(post.var(Xs), ref.var(jnp.asarray(Xs)), rtol=1e-10, atol=1e-12)
    assert_allclose(post.cov(Xs), ref.cov(jnp.asarray(Xs)), rtol=1e-10, atol=1e-12)
    assert_allclose(post.log_marginal_likelihood_value, ref.log_marginal_likelihood_value, rtol=1e-12)
    R = np.random.RandomState(1).randn(X.shape[0], 3)
    assert_allclose(post.solve_train(R), ref.solve_train(jnp.asarray(R)), rtol=1e-10)
    assert post.diagnostics() == {"solver": "host-numpy", "jitter": 0.0, "cholesky_ok": True, "n_train": 15}


def test_lml_and_gradient_match_compiled_autodiff():
    X, Y, noise, _ = _problem(seed=2)
    kernel = from_sklearn(SK_KERNEL)
    theta = SK_KERNEL.theta + np.array([0.2, -0.3, 0.1])

    def lml(th):
        return ExactInference().log_marginal_likelihood(kernel.with_theta(th), *map(jnp.asarray, (X, Y, noise)))

    value_ref, grad_ref = jax.value_and_grad(lml)(jnp.asarray(theta))
    value, grad = host_log_marginal_likelihood(SK_KERNEL.clone_with_theta(theta), X, Y, noise, eval_gradient=True)
    assert type(value) is np.float64 and grad.dtype == np.float64
    assert_allclose(value, value_ref, rtol=1e-12)
    assert_allclose(grad, grad_ref, rtol=1e-9, atol=1e-12)
    assert host_log_marginal_likelihood(SK_KERNEL.clone_with_theta(theta), X, Y, noise) == value


def test_jitter_policy_matches_jittered_cholesky():
    X = np.repeat(np.linspace(0, 1, 5)[:, None], 2, axis=0)  # duplicates: K is singular
    A = RBF(1.0)(X)
    L_ref, j_ref, ok_ref = jittered_cholesky(jnp.asarray(A), "auto")
    L, j, ok = host_cholesky(A, "auto")
    assert ok and bool(ok_ref) and j > 0
    assert_allclose(j, j_ref, rtol=1e-12)
    assert_allclose(L, L_ref, rtol=1e-8, atol=1e-10)
    # None: as is, no retry; a number: always added.
    assert not host_cholesky(A, None)[2]
    L, j, ok = host_cholesky(A, 1e-3)
    assert ok and j == 1e-3 and np.allclose(L @ L.T, A + 1e-3 * np.eye(len(A)))


def test_failure_gives_minus_inf_and_zero_gradient():
    X, Y, _, _ = _problem()
    kernel = ConstantKernel(1.0) * RBF(1.0)
    singular = np.repeat(X[:3], 5, axis=0)
    value, grad = host_log_marginal_likelihood(kernel, singular, Y, np.zeros(15), jitter=None, eval_gradient=True)
    assert value == -np.inf and type(value) is np.float64 and np.all(grad == 0) and grad.shape == (2,)
    post = host_condition(kernel, singular, Y, np.zeros(15), jitter=None)
    assert not post.ok and np.isnan(post.log_marginal_likelihood_value)
