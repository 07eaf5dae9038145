"""Hyperparameter views of a kernel tree: log-space ``theta``, bounds, freezing, replace.

Positivity is by a log transform, as in scikit-learn, so ``theta`` and ``bounds``
here are the same numbers scikit-learn reports for the equivalent kernel. Order:
hyperparameters of one kernel alphabetically, child kernels in field order
(``k1`` before ``k2``), which is scikit-learn's order too.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ._base import AbstractKernel

__all__ = [
    "Hyperparameter",
    "hyperparameter_list",
    "get_theta",
    "get_bounds",
    "set_theta",
    "kernel_parameters",
    "replace_parameters",
    "free_mask_tree",
]


class Hyperparameter(NamedTuple):
    """One hyperparameter leaf of a kernel tree."""

    name: str  # scikit-learn style path, e.g. "k1__k2__length_scale"
    path: tuple[str, ...]  # attribute path from the root kernel
    bounds: object  # (lo, hi), ((lo, hi), ...) or "fixed"
    shape: tuple[int, ...]

    @property
    def fixed(self) -> bool:
        return isinstance(self.bounds, str) and self.bounds == "fixed"

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=int))


def _child_kernels(kernel):
    for f in dataclasses.fields(kernel):
        value = getattr(kernel, f.name, None)
        if isinstance(value, AbstractKernel):
            yield f.name, value


def hyperparameter_list(kernel: AbstractKernel, _prefix=()) -> list[Hyperparameter]:
    """All hyperparameters of ``kernel`` (fixed ones included), in ``theta`` order."""
    out = []
    for name in sorted(type(kernel).hyperparameters):
        value = getattr(kernel, name)
        path = _prefix + (name,)
        out.append(
            Hyperparameter("__".join(path), path, getattr(kernel, f"{name}_bounds"), tuple(jnp.shape(value)))
        )
    for child_name, child in _child_kernels(kernel):
        out.extend(hyperparameter_list(child, _prefix + (child_name,)))
    return out


def _get(kernel, path):
    for p in path:
        kernel = getattr(kernel, p)
    return kernel


def get_theta(kernel: AbstractKernel):
    """Log of every free hyperparameter, flattened into one vector."""
    values = [_get(kernel, h.path) for h in hyperparameter_list(kernel) if not h.fixed]
    # Host values stay in NumPy: an eager jnp op compiles a program on first use.
    xp = np if all(isinstance(v, (np.ndarray, np.generic, float, int)) for v in values) else jnp
    if not values:
        return xp.zeros((0,))
    return xp.concatenate([xp.log(xp.ravel(xp.asarray(v))) for v in values])


def get_bounds(kernel: AbstractKernel) -> np.ndarray:
    """Log-space bounds of ``theta``, shape ``(n_free, 2)``."""
    rows = []
    for h in hyperparameter_list(kernel):
        if h.fixed:
            continue
        b = np.asarray(h.bounds, dtype=np.float64).reshape(-1, 2)
        if b.shape[0] == 1:
            b = np.repeat(b, h.n_elements, axis=0)
        elif len(h.shape) > 1 and b.shape[0] == h.shape[-1] and b.shape[0] != h.n_elements:
            # Per-feature bounds of a leaf with leading batch axes (Batched, distinct ARD):
            # theta ravels in C order, so the feature axis varies fastest.
            b = np.tile(b, (h.n_elements // b.shape[0], 1))
        elif b.shape[0] != h.n_elements:
            raise ValueError(
                f"hyperparameter {h.name!r} has {h.n_elements} elements but {b.shape[0]} bounds; "
                "give one (low, high) pair or one per element."
            )
        rows.append(np.log(b))
    if not rows:
        return np.zeros((0, 2))
    return np.concatenate(rows, axis=0)


def set_theta(kernel: AbstractKernel, theta):
    """Return a copy of ``kernel`` with free hyperparameters ``exp(theta)`` (traceable)."""
    free = [h for h in hyperparameter_list(kernel) if not h.fixed]
    xp = np if isinstance(theta, (np.ndarray, list, tuple)) else jnp  # host values stay in NumPy
    theta = xp.asarray(theta)
    n = sum(h.n_elements for h in free)
    if theta.shape != (n,):
        raise ValueError(f"theta must have shape ({n},) for this kernel, got {theta.shape}")
    if not free:
        return kernel
    values, i = [], 0
    for h in free:
        values.append(xp.exp(theta[i : i + h.n_elements]).reshape(h.shape))
        i += h.n_elements
    return eqx.tree_at(lambda k: [_get(k, h.path) for h in free], kernel, values)


def free_mask_tree(kernel: AbstractKernel):
    """Boolean pytree (same structure as ``kernel``): True on free hyperparameter leaves."""
    free_paths = {h.path for h in hyperparameter_list(kernel) if not h.fixed}
    mask = jax_tree_map_false(kernel)
    if free_paths:
        mask = eqx.tree_at(lambda k: [_get(k, p) for p in free_paths], mask, [True] * len(free_paths))
    return mask


def jax_tree_map_false(tree):
    import jax

    return jax.tree_util.tree_map(lambda _: False, tree)


def kernel_parameters(kernel: AbstractKernel, _prefix="") -> dict:
    """Flat dict of constructor-like parameters with ``a__b`` keys (children included)."""
    out = {}
    for f in dataclasses.fields(kernel):
        value = getattr(kernel, f.name, None)
        key = _prefix + f.name
        out[key] = value
        if isinstance(value, AbstractKernel):
            out.update(kernel_parameters(value, key + "__"))
    return out


def replace_parameters(kernel: AbstractKernel, **params) -> AbstractKernel:
    """Functional ``set_params``: ``k.replace(k1__length_scale=2.0, k2__noise_level_bounds="fixed")``."""
    from ._base import _as_array, _as_bounds

    valid = kernel_parameters(kernel)
    for key, value in params.items():
        if key not in valid:
            raise ValueError(
                f"Invalid parameter {key!r} for kernel {kernel!r}. Valid parameters: {sorted(valid)}"
            )
        path = tuple(key.split("__"))
        leaf = path[-1]
        if leaf.endswith("_bounds"):
            value = _as_bounds(value)
        elif leaf in type(_get(kernel, path[:-1])).hyperparameters:
            value = _as_array(value)
        kernel = _set_path(kernel, path, value)
    return kernel


def _set_path(module, path, value):
    """Copy of ``module`` with the field at ``path`` set to ``value``.

    Works for static fields too (bounds, ``nu``), which ``eqx.tree_at`` cannot
    reach because they are part of the tree structure, not leaves. Copies are made
    the way Equinox unflattens modules (``object.__new__`` + field assignment), so
    custom ``__init__`` methods are not re-run.
    """
    child = value if len(path) == 1 else _set_path(getattr(module, path[0]), path[1:], value)
    new = object.__new__(type(module))
    for f in dataclasses.fields(module):
        object.__setattr__(new, f.name, getattr(module, f.name))
    object.__setattr__(new, path[0], child)
    return new
