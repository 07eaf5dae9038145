"""A guard for OpenBLAS's multi-threaded Cholesky on AVX-512 AMD processors.

jaxlib's CPU LAPACK calls (``jnp.linalg.cholesky``) go to the OpenBLAS that ships in
the scipy wheels, as scipy's and numpy's own do. On AMD processors with AVX-512
(Zen 4 EPYC, here with OpenBLAS 0.3.30 and 0.3.31, the ``SkylakeX`` kernels) its
*multi-threaded* ``dpotrf`` segfaults on matrices from about n = 15 000 (measured: fine
at 14 000, killed by SIGSEGV at 16 000 and 20 000, in jax, scipy and numpy alike;
scikit-learn's ``GaussianProcessRegressor`` crashes the same way). Single-threaded, or
with ``OPENBLAS_CORETYPE=Zen`` set before Python starts, it is correct (timings:
docs/performance.md).

:func:`dense_factorisation_guard` runs a block of code with OpenBLAS limited to one
thread (``threadpoolctl``) when the matrix is at least ``LARGE_FACTORISATION_N`` and the
host is an AVX-512 AMD processor; elsewhere it does nothing.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys

__all__ = ["dense_factorisation_guard", "affected_host", "LARGE_FACTORISATION_N"]

LARGE_FACTORISATION_N = 12_000


@functools.cache
def affected_host() -> bool:
    """Whether this is a Linux host with an AMD processor that has AVX-512 (and no
    ``OPENBLAS_CORETYPE`` chosen by the user)."""
    if not sys.platform.startswith("linux") or os.environ.get("OPENBLAS_CORETYPE"):
        return False
    try:
        with open("/proc/cpuinfo") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return "AuthenticAMD" in head and " avx512f" in head


@contextlib.contextmanager
def dense_factorisation_guard(n: int):
    """Context in which dense factorisations of ``n x n`` matrices cannot hit the crash.

    Blocks of JAX code inside must finish inside (``jax.block_until_ready``): JAX
    dispatches asynchronously, and the limit is lifted on exit.
    """
    if n < LARGE_FACTORISATION_N or not affected_host():
        yield
        return
    import scipy.linalg.cython_lapack  # noqa: F401
    import threadpoolctl

    # jaxlib takes its LAPACK from scipy.linalg.cython_lapack, loaded on first use;
    # threadpoolctl only sees libraries already loaded, so load it first.
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        yield
