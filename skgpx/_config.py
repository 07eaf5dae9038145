"""Numerical precision scoping.

skgpx never changes global JAX configuration on import. Estimators run their
numerical work inside :func:`precision_scope`, which enables float64 only for
the duration of the call (``jax.enable_x64`` is a context manager in JAX >= 0.7).
"""

from __future__ import annotations

import contextlib
import functools

import numpy as np

__all__ = ["precision_scope", "with_precision", "resolve_dtype"]


def resolve_dtype(dtype) -> np.dtype:
    """Validate an estimator's ``dtype`` parameter (``float64`` or ``float32``)."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        dt = None
    if dt is None or dt not in (np.dtype(np.float64), np.dtype(np.float32)):
        raise ValueError(
            f"`dtype` must be float64 or float32, got {dtype!r}; use dtype='float64' "
            "(the default) for results that match scikit-learn."
        )
    return dt


@contextlib.contextmanager
def precision_scope(dtype=np.float64):
    """Enable float64 in JAX inside the block when ``dtype`` is float64."""
    if np.dtype(dtype) == np.float64:
        import jax  # here: modules that only validate a dtype load without JAX

        with jax.enable_x64(True):
            yield
    else:
        yield


def with_precision(method):
    """Decorator for estimator methods: run inside ``precision_scope(self.dtype)``."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with precision_scope(getattr(self, "dtype", np.float64)):
            return method(self, *args, **kwargs)

    return wrapper
