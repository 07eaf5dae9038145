"""Exact GP inference in NumPy/SciPy through a scikit-learn kernel's own ``__call__``.

For kernels skgpx has no translation of (a user's subclass of a scikit-learn kernel, a
kernel on strings or graphs with ``requires_vector_input=False``, ``PairwiseKernel``,
``Matern(nu=0.7)``...): the kernel is only ever called as scikit-learn calls it,
``kernel(X)``, ``kernel(X, eval_gradient=True)`` (the Gram matrix and its derivatives in
``theta``), ``kernel(Xs, X)`` and ``kernel.diag(Xs)``, so ``X`` can be anything the
kernel understands. The maths is Rasmussen & Williams (2006), Algorithm 2.1, and the
gradient their Eq. (5.9); nothing is compiled and JAX is not involved.

The factorisation follows the estimators' jitter policy (as
:func:`skgpx.solvers.jittered_cholesky`): ``"auto"`` factorises ``K + diag(noise)`` as
is and only when that fails retries with the schedule of
:func:`skgpx.solvers.jitter_schedule`; a number is always added; ``None`` never retries.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import scipy.linalg

from ..solvers._formulas import gaussian_log_likelihood, jitter_schedule

__all__ = ["HostPosterior", "host_cholesky", "host_condition", "host_log_marginal_likelihood", "HOST_SOLVER"]

# The name `solver_` and the diagnostics report for this path.
HOST_SOLVER = "host-numpy"


def _noisy_gram(K, noise):
    # A float64 copy of K with the noise on its diagonal (the kernel's array is not modified).
    A = np.array(K, dtype=np.float64)
    A[np.diag_indices_from(A)] += noise
    return A


def _factor(A, jitter):
    # Lower Cholesky factor of A + jitter I, or None when A is not numerically positive definite.
    if jitter:
        A = A.copy()
        A[np.diag_indices_from(A)] += jitter
    try:
        L = scipy.linalg.cholesky(A, lower=True, check_finite=False)
    except np.linalg.LinAlgError:
        return None
    return L if np.all(np.isfinite(np.diagonal(L))) else None


def host_cholesky(A, jitter="auto"):
    """``(L, jitter_used, ok)``: the lower Cholesky factor of ``A`` under the jitter policy.

    `jitter`: ``"auto"`` (as is, then ``start * mean(diag A) * growth**k`` for the
    schedule of :func:`skgpx.solvers.jitter_schedule`), ``None`` (as is only) or a number
    always added. On failure ``L`` is NaN and ``ok`` False.
    """
    first = 0.0 if isinstance(jitter, str) or jitter is None else float(jitter)
    L = _factor(A, first)
    if L is not None:  # the common case: no schedule to build
        return L, first, True
    if not isinstance(jitter, str):
        return np.full_like(A, np.nan), first, False
    start, growth, n_tries = jitter_schedule(np.float64)
    scale = float(np.mean(np.diagonal(A)))
    scale = scale if scale > 0 else 1.0
    tries = [start * scale * growth**k for k in range(n_tries)]
    for j in tries:
        L = _factor(A, j)
        if L is not None:
            return L, j, True
    return np.full_like(A, np.nan), tries[-1], False


def _lml(Y, alpha, L):
    # RW Alg. 2.1 line 7, summed over the target columns as scikit-learn does.
    n, t = Y.shape
    return np.float64(gaussian_log_likelihood(np.sum(Y * alpha), 2 * np.sum(np.log(np.diagonal(L))), n, t))


def host_log_marginal_likelihood(kernel, X, Y, noise, jitter="auto", eval_gradient=False):
    """``log p(Y | X)`` for a scikit-learn kernel, and with `eval_gradient` its gradient in ``kernel.theta``.

    **Arguments:** `kernel` a scikit-learn kernel (its current ``theta`` is used); `X`
    whatever the kernel takes; `Y` ``(n, t)``; `noise` ``(n,)`` added to the diagonal;
    `jitter` as :func:`host_cholesky`.

    **Returns:** a NumPy ``float64`` (``-inf`` when ``K`` is not positive definite
    under the jitter policy, as scikit-learn), and with `eval_gradient` a ``float64``
    array shaped like ``theta`` (zeros on failure).
    """
    if eval_gradient:
        K, dK = kernel(X, eval_gradient=True)
    else:
        K = kernel(X)
    L, _, ok = host_cholesky(_noisy_gram(K, noise), jitter)
    if not ok:
        return (np.float64(-np.inf), np.zeros(np.shape(dK)[2])) if eval_gradient else np.float64(-np.inf)
    alpha = scipy.linalg.cho_solve((L, True), Y, check_finite=False)
    value = _lml(Y, alpha, L)
    if not eval_gradient:
        return value
    # RW Eq. 5.9 summed over the t targets: d/dtheta_k = 1/2 tr((alpha alpha^T - t K^-1) dK/dtheta_k).
    n, t = Y.shape
    W = alpha @ alpha.T - t * scipy.linalg.cho_solve((L, True), np.eye(n), check_finite=False)
    grad = 0.5 * np.einsum("ij,ijk->k", W, np.asarray(dK, dtype=np.float64))
    return value, grad


@dataclasses.dataclass(frozen=True, eq=False)
class HostPosterior:
    """Posterior of the NumPy host path: the kernel, the training inputs, ``L`` and ``alpha``.

    The training inputs are kept as given (a string array, a list of graphs...); every
    method calls the scikit-learn kernel itself and returns NumPy ``float64`` arrays. It has
    :class:`~skgpx.gp.AbstractPosterior`'s methods but is a plain frozen dataclass, not an
    Equinox module: the host path runs without importing JAX or Equinox.
    """

    kernel: object  # a scikit-learn kernel
    X: object
    L: np.ndarray  # lower Cholesky factor of K(X, X) + diag(noise) + jitter * I
    alpha: np.ndarray  # (n, t)
    jitter: float
    ok: bool
    lml: np.float64
    noise: np.ndarray  # (n,) on the diagonal of the training Gram matrix

    def mean(self, Xs):
        # RW Alg. 2.1 line 4: f* = K(X*, X) alpha
        return np.asarray(self.kernel(Xs, self.X), dtype=np.float64) @ self.alpha

    def _V(self, Xs):
        # RW Alg. 2.1 line 5: v = L \ K(X, X*), with the kernel called as K(X*, X) like scikit-learn.
        K_trans = np.asarray(self.kernel(Xs, self.X), dtype=np.float64)
        return scipy.linalg.solve_triangular(self.L, K_trans.T, lower=True, check_finite=False)

    def var(self, Xs):
        V = self._V(Xs)
        # A copy: a kernel's diag may return a view of its input (which must not change).
        return np.array(self.kernel.diag(Xs), dtype=np.float64) - np.einsum("ij,ij->j", V, V)

    def cov(self, Xs):
        # RW Alg. 2.1 line 6: K(X*, X*) - v^T v
        V = self._V(Xs)
        return np.asarray(self.kernel(Xs), dtype=np.float64) - V.T @ V

    def solve_train(self, R):
        return scipy.linalg.cho_solve((self.L, True), R, check_finite=False)

    @property
    def log_marginal_likelihood_value(self):
        return self.lml

    def diagnostics(self) -> dict:
        return {"solver": HOST_SOLVER, "jitter": float(self.jitter), "cholesky_ok": bool(self.ok),
                "n_train": int(self.L.shape[0])}


def host_condition(kernel, X, Y, noise, jitter="auto") -> HostPosterior:
    """Condition the GP ``(kernel, noise)`` on ``(X, Y)``, ``Y`` of shape ``(n, t)``; ``ok`` False on failure."""
    L, j, ok = host_cholesky(_noisy_gram(kernel(X), noise), jitter)
    if not ok:
        nan = np.full(Y.shape, np.nan)
        return HostPosterior(kernel, X, L, nan, j, False, np.float64(np.nan), noise)
    alpha = scipy.linalg.cho_solve((L, True), Y, check_finite=False)
    return HostPosterior(kernel, X, L, alpha, j, True, _lml(Y, alpha, L), noise)
