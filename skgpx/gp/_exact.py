"""Exact GP inference by a dense Cholesky factorisation (registered as ``solver="cholesky"``).

Rasmussen & Williams (2006), Algorithm 2.1, with scikit-learn's conventions:
``L = cholesky(K + diag(noise))``, ``alpha = L^T \\ (L \\ y)``, mean ``K_*^T alpha``,
``V = L \\ K_*``, variance ``k(x*, x*) - sum(V^2)`` (not clipped here; the estimator
clips and warns like scikit-learn), covariance ``K(X*, X*) - V^T V``.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from ..operators import noisy_gram
from ..solvers import check_jitter_policy, cho_solve, cholesky_quad_logdet, jittered_cholesky
from ._abstract import AbstractInference, AbstractPosterior
from ._exact_lapack import lapack_factor, lapack_lml_and_grad, uses_lapack
from ._registry import register_solver

__all__ = ["Cholesky", "ExactInference", "ExactPosterior"]


def _noisy_gram(kernel, X, noise):
    return kernel.gram(X) + jnp.diag(noise)


class ExactPosterior(AbstractPosterior):
    """Posterior of an exact GP: the Cholesky factor and ``alpha = (K + noise)^{-1} Y``."""

    kernel: object
    X: jax.Array
    L: jax.Array  # lower Cholesky factor of K(X, X) + diag(noise) + jitter * I
    alpha: jax.Array  # (n, t)
    jitter: jax.Array  # jitter added to the diagonal (0 when none was needed)
    ok: jax.Array  # False when the factorisation failed even with the largest jitter
    lml: jax.Array

    def mean(self, Xs):
        # RW Alg. 2.1 line 4: f* = K(X*, X) alpha
        return self.kernel.cross(Xs, self.X) @ self.alpha

    def _Vt(self, Xs):
        # RW Alg. 2.1 line 5, transposed: v^T = K(X*, X) L^{-T}. LAPACK reads matrices
        # column-major and L is row-major; solving against the upper L^T reads that memory
        # as it is, where v = L \ K(X, X*) first transposes the n x n factor (n = 2000: ~15 ms).
        return jax.lax.linalg.triangular_solve(self.L.T, self.kernel.cross(Xs, self.X), left_side=False, lower=False)

    def var(self, Xs):
        Vt = self._Vt(Xs)
        return self.kernel.diag(Xs) - jnp.sum(Vt * Vt, axis=1)

    def cov(self, Xs):
        # RW Alg. 2.1 line 6: K(X*, X*) - v^T v
        Vt = self._Vt(Xs)
        return self.kernel.gram(Xs) - Vt @ Vt.T

    def solve_train(self, R):
        return cho_solve(self.L, R)

    @property
    def log_marginal_likelihood_value(self):
        return self.lml

    def diagnostics(self) -> dict:
        return {
            "solver": "cholesky",
            "jitter": float(self.jitter),
            "cholesky_ok": bool(self.ok),
            "n_train": int(self.X.shape[0]),
        }


class Cholesky(AbstractInference):
    """Dense Cholesky inference (``solver="cholesky"``): ``O(n^3)`` time, ``O(n^2)`` memory, exact to rounding.

    ``jitter``: ``"auto"`` (adaptive: none unless the factorisation fails, then the smallest
    of ``1e-10 ... 1e-6`` times the mean diagonal that works, see
    :func:`skgpx.solvers.jittered_cholesky`; reported in ``jitter_`` and warned about), a fixed
    value ``>= 0`` always added to the diagonal, or ``None`` (as is, never retried).
    """

    jitter: object = eqx.field(static=True, default="auto")

    def __check_init__(self):
        check_jitter_policy(self.jitter)

    @property
    def name(self) -> str:
        return "cholesky"

    def condition(self, kernel, X, Y, noise, key=None) -> ExactPosterior:
        L, jitter, ok = jittered_cholesky(lambda: _noisy_gram(kernel, X, noise), self.jitter)
        alpha = cho_solve(L, Y)
        n, t = Y.shape
        # RW Alg. 2.1 line 7, summed over targets as scikit-learn does.
        lml = -0.5 * jnp.sum(Y * alpha) - t * jnp.sum(jnp.log(jnp.diagonal(L))) - 0.5 * n * t * math.log(2 * math.pi)
        return ExactPosterior(kernel, X, L, alpha, jitter, ok, lml)

    def log_marginal_likelihood(self, kernel, X, Y, noise, key=None):
        # The Gram's backward pass contracts dLML/dK with the kernel's derivatives tile
        # by tile (skgpx.operators.noisy_gram); autodiff of the whole Gram writes each
        # intermediate as an n x n array (n = 2000, value and gradient in a fit: 0.34 s -> 0.26 s).
        value, _ = cholesky_quad_logdet(noisy_gram((kernel, X, noise)), Y, self.jitter)
        n, t = Y.shape
        return value - 0.5 * n * t * math.log(2 * math.pi)

    def first_attempt(self):
        # "auto" tries the matrix as is before any jitter; trying exactly that without the
        # retry loop skips the loop's n x n copies (n = 5000, value and gradient: 3.0 s
        # -> 2.7 s). The objective reruns with `self` only when this one fails.
        return ExactInference(jitter=None) if self.jitter == "auto" else None

    def host_condition(self, X):
        # Only the as-is factorisation (the first attempt): the jitter retries stay compiled.
        return _lapack_condition if self.jitter is None and uses_lapack(X) else None

    def host_lml_and_grad(self, X):
        return lapack_lml_and_grad if self.jitter is None and uses_lapack(X) else None


def _lapack_condition(kernel, X, Y, noise):
    # The posterior ExactInference(jitter=None).condition gives, by LAPACK between compiled
    # stages (skgpx.gp._exact_lapack); None when K is not numerically positive definite.
    factor = lapack_factor(None, kernel, X, Y, noise)
    if factor is None:
        return None
    U, alpha, lml = factor
    device = next(iter(X.devices()))
    L, alpha = (jax.device_put(a, device) for a in (U.T, alpha))
    zero = jnp.zeros((), X.dtype)
    return ExactPosterior(kernel, X, L, alpha, zero, jnp.asarray(True), jnp.asarray(lml, X.dtype))


ExactInference = Cholesky  # the name the pure layer used before solver objects

register_solver("cholesky", Cholesky)
