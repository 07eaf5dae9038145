"""Small dense linear-algebra helpers shared by the Magma E-step, M-step and prediction.

Every inverse in Magma is replaced by a Cholesky factor and triangular solves
(MAGMA.md item 7); log-determinants are ``2 sum log diag L``.
"""

from __future__ import annotations

import math

import jax.numpy as jnp
import jax.scipy.linalg as jsl

__all__ = ["add_jitter", "chol", "tri_solve", "cho_solve", "logdet_from_chol", "LOG_2PI"]

LOG_2PI = math.log(2.0 * math.pi)


def add_jitter(K, jitter, mask=None):
    """``K + jitter * mean(diag K) * I`` (jitter relative to the scale).

    With ``mask`` (bool ``(n,)``) the scale is the mean over real rows and the jitter
    is added on real rows only, so padded identity rows/columns stay exactly
    identity (padded and unpadded tasks then give identical factors).
    """
    n = K.shape[-1]
    d = jnp.diagonal(K)
    if mask is None:
        return K + (jitter * jnp.mean(d)) * jnp.eye(n, dtype=K.dtype)
    scale = jnp.sum(jnp.where(mask, d, 0.0)) / jnp.maximum(jnp.sum(mask), 1)
    return K + jnp.diag(jnp.where(mask, jitter * scale, 0.0))


def chol(K, jitter, mask=None):
    """Lower Cholesky factor of :func:`add_jitter` ``(K, jitter, mask)``."""
    return jnp.linalg.cholesky(add_jitter(K, jitter, mask))


def tri_solve(L, B, *, trans=False):
    """``L^{-1} B`` (or ``L^{-T} B`` with ``trans=True``) for lower-triangular ``L``."""
    return jsl.solve_triangular(L, B, lower=True, trans=1 if trans else 0)


def cho_solve(L, B):
    """``(L L^T)^{-1} B``."""
    return jsl.cho_solve((L, True), B)


def logdet_from_chol(L):
    """``log |L L^T|``."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(L, axis1=-2, axis2=-1)), axis=-1)
