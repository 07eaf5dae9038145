"""Input handling shared by the estimators: kernels, targets, ``alpha``, parameter constraints."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.gaussian_process.kernels import RBF as SkRBF, ConstantKernel as SkC, Kernel as SkKernel
from sklearn.utils._param_validation import Interval, StrOptions

from ..gp import AbstractInference
from ..kernels import AbstractKernel, UnsupportedKernelError, from_sklearn

__all__ = [
    "GPR_PARAMETER_CONSTRAINTS",
    "fit_kernel",
    "prior_kernel",
    "to_skgpx",
    "skgpx_kernel_or_none",
    "x_checks",
    "normalise_targets",
    "noise_vector",
]

# scikit-learn's own constraints for its parameters, then skgpx's.
GPR_PARAMETER_CONSTRAINTS: dict = {
    "kernel": [None, SkKernel, AbstractKernel],
    "alpha": [Interval(Real, 0, None, closed="left"), np.ndarray],
    "optimizer": [StrOptions({"fmin_l_bfgs_b"}), callable, None],
    "n_restarts_optimizer": [Interval(Integral, 0, None, closed="left")],
    "normalize_y": ["boolean"],
    "copy_X_train": ["boolean"],
    "n_targets": [Interval(Integral, 1, None, closed="left"), None],
    "random_state": ["random_state"],
    "solver": [str, AbstractInference],  # names are checked by skgpx.gp.make_inference
    "device": "no_validation",  # checked by skgpx._device.resolve_device with a helpful message
    "dtype": "no_validation",  # checked by skgpx._config.resolve_dtype
    "verbose": ["verbose"],
}


def fit_kernel(kernel):
    """The kernel ``fit`` starts from: scikit-learn's default ``C() * RBF()`` (free) when None."""
    return SkC() * SkRBF() if kernel is None else kernel


def prior_kernel(kernel):
    """The kernel of prior predictions before ``fit`` (scikit-learn: fixed ``C(1) * RBF(1)``)."""
    if kernel is None:
        return SkC(1.0, constant_value_bounds="fixed") * SkRBF(1.0, length_scale_bounds="fixed")
    return kernel


def to_skgpx(kernel) -> AbstractKernel:
    """An skgpx kernel as is, a scikit-learn kernel converted with ``from_sklearn``."""
    if isinstance(kernel, AbstractKernel):
        return kernel
    if isinstance(kernel, SkKernel):
        return from_sklearn(kernel)
    raise TypeError(
        f"`kernel` must be an skgpx kernel (e.g. skgpx.kernels.RBF()), a scikit-learn kernel or None, "
        f"got {type(kernel).__name__}."
    )


def skgpx_kernel_or_none(kernel) -> AbstractKernel | None:
    """:func:`to_skgpx`, or None for a scikit-learn kernel without a translation (the NumPy host path)."""
    try:
        return to_skgpx(kernel)
    except UnsupportedKernelError:
        return None


def x_checks(kernel) -> dict:
    """``validate_data`` arguments for ``X`` under `kernel` (None: the default kernel).

    As scikit-learn: a 2-D numeric array for kernels on vectors; anything (strings,
    graphs, variable-length sequences) for a kernel with ``requires_vector_input=False``.
    """
    if kernel is None or getattr(kernel, "requires_vector_input", True):
        return {"ensure_2d": True, "dtype": "numeric"}
    return {"ensure_2d": False, "dtype": None}


def _handle_zeros_in_scale(scale):
    # As scikit-learn: a (near) zero standard deviation is replaced by 1 (constant targets).
    scale = np.array(scale, dtype=np.float64, copy=True)
    constant = scale < 10 * np.finfo(scale.dtype).eps
    if scale.ndim == 0:
        return np.float64(1.0) if constant else scale
    scale[constant] = 1.0
    return scale


def normalise_targets(y, normalize_y):
    """``(y_normalised, mean, std)`` with scikit-learn's shapes for ``_y_train_mean/_std``."""
    y = np.asarray(y, dtype=np.float64)
    if normalize_y:
        mean = np.mean(y, axis=0)
        std = _handle_zeros_in_scale(np.std(y, axis=0))
        return (y - mean) / std, mean, std
    shape = (y.shape[1],) if y.ndim == 2 else 1
    return y, np.zeros(shape), np.ones(shape)


def noise_vector(alpha, n_samples):
    """scikit-learn's ``alpha`` (scalar or per-sample) as a ``(n_samples,)`` array."""
    if np.iterable(alpha):
        alpha = np.asarray(alpha, dtype=np.float64)
        if alpha.shape[0] != n_samples:
            if alpha.shape[0] == 1:
                return np.full(n_samples, float(alpha[0]))
            raise ValueError(
                "alpha must be a scalar or an array with same number of "
                f"entries as y. ({alpha.shape[0]} != {n_samples})"
            )
        return alpha.reshape(n_samples)
    return np.full(n_samples, float(alpha))
