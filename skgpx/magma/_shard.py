"""Magma's per-task work split by tasks over the devices of a mesh.

The E-step's task precisions, the task terms of the ELBO and of the M-step, their
per-task gradients and the pivot passes of the low-rank task covariances are loops
over the (padded) task axis. Under a context mesh of ``p`` devices (``jax.set_mesh``:
``MultiTaskMagmaRegressor(device=[...] | Mesh | "all")``, :mod:`skgpx._mesh`) the task
arrays of :class:`~._model.TaskData` are split by tasks (:func:`place_task_data`) and each
loop runs in ``jax.shard_map`` on its device's ``M_pad / p`` tasks (:func:`over_tasks`):
sums end with one ``psum`` (the ``N x N`` precision ``S`` of the E-step, scalars for the
objectives), per-task outputs (values, gradients, pivot counts) stay split (gathered when
the mesh spans several processes: every process reads them on its host). Everything
else (the grid, the mean-process factors, the hyper-posterior moments) is replicated.

The layout pads the task axis to a multiple of ``p`` chunks with fully masked tasks
(:func:`~._layout.build_layout` ``n_shards=p``), which contribute exactly zero, so the
result is the one-device result up to the order of the floating-point sums. A task
array whose length is not a multiple of ``p`` units (a subset of tasks) runs unsplit.
"""

from __future__ import annotations

import equinox as eqx
import jax
from jax.sharding import NamedSharding, PartitionSpec

from .._mesh import context_row_mesh, put, row_spec, varying, varying_axes

__all__ = ["task_shards", "over_tasks", "like_tasks", "place_task_data"]


def task_shards(n_tasks: int | None = None, unit: int = 1) -> int:
    """Number of devices the task loops are split over under the context mesh (1 without one).

    With ``n_tasks``: 1 when ``n_tasks`` is not a multiple of ``p * unit`` (then
    :func:`over_tasks` runs unsplit too). Host code that lays out per-shard index lists
    (:func:`~._separable.separable_m_step`) asks the same question.
    """
    mesh = context_row_mesh()
    p = 1 if mesh is None else int(mesh.size)
    if n_tasks is not None and n_tasks % (p * unit):
        return 1
    return p


def over_tasks(fn, tasks, whole=(), *, unit: int = 1, out: str = "sum"):
    """``fn(*whole, *tasks)`` on every device's share of the tasks.

    ``tasks``: arrays whose leading axis is the padded task axis. ``whole``: everything
    else ``fn`` reads that holds arrays (parameters, moments, jitter), on every device;
    ``fn`` must take them as arguments, not close over them (a closed-over array keeps the
    sharding of the enclosing computation, which an indexing inside ``shard_map`` refuses).
    ``unit``: each device's share must be a whole number of these (the vmapped chunk).
    ``out="sum"``: ``fn`` returns a pytree of partial sums over its tasks, added over the
    devices; ``out="split"``: ``fn`` returns arrays with a leading task axis, left split.
    """
    tasks, whole = tuple(tasks), tuple(whole)
    if task_shards(tasks[0].shape[0], unit) == 1:
        return fn(*whole, *tasks)
    mesh = context_row_mesh()
    spec = row_spec(mesh)
    dyn, static = eqx.partition(whole, eqx.is_array)

    def local(dyn, *a):
        r = fn(*eqx.combine(dyn, static), *a)
        return jax.lax.psum(r, spec[0]) if out == "sum" else r

    in_specs = (PartitionSpec(),) + (spec,) * len(tasks)
    result = jax.shard_map(local, mesh=mesh, in_specs=in_specs,
                           out_specs=PartitionSpec() if out == "sum" else spec)(dyn, *tasks)
    if out == "split" and jax.process_count() > 1:
        # Per-task results are read on the host, by every process: whole on every device
        # (a few numbers per task) when the mesh spans several processes.
        result = jax.lax.with_sharding_constraint(result, PartitionSpec())
    return result


def like_tasks(tree, ref):
    """``tree`` (e.g. a scan's zero start) typed as varying over the devices ``ref`` (a local
    task array) varies over, inside :func:`over_tasks`; unchanged outside of it."""
    axes = tuple(sorted(varying_axes(jax.typeof(ref))))
    return varying(tree, axes) if axes else tree


def place_task_data(data, placement):
    """:class:`~._model.TaskData` on ``placement``: on a mesh, the task arrays split by tasks
    (when their padded count allows it) and the grid on every device; else on the device."""
    if not isinstance(placement, jax.sharding.Mesh):
        return jax.device_put(data, placement)
    p = int(placement.size)
    split = NamedSharding(placement, row_spec(placement))

    def task_array(a):
        return jax.device_put(a, split) if a.shape[0] % (p * data.chunk) == 0 else put(a, placement)

    return type(data)(
        grid=put(data.grid, placement), X=task_array(data.X), y=task_array(data.y), index=task_array(data.index),
        mask=task_array(data.mask), grid_mask=None if data.grid_mask is None else put(data.grid_mask, placement),
        chunk=data.chunk, shared_inputs=data.shared_inputs,
    )
