"""Plain arithmetic shared by the NumPy host path and the compiled back-ends (no JAX here).

:func:`gaussian_log_likelihood` ends every back-end's likelihood; :func:`jitter_schedule` is
the jitter policy ``"auto"`` of :func:`skgpx.solvers.jittered_cholesky` and of the host path.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["gaussian_log_likelihood", "jitter_schedule"]

_LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_likelihood(quad, logdet, n: int, t: int):
    """``log N(Y | 0, K)`` summed over the ``t`` columns of ``Y`` ``(n, t)`` (Rasmussen &
    Williams 2006, Eq. 2.30), from ``quad = tr(Y^T K^{-1} Y)`` and ``logdet = log|K|``.

    Plain arithmetic, so NumPy and JAX scalars alike; every GP back-end's likelihood ends here.
    """
    return -0.5 * quad - 0.5 * t * logdet - 0.5 * n * t * _LOG_2PI


def jitter_schedule(dtype) -> tuple[float, float, int]:
    """``(start, growth, n_tries)``, relative to ``mean(diag(A))``, for ``jitter="auto"``.

    Starts at ``max(1e-10, eps)`` and grows x10 up to ``max(1e-6, 1e3 eps)``: in float64
    the largest jitter changes predictions by about 1e-6 relative, far below noise
    levels one fits; beyond that the kernel is not positive definite in any useful
    sense and the user should raise ``alpha`` (the error says so).
    """
    eps = float(np.finfo(np.dtype(dtype)).eps)
    start = max(1e-10, eps)
    stop = max(1e-6, 1e3 * eps)
    n_tries = int(round(np.log10(stop / start))) + 1
    return start, 10.0, n_tries
