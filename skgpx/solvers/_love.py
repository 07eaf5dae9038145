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

from .. import _progress

from ._matmul import t_matmul

__all__ = ["LoveCache", "love_cache", "lanczos_checked", "tridiagonal_solve"]

# beta_i <= _BREAKDOWN * |alpha_i| ends the Lanczos recurrence (an invariant Krylov space).
_BREAKDOWN = 1e-12


class LoveCache(eqx.Module):
    """``A^{-1} ~ P^{-1} + V M V^T`` with ``M = T^{-1} - I``."""

    V: jax.Array  # (n, k)
    M: jax.Array  # (k, k)

    def quad(self, Ks, precond_solve: Callable):
        """``diag(Ks^T A^{-1} Ks)`` (approximate) for ``Ks`` of shape ``(n, m)``."""
        base = jnp.sum(Ks * precond_solve(Ks), axis=0)
        W = t_matmul(self.V, Ks)
        return base + jnp.sum(W * (self.M @ W), axis=0)


def _tridiagonal(alphas, betas, steps):
    """The Lanczos matrix of the first ``steps`` steps, padded to full size with the identity
    (``alphas``, ``betas`` ``(k,)``; ``betas[i]`` couples steps ``i`` and ``i + 1``)."""
    k = alphas.shape[0]
    idx = jnp.arange(k)
    d = jnp.where(idx < steps, alphas, 1.0)
    e = jnp.where(idx + 1 < steps, betas, 0.0)[:-1]
    return d, e


def _lanczos(matmul, precond_solve, precond_mm, start, rank, check=None, check_every=None, size=None):
    """``rank`` steps of Lanczos on ``P^{-1} A`` in the ``P`` inner product (``precond_solve``
    and ``precond_mm`` ``None``: ``P = I``, and no copy ``P V`` is kept). With ``check``
    (``check(V, d, e) -> error``, the padded Lanczos matrix's diagonal ``d`` and
    off-diagonal ``e``), the loop stops at the first multiple of ``check_every`` steps where
    ``error <= 0``. ``size`` (``None`` or a traced int): the dimension of the space ``start``
    lives in when ``A`` and ``P`` are padded with a decoupled identity block (``start`` zero
    there): no step goes past it, as in the unpadded recurrence of ``min(rank, size)`` steps.
    **Returns:** ``(V, d, e, steps, error)``."""
    n = start.shape[0]
    k = int(min(rank, n))
    dt = start.dtype
    plain = precond_solve is None
    psolve = (lambda V: V) if plain else precond_solve
    pmm = (lambda V: V) if plain else precond_mm
    v0 = start / jnp.sqrt(start @ pmm(start[:, None])[:, 0])
    V = jnp.zeros((n, k), dt).at[:, 0].set(v0)
    PV = None if plain else jnp.zeros((n, k), dt).at[:, 0].set(pmm(v0[:, None])[:, 0])
    alphas = jnp.zeros((k,), dt)
    betas = jnp.zeros((k,), dt)
    limit = k if size is None else size

    def step(i, V, PV, alphas, betas):
        v = V[:, i]
        Av = matmul(v[:, None])[:, 0]
        alpha = v @ Av
        w = psolve(Av[:, None])[:, 0]
        # Full reorthogonalisation against all previous vectors in the P inner product
        # (twice is enough: Giraud et al. 2005); this also removes alpha v + beta v_prev.
        PVi = V if plain else PV
        for _ in range(2):
            w = w - V @ (w @ PVi)
        Pw = pmm(w[:, None])[:, 0]
        beta = jnp.sqrt(jnp.maximum(w @ Pw, 0.0))
        nxt = jnp.minimum(i + 1, k - 1)
        # A beta at rounding level relative to alpha is a breakdown (the Krylov space is
        # invariant): continuing would normalise noise, and T would stop being V^T A V.
        live = beta > _BREAKDOWN * jnp.abs(alpha)
        ok = (i + 1 < k) & live & (i + 1 < limit)
        scale = jnp.where(live, beta, 1.0)
        V = jnp.where(ok, V.at[:, nxt].set(w / scale), V)
        if not plain:
            PV = jnp.where(ok, PV.at[:, nxt].set(Pw / scale), PV)
        return V, PV, alphas.at[i].set(alpha), betas.at[i].set(jnp.where(ok, beta, 0.0))

    if check is None:
        def body(i, c):
            return step(i, *c)

        V, PV, alphas, betas = jax.lax.fori_loop(0, k, body, (V, PV, alphas, betas))
        steps = jnp.sum(jnp.any(V != 0, axis=0))  # fewer than k after a breakdown
        d, e = _tridiagonal(alphas, betas, steps)
        return V, d, e, steps, jnp.asarray(jnp.nan, dt)

    every = int(max(1, min(check_every, k)))

    def cond(c):
        i, _, _, _, _, err = c
        return (i < k) & ~(err <= 0)

    def wbody(c):
        i, V, PV, alphas, betas, err = c
        V, PV, alphas, betas = step(i, V, PV, alphas, betas)
        i = i + 1
        # A breakdown (beta = 0: the Krylov space is invariant) ends the recurrence exactly.
        done = (i == k) | (betas[i - 1] == 0)
        at = (i % every == 0) | done
        err = jax.lax.cond(at, lambda: check(V * (jnp.arange(k) < i), *_tridiagonal(alphas, betas, i)),
                           lambda: err)
        _progress.iteration("LOVE", n, i, err, done | (err <= 0), unit="Lanczos steps",
                            what="check error minus its tolerance (met at <= 0)", every=every)
        return jnp.where(done, k, i), V, PV, alphas, betas, err

    steps_err = (jnp.asarray(0), V, PV, alphas, betas, jnp.asarray(jnp.inf, dt))
    i, V, PV, alphas, betas, err = jax.lax.while_loop(cond, wbody, steps_err)
    steps = jnp.sum(jnp.any(V != 0, axis=0))  # vectors built (a breakdown stops early)
    steps = jnp.minimum(steps, jnp.where(i < k, i, k))
    V = V * (jnp.arange(k) < steps)
    d, e = _tridiagonal(alphas, betas, steps)
    return V, d, e, steps, err


def tridiagonal_solve(d, e, B):
    """``T^{-1} B`` for the symmetric tridiagonal ``T`` (diagonal ``d``, off-diagonal ``e``)."""
    dl = jnp.concatenate([jnp.zeros((1,), d.dtype), e])
    du = jnp.concatenate([e, jnp.zeros((1,), d.dtype)])
    return jax.lax.linalg.tridiagonal_solve(dl, d, du, B)


def love_cache(matmul: Callable, precond_solve: Callable, precond_mm: Callable, start, rank: int,
               size=None) -> LoveCache:
    """``rank`` steps of Lanczos on ``P^{-1} A`` in the ``P`` inner product, from ``start``.

    **Arguments:** ``matmul`` (``A @ V``), ``precond_solve`` (``P^{-1} V``), ``precond_mm``
    (``P @ V``), all on ``(n, k)`` blocks; ``start`` ``(n,)``; ``rank`` (static); ``size``
    (``None`` or a traced int): the dimension of the space ``start`` lives in when ``A`` and
    ``P`` are padded with a decoupled identity block (``start`` zero there): steps past it add
    zero columns of ``V`` and nothing to ``M``, as the unpadded cache of ``min(rank, size)``.
    """
    V, d, e, _, _ = _lanczos(matmul, precond_solve, precond_mm, start, rank, size=size)
    T = jnp.diag(d) + jnp.diag(e, 1) + jnp.diag(e, -1)
    M = jnp.linalg.inv(T) - jnp.eye(T.shape[0], dtype=T.dtype)
    return LoveCache(V=V, M=0.5 * (M + M.T))


def lanczos_checked(matmul: Callable, start, max_rank: int, check: Callable, check_every: int):
    """Plain Lanczos on ``A`` (full reorthogonalisation) from ``start``, stopped at the first
    multiple of ``check_every`` steps where the caller's measured error is met.

    ``check(V, d, e)`` gets the basis so far ``V`` ``(n, max_rank)`` (columns not built yet
    are zero) and the Lanczos matrix ``T`` so far as diagonal ``d`` and off-diagonal ``e``,
    padded with the identity (so :func:`tridiagonal_solve` applies ``V T^{-1} V^T`` over the
    built columns); it returns ``error - tolerance`` (stop when ``<= 0``).

    **Returns:** ``(V, d, e, steps, error)``: ``V T^{-1} V^T`` approximates ``A^{-1}``
    (plain LOVE), ``steps`` the Lanczos steps taken, ``error`` the last value of ``check``.
    """
    return _lanczos(matmul, None, None, start, max_rank, check, check_every)
