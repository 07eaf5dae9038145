"""Pure, compiled conditioning and prediction functions (posterior or prior kernel, and X).

The mean is always its own compiled call, so ``predict(X)`` and
``predict(X, return_std=True)[0]`` are bit-for-bit equal. Each is one
``eqx.filter_jit`` function: the posterior's arrays are traced and
its structure is static, so a second call with the same shapes reuses the
compiled code.
"""

from __future__ import annotations

import equinox as eqx

__all__ = ["condition", "posterior_mean", "posterior_var", "posterior_cov", "prior_var", "prior_cov"]


@eqx.filter_jit
def condition(inference, kernel, X, Y, noise, key):
    """``inference.condition(...)`` compiled once per shape (one executable instead of many ops)."""
    return inference.condition(kernel, X, Y, noise, key)


@eqx.filter_jit
def posterior_mean(posterior, Xs):
    return posterior.mean(Xs)


@eqx.filter_jit
def posterior_var(posterior, Xs):
    return posterior.var(Xs)


@eqx.filter_jit
def posterior_cov(posterior, Xs):
    return posterior.cov(Xs)


@eqx.filter_jit
def prior_var(kernel, Xs):
    return kernel.diag(Xs)


@eqx.filter_jit
def prior_cov(kernel, Xs):
    return kernel.gram(Xs)
