"""Low-rank GP inference: random Fourier features (``solver="rff"``) and Nyström (``solver="nystrom"``).

Both replace the kernel by ``k~(x, x') = phi(x) . phi(x')`` plus its ``White``
part, and do *exact* GP inference for that approximate kernel: the noisy Gram
matrix is the :class:`~skgpx.operators.LowRankPlusDiagonal` operator
``Phi Phi^T + diag(noise + white)``, solved by Woodbury with the determinant
lemma (:mod:`skgpx.solvers._woodbury`). Equivalently the model is Bayesian
linear regression on the features, ``f = phi(x) . w``, ``w ~ N(0, I_r)``, whose
posterior is ``w | Y ~ N(A^{-1} Phi^T D^{-1} Y, A^{-1})`` with ``A = I + Phi^T D^{-1} Phi``
(Rasmussen & Williams 2006, Eq. 2.11 in weight space). Posterior mean, variance,
covariance, the log marginal likelihood and pathwise samples are all those of
this one approximate GP, so they are mutually consistent; they are NOT the exact
GP's (``diagnostics()`` reports the kernel approximation error).

Nyström additionally keeps the exact prior variance: its approximate kernel is
``phi(x) . phi(x') + [x = x'] (k(x, x) - |phi(x)|^2)``, the diagonal residual
acting like a heteroscedastic ``White`` term (FITC, Snelson & Ghahramani 2006;
Quiñonero-Candela & Rasmussen 2005, Eq. 23). It is still low rank plus diagonal,
and with all training points as landmarks it reproduces the exact posterior
(mean, variance and LML), also at new test points, which the plain
subset-of-regressors kernel ``phi . phi`` does not. For random Fourier features
``|phi(x)|^2 = k(x, x)`` exactly (sin/cos pairs), so the residual is zero and is
not computed.

Random features (``phi`` from :mod:`skgpx.kernels._spectral`): base frequencies
are drawn from ``key`` and rescaled by the traced length scales, so the LML is a
deterministic, differentiable function of the hyperparameters for a fixed key.

Nyström: ``phi(x) = L^{-1} k(Z, x)`` with ``L L^T = K(Z, Z) (+ jitter)`` for ``r``
landmarks ``Z`` chosen by

* ``"uniform"``: ``r`` training points without replacement;
* ``"kmeans++"``: k-means++ seeding (Arthur & Vassilvitskii 2007), ``D^2`` sampling in
  input space, independent of the hyperparameters;
* ``"rpcholesky"``: randomly pivoted Cholesky (Chen, Epperly, Tropp & Webber 2023,
  Alg. 1): pivots sampled proportionally to the diagonal of the residual kernel.
  Uses kernel values, so the landmarks depend on the hyperparameters (selected
  without gradient, with fixed uniforms from ``key`` so small changes of the
  hyperparameters rarely change them).

``kmeans++`` and ``rpcholesky`` run on a uniform pool of ``max(20 r, 20000)``
training points (all of them when ``n`` is smaller), which bounds their cost at
``O(pool * r^2)`` independently of ``n``. With ``r = n`` and ``"uniform"`` the
approximation is exact (up to the jitter), which the tests check.

Padded training sets (``mask=``, :mod:`skgpx.gp._fit`): padded rows have zero features
and a unit diagonal, landmarks are chosen among the real rows (every draw is per row, so
the real rows get the unpadded draws), and landmark slots past the real rows (``r`` is
``min(n_components, n)`` of the padded ``n``) are unused: zero features, an identity
block of ``K(Z, Z)``. A padded fit gives the unpadded one's numbers.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from ..kernels import RandomFourierFeatures, draw_random_fourier_features
from ..operators import LowRankPlusDiagonal, auto_batch_size, map_feature_rows
from ..solvers import (
    WoodburyFactor, check_jitter_policy, gaussian_lml, gaussian_lml_value, jittered_cholesky, pivot_column,
    sample_pivots, woodbury_solve,
)
from ._abstract import AbstractInference, AbstractPosterior
from ._fit import choose_rows, padded_training_data
from ._registry import register_solver

__all__ = [
    "LowRankPosterior",
    "RFF",
    "Nystrom",
    "RFFInference",
    "NystromInference",
    "NystromFeatures",
    "select_landmarks",
    "residual_diagonal",
]

_LANDMARK_METHODS = ("rpcholesky", "kmeans++", "uniform")


# -- White parts (``kernel.without_white()``, ``kernel.white_diagonal(X)``) ----------------------
def residual_diagonal(kernel, features, X, batch_size):
    """``max(k(x, x) - |phi(x)|^2, 0)`` for the White-free ``kernel``, in row batches."""
    sq = map_feature_rows(features, X, lambda P, _: jnp.sum(P * P, axis=1), batch_size)
    return jnp.maximum(kernel.diag(X) - sq, 0.0)


# -- Nyström -----------------------------------------------------------------------------------
class NystromFeatures(eqx.Module):
    """``phi(x) = L^{-1} k(Z, x)``: ``phi(X) phi(X)^T = K(X, Z) K(Z, Z)^{-1} K(Z, X)``."""

    kernel: object  # White-free kernel
    Z: jax.Array
    chol: jax.Array  # lower factor of K(Z, Z) + jitter I
    mask: jax.Array | None = None  # landmarks in use (None: all); unused ones give zero features

    def __call__(self, X):
        return solve_triangular(self.chol, self.kernel.cross(self.Z, X, self.mask), lower=True).T


def _kmeanspp(Xp, r, key, mask=None):
    k0, ku = jax.random.split(key)
    u = jax.random.uniform(ku, (r,), Xp.dtype)
    weight = jnp.ones(Xp.shape[:1], Xp.dtype) if mask is None else mask.astype(Xp.dtype)
    first = sample_pivots(weight, jax.random.uniform(k0, (), Xp.dtype))  # uniform over the real rows

    def step(i, state):
        idx, d2 = state
        d2 = jnp.minimum(d2, jnp.sum((Xp - Xp[idx[i - 1]]) ** 2, axis=1))
        return idx.at[i].set(sample_pivots(d2, u[i])), d2

    idx0 = jnp.zeros((r,), jnp.int64 if jax.config.jax_enable_x64 else jnp.int32).at[0].set(first)
    idx, _ = jax.lax.fori_loop(1, r, step, (idx0, jnp.where(weight > 0, jnp.inf, 0.0)))
    return idx


def _rpcholesky(kernel, Xp, r, key, mask=None):
    """Chen, Epperly, Tropp & Webber (2023), Alg. 1 on the pool ``Xp``: returns pivot indices
    (``mask``: pivots among the real rows; once they are exhausted the steps are void)."""
    u = jax.random.uniform(key, (r,), Xp.dtype)
    diag0 = kernel.diag(Xp) if mask is None else jnp.where(mask, kernel.diag(Xp), 0.0)

    def step(i, state):
        F, diag, idx = state
        s = sample_pivots(diag, u[i])  # line 3: sample s ~ diag / sum(diag)
        # lines 4-6: residual column, normalised by its own entry at s; diag exactly 0 at s
        col, diag = pivot_column(F, diag, s, kernel.cross(Xp, Xp[s][None], mask)[:, 0], tol=0.0, fresh=True)
        return F.at[:, i].set(col), diag, idx.at[i].set(s)

    init = (jnp.zeros((Xp.shape[0], r), Xp.dtype), diag0, jnp.zeros((r,), jnp.int64 if jax.config.jax_enable_x64 else jnp.int32))
    _, _, idx = jax.lax.fori_loop(0, r, step, init)
    return idx


def select_landmarks(kernel, X, r: int, method: str, key, mask=None):
    """``r`` landmark rows of ``X`` by ``method`` in {"rpcholesky", "kmeans++", "uniform"} (no gradient).

    ``mask`` (``None`` or boolean ``(n,)``): real rows of a padded ``X``. Landmarks are chosen
    among them, and the draws of the real rows do not depend on the padding.

    **Returns:** ``(Z, used)``: ``Z`` ``(r, d)`` and ``used`` ``None`` (no mask) or boolean
    ``(r,)``, False for the slots past the real rows (unused landmarks).
    """
    n = X.shape[0]
    kpool, ksel = jax.random.split(key)
    used = None if mask is None else jnp.arange(r) < jnp.sum(mask)
    if method == "uniform":
        return X[choose_rows(ksel, n, r, mask)], used
    if method not in ("kmeans++", "rpcholesky"):
        raise ValueError(f"landmark_method must be one of {_LANDMARK_METHODS}, got {method!r}.")
    pool = min(n, max(20 * r, 20000))
    if pool < n:  # real rows first, so the pool's mask is a prefix
        rows = choose_rows(kpool, n, pool, mask)
        Xp, mask = X[rows], (None if mask is None else jnp.arange(pool) < jnp.sum(mask))
    else:
        Xp = X
    Xp = jax.lax.stop_gradient(Xp)
    if method == "kmeans++":
        return Xp[_kmeanspp(Xp, r, ksel, mask)], used
    return Xp[_rpcholesky(jax.lax.stop_gradient(kernel), Xp, r, ksel, mask)], used


# -- posterior ------------------------------------------------------------------------------------
class LowRankPosterior(AbstractPosterior):
    """Exact posterior of the GP with kernel ``phi(x) . phi(x') + White``: the weight-space Gaussian.

    ``chol`` factorises ``A = I + Phi^T D^{-1} Phi``; ``weights = A^{-1} Phi^T D^{-1} Y``.
    """

    kernel: object
    operator: LowRankPlusDiagonal
    chol: jax.Array
    weights: jax.Array  # (r, t)
    lml: jax.Array
    approx_error: jax.Array  # relative Frobenius error of phi phi^T on a training subsample
    info: tuple = eqx.field(static=True)  # ((name, value), ...): hashable for jit
    diag_correction: bool = eqx.field(static=True, default=False)
    mask: jax.Array | None = None  # real rows of a padded training set (None: not padded)

    @property
    def features(self):
        return self.operator.features

    def _rows(self, Xs, fn):
        return map_feature_rows(self.features, Xs, fn, self.operator.batch_size)

    def independent_diagonal(self, Xs):
        """Diagonal-only part of the approximate prior at ``Xs``: White plus the Nyström residual."""
        d = self.kernel.white_diagonal(Xs)
        if self.diag_correction:
            d = d + residual_diagonal(self.kernel.without_white(), self.features, Xs, self.operator.batch_size)
        return d

    def mean(self, Xs):
        return self._rows(Xs, lambda P, _: P @ self.weights)

    def var(self, Xs):
        # phi(x)^T A^{-1} phi(x) + White variance at x
        v = self._rows(Xs, lambda P, _: jnp.sum(solve_triangular(self.chol, P.T, lower=True) ** 2, axis=0))
        return v + self.independent_diagonal(Xs)

    def mean_and_var(self, Xs):
        def fn(P, _):
            V = solve_triangular(self.chol, P.T, lower=True)
            return jnp.concatenate([P @ self.weights, jnp.sum(V * V, axis=0)[:, None]], axis=1)

        out = self._rows(Xs, fn)
        return out[:, :-1], out[:, -1] + self.independent_diagonal(Xs)

    def cov(self, Xs):
        V = solve_triangular(self.chol, self.features(Xs).T, lower=True)
        return V.T @ V + jnp.diag(self.independent_diagonal(Xs))

    def _pad(self, R):
        # R has the real rows only: zero rows for the padded ones (which Phi^T then skips).
        return jnp.concatenate([R, jnp.zeros((self.operator.X.shape[0] - R.shape[0],) + R.shape[1:], R.dtype)])

    def solve_train(self, R):
        return woodbury_solve(WoodburyFactor(self.operator, self.chol), self._pad(R))[: R.shape[0]]

    def cross_matmul(self, Xs, B):
        """``k~(Xs, X) @ B = phi(Xs) (Phi^T B)`` for ``B`` ``(n, k)``: ``O((m + n) r k)``, no ``m x n`` block."""
        W = self.operator.rmatmul_features(self._pad(B))
        return self._rows(Xs, lambda P, _: P @ W)

    @property
    def log_marginal_likelihood_value(self):
        return self.lml

    def diagnostics(self) -> dict:
        out = dict(self.info)
        out["kernel_approx_rel_frobenius_error"] = float(self.approx_error)
        out["n_train"] = int(self.operator.X.shape[0] if self.mask is None else np.sum(np.asarray(self.mask)))
        used = getattr(self.features, "mask", None)
        if used is not None:
            out["n_features_used"] = int(np.sum(np.asarray(used)))
        return out


# -- inference ------------------------------------------------------------------------------------
class AbstractLowRankInference(AbstractInference):
    """Shared machinery: build the features, then Woodbury for the LML and the posterior."""

    n_components: int = eqx.field(static=True, default=1024)
    batch_size: int | None = eqx.field(static=True, default=None)
    n_diagnostic_points: int = eqx.field(static=True, default=200)
    diag_correction = False  # class constant: add the FITC residual diagonal (Nyström)

    def __check_init__(self):
        for name in ("n_components", "n_diagnostic_points"):
            value = getattr(self, name)
            if not (isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 1):
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        b = self.batch_size
        if b is not None and not (isinstance(b, (int, np.integer)) and not isinstance(b, bool) and b >= 1):
            raise ValueError(f"`batch_size` must be a positive integer or None, got {b!r}.")

    def feature_map(self, kernel, X, key, mask=None):
        raise NotImplementedError

    def _info(self, features) -> dict:
        raise NotImplementedError

    def prepare(self, X, Y, noise, dtype=None):
        return padded_training_data(X, Y, noise, dtype)

    def _operator(self, kernel, X, noise, key, mask=None):
        if key is None:
            raise ValueError(
                f"{type(self).__name__} draws random features/landmarks and needs a `key` "
                "(jax.random.key); the estimator derives it from `random_state`."
            )
        X = jnp.asarray(X)
        features = self.feature_map(kernel, X, key, mask)
        r = jax.eval_shape(features, X[:1]).shape[1]
        batch = self.batch_size or auto_batch_size(X.shape[0], r)
        d = noise + kernel.white_diagonal(X)
        return LowRankPlusDiagonal(features, X, d, batch)

    def _lml(self, kernel, X, Y, noise, key, mask=None):
        """LML and the operator with its final diagonal (FITC residual added in the same pass;
        padded rows: 1)."""
        op = self._operator(kernel, X, noise, key, mask)
        prior = kernel.without_white().diag(op.X) if self.diag_correction else None
        lml, (L, B, d) = gaussian_lml(op, Y, prior, mask)
        return lml, eqx.tree_at(lambda o: o.diagonal, op, d), L, B

    def log_marginal_likelihood(self, kernel, X, Y, noise, key, mask=None):
        """``mask``: ``None`` or boolean ``(n,)`` flagging real rows (padded rows: zero ``X``,
        ``Y`` and ``noise``; they change no result). The optimiser's objective: the value alone, from
        the ``n x n`` side when there are fewer rows than features (:func:`~skgpx.solvers.gaussian_lml_value`)."""
        op = self._operator(kernel, X, noise, key, mask)
        prior = kernel.without_white().diag(op.X) if self.diag_correction else None
        return gaussian_lml_value(op, Y, prior, mask)

    def condition(self, kernel, X, Y, noise, key, mask=None) -> LowRankPosterior:
        lml, op, L, B = self._lml(kernel, X, Y, noise, key, mask)
        weights = jax.scipy.linalg.cho_solve((L, True), B)
        err = self._approx_error(kernel, op, jax.random.fold_in(key, 1), mask)
        info = tuple(sorted(self._info(op.features).items()))
        return LowRankPosterior(kernel, op, L, weights, lml, err, info, self.diag_correction, mask)

    def _approx_error(self, kernel, op, key, mask=None):
        """``|K~_s - K_s|_F / |K_s|_F`` on a random subsample of training points (White parts excluded)."""
        n = op.X.shape[0]
        m = min(n, self.n_diagnostic_points)
        rows = jnp.arange(n) if m == n else choose_rows(key, n, m, mask)
        Xs = jax.lax.stop_gradient(op.X[rows])
        valid = None if mask is None else mask[rows]
        P = op.features(Xs)
        base = kernel.without_white()
        K = base.gram(Xs, valid)
        if valid is not None:  # zero rows and columns for padded rows, in K and in the approximation
            P = jnp.where(valid[:, None], P, 0.0)
            K = K - jnp.diag(jnp.where(valid, 0.0, 1.0).astype(K.dtype))
        approx = P @ P.T
        if self.diag_correction:
            approx = approx + jnp.diag(jnp.maximum(base.diag(Xs, valid) - jnp.sum(P * P, axis=1), 0.0))
            if valid is not None:
                approx = approx - jnp.diag(jnp.where(valid, 0.0, 1.0).astype(K.dtype))
        return jnp.linalg.norm(approx - K) / jnp.linalg.norm(K)


class RFF(AbstractLowRankInference):
    """Random Fourier features (``n_components`` columns, sin/cos pairs) + Woodbury. See the module docstring."""

    def feature_map(self, kernel, X, key, mask=None) -> RandomFourierFeatures:
        # The frequencies do not depend on the rows; padded rows are masked in the passes.
        return draw_random_fourier_features(kernel, X.shape[1], self.n_components, key)

    def _info(self, features) -> dict:
        return {
            "solver": "rff",
            "n_components": int(self.n_components),
            "n_features_used": int(features.n_features),
            "n_frequencies_per_term": tuple(int(m) for m in features.n_frequencies),
        }


class Nystrom(AbstractLowRankInference):
    """Nyström features from ``min(n_components, n)`` landmarks + Woodbury. See the module docstring.

    ``jitter``: ``"auto"`` or a number, the policy of
    :func:`skgpx.solvers.jittered_cholesky` applied to ``K(Z, Z)``.
    """

    landmark_method: str = eqx.field(static=True, default="rpcholesky")
    jitter: object = eqx.field(static=True, default="auto")
    diag_correction = True

    def __check_init__(self):
        AbstractLowRankInference.__check_init__(self)
        if self.landmark_method not in _LANDMARK_METHODS:
            raise ValueError(f"`landmark_method` must be one of {_LANDMARK_METHODS}, got {self.landmark_method!r}.")
        check_jitter_policy(self.jitter)

    def feature_map(self, kernel, X, key, mask=None) -> NystromFeatures:
        base = kernel.without_white()
        r = min(int(self.n_components), X.shape[0])
        Z, used = select_landmarks(base, X, r, self.landmark_method, key, mask)
        Kzz = base.gram(Z, used)  # unused landmarks: an identity block
        # The jitter search (a while loop) runs without gradient; the factor used is then
        # recomputed differentiably with that jitter.
        _, jitter, _ = jittered_cholesky(jax.lax.stop_gradient(Kzz), self.jitter, used)
        eye = jnp.eye(r, dtype=Kzz.dtype) if used is None else jnp.diag(used.astype(Kzz.dtype))
        L = jnp.linalg.cholesky(Kzz + jitter * eye)
        return NystromFeatures(base, Z, L, used)

    def _info(self, features) -> dict:
        return {
            "solver": "nystrom",
            "n_components": int(self.n_components),
            "n_features_used": int(features.Z.shape[0]),
            "landmark_method": self.landmark_method,
        }


RFFInference = RFF  # the names the pure layer used before solver objects
NystromInference = Nystrom

register_solver("rff", RFF)
register_solver("nystrom", Nystrom)
