"""Pure, compiled prediction functions (posterior or prior kernel, and test inputs).

The mean is always its own compiled call, so ``predict(X)`` and
``predict(X, return_std=True)[0]`` are bit-for-bit equal. Each is one module-level
``eqx.filter_jit`` function: the posterior's arrays are traced and its structure is
static, so every estimator with the same structure reuses the compiled code. Test
inputs are padded (zero rows, results cut) to the size buckets of
:func:`skgpx.gp.bucket`, so a new number of test points in the same bucket does not
compile again; every test point's mean, variance and covariance row is independent of
the others, so the padding changes no result.
"""

from __future__ import annotations

import equinox as eqx
import numpy as np

from ..gp import PAD_MAX_ROWS, bucket

__all__ = ["posterior_mean", "posterior_var", "posterior_cov", "prior_var", "prior_cov"]


def _padded(X, dtype):
    X = np.asarray(X, dtype=dtype)
    m = X.shape[0]
    size = bucket(m) if 0 < m <= PAD_MAX_ROWS else m
    if size > m:
        X = np.concatenate([X, np.zeros((size - m,) + X.shape[1:], X.dtype)])
    return X, m


@eqx.filter_jit
def _mean(posterior, Xs):
    return posterior.mean(Xs)


@eqx.filter_jit
def _var(posterior, Xs):
    return posterior.var(Xs)


@eqx.filter_jit
def _cov(posterior, Xs):
    return posterior.cov(Xs)


@eqx.filter_jit
def _prior_var(kernel, Xs):
    return kernel.diag(Xs)


@eqx.filter_jit
def _prior_cov(kernel, Xs):
    return kernel.gram(Xs)


def posterior_mean(posterior, X, dtype):
    """Posterior mean ``(m, t)`` at NumPy inputs ``X`` ``(m, d)``, as NumPy."""
    Xs, m = _padded(X, dtype)
    return np.asarray(_mean(posterior, Xs))[:m]


def posterior_var(posterior, X, dtype):
    Xs, m = _padded(X, dtype)
    return np.asarray(_var(posterior, Xs))[:m]


def posterior_cov(posterior, X, dtype):
    Xs, m = _padded(X, dtype)
    return np.asarray(_cov(posterior, Xs))[:m, :m]


def prior_var(kernel, X, dtype):
    Xs, m = _padded(X, dtype)
    return np.asarray(_prior_var(kernel, Xs))[:m]


def prior_cov(kernel, X, dtype):
    Xs, m = _padded(X, dtype)
    return np.asarray(_prior_cov(kernel, Xs))[:m, :m]
