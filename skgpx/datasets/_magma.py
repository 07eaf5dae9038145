"""Simulated Magma data, in the spirit of the MagmaClustR ``simu_db`` function.

Model (MAGMA.md A.1), with squared-exponential kernels:

    mu0 ~ GP(m0, v0 * exp(-|t - t'|^2 / (2 l0^2))),   m0(t) = a + b * sum(t)
    y_i = mu0(t_i) + f_i(t_i) + eps_i,  f_i ~ GP(0, v_i * exp(-|t - t'|^2 / (2 l_i^2))),
    eps_i ~ N(0, s_i^2 I)

Every scalar is drawn uniformly from its ``(low, high)`` interval. With
``shared_hyperparameters=True`` one ``(v, l, s^2)`` is drawn for all tasks,
otherwise one per task. With ``shared_inputs=True`` all tasks observe the same
``n_points`` inputs of ``grid``, otherwise each task draws its own subset.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils import Bunch, check_random_state

__all__ = ["make_magma_data"]


def _se(A, B, variance, length_scale):
    d2 = np.sum((A[..., :, None, :] - B[..., None, :, :]) ** 2, axis=-1)
    v = np.asarray(variance)[..., None, None]
    ls = np.asarray(length_scale)[..., None, None]
    return v * np.exp(-0.5 * d2 / ls**2)


def _mvn(rng, mean, cov, jitter=1e-8):
    """Draws from N(mean, cov) for a batch of covariances ``(..., n, n)``."""
    n = cov.shape[-1]
    scale = np.mean(np.diagonal(cov, axis1=-2, axis2=-1), axis=-1)[..., None, None]
    L = np.linalg.cholesky(cov + jitter * scale * np.eye(n))
    z = rng.standard_normal(cov.shape[:-1])
    return mean + np.einsum("...ij,...j->...i", L, z)


def _interval(name, value):
    lo, hi = (float(value), float(value)) if np.ndim(value) == 0 else map(float, value)
    if not (0 <= lo <= hi) and name not in ("mean_intercept", "mean_slope"):
        raise ValueError(f"`{name}` must be a number or a (low, high) pair with 0 <= low <= high, got {value!r}")
    if lo > hi:
        raise ValueError(f"`{name}` must be a (low, high) pair with low <= high, got {value!r}")
    return lo, hi


def make_magma_data(
    n_tasks=10,
    n_points=10,
    *,
    n_features=1,
    grid=None,
    grid_size=201,
    shared_inputs=True,
    shared_hyperparameters=True,
    mean_intercept=(-5.0, 5.0),
    mean_slope=(-1.0, 1.0),
    mean_variance=(9.0, 25.0),
    mean_length_scale=(1.0, 2.0),
    task_variance=(1.0, 4.0),
    task_length_scale=(0.5, 1.5),
    noise=(0.05, 0.2),
    random_state=None,
    return_truth=False,
):
    """Simulate long-format multi-task data from the Magma model.

    **Arguments:**

    - `n_tasks`, `n_points`: number of tasks and of observations per task.
    - `n_features`: input dimension (1 by default).
    - `grid`: candidate inputs ``(G,)`` or ``(G, n_features)``; default ``linspace(0, 10,
      grid_size)`` in 1-D, ``grid_size`` uniform points of ``[0, 10]^d`` otherwise.
    - `shared_inputs`: all tasks observe the same inputs (else each its own subset).
    - `shared_hyperparameters`: one set of task hyperparameters for all tasks.
    - `mean_intercept`, `mean_slope`: the linear prior mean ``m0(t) = a + b sum(t)``.
    - `mean_variance`, `mean_length_scale`: SE kernel of the mean process.
    - `task_variance`, `task_length_scale`, `noise`: SE kernel and noise variance of the tasks.
      Each of these is a number or a ``(low, high)`` interval drawn from uniformly.
    - `random_state`: int, ``RandomState`` or None.
    - `return_truth`: also return the simulated truth.

    **Returns:**

    ``(X, y, groups)`` with ``X`` ``(n_tasks * n_points, n_features)``, ``y`` and integer task
    ids ``groups`` (rows sorted by task, then input); with ``return_truth=True`` a fourth
    ``Bunch`` with ``grid``, ``mean_process`` (``mu0`` on the grid), ``prior_mean`` (``m0``
    on the grid), ``mean_variance``, ``mean_length_scale``, and per-task arrays
    ``task_variance``, ``task_length_scale``, ``noise``.
    """
    rng = check_random_state(random_state)
    if grid is None:
        if n_features == 1:
            grid = np.linspace(0.0, 10.0, grid_size)[:, None]
        else:
            grid = rng.uniform(0.0, 10.0, size=(grid_size, n_features))
    grid = np.asarray(grid, dtype=np.float64)
    grid = grid[:, None] if grid.ndim == 1 else grid
    if grid.shape[1] != n_features:
        raise ValueError(f"`grid` must have {n_features} columns (n_features), got shape {grid.shape}")
    G = grid.shape[0]
    if n_points > G:
        raise ValueError(f"`n_points`={n_points} exceeds the {G} grid points; pass a larger `grid_size` or `grid`.")
    draw = lambda name, value, size=None: rng.uniform(*_interval(name, value), size=size)  # noqa: E731

    a, b = draw("mean_intercept", mean_intercept), draw("mean_slope", mean_slope)
    v0, l0 = draw("mean_variance", mean_variance), draw("mean_length_scale", mean_length_scale)
    prior_mean = a + b * grid.sum(axis=1)
    mu0 = _mvn(rng, prior_mean, _se(grid, grid, v0, l0))

    size = None if shared_hyperparameters else n_tasks
    vi = np.broadcast_to(draw("task_variance", task_variance, size), (n_tasks,))
    li = np.broadcast_to(draw("task_length_scale", task_length_scale, size), (n_tasks,))
    si = np.broadcast_to(draw("noise", noise, size), (n_tasks,))

    if shared_inputs:
        idx = np.broadcast_to(np.sort(rng.choice(G, n_points, replace=False)), (n_tasks, n_points))
    else:
        idx = np.sort(np.argsort(rng.random((n_tasks, G)), axis=1)[:, :n_points], axis=1)
    T = grid[idx]  # (M, n, d)
    f = _mvn(rng, np.zeros((n_tasks, n_points)), _se(T, T, vi, li))
    y = mu0[idx] + f + rng.standard_normal((n_tasks, n_points)) * np.sqrt(si)[:, None]

    X = T.reshape(-1, n_features)
    groups = np.repeat(np.arange(n_tasks), n_points)
    out = (X, y.reshape(-1), groups)
    if not return_truth:
        return out
    truth = Bunch(
        grid=grid,
        mean_process=mu0,
        prior_mean=prior_mean,
        mean_variance=float(v0),
        mean_length_scale=float(l0),
        task_variance=np.array(vi),
        task_length_scale=np.array(li),
        noise=np.array(si),
    )
    return out + (truth,)
