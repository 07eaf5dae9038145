"""LOVE: Lanczos variance estimates (Pleiss et al. 2018), preconditioned and deflated.

Plain LOVE approximates ``A^{-1} ~ Q T^{-1} Q^T`` from ``k`` Lanczos steps on ``A``; for a
GP Gram matrix whose effective rank is in the thousands that low-rank inverse misses
most of the spectrum (variances an order of magnitude off at k = 50-200). Here the Lanczos
recurrence runs on ``P^{-1} A`` in the ``P`` inner product (equivalently on
``Â = P^{-1/2} A P^{-1/2}``, whose spectrum the pivoted-Cholesky preconditioner has
clustered near 1), and the inverse is approximated exactly on the Krylov space and
by the preconditioner elsewhere:

    Â^{-1} ~ I + Q (T^{-1} - I) Q^T    =>    A^{-1} ~ P^{-1} + V (T^{-1} - I) V^T,

with ``V = P^{-1/2} Q`` (``V^T P V = I``, ``V^T A V = T``). A predictive variance is then

    k** - k*^T P^{-1} k* - (V^T k*)^T (T^{-1} - I) (V^T k*),

``O(n (r + k))`` per test point. Full reorthogonalisation (in the ``P`` inner product)
keeps ``V`` orthonormal; the cache is ``k`` operator products.
"""

from __future__ import annotations

from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from ._matmul import t_matmul

__all__ = ["LoveCache", "love_cache"]


class LoveCache(eqx.Module):
    """``A^{-1} ~ P^{-1} + V M V^T`` with ``M = T^{-1} - I``."""

    V: jax.Array  # (n, k)
    M: jax.Array  # (k, k)

    def quad(self, Ks, precond_solve: Callable):
        """``diag(Ks^T A^{-1} Ks)`` (approximate) for ``Ks`` of shape ``(n, m)``."""
        base = jnp.sum(Ks * precond_solve(Ks), axis=0)
        W = t_matmul(self.V, Ks)
        return base + jnp.sum(W * (self.M @ W), axis=0)


def love_cache(matmul: Callable, precond_solve: Callable, precond_mm: Callable, start, rank: int,
               size=None) -> LoveCache:
    """``rank`` steps of Lanczos on ``P^{-1} A`` in the ``P`` inner product, from ``start``.

    **Arguments:** ``matmul`` (``A @ V``), ``precond_solve`` (``P^{-1} V``), ``precond_mm``
    (``P @ V``), all on ``(n, k)`` blocks; ``start`` ``(n,)``; ``rank`` (static); ``size``
    (``None`` or a traced int): the dimension of the space ``start`` lives in when ``A`` and
    ``P`` are padded with a decoupled identity block (``start`` zero there): steps past it add
    zero columns of ``V`` and nothing to ``M``, as the unpadded cache of ``min(rank, size)``.
    """
    n = start.shape[0]
    k = int(min(rank, n))
    dt = start.dtype
    v0 = start / jnp.sqrt(start @ precond_mm(start[:, None])[:, 0])
    V = jnp.zeros((n, k), dt).at[:, 0].set(v0)
    PV = jnp.zeros((n, k), dt).at[:, 0].set(precond_mm(v0[:, None])[:, 0])
    alphas = jnp.zeros((k,), dt)
    betas = jnp.zeros((k,), dt)
    limit = k if size is None else size

    def body(i, c):
        V, PV, alphas, betas = c
        v = V[:, i]
        Av = matmul(v[:, None])[:, 0]
        alpha = v @ Av
        w = precond_solve(Av[:, None])[:, 0]
        # Full reorthogonalisation against all previous vectors in the P inner product
        # (twice is enough: Giraud et al. 2005); this also removes alpha v + beta v_prev.
        for _ in range(2):
            w = w - V @ (w @ PV)
        Pw = precond_mm(w[:, None])[:, 0]
        beta = jnp.sqrt(jnp.maximum(w @ Pw, 0.0))
        nxt = jnp.minimum(i + 1, k - 1)
        ok = (i + 1 < k) & (beta > 0) & (i + 1 < limit)
        V = jnp.where(ok, V.at[:, nxt].set(w / jnp.where(beta > 0, beta, 1.0)), V)
        PV = jnp.where(ok, PV.at[:, nxt].set(Pw / jnp.where(beta > 0, beta, 1.0)), PV)
        # Past `limit` the step is an identity one: M = T^{-1} - I gets a zero block.
        alphas = alphas.at[i].set(jnp.where(i < limit, alpha, 1.0))
        return V, PV, alphas, betas.at[i].set(jnp.where(i + 1 < limit, beta, 0.0))

    V, PV, alphas, betas = jax.lax.fori_loop(0, k, body, (V, PV, alphas, betas))
    T = jnp.diag(alphas) + jnp.diag(betas[:-1], 1) + jnp.diag(betas[:-1], -1)
    M = jnp.linalg.inv(T) - jnp.eye(k, dtype=dt)
    return LoveCache(V=V, M=0.5 * (M + M.T))
