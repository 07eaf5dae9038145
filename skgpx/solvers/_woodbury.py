"""Woodbury solves and the determinant lemma for ``C = Phi Phi^T + D`` (``D`` diagonal).

With the ``r x r`` capacitance matrix ``A = I + Phi^T D^{-1} Phi = L L^T``:

* Woodbury identity: ``C^{-1} R = D^{-1} R - D^{-1} Phi A^{-1} Phi^T D^{-1} R``;
* matrix determinant lemma: ``log|C| = log|A| + sum(log d) = 2 sum(log diag L) + sum(log d)``;
* quadratic form: ``y^T C^{-1} y = y^T D^{-1} y - |L^{-1} Phi^T D^{-1} y|^2``.

``A`` has eigenvalues ``>= 1``, so its Cholesky factorisation needs no jitter.
Costs: one pass over the rows for ``Phi^T D^{-1} Phi`` (``O(n r^2)``), then
``O(r^3)``; memory ``O(r^2 + batch * r)``. The same formulas give the weight-space
posterior of the feature model ``f = Phi w``, ``w ~ N(0, I)``: ``w | y ~ N(A^{-1} Phi^T D^{-1} y, A^{-1})``.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
from jax.scipy.linalg import solve_triangular

from ..operators import LowRankPlusDiagonal, capacitance_pass, feature_gram
from ._cholesky import gaussian_log_likelihood

__all__ = [
    "WoodburyFactor", "woodbury_factor", "woodbury_solve", "woodbury_quad_logdet", "gaussian_lml", "gaussian_lml_value",
    "Woodbury",
    "capacitance_cholesky", "lemma_logdet", "woodbury_apply", "woodbury_inv_quad",
]


# -- the formulas, once: every low-rank-plus-diagonal matrix in skgpx uses these -----------
def capacitance_cholesky(G):
    """Lower factor ``L`` of the capacitance matrix ``A = I + G``, ``G = Phi^T D^{-1} Phi``
    (symmetrised first: ``G`` is accumulated in pieces)."""
    r = G.shape[0]
    return jnp.linalg.cholesky(jnp.eye(r, dtype=G.dtype) + 0.5 * (G + G.T))


def lemma_logdet(chol, d):
    """``log|Phi Phi^T + diag(d)| = log|A| + sum(log d)`` (matrix determinant lemma)."""
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol))) + jnp.sum(jnp.log(d))


def woodbury_apply(chol, d, V, phi_t, phi):
    """``(Phi Phi^T + diag(d))^{-1} V`` for ``V`` ``(n, k)`` by the Woodbury identity.

    ``phi_t(W) = Phi^T W`` and ``phi(U) = Phi U`` are the two products with the factor
    (explicit, or computed from features a batch of rows at a time).
    """
    W = V / d[:, None]
    return W - phi(jax.scipy.linalg.cho_solve((chol, True), phi_t(W))) / d[:, None]


def woodbury_inv_quad(chol, d, V, B):
    """``sum over columns of v^T (Phi Phi^T + diag(d))^{-1} v`` given ``B = Phi^T D^{-1} V``."""
    W = solve_triangular(chol, B, lower=True)
    return jnp.sum(V * V / d[:, None]) - jnp.sum(W * W)


class WoodburyFactor(eqx.Module):
    """Factorisation of a :class:`LowRankPlusDiagonal` operator: ``chol`` is lower, ``L L^T = A``."""

    operator: LowRankPlusDiagonal
    chol: jax.Array

    def logdet(self):
        """``log|Phi Phi^T + D|`` by the determinant lemma."""
        return lemma_logdet(self.chol, self.operator.diagonal)

    def solve_capacitance(self, B):
        """``A^{-1} B`` for ``B`` of shape ``(r, k)``."""
        return jax.scipy.linalg.cho_solve((self.chol, True), B)


def woodbury_factor(operator: LowRankPlusDiagonal) -> WoodburyFactor:
    """Form ``A = I + Phi^T D^{-1} Phi`` in one pass over the rows and factorise it."""
    d = operator.diagonal
    G, _ = feature_gram(operator.features, operator.X, 1.0 / d, jnp.zeros((d.shape[0], 1), d.dtype), operator.batch_size)
    return WoodburyFactor(operator, capacitance_cholesky(G))


def woodbury_solve(factor: WoodburyFactor, R):
    """``C^{-1} R`` for ``R`` of shape ``(n, k)`` (Woodbury identity, two passes over the rows)."""
    op = factor.operator
    return woodbury_apply(factor.chol, op.diagonal, R, op.rmatmul_features, op.matmul_features)


def woodbury_quad_logdet(operator: LowRankPlusDiagonal, Y, prior_diag=None):
    """``-1/2 tr(Y^T C^{-1} Y) - t/2 log|C|`` in one pass over the rows (differentiable).

    With ``prior_diag`` the operator's diagonal is first increased by the FITC
    residual ``max(prior_diag - |phi(x)|^2, 0)`` (same pass, see
    :func:`skgpx.operators._lowrank.capacitance_pass`).

    **Returns:** ``(value, (chol, B, d))`` with ``chol`` the capacitance factor,
    ``B = Phi^T D^{-1} Y`` (so a caller can form the weight-space posterior mean
    ``A^{-1} B`` without another pass) and ``d`` the diagonal used.
    """
    quad, logdet, aux = _quad_and_logdet(operator, Y, prior_diag)
    return -0.5 * quad - 0.5 * Y.shape[1] * logdet, aux


def _quad_and_logdet(operator, Y, prior_diag, mask=None):
    G, B, d = capacitance_pass(operator.features, operator.X, operator.diagonal, Y, operator.batch_size, prior_diag,
                               mask)
    L = capacitance_cholesky(G)
    return woodbury_inv_quad(L, d, Y, B), lemma_logdet(L, d), (L, B, d)


def gaussian_lml(operator: LowRankPlusDiagonal, Y, prior_diag=None, mask=None):
    """``log N(Y | 0, C)`` summed over the columns of ``Y`` (see :func:`woodbury_quad_logdet`).

    ``mask`` (``None`` or boolean ``(n,)``): real rows of a padded set (zero ``Y`` elsewhere);
    padded rows are an identity block (:func:`~skgpx.operators.capacitance_pass`), not counted
    in ``n``, and have ``d = 1`` in the returned diagonal."""
    quad, logdet, aux = _quad_and_logdet(operator, Y, prior_diag, mask)
    t = Y.shape[1]
    n = Y.shape[0] if mask is None else jnp.sum(mask)
    return gaussian_log_likelihood(quad, logdet, n, t), aux


def gaussian_lml_value(operator: LowRankPlusDiagonal, Y, prior_diag=None, mask=None):
    """The value of :func:`gaussian_lml` alone, from whichever side of ``C`` is smaller.

    With fewer rows ``n`` than features ``r`` (random features on a small training set) the
    ``n x n`` matrix ``C = Phi Phi^T + D`` itself is formed and factorised (``O(n^2 r + n^3)``)
    instead of the ``r x r`` capacitance matrix (``O(n r^2 + r^3)``): the same model and number.
    Padded rows (``mask``) and the FITC residual (``prior_diag``) as in :func:`gaussian_lml`.
    """
    n = Y.shape[0]
    if n >= operator.n_features:
        return gaussian_lml(operator, Y, prior_diag, mask)[0]
    P = operator.features(operator.X)  # (n, r): no larger than the capacitance matrix it replaces
    d = operator.diagonal
    if prior_diag is not None:
        d = d + jnp.maximum(prior_diag - jnp.sum(P * P, axis=1), 0.0)
    if mask is not None:  # padded rows: zero features, unit diagonal (an identity block)
        P = jnp.where(mask[:, None], P, 0.0)
        d = jnp.where(mask, d, 1.0)
    L = jnp.linalg.cholesky(P @ P.T + jnp.diag(d))
    W = solve_triangular(L, Y, lower=True)
    quad, logdet = jnp.sum(W * W), 2.0 * jnp.sum(jnp.log(jnp.diagonal(L)))
    return gaussian_log_likelihood(quad, logdet, n if mask is None else jnp.sum(mask), Y.shape[1])


class Woodbury(lx.AbstractLinearSolver):
    """lineax solver for :class:`~skgpx.operators.LowRankPlusDiagonal`: ``lx.linear_solve(op, b, Woodbury())``."""

    def init(self, operator, options: dict[str, Any]):
        del options
        if not isinstance(operator, LowRankPlusDiagonal):
            raise ValueError(
                "`Woodbury()` solves `skgpx.operators.LowRankPlusDiagonal` operators only, got "
                f"{type(operator).__name__}; use `lineax.Cholesky()` or CG for other operators."
            )
        return woodbury_factor(operator)

    def compute(self, state, vector, options):
        del options
        return woodbury_solve(state, vector[:, None])[:, 0], lx.RESULTS.successful, {}

    def transpose(self, state, options):
        return state, options  # symmetric

    def conj(self, state, options):
        return state, options  # real symmetric

    def assume_full_rank(self):
        return True
