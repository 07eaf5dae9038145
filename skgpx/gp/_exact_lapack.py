"""The exact GP on the CPU with LAPACK called between compiled stages: ``potrf``, ``potrs``, ``potri``.

XLA's CPU Cholesky is LAPACK ``potrf`` wrapped in two ``n x n`` passes (a transposed
copy into the column-major layout LAPACK reads, and a select that zeroes the upper
triangle and NaN-fills a failed factor), and XLA has no ``potri`` at all: inside one
compiled function ``K^{-1}`` is formed by :func:`skgpx.solvers.cho_inverse` (recursive
blocks, ``5/6 n^3`` flops) where ``potri`` needs ``2/3 n^3``. On the CPU the exact path
therefore runs as compiled stages around LAPACK calls on the host:

1. :func:`_gram`, compiled: ``K = K(X, X) + diag(noise)``;
2. :func:`lapack_factor`, host: ``potrf`` in place on a copy of ``K`` (a row-major
   symmetric matrix is its own column-major transpose: no layout pass), ``potrs`` for
   ``alpha = K^{-1} Y``, the log marginal likelihood from ``diag L``. Conditioning
   (:meth:`ExactInference.fit`) stops here;
3. for an optimiser's evaluation (:func:`lapack_lml_and_grad`, :meth:`ExactInference.objective`): ``potri`` in place (the
   lower triangle of ``K^{-1}``), XLA idle meanwhile, then :func:`_gradient`, compiled:
   the cotangent ``1/2 (alpha alpha^T - t K^{-1})`` contracted with the Gram's
   derivatives (:func:`skgpx.operators.noisy_gram`'s tiled backward pass).

At n in the thousands the staged path is faster than one compiled function, both for
conditioning and for an optimiser's value and gradient (figures: docs/performance.md,
"Exact path on the CPU"). LAPACK is not called from inside a compiled function (a host
callback): there its BLAS threads compete with XLA's. Staged, the two libraries take
turns; processes started side by side with OpenBLAS's default threads still
oversubscribe the cores, which one BLAS thread per process removes (joblib's workers are
set up so). See the FAQ on several fits at once.

Same factor, value and gradient as ``ExactInference(jitter=None)`` compiled (tested);
a failed factorisation gives ``None`` / a NaN value, and the caller then falls back to
the adaptive-jitter inference, which stays compiled.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from ..operators import noisy_gram
from ..solvers import gaussian_log_likelihood

__all__ = ["lapack_factor", "lapack_lml_and_grad", "on_cpu"]


def on_cpu() -> bool:
    """Whether JAX's default device (``jax.default_device`` scope, else the first device) is a CPU."""
    device = jax.config.jax_default_device
    if device is None:
        return jax.default_backend() == "cpu"
    return (device if isinstance(device, str) else device.platform) == "cpu"


@eqx.filter_jit
def _gram(theta, kernel, X, noise):
    return noisy_gram((kernel if theta is None else kernel.with_theta(theta), X, noise))


@eqx.filter_jit
def _gradient(theta, kernel, X, noise, inv_lower, alpha):
    # W = 1/2 (alpha alpha^T - t K^{-1}) is symmetric and only the lower triangle of
    # K^{-1} is valid: contracting the lower triangle with its off-diagonal entries
    # doubled gives the same sum without reading the upper triangle (a transposed pass).
    n, t = alpha.shape
    W = 0.5 * (alpha @ alpha.T - t * inv_lower)
    i = jnp.arange(n)
    W = jnp.where(i[:, None] > i[None, :], 2.0 * W, jnp.where(i[:, None] == i[None, :], W, 0.0))
    _, vjp = jax.vjp(lambda th: noisy_gram((kernel.with_theta(th), X, noise)), theta)
    return vjp(W)[0]


def _aligned_copy(a):
    # A writable copy of `a` whose memory is 64-byte aligned: JAX's CPU client then wraps
    # it (or a view of it, such as the factor computed in place) without copying it again
    # (a copy of an n x n matrix saved). Unaligned, jax.device_put copies; still correct.
    a = np.asarray(a)
    buf = np.empty(a.nbytes + 64, np.uint8)
    start = -buf.ctypes.data % 64
    out = buf[start : start + a.nbytes].view(a.dtype).reshape(a.shape)
    np.copyto(out, a)
    return out


def lapack_factor(theta, kernel, X, Y, noise):
    """``(U, alpha, lml)`` as NumPy values, or ``None`` when ``K`` is not numerically PD.

    ``U`` is the column-major upper factor of ``K = U^T U``: its memory read row-major is
    the lower factor ``L`` (``U.T``, zeros above the diagonal). ``theta``: log
    hyperparameters (``kernel.theta``), a JAX array on the CPU like the data, or ``None``
    for the kernel as it is.
    """
    K = _aligned_copy(_gram(theta, kernel, X, noise))  # JAX's buffers are immutable
    potrf, potrs = scipy.linalg.get_lapack_funcs(("potrf", "potrs"), (K,))
    # K is symmetric: K.T is the same matrix, F-contiguous, factorised in place. Only
    # the lower triangle of the row-major K is read, as lax.linalg.cholesky does.
    U, info = potrf(K.T, lower=0, overwrite_a=1, clean=1)
    if info != 0:
        return None
    Y = np.asarray(Y)
    alpha, info = potrs(U, Y, lower=0)
    n, t = Y.shape
    # RW Alg. 2.1 line 7, summed over targets as scikit-learn does.
    lml = gaussian_log_likelihood(np.sum(Y * alpha), 2 * np.sum(np.log(np.diagonal(U))), n, t)
    if info != 0 or not np.isfinite(lml):
        return None
    return U, alpha, float(lml)


def lapack_lml_and_grad(theta, kernel, X, Y, noise, gradient=True):
    """``(log p(Y | X, theta), its gradient in theta)`` as NumPy values; NaN value on failure.

    ``gradient=False``: the value alone (``potri`` and the gradient stage are skipped),
    with ``None`` for the gradient.
    """
    factor = lapack_factor(theta, kernel, X, Y, noise)
    if factor is None:
        return float("nan"), (np.zeros(theta.shape, np.float64) if gradient else None)
    U, alpha, lml = factor
    if not gradient:
        return lml, None
    # potri on the column-major upper factor writes the upper triangle of K^{-1}
    # column-major, i.e. the lower triangle of the row-major result.
    (potri,) = scipy.linalg.get_lapack_funcs(("potri",), (U,))
    inv_t, info = potri(U, lower=0, overwrite_c=1)
    if info != 0:
        return float("nan"), np.zeros(theta.shape, np.float64)
    grad = _gradient(theta, kernel, X, noise, jnp.asarray(inv_t.T), jnp.asarray(alpha))
    return lml, np.asarray(grad, dtype=np.float64)
