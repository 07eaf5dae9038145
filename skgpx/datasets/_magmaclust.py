"""Simulated MagmaClust data: tasks drawn from a mixture of mean processes (MAGMA.md A.4).

Model, with squared-exponential kernels: ``Z_i ~ Mult(1, proportions)``; cluster ``k`` has
a mean process ``mu_k ~ GP(a_k, v0 * SE(l0))`` with its own constant prior mean ``a_k``;
``y_i = mu_{Z_i}(t_i) + f_i(t_i) + eps_i`` as in :func:`~skgpx.datasets.make_magma_data`.
Well-separated clusters come from spread-out ``a_k`` (``cluster_spacing`` apart).
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import Bunch, check_random_state

from ._magma import _mvn, _se

__all__ = ["make_magmaclust_data"]


def make_magmaclust_data(
    n_tasks=30,
    n_points=10,
    n_clusters=3,
    *,
    proportions=None,
    cluster_spacing=10.0,
    grid_size=201,
    shared_inputs=True,
    mean_variance=4.0,
    mean_length_scale=1.5,
    task_variance=1.0,
    task_length_scale=1.0,
    noise=0.1,
    random_state=None,
    return_truth=False,
):
    """Simulate long-format multi-task data from a mixture of ``n_clusters`` mean processes.

    **Arguments:** `n_tasks`, `n_points` (per task), `n_clusters`; `proportions` of the
    clusters (default uniform); `cluster_spacing`: distance between consecutive clusters'
    prior means; inputs on ``linspace(0, 10, grid_size)``, shared by all tasks or drawn per
    task (`shared_inputs`); SE kernel variances and length scales of the mean processes and
    the tasks, and the noise variance (numbers); `random_state`.

    **Returns:** ``(X, y, groups)`` (``X`` ``(n_tasks * n_points, 1)``), and with
    `return_truth` a ``Bunch`` with ``grid``, ``mean_processes`` ``(K, G)``, ``labels``
    ``(n_tasks,)`` (each task's cluster) and ``proportions``.
    """
    rng = check_random_state(random_state)
    if n_clusters < 1 or n_tasks < n_clusters:
        raise ValueError(f"Need 1 <= n_clusters <= n_tasks, got n_clusters={n_clusters}, n_tasks={n_tasks}.")
    p = np.full(n_clusters, 1.0 / n_clusters) if proportions is None else np.asarray(proportions, float)
    if p.shape != (n_clusters,) or np.any(p < 0) or not np.isclose(p.sum(), 1.0):
        raise ValueError(f"`proportions` must be {n_clusters} non-negative numbers summing to 1, got {proportions!r}.")
    grid = np.linspace(0.0, 10.0, grid_size)[:, None]
    G = grid.shape[0]
    if n_points > G:
        raise ValueError(f"`n_points`={n_points} exceeds the {G} grid points; pass a larger `grid_size`.")
    offsets = cluster_spacing * (np.arange(n_clusters) - (n_clusters - 1) / 2.0)
    K0 = _se(grid, grid, mean_variance, mean_length_scale)
    mus = np.stack([_mvn(rng, np.full(G, a), K0) for a in offsets])
    # Every cluster gets at least one task, the rest by the proportions.
    labels = np.concatenate([np.arange(n_clusters), rng.choice(n_clusters, n_tasks - n_clusters, p=p)])
    labels = rng.permutation(labels)
    if shared_inputs:
        idx = np.broadcast_to(np.sort(rng.choice(G, n_points, replace=False)), (n_tasks, n_points))
    else:
        idx = np.sort(np.argsort(rng.random((n_tasks, G)), axis=1)[:, :n_points], axis=1)
    T = grid[idx]
    f = _mvn(rng, np.zeros((n_tasks, n_points)), _se(T, T, task_variance, task_length_scale))
    y = mus[labels[:, None], idx] + f + rng.standard_normal((n_tasks, n_points)) * np.sqrt(noise)
    out = (T.reshape(-1, 1), y.reshape(-1), np.repeat(np.arange(n_tasks), n_points))
    if not return_truth:
        return out
    return out + (Bunch(grid=grid, mean_processes=mus, labels=labels, proportions=p),)
