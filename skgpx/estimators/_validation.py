"""Input handling shared by the estimators: kernels, targets, ``alpha``, parameter constraints."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.gaussian_process.kernels import RBF as SkRBF, ConstantKernel as SkC, Kernel as SkKernel
from sklearn.utils._param_validation import Interval, StrOptions

from ..gp import AbstractInference
from ..kernels import AbstractKernel, AbstractStationaryKernel, ActiveDims, Batched, Chordal, UnsupportedKernelError
from ..kernels import from_sklearn, hyperparameter_list

__all__ = [
    "GPR_PARAMETER_CONSTRAINTS",
    "fit_kernel",
    "prior_kernel",
    "to_skgpx",
    "skgpx_kernel_or_none",
    "x_checks",
    "normalise_targets",
    "noise_vector",
    "check_kernel",
    "check_numeric",
    "check_n_samples",
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
        alpha = alpha.reshape(n_samples)
    else:
        alpha = np.full(n_samples, float(alpha))
    bad = ~np.isfinite(alpha) | (alpha < 0)
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"`alpha` must be finite and non-negative (the noise variance added to each training "
            f"point), got {alpha[i]!r} at index {i}; use e.g. alpha=1e-10, or a per-sample array of "
            "non-negative values."
        )
    return alpha


def _get(kernel, path):
    for p in path:
        kernel = getattr(kernel, p)
    return kernel


def check_kernel(kernel: AbstractKernel, n_features: int, name: str = "kernel") -> None:
    """Refuse, before JAX sees them, hyperparameters a kernel cannot use on ``n_features`` inputs.

    Every hyperparameter must be finite and positive (free ones live on a log scale; fixed ones
    may be 0); an ARD
    length-scale vector must have one entry per feature the kernel sees (``ActiveDims`` and
    ``Chordal`` change that number), as scikit-learn requires.
    """
    for h in hyperparameter_list(kernel):
        value = np.asarray(_get(kernel, h.path), dtype=np.float64)
        # free ones are optimised on a log scale; a fixed amplitude may be 0 (a switched-off White term)
        zero_ok = h.fixed and h.path[-1] not in ("length_scale", "periodicity", "alpha")
        if not np.all(np.isfinite(value)) or np.any(value < 0) or (not zero_ok and np.any(value == 0)):
            shown = value.tolist() if value.ndim else float(value)
            raise ValueError(
                f"`{name}` hyperparameter {h.name}={shown!r} must be finite and positive; pass a "
                f"positive initial value (e.g. {h.path[-1]}=1.0) and bounds around it."
            )
    _check_ard(kernel, n_features, name, "")


def _check_ard(kernel, n_features, name, where):
    if isinstance(kernel, Batched):
        return  # leading batch axes; the batch's own inputs decide
    if isinstance(kernel, ActiveDims):
        if max(kernel.dims) >= n_features:
            raise ValueError(
                f"`{name}`: {where or 'the kernel'} ActiveDims(dims={kernel.dims}) selects column "
                f"{max(kernel.dims)} but X has {n_features} features; change `dims` or pass more columns."
            )
        n_features = len(kernel.dims)
    elif isinstance(kernel, Chordal):
        n_features = n_features + 1  # (lon, lat) -> (x, y, z)
    if isinstance(kernel, AbstractStationaryKernel):
        ls = np.asarray(kernel.length_scale)
        if ls.ndim >= 1 and ls.shape[-1] not in (1, n_features):
            raise ValueError(
                f"`{name}`: anisotropic kernel {kernel!r}{' at ' + where if where else ''} has "
                f"{ls.shape[-1]} length scales but the data it sees have {n_features} features; give one "
                "length scale per feature, or a scalar for an isotropic kernel."
            )
    for field_name in getattr(type(kernel), "__dataclass_fields__", {}):
        child = getattr(kernel, field_name, None)
        if isinstance(child, AbstractKernel):
            _check_ard(child, n_features, name, f"{where}__{field_name}" if where else field_name)


def check_numeric(X, name: str = "X"):
    """``X`` after scikit-learn's validation must hold numbers (a categorical column does not)."""
    X = np.asarray(X)
    if X.dtype.kind not in "biuf":
        raise ValueError(
            f"`{name}` must be numeric, got an array of dtype {X.dtype} (e.g. a pandas categorical or "
            "string column); encode such columns first, e.g. with sklearn.preprocessing.OneHotEncoder "
            "or OrdinalEncoder in a Pipeline."
        )
    return X


def check_n_samples(n_samples) -> int:
    """``sample_y``'s ``n_samples``: a non-negative integer."""
    if isinstance(n_samples, (bool, np.bool_)) or not isinstance(n_samples, (Integral, np.integer)) or n_samples < 0:
        raise ValueError(f"`n_samples` must be a non-negative integer, got {n_samples!r}.")
    return int(n_samples)
