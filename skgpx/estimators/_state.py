"""Estimator state helpers: nested ``kernel__...`` parameters for skgpx kernels, pickling, cloning
with devices in ``device=``."""

from __future__ import annotations

import sys

import numpy as np

from .._lazy import loaded_isinstance

__all__ = ["kernel_deep_params", "split_kernel_params", "to_host", "DeviceCloneMixin"]


def kernel_deep_params(kernel, prefix: str = "kernel") -> dict:
    """``<prefix>__<name>`` entries for ``get_params(deep=True)`` when ``kernel`` is an skgpx kernel.

    (scikit-learn kernels have their own ``get_params``, which ``BaseEstimator``
    already expands.)
    """
    if not _is_skgpx_kernel(kernel):
        return {}
    return {f"{prefix}__{name}": value for name, value in kernel.parameters().items()}


def split_kernel_params(params: dict, kernel, prefix: str = "kernel"):
    """Split ``set_params`` arguments into the ordinary ones and the skgpx kernel's nested ones.

    Nested parameters of a scikit-learn kernel stay with the ordinary ones
    (``BaseEstimator.set_params`` forwards them to ``kernel.set_params``); those of an
    skgpx kernel are returned separately, to be applied with ``kernel.replace(**...)``.
    """
    if not _is_skgpx_kernel(kernel):
        return dict(params), {}
    rest, nested = {}, {}
    for key, value in params.items():
        if key.startswith(prefix + "__"):
            nested[key[len(prefix) + 2 :]] = value
        else:
            rest[key] = value
    return rest, nested


def _is_skgpx_kernel(kernel) -> bool:
    return loaded_isinstance(kernel, "skgpx.kernels._base", "AbstractKernel")


def to_host(tree):
    """Replace every JAX array in ``tree`` (dicts, lists, Equinox modules) by a NumPy array."""
    if "jax" not in sys.modules:
        return tree  # no JAX array can exist
    import jax

    def host(x):
        if isinstance(x, jax.Array) and not jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return np.asarray(x)
        return x

    return jax.tree_util.tree_map(host, tree)


class DeviceCloneMixin:
    """``sklearn.base.clone`` of an estimator whose ``device`` holds ``jax.Device`` objects or a
    ``jax.sharding.Mesh`` (``GridSearchCV``, ``cross_val_score``, ``skgpx.parallel.fit_many``).

    scikit-learn deep-copies every parameter that is not an estimator, and a ``jax.Device``
    cannot be copied (it stands for the hardware: "cannot pickle 'Device' object"). The
    clone shares the devices (and the mesh, which is immutable) instead; a list of devices
    becomes a new list of the same devices. Everything else is cloned by scikit-learn.
    """

    def __sklearn_clone__(self):
        view = object.__new__(type(self))  # self with device=None, for scikit-learn's own clone
        view.__dict__.update(self.__dict__)
        view.device = None
        new = super(DeviceCloneMixin, view).__sklearn_clone__()
        new.device = list(self.device) if isinstance(self.device, list) else self.device
        return new
