"""Low-rank-plus-diagonal covariance operator ``C = Phi Phi^T + diag(d)``.

Random Fourier features and Nyström both approximate the kernel by an inner
product of ``r`` features, ``k(x, x') ~ phi(x) . phi(x')``, so the noisy Gram
matrix becomes ``Phi Phi^T + diag(d)`` with ``Phi = phi(X)`` of shape ``(n, r)`` and
``d`` the observation noise plus any ``White`` term. The operator stores the
feature map and the inputs, not ``Phi``: products with ``Phi`` and ``Phi^T`` are
formed in row batches (``lax.scan`` / ``lax.map`` over blocks of ``batch_size`` rows),
so memory is ``O(batch_size * r)`` beyond the inputs, and with ``jax.checkpoint``
on each batch the reverse pass is bounded the same way. Woodbury solves and the
determinant lemma live in :mod:`skgpx.solvers._woodbury`.
"""

from __future__ import annotations

import math
from typing import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx

__all__ = ["LowRankPlusDiagonal", "map_feature_rows", "feature_gram", "capacitance_pass", "auto_batch_size"]

# Entries of one (batch, r) feature block: 2^21 float64 = 16 MiB.
_BLOCK_ELEMENTS = 2**21


def auto_batch_size(n_rows: int, n_features: int) -> int:
    """Rows per batch so that one ``(batch, n_features)`` block holds about 2M entries."""
    return int(min(max(64, _BLOCK_ELEMENTS // max(n_features, 1)), max(n_rows, 1)))


def _blocks(X, batch_size, *arrays):
    """Pad rows to a multiple of ``batch_size`` and reshape to ``(n_blocks, batch, ...)``.

    ``X`` is padded with copies of its first row (finite features); the other
    arrays with zeros, so padded rows contribute nothing to sums.
    """
    n = X.shape[0]
    nb = math.ceil(n / batch_size)
    pad = nb * batch_size - n
    out = []
    for i, A in enumerate((X,) + arrays):
        if pad:
            filler = jnp.broadcast_to(A[:1], (pad,) + A.shape[1:]) if i == 0 else jnp.zeros((pad,) + A.shape[1:], A.dtype)
            A = jnp.concatenate([A, filler], axis=0)
        out.append(A.reshape((nb, batch_size) + A.shape[1:]))
    return out


def map_feature_rows(features: Callable, X, fn: Callable, batch_size: int):
    """``concat_b fn(features(X_b), b)`` over row blocks ``X_b``: e.g. ``Phi @ W`` in ``O(batch * r)`` memory.

    ``fn(Phi_b, b)`` receives the feature block and the block index and returns
    an array with leading dimension ``batch_size``.
    """
    n = X.shape[0]
    if n <= batch_size:
        return fn(features(X), 0)
    (Xb,) = _blocks(X, batch_size)
    out = jax.lax.map(lambda a: fn(features(a[0]), a[1]), (Xb, jnp.arange(Xb.shape[0])))
    return out.reshape((-1,) + out.shape[2:])[:n]


def feature_gram(features: Callable, X, w, R, batch_size: int):
    """One pass over ``X``: ``(Phi^T diag(w) Phi, Phi^T R)`` with ``Phi = features(X)``.

    **Arguments:** ``w`` ``(n,)`` row weights or ``None`` (skip the Gram, return
    ``None`` for it), ``R`` ``(n, k)``.
    **Returns:** ``(r, r)`` and ``(r, k)`` arrays. Each block is checkpointed, so
    reverse-mode memory stays ``O(batch * r + r^2)`` plus the scan residuals.
    """
    n = X.shape[0]
    with_gram = w is not None
    w = jnp.zeros(X.shape[:1], R.dtype) if w is None else w

    def contrib(Xi, wi, Ri):
        P = features(Xi)
        G = (P * wi[:, None]).T @ P if with_gram else jnp.zeros((P.shape[1],) * 2, P.dtype)
        return G, P.T @ Ri

    if n <= batch_size:
        G, B = contrib(X, w, R)
        return (G if with_gram else None), B
    Xb, wb, Rb = _blocks(X, batch_size, w, R)
    contrib = jax.checkpoint(contrib)

    def step(carry, xs):
        G, B = contrib(*xs)
        return (carry[0] + G, carry[1] + B), None

    P0 = jax.eval_shape(features, Xb[0])
    r = P0.shape[1]
    init = (jnp.zeros((r, r), P0.dtype), jnp.zeros((r, R.shape[1]), P0.dtype))
    (G, B), _ = jax.lax.scan(step, init, (Xb, wb, Rb))
    return (G if with_gram else None), B


def capacitance_pass(features: Callable, X, diag, R, batch_size: int, prior_diag=None, row_mask=None):
    """One pass over ``X``: ``(Phi^T D^{-1} Phi, Phi^T D^{-1} R, d)`` for Woodbury.

    ``D = diag(d)`` with ``d = diag`` or, when ``prior_diag`` (the exact prior variances
    ``k(x, x)``) is given, ``d = diag + max(prior_diag - |phi(x)|^2, 0)``: the FITC
    diagonal correction, formed from the same feature block as the Gram so that it
    costs no extra pass over the data. ``row_mask`` (``None`` or boolean ``(n,)``): real
    rows of a padded ``X``; padded rows count as zero feature rows with ``d = 1`` (an
    identity block).
    """
    n = X.shape[0]
    mask = jnp.ones(X.shape[:1], diag.dtype) if row_mask is None else row_mask.astype(diag.dtype)
    pd = jnp.zeros_like(diag) if prior_diag is None else prior_diag

    def contrib(Xi, di, Ri, pi, mi):
        P = features(Xi)
        if prior_diag is not None:
            di = di + jnp.maximum(pi - jnp.sum(P * P, axis=1), 0.0)
        di = jnp.where(mi > 0, di, 1.0)  # padded rows: finite, weight zero below
        wi = mi / di
        return (P * wi[:, None]).T @ P, P.T @ (Ri * wi[:, None]), di

    if n <= batch_size:
        return contrib(X, diag, R, pd, mask)
    Xb, db, Rb, pb, mb = _blocks(X, batch_size, diag, R, pd, mask)
    contrib = jax.checkpoint(contrib)

    def step(carry, xs):
        G, B, d = contrib(*xs)
        return (carry[0] + G, carry[1] + B), d

    P0 = jax.eval_shape(features, Xb[0])
    r = P0.shape[1]
    init = (jnp.zeros((r, r), P0.dtype), jnp.zeros((r, R.shape[1]), P0.dtype))
    (G, B), d = jax.lax.scan(step, init, (Xb, db, Rb, pb, mb))
    return G, B, d.reshape(-1)[:n]


class LowRankPlusDiagonal(lx.AbstractLinearOperator):
    """``C = Phi Phi^T + diag(diagonal)`` with ``Phi = features(X)`` formed in row batches.

    **Fields:**

    - `features`: a callable module ``(b, d) -> (b, r)`` (random Fourier features,
      Nyström features...), traced hyperparameters inside.
    - `X`: ``(n, d)`` inputs.
    - `diagonal`: ``(n,)`` positive diagonal (noise plus ``White`` terms).
    - `batch_size`: rows per feature block (static).

    Symmetric positive definite (tags). ``as_matrix`` forms the dense ``(n, n)``
    matrix and is meant for tests and small problems only.
    """

    features: Callable
    X: jax.Array
    diagonal: jax.Array
    batch_size: int = eqx.field(static=True)

    @property
    def n_features(self) -> int:
        return jax.eval_shape(self.features, self.X[:1]).shape[1]

    def rmatmul_features(self, R):
        """``Phi^T R`` for ``R`` of shape ``(n, k)``."""
        _, B = feature_gram(self.features, self.X, None, R, self.batch_size)
        return B

    def matmul_features(self, W):
        """``Phi W`` for ``W`` of shape ``(r, k)``."""
        return map_feature_rows(self.features, self.X, lambda P, _: P @ W, self.batch_size)

    def mv(self, vector):
        v = vector[:, None]
        return (self.matmul_features(self.rmatmul_features(v)) + self.diagonal[:, None] * v)[:, 0]

    def as_matrix(self):
        P = self.features(self.X)
        return P @ P.T + jnp.diag(self.diagonal)

    def transpose(self):
        return self

    def in_structure(self):
        return jax.ShapeDtypeStruct(self.diagonal.shape, self.diagonal.dtype)

    def out_structure(self):
        return self.in_structure()


# -- lineax dispatch: structure flags of the new operator type ----------------------------
@lx.linearise.register(LowRankPlusDiagonal)
def _(operator):
    return operator


@lx.materialise.register(LowRankPlusDiagonal)
def _(operator):
    return operator


@lx.diagonal.register(LowRankPlusDiagonal)
def _(operator):
    sq = map_feature_rows(operator.features, operator.X, lambda P, _: jnp.sum(P * P, axis=1), operator.batch_size)
    return sq + operator.diagonal


@lx.tridiagonal.register(LowRankPlusDiagonal)
def _(operator):
    M = operator.as_matrix()
    return jnp.diagonal(M), jnp.diagonal(M, -1), jnp.diagonal(M, 1)


@lx.is_symmetric.register(LowRankPlusDiagonal)
@lx.is_positive_semidefinite.register(LowRankPlusDiagonal)
def _(operator):
    return True


@lx.is_diagonal.register(LowRankPlusDiagonal)
@lx.is_tridiagonal.register(LowRankPlusDiagonal)
@lx.has_unit_diagonal.register(LowRankPlusDiagonal)
@lx.is_lower_triangular.register(LowRankPlusDiagonal)
@lx.is_upper_triangular.register(LowRankPlusDiagonal)
@lx.is_negative_semidefinite.register(LowRankPlusDiagonal)
def _(operator):
    return False


@lx.conj.register(LowRankPlusDiagonal)
def _(operator):
    return operator
