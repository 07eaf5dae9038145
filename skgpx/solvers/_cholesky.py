"""Dense Cholesky factorisation with adaptive jitter, and the Gaussian log-density terms.

* :func:`jittered_cholesky` factorises ``A`` as is and, only if that fails (JAX
  returns a NaN factor for a matrix that is not numerically positive definite),
  retries with ``A + jitter * I`` for ``jitter = start * mean(diag(A)) * 10**k``
  up to a limit, inside a ``lax.while_loop`` (jittable; the loop body never runs
  when the first factorisation succeeds). It reports the jitter it used.
* :func:`cholesky_quad_logdet` evaluates ``-1/2 tr(Y^T A^{-1} Y) - t/2 log|A|`` with
  a hand-written reverse-mode rule (Rasmussen & Williams 2006, Eq. 5.9):
  ``d/dA = 1/2 (alpha alpha^T - t A^{-1})`` with ``alpha = A^{-1} Y``. This is one
  Cholesky forward and one :func:`cho_inverse` backward - cheaper
  than differentiating through the factorisation, and it keeps the jitter search
  (a while loop, which JAX cannot reverse-differentiate) out of the autodiff path.

Solves use ``jax.scipy.linalg.cho_solve`` / ``solve_triangular`` (LAPACK ``potrs`` /
``trsm`` on CPU, cuSOLVER / cuBLAS on GPU).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve as _cho_solve, solve_triangular

from ._formulas import gaussian_log_likelihood, jitter_schedule

__all__ = [
    "CholeskyResult",
    "jittered_cholesky",
    "cho_solve",
    "solve_lower",
    "cholesky_quad_logdet",
    "cho_inverse",
    "jitter_schedule",
    "check_jitter_policy",
    "gaussian_log_likelihood",
]

class CholeskyResult(NamedTuple):
    """Lower factor ``L`` of ``A + jitter * I``; ``ok`` is False when every attempt failed."""

    L: jax.Array
    jitter: jax.Array
    ok: jax.Array


def _cholesky(A):
    # Lower triangle only: jnp.linalg.cholesky first symmetrises, one more n x n pass.
    return jax.lax.linalg.cholesky(A, symmetrize_input=False)


def _add_diagonal(A, j, mask=None):
    # A + j I without an n x n identity (XLA materialises constants hoisted out of a cond);
    # padded rows (mask False) keep their identity diagonal.
    if mask is not None:
        j = jnp.where(mask, j, jnp.zeros((), A.dtype))
    return A.at[jnp.diag_indices(A.shape[0])].add(j)


def _failed(L):
    # A failed factorisation is all-NaN in JAX; checking the diagonal is O(n).
    return ~jnp.all(jnp.isfinite(jnp.diagonal(L)))


def jittered_cholesky(A, jitter="auto", mask=None) -> CholeskyResult:
    """Cholesky factor of ``A`` with the jitter policy of the estimators.

    **Arguments:**

    - `A`: symmetric ``(n, n)`` matrix, or a function of no arguments that returns it.
      With a function, the first factorisation may overwrite the matrix in place (LAPACK
      ``potrf`` does) and a retry rebuilds it, instead of a copy being kept for retries
      that rarely happen (a Gram matrix is cheaper to recompute than to copy).
    - `jitter`: ``"auto"`` (try as is, then the adaptive schedule of
      :func:`jitter_schedule`), ``None`` (as is, no retries: what an optimiser's
      evaluation on the CPU tries first, see :mod:`skgpx.gp._exact_lapack`), or a number:
      that absolute jitter is always added (``0.0`` reproduces scikit-learn, which
      never adds any).
    - `mask`: ``None`` or a boolean ``(n,)`` flagging real rows of a padded ``A`` (padded
      rows and columns are an identity block): jitter is scaled by and added to real rows
      only, so the real block's factor is the unpadded one.

    Only the lower triangle of ``A`` is read, as LAPACK ``potrf`` and scikit-learn do.

    **Returns:** a :class:`CholeskyResult` ``(L, jitter, ok)``. Not differentiable
    through the retries; use :func:`cholesky_quad_logdet` for gradients.
    """
    make = A if callable(A) else (lambda: A)
    A = make()
    if jitter is None:
        L = _cholesky(A)
        return CholeskyResult(L, jnp.zeros((), A.dtype), ~_failed(L))
    if not (isinstance(jitter, str) and jitter == "auto"):
        j = jnp.asarray(jitter, A.dtype)
        L = _cholesky(_add_diagonal(A, j, mask))
        return CholeskyResult(L, j, ~_failed(L))

    start, growth, n_tries = jitter_schedule(A.dtype)
    L0 = _cholesky(A)

    def retry(_):
        A = make()
        diag = jnp.diagonal(A)
        scale = jnp.mean(diag) if mask is None else jnp.sum(jnp.where(mask, diag, 0.0)) / jnp.sum(mask)
        scale = jnp.where(scale > 0, scale, 1.0)

        def cond(state):
            i, L, _ = state
            return _failed(L) & (i < n_tries)

        def attempt(i):
            j = start * scale * growth**i
            return i + 1, _cholesky(_add_diagonal(A, j, mask)), j

        def body(state):
            return attempt(state[0])

        # The loop starts from the first retry, not from a NaN-filled matrix (XLA would
        # fill that n x n constant on every call, retry or not).
        _, L, j = jax.lax.while_loop(cond, body, attempt(0))
        return L, j

    # The retry loop sits behind a cond: when the first factorisation succeeds (the usual
    # case) the n x n factor is not threaded through a while loop (an n x n copy saved).
    L, j = jax.lax.cond(_failed(L0), retry, lambda _: (L0, jnp.zeros((), A.dtype)), None)
    return CholeskyResult(L, j, ~_failed(L))


def cho_solve(L, B):
    """``(L L^T)^{-1} B`` for a lower Cholesky factor ``L``."""
    return _cho_solve((L, True), B)


# Blocks at most this large are inverted by two triangular solves with the identity.
_INVERSE_LEAF = 128
# Matrices at most this large are inverted whole by those solves: the recursion's many small
# blocks compile for seconds and, at this size on a CPU, do not run faster.
_INVERSE_DIRECT_MAX = 1024


def cho_inverse(L):
    """``(L L^T)^{-1}`` for a lower Cholesky factor ``L``, by recursive 2 x 2 blocking.

    ``cho_solve(L, I)`` costs ``2 n^3`` flops (two triangular solves with ``n``
    right-hand sides, blind to the zeros of ``I``); LAPACK ``potri`` needs
    ``2/3 n^3`` but XLA has no such kernel. Splitting ``L = [[A, 0], [B, C]]``:

        (L L^T)^{-1} = [[A^-T A^-1 + V^T W V, -(W V)^T], [-W V, W]]

    with ``V = B A^{-1}`` and ``W = (C C^T)^{-1}`` (recursively, as is ``A^-T A^-1``):
    about ``5/6 n^3`` flops, mostly in GEMMs, written block by block into one output
    buffer (timings against ``cho_solve(L, I)``: docs/performance.md); agreement ~1e-15
    relative. Up to ``_INVERSE_DIRECT_MAX`` rows it is ``cho_solve(L, I)``. Works under ``vmap``.
    """
    n = L.shape[0]
    if n <= _INVERSE_DIRECT_MAX:
        return cho_solve(L, jnp.eye(n, dtype=L.dtype))

    def fill(out, o, size):
        # Writes (L[o:o+size, o:o+size] L[...]^T)^{-1} into the same block of `out`.
        if size <= _INVERSE_LEAF:
            block = L[o : o + size, o : o + size]
            return out.at[o : o + size, o : o + size].set(cho_solve(block, jnp.eye(size, dtype=L.dtype)))
        m = size // 2
        out = fill(fill(out, o, m), o + m, size - m)
        A, B = L[o : o + m, o : o + m], L[o + m : o + size, o : o + m]
        V = jax.lax.linalg.triangular_solve(A, B, left_side=False, lower=True)  # B A^{-1}
        WV = out[o + m : o + size, o + m : o + size] @ V
        out = out.at[o + m : o + size, o : o + m].set(-WV)
        out = out.at[o : o + m, o + m : o + size].set(-WV.T)
        return out.at[o : o + m, o : o + m].add(V.T @ WV)

    return fill(jnp.zeros_like(L), 0, n)


def solve_lower(L, B):
    """``L^{-1} B`` for lower-triangular ``L``."""
    return solve_triangular(L, B, lower=True)


def cholesky_quad_logdet(A, Y, jitter="auto", mask=None):
    """``(-1/2 sum(Y * A^{-1} Y) - t/2 log|A|, jitter_used)`` for ``Y`` of shape ``(n, t)``.

    Differentiable in ``A`` and ``Y`` (custom VJP, Eq. 5.9 of Rasmussen & Williams);
    the jitter found by :func:`jittered_cholesky` is treated as a constant. A NaN
    value signals that the factorisation failed even with the largest jitter.
    ``mask``: as :func:`jittered_cholesky` (padded rows: identity block, zero ``Y``).
    """
    return _quad_logdet(A, Y, None if mask is None else jnp.asarray(mask, A.dtype), jitter)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _quad_logdet(A, Y, weights, jitter):
    value, jit, _ = _quad_logdet_fwd_core(A, Y, weights, jitter)
    return value, jit


def _quad_logdet_fwd_core(A, Y, weights, jitter):
    L, jit, _ = jittered_cholesky(A, jitter, None if weights is None else weights > 0)
    alpha = cho_solve(L, Y)
    t = Y.shape[1]
    # RW Alg. 2.1 line 7: -1/2 y^T alpha - sum(log diag L), summed over the t targets.
    value = -0.5 * jnp.sum(Y * alpha) - t * jnp.sum(jnp.log(jnp.diagonal(L)))
    return value, jit, (L, alpha)


def _fwd(A, Y, weights, jitter):
    value, jit, res = _quad_logdet_fwd_core(A, Y, weights, jitter)
    return (value, jit), (res, weights)


def _bwd(jitter, res, cotangents):
    g, _ = cotangents
    (L, alpha), weights = res
    t = alpha.shape[1]
    # RW Eq. 5.9: d/dA [-1/2 y^T A^{-1} y - 1/2 log|A|] = 1/2 (alpha alpha^T - A^{-1}), per target.
    # (LAPACK potri through a host callback is cheaper alone, but with two processes on two
    # cores its threads fight XLA's; rejected, see docs/performance.md.)
    A_inv = cho_inverse(L)
    A_bar = 0.5 * g * (alpha @ alpha.T - t * A_inv)
    return A_bar, -g * alpha, None if weights is None else jnp.zeros_like(weights)


_quad_logdet.defvjp(_fwd, _bwd)


def check_jitter_policy(jitter):
    """Raise unless ``jitter`` is a policy :func:`jittered_cholesky` takes: ``"auto"``, a number >= 0 or None."""
    number = isinstance(jitter, (int, float, np.integer, np.floating)) and not isinstance(jitter, bool)
    if not (jitter is None or (isinstance(jitter, str) and jitter == "auto") or (number and jitter >= 0)):
        raise ValueError(f"`jitter` must be 'auto', a number >= 0 or None, got {jitter!r}.")
