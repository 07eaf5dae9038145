"""Pure, compiled conditioning and prediction functions (posterior or prior kernel, and X).

The mean is always its own compiled call, so ``predict(X)`` and
``predict(X, return_std=True)[0]`` are bit-for-bit equal. Each is one
``eqx.filter_jit`` function: the posterior's arrays are traced and
its structure is static, so a second call with the same shapes reuses the
compiled code (``TRACE_COUNTS`` lets tests check that).
"""

from __future__ import annotations

import collections

import equinox as eqx

__all__ = ["condition", "posterior_mean", "posterior_var", "posterior_cov", "prior_var", "prior_cov", "TRACE_COUNTS"]

TRACE_COUNTS: collections.Counter = collections.Counter()


@eqx.filter_jit
def condition(inference, kernel, X, Y, noise, key):
    """``inference.condition(...)`` compiled once per shape (one executable instead of many ops)."""
    TRACE_COUNTS["condition"] += 1
    return inference.condition(kernel, X, Y, noise, key)


@eqx.filter_jit
def posterior_mean(posterior, Xs):
    TRACE_COUNTS["mean"] += 1
    return posterior.mean(Xs)


@eqx.filter_jit
def posterior_var(posterior, Xs):
    TRACE_COUNTS["var"] += 1
    return posterior.var(Xs)


@eqx.filter_jit
def posterior_cov(posterior, Xs):
    TRACE_COUNTS["cov"] += 1
    return posterior.cov(Xs)


@eqx.filter_jit
def prior_var(kernel, Xs):
    TRACE_COUNTS["prior_var"] += 1
    return kernel.diag(Xs)


@eqx.filter_jit
def prior_cov(kernel, Xs):
    TRACE_COUNTS["prior_cov"] += 1
    return kernel.gram(Xs)
