"""Exact GP inference by a dense Cholesky factorisation (registered as ``solver="cholesky"``).

Rasmussen & Williams (2006), Algorithm 2.1, with scikit-learn's conventions:
``L = cholesky(K + diag(noise))``, ``alpha = L^T \\ (L \\ y)``, mean ``K_*^T alpha``,
``V = L \\ K_*``, variance ``k(x*, x*) - sum(V^2)`` (not clipped here; the estimator
clips and warns like scikit-learn), covariance ``K(X*, X*) - V^T V``.

Where it runs (:class:`Cholesky`'s host entry points): below ``PAD_MAX_N`` rows the
training set is padded to a size bucket (``skgpx.gp._fit``) and masked, so one compiled
program serves every nearby ``n``; on the CPU from ``LAPACK_MIN_N`` rows the factorisation
runs in LAPACK between compiled stages (:mod:`skgpx.gp._exact_lapack`), unpadded.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..operators import noisy_gram
from ..solvers import (
    check_jitter_policy,
    cho_solve,
    cholesky_quad_logdet,
    gaussian_log_likelihood,
    jittered_cholesky,
)
from ._abstract import AbstractInference, AbstractPosterior
from ._exact_lapack import lapack_factor, lapack_lml_and_grad, on_cpu
from ._fit import PAD_MAX_N, TrainingData, n_real as _n_real, padded_training_data
from ._registry import register_solver

__all__ = ["Cholesky", "ExactInference", "ExactPosterior", "LAPACK_MIN_N", "PAD_MAX_N"]

# From this many rows on the CPU, LAPACK potrf/potri between compiled stages beat one
# compiled program (value and gradient) and compile in a fraction of its time; below, the
# padded compiled program serves every nearby n (and the host path scikit-learn's kernels).
LAPACK_MIN_N = 512
# Up to this many rows the Gram is differentiated by plain autodiff, which compiles faster
# than the row-tiled backward pass of noisy_gram (that one saves memory traffic at large n).
_TILED_GRAM_MIN_N = 512


def _noisy_gram(kernel, X, noise, mask=None):
    return kernel.gram(X, mask) + jnp.diag(noise)


def _mask_gram(K, mask):
    # Padded rows/columns of K -> identity block (their noise is zero); masked entries get
    # zero cotangents, so the tiled backward pass of noisy_gram never sees them.
    if mask is None:
        return K
    K = jnp.where(mask[:, None] & mask[None, :], K, 0.0)
    i = jnp.arange(K.shape[0])
    return K.at[i, i].add(jnp.where(mask, 0.0, 1.0).astype(K.dtype))


class ExactPosterior(AbstractPosterior):
    """Posterior of an exact GP: the Cholesky factor and ``alpha = (K + noise)^{-1} Y``."""

    kernel: object
    X: jax.Array
    L: jax.Array  # lower Cholesky factor of K(X, X) + diag(noise) + jitter * I
    alpha: jax.Array  # (n, t)
    jitter: jax.Array  # jitter added to the diagonal (0 when none was needed)
    ok: jax.Array  # False when the factorisation failed even with the largest jitter
    lml: jax.Array
    mask: jax.Array | None = None  # real rows of a padded training set (None: not padded)

    def _cross(self, Xs):
        return self.kernel.cross(Xs, self.X, None, self.mask)

    def mean(self, Xs):
        # RW Alg. 2.1 line 4: f* = K(X*, X) alpha
        return self._cross(Xs) @ self.alpha

    def _Vt(self, Xs):
        # RW Alg. 2.1 line 5, transposed: v^T = K(X*, X) L^{-T}. LAPACK reads matrices
        # column-major and L is row-major; solving against the upper L^T reads that memory
        # as it is, where v = L \ K(X, X*) would first transpose the n x n factor.
        return jax.lax.linalg.triangular_solve(self.L.T, self._cross(Xs), left_side=False, lower=False)

    def var(self, Xs):
        Vt = self._Vt(Xs)
        return self.kernel.diag(Xs) - jnp.sum(Vt * Vt, axis=1)

    def cov(self, Xs):
        # RW Alg. 2.1 line 6: K(X*, X*) - v^T v
        Vt = self._Vt(Xs)
        return self.kernel.gram(Xs) - Vt @ Vt.T

    def solve_train(self, R):
        # R has the real rows only; padded rows of the solve are zero (identity block).
        n = R.shape[0]
        R = jnp.concatenate([R, jnp.zeros((self.L.shape[0] - n,) + R.shape[1:], R.dtype)])
        return cho_solve(self.L, R)[:n]

    @property
    def log_marginal_likelihood_value(self):
        return self.lml

    def diagnostics(self) -> dict:
        return {
            "solver": "cholesky",
            "jitter": float(self.jitter),
            "cholesky_ok": bool(self.ok),
            "n_train": int(self.X.shape[0] if self.mask is None else np.sum(np.asarray(self.mask))),
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

    def condition(self, kernel, X, Y, noise, key=None, mask=None) -> ExactPosterior:
        """``mask``: ``None`` or boolean ``(n,)`` flagging real rows; padded rows must hold
        zero ``Y`` and ``noise`` and change no result."""
        L, jitter, ok = jittered_cholesky(lambda: _mask_gram(_noisy_gram(kernel, X, noise, mask), mask), self.jitter,
                                          mask)
        alpha = cho_solve(L, Y)
        t = Y.shape[1]
        # RW Alg. 2.1 line 7, summed over targets as scikit-learn does.
        lml = gaussian_log_likelihood(jnp.sum(Y * alpha), 2 * jnp.sum(jnp.log(jnp.diagonal(L))), _n_real(Y, mask), t)
        return ExactPosterior(kernel, X, L, alpha, jitter, ok, lml, mask)

    def log_marginal_likelihood(self, kernel, X, Y, noise, key=None, mask=None):
        # The Gram's backward pass contracts dLML/dK with the kernel's derivatives tile
        # by tile (skgpx.operators.noisy_gram); autodiff of the whole Gram writes each
        # intermediate as an n x n array.
        K = noisy_gram((kernel, X, noise)) if X.shape[0] >= _TILED_GRAM_MIN_N else _noisy_gram(kernel, X, noise)
        K = _mask_gram(K, mask)
        value, _ = cholesky_quad_logdet(K, Y, self.jitter, mask)
        return value - 0.5 * _n_real(Y, mask) * Y.shape[1] * math.log(2 * math.pi)

    # -- host entry points -------------------------------------------------------------------
    def _lapack(self, n: int) -> bool:
        # The LAPACK stages factorise as is: the first attempt of "auto", or None itself.
        return (self.jitter is None or self.jitter == "auto") and n >= LAPACK_MIN_N and on_cpu()

    def prepare(self, X, Y, noise, dtype=None) -> TrainingData:
        return padded_training_data(X, Y, noise, dtype, pad=not self._lapack(len(X)))

    def _as_is(self):
        # "auto" first tries the matrix as is; a program without the jitter-retry machinery
        # (a cond around a while loop of factorisations) compiles in about half the time,
        # and the adaptive one is compiled only when a factorisation fails.
        return Cholesky(jitter=None) if self.jitter == "auto" else None

    def fit(self, kernel, data: TrainingData, key=None) -> ExactPosterior:
        first = self._as_is()
        if data.mask is None and self._lapack(data.n_rows):
            posterior = _lapack_condition(kernel, data)
            if posterior is not None:
                return posterior
        elif first is not None:
            posterior = AbstractInference.fit(first, kernel, data, key)
            if bool(posterior.ok):
                return posterior
        return super().fit(kernel, data, key)

    def objective(self, theta, kernel, data: TrainingData, key=None, gradient=True):
        if data.mask is None and self._lapack(data.n_rows):
            value, grad = lapack_lml_and_grad(theta, kernel, data.X, data.Y, data.noise, gradient)
            if np.isfinite(value):
                return -value, (-grad if gradient else None)
            # Not numerically positive definite as is: the compiled adaptive jitter decides.
        else:
            first = self._as_is()
            if first is not None:
                value, grad = AbstractInference.objective(first, theta, kernel, data, key, gradient)
                if np.isfinite(value):
                    return value, grad
        return super().objective(theta, kernel, data, key, gradient)


def _lapack_condition(kernel, data):
    # The posterior ExactInference(jitter=None).condition gives, by LAPACK between compiled
    # stages (skgpx.gp._exact_lapack); None when K is not numerically positive definite.
    factor = lapack_factor(None, kernel, data.X, data.Y, data.noise)
    if factor is None:
        return None
    U, alpha, lml = factor
    X = data.X
    device = next(iter(X.devices()))
    L, alpha = (jax.device_put(a, device) for a in (U.T, alpha))
    zero = jnp.zeros((), X.dtype)
    return ExactPosterior(kernel, X, L, alpha, zero, jnp.asarray(True), jnp.asarray(lml, X.dtype))


ExactInference = Cholesky  # the name the pure layer used before solver objects

register_solver("cholesky", Cholesky)
