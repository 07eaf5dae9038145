"""Several devices for one estimator: ``device=`` as a sequence of devices or a ``jax.sharding.Mesh``.

A *placement* is what an estimator's ``device`` parameter resolves to: one
``jax.Device`` (:func:`skgpx._device.resolve_device`) or a ``Mesh`` whose devices
share the rows of the kernel operators (``skgpx.operators.ShardedKernelOperator``).
Inputs are placed replicated on the mesh (they are ``O(n d)``); the ``O(n^2)`` work,
the kernel matrix and the solver's vectors are split by rows inside the compiled
functions. Under ``jax.distributed.initialize`` (several processes) the same code runs
on a mesh of ``jax.devices()``, which then spans the processes.

Every computation of the estimator runs inside :func:`placement_scope`, which makes the
mesh JAX's context mesh (``jax.set_mesh``): the operator factory reads it at trace time
(:func:`context_row_mesh`), and it is part of JAX's compilation cache key.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from ._device import describe_device, resolve_device

__all__ = [
    "ROW_AXIS", "resolve_placement", "describe_placement", "placement_scope", "put", "row_spec", "context_row_mesh",
    "varying", "varying_axes", "first_device",
]

# Axis name of the 1-D mesh built from a sequence of devices.
ROW_AXIS = "rows"


def resolve_placement(device=None):
    """``device`` -> a ``jax.Device`` or a ``Mesh`` (for more than one device).

    Accepts what :func:`~skgpx._device.resolve_device` accepts, plus a sequence of
    ``jax.Device`` (a 1-D mesh with axis ``"rows"``; one device: that device), the
    string ``"all"`` (every device of JAX's default backend, across processes under
    ``jax.distributed``) and a ``jax.sharding.Mesh`` (rows are split over all its axes).
    """
    if isinstance(device, Mesh):
        return device if device.devices.size > 1 else device.devices.flat[0]
    if isinstance(device, str) and device.lower() == "all":
        device = jax.devices()
    if isinstance(device, Sequence) and not isinstance(device, str):
        devices = list(device)
        bad = [d for d in devices if not isinstance(d, jax.Device)]
        if not devices or bad:
            raise ValueError(
                f"`device` as a sequence must hold jax.Device objects (e.g. jax.devices()), got {device!r}; "
                "pass a jax.sharding.Mesh for a multi-axis layout."
            )
        if len(set(devices)) != len(devices):
            raise ValueError(f"`device` lists a device twice: {devices!r}.")
        if len(devices) == 1:
            return devices[0]
        return Mesh(np.array(devices, dtype=object), (ROW_AXIS,))
    return resolve_device(device)


def describe_placement(placement) -> str:
    """``'cpu:0'`` for one device; ``'mesh rows=4 (cpu:0, cpu:1, ...)'`` for a mesh."""
    if isinstance(placement, Mesh):
        shape = " x ".join(f"{name}={size}" for name, size in placement.shape.items())
        devs = list(placement.devices.flat)
        names = ", ".join(describe_device(d) for d in devs[:4]) + (", ..." if len(devs) > 4 else "")
        procs = len({d.process_index for d in devs})
        return f"mesh {shape} ({names})" + (f", {procs} processes" if procs > 1 else "")
    return describe_device(placement)


@contextlib.contextmanager
def placement_scope(placement):
    """Run JAX work on ``placement``: its default device, or the mesh as JAX's context mesh."""
    if isinstance(placement, Mesh):
        with jax.set_mesh(placement):
            yield
    else:
        with jax.default_device(placement):
            yield


def put(x, placement):
    """``jax.device_put`` onto the device, or replicated onto every device of the mesh."""
    if isinstance(placement, Mesh):
        return jax.device_put(x, NamedSharding(placement, PartitionSpec()))
    return jax.device_put(x, placement)


def first_device(placement) -> jax.Device:
    """The device itself, or the mesh's first device of this process (for per-device checks)."""
    if isinstance(placement, Mesh):
        local = [d for d in placement.devices.flat if d.process_index == jax.process_index()]
        return (local or list(placement.devices.flat))[0]
    return placement


def row_spec(mesh) -> PartitionSpec:
    """Rows split over every axis of ``mesh`` (columns whole)."""
    return PartitionSpec(tuple(mesh.axis_names))


def context_row_mesh():
    """The context mesh (``jax.set_mesh``) when it has more than one device, else None.

    Read at trace time by the operator factory; an abstract mesh (shapes and names only).
    """
    mesh = jax.sharding.get_abstract_mesh()
    if mesh is None or mesh.empty or mesh.size <= 1:
        return None
    return mesh


def varying_axes(aval) -> set:
    # The mesh axes a value inside shard_map differs over: ``aval.vma`` up to jax 0.11,
    # ``aval.manual_axis_type.varying`` from 0.12.
    manual = getattr(aval, "manual_axis_type", None)
    return set(getattr(aval, "vma", None) or getattr(manual, "varying", None) or ())


def varying(tree, axes):
    """Mark a replicated value (a scan carry's start) as differing between the devices of
    ``axes`` inside ``jax.shard_map`` (its type check); a no-op on what already does."""
    axes = (axes,) if isinstance(axes, str) else tuple(axes)

    def cast(x):
        if set(axes) <= varying_axes(jax.typeof(x)):
            return x
        return jax.lax.pcast(x, axes, to="varying")

    return jax.tree_util.tree_map(cast, tree)
