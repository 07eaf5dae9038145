"""Exact-GP log marginal likelihood and gradient on the CPU, with LAPACK ``potri`` for ``K^{-1}``.

The gradient of the exact log marginal likelihood needs ``K^{-1}`` (Rasmussen &
Williams 2006, Eq. 5.9). XLA has no ``potri``; inside one compiled function it is
formed by :func:`skgpx.solvers.cho_inverse` (recursive blocks, ``5/6 n^3`` flops).
On the CPU LAPACK's ``potri`` does it in ``2/3 n^3`` at BLAS speed, so there an
optimiser's evaluation runs as two compiled stages with ``potri`` between them:

1. :func:`_factor`: Gram, Cholesky factor ``L``, ``alpha = K^{-1} Y``, the value;
2. ``potri(L)`` on the host (the lower triangle of ``K^{-1}``), XLA idle meanwhile;
3. :func:`_gradient`: the cotangent ``1/2 (alpha alpha^T - t K^{-1})`` contracted with
   the Gram's derivatives (:func:`skgpx.operators.noisy_gram`'s tiled backward pass).

Measured on the 2-core CPU (Matern-2.5 + White, 3-D, n = 2000, value and gradient):
245 ms in one compiled function vs 195 ms staged (factor 73, potri 65, gradient 35).
``potri`` is not called from inside a compiled function (a host callback): there its
BLAS threads compete with XLA's (a fit went from 41 s to 163 s with two processes on
two cores). Staged, the two libraries take turns; processes started side by side with
OpenBLAS's default threads still oversubscribe the cores (two n = 2000 optimisations at
once: 32-34 s each staged, 18-20 s compiled, scikit-learn 23-29 s), which one BLAS
thread per process removes (7.6 s each either way; joblib's workers are set up so:
``GridSearchCV(n_jobs=2)`` over two kernels, n = 3000: 23.7 s staged, 29.0 s compiled,
scikit-learn 38.6 s). See the FAQ on several fits at once.

Same value and gradient as ``ExactInference(jitter=None)`` under ``jax.value_and_grad``
(tested); a failed factorisation gives a NaN value, and the objective then falls back
to the adaptive-jitter inference.
"""

from __future__ import annotations

import collections

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from ..operators._gram import noisy_gram

__all__ = ["lapack_lml_and_grad", "uses_lapack", "TRACE_COUNTS"]

# How often each compiled stage was traced (tests check an optimisation traces each once).
TRACE_COUNTS: collections.Counter = collections.Counter()


def uses_lapack(X) -> bool:
    """Whether ``X`` (a JAX array) lives on a CPU device, where the staged evaluation applies."""
    return all(d.platform == "cpu" for d in X.devices())


@eqx.filter_jit
def _factor(inference, theta, kernel, X, Y, noise):
    TRACE_COUNTS["factor"] += 1
    posterior = inference.condition(kernel.with_theta(theta), X, Y, noise)
    return posterior.L, posterior.alpha, posterior.lml


@eqx.filter_jit
def _gradient(theta, kernel, X, noise, inv_lower, alpha):
    TRACE_COUNTS["gradient"] += 1
    # W = 1/2 (alpha alpha^T - t K^{-1}) is symmetric and only the lower triangle of
    # K^{-1} is valid: contracting the lower triangle with its off-diagonal entries
    # doubled gives the same sum without reading the upper triangle (a transposed pass).
    n, t = alpha.shape
    W = 0.5 * (alpha @ alpha.T - t * inv_lower)
    i = jnp.arange(n)
    W = jnp.where(i[:, None] > i[None, :], 2.0 * W, jnp.where(i[:, None] == i[None, :], W, 0.0))
    _, vjp = jax.vjp(lambda th: noisy_gram((kernel.with_theta(th), X, noise)), theta)
    return vjp(W)[0]


def lapack_lml_and_grad(inference, theta, kernel, X, Y, noise):
    """``(log p(Y | X, theta), its gradient in theta)`` as NumPy values; NaN value on failure.

    ``inference``: an ``ExactInference`` whose ``condition`` gives the factor, ``alpha`` and
    the value; ``theta``: log hyperparameters (``kernel.theta``), a JAX array on the CPU
    like the data.
    """
    L, alpha, lml = _factor(inference, theta, kernel, X, Y, noise)
    if not np.isfinite(float(lml)):
        return float("nan"), np.zeros(theta.shape, np.float64)
    L = np.asarray(L)
    # L row-major is L^T column-major: potri on that upper factor writes the upper
    # triangle of K^{-1} column-major, i.e. the lower triangle of the row-major result.
    (potri,) = scipy.linalg.get_lapack_funcs(("potri",), (L,))
    inv_t, info = potri(L.T, lower=0)
    if info != 0:
        return float("nan"), np.zeros(theta.shape, np.float64)
    grad = _gradient(theta, kernel, X, noise, jnp.asarray(inv_t.T), alpha)
    return float(lml), np.asarray(grad, dtype=np.float64)
