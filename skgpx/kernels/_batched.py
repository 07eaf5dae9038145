"""A batch dimension over tasks, added from outside with ``vmap``.

``Batched(kernel, batch_size, distinct=..., batch_inputs=...)`` evaluates ``kernel``
once per batch element. Each hyperparameter is either *shared* (one value for all
elements) or *distinct* (its leaf gets a leading axis of size ``batch_size``). The
wrapped kernel is never asked to guess a batch axis from ``ndim``: the wrapper
splits the tree into distinct leaves (mapped over axis 0) and the rest (closed
over) and ``vmap``s the unbatched public method. Wrappers nest: a
``Batched(Batched(k, B2), B1)`` maps inputs of shape ``(B1, B2, n, d)``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._base import AbstractKernel
from ._params import _get, hyperparameter_list

__all__ = ["Batched"]


def _broadcast_leading(value, size):
    if isinstance(value, jax.Array):
        return jnp.broadcast_to(value, (size,) + value.shape)
    value = np.asarray(value, dtype=np.float64)
    return np.broadcast_to(value, (size,) + value.shape).copy()


def _resolve_distinct(kernel, distinct):
    names = [h.name for h in hyperparameter_list(kernel)]
    if distinct is True:
        return tuple(names)
    if distinct is False or distinct is None:
        return ()
    if isinstance(distinct, str):
        distinct = (distinct,)
    distinct = tuple(distinct)
    unknown = [d for d in distinct if d not in names]
    if unknown or len(set(distinct)) != len(distinct):
        raise ValueError(
            f"Batched(distinct=...) must be True, False or a tuple of distinct hyperparameter names of the "
            f"wrapped kernel; unknown or repeated names {unknown or list(distinct)}. Valid names: {names}."
        )
    return tuple(n for n in names if n in distinct)


class Batched(AbstractKernel):
    """Batch a kernel over tasks; hyperparameters shared or distinct per element.

    **Arguments:**

    - `kernel`: the kernel evaluated for every batch element.
    - `batch_size`: number of batch elements ``B``.
    - `distinct`: ``False`` (all hyperparameters shared), ``True`` (all distinct), or
      a tuple of names from ``hyperparameter_list(kernel)`` such as
      ``("k1__length_scale",)``. Distinct leaves are broadcast at construction to a
      leading axis of size ``B``, so they contribute ``B * size`` entries to ``theta``.
    - `batch_inputs`: ``True``: inputs have shape ``(B, n, d)`` (and masks ``(B, n)``);
      ``False``: inputs ``(n, d)`` (and masks ``(n,)``) are shared by all elements.

    ``gram``/``cross``/``diag`` return ``(B, n, n)``/``(B, n, m)``/``(B, n)``; masks
    may also be ``"nan"``.
    """

    kernel: AbstractKernel
    batch_size: int = eqx.field(static=True)
    distinct: tuple = eqx.field(static=True)
    batch_inputs: bool = eqx.field(static=True)

    def __init__(self, kernel, batch_size, distinct=False, batch_inputs=True):
        if not isinstance(kernel, AbstractKernel):
            raise TypeError(f"Batched(kernel=...) must be an skgpx kernel, got {type(kernel).__name__}.")
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"Batched(batch_size=...) must be a positive integer, got {batch_size!r}.")
        names = _resolve_distinct(kernel, distinct)
        if not names and not batch_inputs:
            raise ValueError(
                "Batched(distinct=False, batch_inputs=False) would compute the same matrix batch_size times; "
                "make some hyperparameters distinct, pass batched inputs, or use the kernel unwrapped."
            )
        hyps = {h.name: h for h in hyperparameter_list(kernel)}
        paths = [hyps[n].path for n in names]
        if paths:
            kernel = eqx.tree_at(
                lambda k: [_get(k, p) for p in paths],
                kernel,
                [_broadcast_leading(_get(kernel, p), int(batch_size)) for p in paths],
            )
        self.kernel = kernel
        self.batch_size = int(batch_size)
        self.distinct = names
        self.batch_inputs = bool(batch_inputs)

    # -- the vmap from outside ------------------------------------------------------
    def _split(self):
        """``(distinct leaves, everything else)`` of the wrapped kernel, checked."""
        hyps = {h.name: h for h in hyperparameter_list(self.kernel)}
        spec = jax.tree_util.tree_map(lambda _: False, self.kernel)
        paths = []
        for name in self.distinct:
            h = hyps[name]
            if h.shape[:1] != (self.batch_size,):
                raise ValueError(
                    f"Batched: distinct hyperparameter {name!r} must have a leading axis of size "
                    f"batch_size={self.batch_size}, got shape {h.shape}. Replace it with an array of that "
                    "shape (e.g. np.full((batch_size,), value))."
                )
            paths.append(h.path)
        if paths:
            spec = eqx.tree_at(lambda k: [_get(k, p) for p in paths], spec, [True] * len(paths))
        return eqx.partition(self.kernel, spec)

    def _check_x(self, X, name):
        if self.batch_inputs and (X.ndim < 3 or X.shape[0] != self.batch_size):
            raise ValueError(
                f"`{name}` must have shape (batch_size={self.batch_size}, n_samples, n_features) for "
                f"Batched(batch_inputs=True), got {X.shape}. For inputs shared by all batch elements use "
                "batch_inputs=False."
            )
        return X

    def _map(self, method, arrays, masks):
        """vmap ``method(kernel_b, *arrays_b, *masks_b)`` over the batch axis."""
        dyn, static = self._split()
        ax = 0 if self.batch_inputs else None
        # None and "nan" masks are static and closed over; boolean arrays are mapped like the inputs.
        is_array = [not (m is None or isinstance(m, str)) for m in masks]
        mapped_masks = tuple(jnp.asarray(m) for m, a in zip(masks, is_array) if a)
        for m in mapped_masks:
            if self.batch_inputs and (m.ndim < 2 or m.shape[0] != self.batch_size):
                raise ValueError(
                    f"a mask for Batched(batch_inputs=True) must have shape (batch_size={self.batch_size}, "
                    f"n_samples), got {m.shape}; masks follow the inputs' batching (or pass mask='nan')."
                )

        def one(dyn_b, arrays_b, masks_b):
            it = iter(masks_b)
            ms = [next(it) if a else m for m, a in zip(masks, is_array)]
            return method(eqx.combine(dyn_b, static), *arrays_b, *ms)

        return jax.vmap(one, in_axes=(0, ax, ax))(dyn, tuple(arrays), mapped_masks)

    # -- public entry points (batched shapes) ----------------------------------------
    def gram(self, X, mask=None):
        """Batched Gram matrices, shape ``(B, n, n)``; padded rows/columns are identity."""
        X = self._check_x(jnp.asarray(X), "X")
        return self._map(lambda k, x, m: k.gram(x, m), [X], [mask])

    def cross(self, X1, X2, mask1=None, mask2=None):
        """Batched cross-covariances, shape ``(B, n, m)``; padded rows/columns are zero."""
        X1 = self._check_x(jnp.asarray(X1), "X1")
        X2 = self._check_x(jnp.asarray(X2), "X2")
        return self._map(lambda k, a, b, m1, m2: k.cross(a, b, m1, m2), [X1, X2], [mask1, mask2])

    def diag(self, X, mask=None):
        """Batched diagonals, shape ``(B, n)``."""
        X = self._check_x(jnp.asarray(X), "X")
        return self._map(lambda k, x, m: k.diag(x, m), [X], [mask])

    # -- a Batched kernel is a leaf of the algebra -----------------------------------
    def _no_unbatched(self, *_):
        raise TypeError(
            "A Batched kernel only has batched entry points (gram, cross, diag); batch the whole "
            "expression instead, e.g. Batched(k1 + k2, batch_size) rather than Batched(k1, B) + k2."
        )

    pairwise = _cross = _no_unbatched

    def _gram(self, X):
        self._no_unbatched()

    def _diag(self, X):
        self._no_unbatched()

    def __repr__(self):
        return (
            f"Batched({self.kernel!r}, batch_size={self.batch_size}, distinct={self.distinct!r}, "
            f"batch_inputs={self.batch_inputs})"
        )
