"""The Magma model's parameters and training data as immutable Equinox modules.

``Theta = {theta_0, (theta_i)_i, m_0}`` (MAGMA.md A.1): ``theta_0`` are the
log-hyperparameters of the mean-process kernel ``K_theta0``, ``theta_i`` those of
the task kernel (whose ``White`` term is the task noise ``sigma_i^2``, so
``Psi_i = K_theta_i(t_i, t_i) + sigma_i^2 I`` is ``task_kernel.gram(t_i)``), and
``m_0`` is the constant prior mean of the mean process.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._layout import TaskLayout
from ._linalg import chol

__all__ = ["MagmaParams", "TaskData", "task_data_from_layout", "canonical", "grid_chol", "grid_size"]


class MagmaParams(eqx.Module):
    """Hyperparameters of Magma.

    ``theta_task`` has shape ``(p,)`` with shared task hyperparameters and
    ``(M_pad, p)`` (one row per padded task) with distinct ones.
    """

    mean_kernel: object  # skgpx kernel, template (its values are replaced by theta0)
    task_kernel: object
    theta0: object
    theta_task: object
    m0: object
    shared_hyperparameters: bool = eqx.field(static=True)

    def mean_kernel_at(self, theta0=None):
        return self.mean_kernel.with_theta(self.theta0 if theta0 is None else theta0)

    def task_thetas(self, n_tasks):
        """Per-task log-hyperparameters ``(n_tasks, p)`` (broadcast when shared)."""
        th = jnp.asarray(self.theta_task)
        if self.shared_hyperparameters:
            return jnp.broadcast_to(th, (n_tasks,) + th.shape)
        return th


class TaskData(eqx.Module):
    """Device copy of a :class:`~skgpx.magma._layout.TaskLayout` (see there for the fields).

    Only shapes, the chunk and ``shared_inputs`` are static: the number of real tasks is
    read from ``mask`` (real tasks come first and have a real first row), so tasks padded
    to one bucket share every compiled program.
    """

    grid: object
    X: object
    y: object
    index: object
    mask: object
    grid_mask: object  # (N,) bool, or None: no padded grid point
    chunk: int = eqx.field(static=True)
    shared_inputs: bool = eqx.field(static=True)

    @property
    def n_obs(self):
        return jnp.sum(self.mask)

    @property
    def n_tasks(self) -> int:
        """Real tasks (host; the padded ones are fully masked)."""
        return int(np.count_nonzero(np.asarray(self.mask)[:, 0]))  # on the host: no eager device op

    @property
    def longest(self) -> int:
        """Rows of the longest real task (host): what size thresholds compare with, so that
        padding the task blocks changes no decision."""
        return int(np.max(np.sum(np.asarray(self.mask), axis=1)))

    def chunked(self, *arrays):
        """Reshape leading task axes ``(M_pad, ...)`` to ``(M_pad // chunk, chunk, ...)``."""
        return tuple(a.reshape((-1, self.chunk) + a.shape[1:]) for a in arrays)


def task_data_from_layout(layout: TaskLayout, y=None, dtype=np.float64) -> TaskData:
    """Move a layout to JAX arrays (``y`` overrides ``layout.y``, e.g. normalised targets)."""
    return TaskData(
        grid=jnp.asarray(layout.grid, dtype),
        X=jnp.asarray(layout.X, dtype),
        y=jnp.asarray(layout.y if y is None else y, dtype),
        index=jnp.asarray(layout.index),
        mask=jnp.asarray(layout.mask),
        grid_mask=None if layout.grid_mask is None else jnp.asarray(layout.grid_mask),
        chunk=layout.chunk,
        shared_inputs=layout.shared_inputs,
    )


def grid_size(grid, grid_mask):
    """Real points of a (possibly padded) grid: ``N``, or the count of ``grid_mask``."""
    return grid.shape[0] if grid_mask is None else jnp.sum(grid_mask)


def grid_chol(kernel, grid, jitter, grid_mask=None):
    """Cholesky factor of ``kernel`` on the grid with the relative jitter; padded grid
    points (``grid_mask`` False) get an identity block, observed by no task, so the
    factor's real block, and every result on the real grid, is that of the unpadded grid."""
    return chol(kernel.gram(grid, grid_mask), jitter, grid_mask)


def canonical(tree, dtype=np.float64):
    """Every floating array leaf as a strongly typed ``dtype`` JAX array.

    The compiled EM functions see the same pytree types, shapes and dtypes at every
    iteration (no weak-typed scalar from ``jnp.asarray(0.0)``, no NumPy vs JAX leaf
    switch), so they are traced once and reused.
    """

    def leaf(x):
        if isinstance(x, (np.ndarray, jnp.ndarray)) and jnp.issubdtype(x.dtype, jnp.floating):
            return jnp.asarray(np.asarray(x, dtype=dtype))
        return x

    return jax.tree_util.tree_map(leaf, tree)
