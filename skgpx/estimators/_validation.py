"""Input handling shared by the estimators: kernels, targets, ``alpha``, parameter constraints."""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
from sklearn.gaussian_process.kernels import RBF as SkRBF, ConstantKernel as SkC, Kernel as SkKernel
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions

from .._lazy import loaded_isinstance
from ..kernels._sklearn_spec import UnsupportedKernelError

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
    "check_sklearn_kernel",
    "is_skgpx_kernel",
    "check_numeric",
    "check_n_samples",
]


class _InstanceOf(HasMethods):
    """scikit-learn's type constraint for a class of skgpx's named by module, so that validating
    parameters does not import JAX (an instance exists only once its module is imported). A
    ``HasMethods`` subclass because scikit-learn accepts only its own constraint classes."""

    def __init__(self, module, name):
        super().__init__([])
        self.module, self.name = module, name

    def is_satisfied_by(self, val):
        return loaded_isinstance(val, self.module, self.name)

    def __str__(self):
        return f"an instance of '{self.module}.{self.name}'"  # as scikit-learn names a type


# scikit-learn's own constraints for its parameters, then skgpx's.
GPR_PARAMETER_CONSTRAINTS: dict = {
    "kernel": [None, SkKernel, _InstanceOf("skgpx.kernels._base", "AbstractKernel")],
    "alpha": [Interval(Real, 0, None, closed="left"), np.ndarray],
    "optimizer": [StrOptions({"fmin_l_bfgs_b"}), callable, None],
    "n_restarts_optimizer": [Interval(Integral, 0, None, closed="left")],
    "normalize_y": ["boolean"],
    "copy_X_train": ["boolean"],
    "n_targets": [Interval(Integral, 1, None, closed="left"), None],
    "random_state": ["random_state"],
    "solver": [str, _InstanceOf("skgpx.gp._abstract", "AbstractInference")],  # names are checked by skgpx.gp.make_inference
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


def is_skgpx_kernel(kernel) -> bool:
    """Whether `kernel` is an skgpx kernel (without importing them)."""
    return loaded_isinstance(kernel, "skgpx.kernels._base", "AbstractKernel")


def to_skgpx(kernel):
    """An skgpx kernel as is, a scikit-learn kernel converted with ``from_sklearn``."""
    if is_skgpx_kernel(kernel):
        return kernel
    if isinstance(kernel, SkKernel):
        from ..kernels import from_sklearn

        return from_sklearn(kernel)
    raise TypeError(
        f"`kernel` must be an skgpx kernel (e.g. skgpx.kernels.RBF()), a scikit-learn kernel or None, "
        f"got {type(kernel).__name__}."
    )


def skgpx_kernel_or_none(kernel):
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


def check_kernel(kernel, n_features: int, name: str = "kernel") -> None:
    """Refuse, before JAX sees them, hyperparameters a kernel cannot use on ``n_features`` inputs.

    Every hyperparameter must be finite and positive (free ones live on a log scale; fixed ones
    may be 0); an ARD
    length-scale vector must have one entry per feature the kernel sees (``ActiveDims`` and
    ``Chordal`` change that number), as scikit-learn requires.
    """
    from ..kernels import hyperparameter_list

    for h in hyperparameter_list(kernel):
        _check_value(name, h.name, h.path[-1], _get(kernel, h.path), h.fixed)
    _check_ard(kernel, n_features, name, "")


def check_sklearn_kernel(kernel, n_features: int, name: str = "kernel") -> None:
    """:func:`check_kernel` for a scikit-learn kernel that has an skgpx translation, without building
    it (the NumPy host path runs without JAX): the same hyperparameter names, rules and messages."""
    params = kernel.get_params(deep=True)
    for h in kernel.hyperparameters:
        _check_value(name, h.name, h.name.rsplit("__", 1)[-1], params[h.name], h.fixed)
    for key, value in params.items():
        if key.rsplit("__", 1)[-1] == "length_scale":
            where = key.rsplit("__", 1)[0] if "__" in key else ""
            _check_length_scales(params[where] if where else kernel, value, n_features, name, where)


def _check_value(name, hname, last, value, fixed):
    value = np.asarray(value, dtype=np.float64)
    # free ones are optimised on a log scale; a fixed amplitude may be 0 (a switched-off White term)
    zero_ok = fixed and last not in ("length_scale", "periodicity", "alpha")
    if not np.all(np.isfinite(value)) or np.any(value < 0) or (not zero_ok and np.any(value == 0)):
        shown = value.tolist() if value.ndim else float(value)
        raise ValueError(
            f"`{name}` hyperparameter {hname}={shown!r} must be finite and positive; pass a "
            f"positive initial value (e.g. {last}=1.0) and bounds around it."
        )


def _check_length_scales(kernel, length_scale, n_features, name, where):
    ls = np.asarray(length_scale)
    if ls.ndim >= 1 and ls.shape[-1] not in (1, n_features):
        raise ValueError(
            f"`{name}`: anisotropic kernel {kernel!r}{' at ' + where if where else ''} has "
            f"{ls.shape[-1]} length scales but the data it sees have {n_features} features; give one "
            "length scale per feature, or a scalar for an isotropic kernel."
        )


def _check_ard(kernel, n_features, name, where):
    from ..kernels import AbstractKernel, AbstractStationaryKernel, ActiveDims, Batched, Chordal

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
        _check_length_scales(kernel, kernel.length_scale, n_features, name, where)
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
