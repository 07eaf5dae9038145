"""Preconditioned conjugate gradients for SPD systems with a block of right-hand sides.

Each column of ``B`` runs its own CG recurrence (Hestenes & Stiefel 1952; the
preconditioned form is Saad, *Iterative Methods*, Alg. 9.1) but all columns share
each product with the operator, so one tile sweep of a matrix-free kernel serves
``k`` right-hand sides.

Stopping rule (decided here, documented): column ``j`` has converged when
``||r_j||_2 <= tol * ||b_j||_2`` (relative residual in the Euclidean norm; a zero
column is converged at ``x_j = 0``). The loop stops when every column has converged
or after ``max_iter`` iterations. lineax's CG uses an element-wise test
``|r_i| <= atol + rtol |b_i|`` instead, which is stricter in an ill-defined way and
can be unreachable when some ``b_i ~ 0``; hence this solver.

The CG coefficients of the first ``record`` iterations are kept: they define the
Lanczos tridiagonal matrix of the preconditioned operator (see ``_slq.py``), which
gives stochastic Lanczos quadrature for free on probe columns (Gardner et al. 2018, mBCG).
"""

from __future__ import annotations

from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import _progress

__all__ = ["PCGResult", "pcg"]


class PCGResult(eqx.Module):
    """Solution and what the solver did."""

    x: jax.Array  # (n, k)
    iterations: jax.Array  # int: operator products performed
    relative_residual: jax.Array  # (k,) ||r_j|| / ||b_j|| (recursive residual)
    converged: jax.Array  # bool: all columns met the tolerance
    alphas: jax.Array  # (record, k) step lengths alpha_i
    betas: jax.Array  # (record, k) beta_i
    n_steps: jax.Array  # (k,) recorded iterations per column (<= record)


def _safe_div(a, b):
    ok = b != 0
    return jnp.where(ok, a / jnp.where(ok, b, 1.0), 0.0)


def pcg(
    matmul: Callable,
    B,
    precond: Callable | None = None,
    *,
    tol: float = 1e-6,
    max_iter: int = 1000,
    record: int = 0,
    label: str | None = "CG",
) -> PCGResult:
    """Solve ``A X = B`` for SPD ``A`` given as ``matmul(V) = A @ V`` (``V`` of shape ``(n, k)``).

    **Arguments:**

    - ``matmul``: ``(n, k) -> (n, k)`` product with ``A``.
    - ``B``: right-hand sides ``(n, k)``.
    - ``precond``: ``(n, k) -> (n, k)`` product with ``P^{-1}`` (``None``: identity).
    - ``tol``: relative residual ``||r_j|| / ||b_j||`` to reach in every column.
    - ``max_iter``: iteration cap.
    - ``record``: keep the CG coefficients of the first ``record`` iterations.
    - ``label``: name of the solve in progress lines (:mod:`skgpx._progress`: printed only
      once it has run for a few seconds, on systems of ``_progress.MIN_ROWS`` rows or more);
      ``None``: never.

    **Returns:** a :class:`PCGResult`.
    """
    precond = (lambda V: V) if precond is None else precond
    n, k = B.shape
    dt = B.dtype
    bnorm = jnp.linalg.norm(B, axis=0)
    thresh = tol * bnorm
    X = jnp.zeros_like(B)
    R = B
    Z = precond(R)
    P = Z
    rz = jnp.sum(R * Z, axis=0)
    rec = max(int(record), 1)
    alphas = jnp.zeros((rec, k), dt)
    betas = jnp.zeros((rec, k), dt)
    n_steps = jnp.zeros((k,), jnp.int32)

    def active_of(R):
        return jnp.linalg.norm(R, axis=0) > thresh

    def cond(c):
        it, X, R, P, rz, alphas, betas, n_steps = c
        return (it < max_iter) & jnp.any(active_of(R))

    def body(c):
        it, X, R, P, rz, alphas, betas, n_steps = c
        active = active_of(R)
        Q = matmul(P)
        alpha = jnp.where(active, _safe_div(rz, jnp.sum(P * Q, axis=0)), 0.0)
        X = X + alpha * P
        R = R - alpha * Q
        Z = precond(R)
        rz_new = jnp.sum(R * Z, axis=0)
        beta = jnp.where(active, _safe_div(rz_new, rz), 0.0)
        P = jnp.where(active, Z + beta * P, P)
        rz = jnp.where(active, rz_new, rz)
        if record:
            idx = jnp.minimum(it, rec - 1)
            keep = active & (it < rec)
            alphas = alphas.at[idx].set(jnp.where(keep, alpha, alphas[idx]))
            betas = betas.at[idx].set(jnp.where(keep, beta, betas[idx]))
            n_steps = n_steps + keep.astype(jnp.int32)
        if label is not None:
            rnorm = jnp.linalg.norm(R, axis=0)
            last = (it + 1 >= max_iter) | ~jnp.any(rnorm > thresh)
            _progress.iteration(label, n, it + 1, jnp.max(_safe_div(rnorm, bnorm)), last, target=tol)
        return it + 1, X, R, P, rz, alphas, betas, n_steps

    init = (jnp.asarray(0), X, R, P, rz, alphas, betas, n_steps)
    it, X, R, P, rz, alphas, betas, n_steps = jax.lax.while_loop(cond, body, init)
    rnorm = jnp.linalg.norm(R, axis=0)
    relres = _safe_div(rnorm, bnorm)
    return PCGResult(
        x=X,
        iterations=it,
        relative_residual=relres,
        converged=jnp.all(rnorm <= thresh),
        alphas=alphas,
        betas=betas,
        n_steps=n_steps,
    )
