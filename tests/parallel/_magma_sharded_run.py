"""Magma on one device and on a mesh of 4 host CPU devices: ``report()`` is run by
tests/parallel/_four_device_run.py in a subprocess (XLA_FLAGS set by the parent). Run alone,
it prints its report as one JSON line."""

import json
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.exceptions import ConvergenceWarning

jax.config.update("jax_enable_x64", True)

from skgpx import MultiTaskMagmaRegressor  # noqa: E402
from skgpx._mesh import placement_scope, resolve_placement  # noqa: E402
from skgpx.kernels import RBF, Constant, White  # noqa: E402
from skgpx.magma import (  # noqa: E402
    MagmaParams, build_layout, canonical, e_step, place_task_data, task_data_from_layout,
)
from skgpx.magma._objectives import task_objectives_and_grads  # noqa: E402
from skgpx.magma._separable import shard_rows  # noqa: E402
from skgpx.magma._shard import task_shards  # noqa: E402


def _data(n_tasks=10, n_points=10, seed=0):
    rng = np.random.default_rng(seed)
    X, y, g = [], [], []
    for i in range(n_tasks):
        t = np.sort(rng.choice(np.linspace(0, 10, 40), n_points, replace=False))  # distinct inputs per task
        X.append(t)
        y.append(np.sin(t) + 0.5 * np.sin(1.5 * t + rng.uniform(0, 6)) + 0.1 * rng.normal(size=n_points))
        g.append(np.full(n_points, i))
    return np.concatenate(X)[:, None], np.concatenate(y), np.concatenate(g)


def _fit(device, shared, X, y, g):
    est = MultiTaskMagmaRegressor(
        Constant(1.0) * RBF(2.0), Constant(1.0) * RBF(1.0) + White(0.1), shared_hyperparameters=shared,
        max_iter=2, tol=0.0, device=device,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # two EM iterations on purpose
        est.fit(X, y, groups=g)
    Xs = np.linspace(0, 10, 7)[:, None]
    mp_mean, mp_std = est.predict_mean_process(Xs, return_std=True)
    mean, std = est.predict(np.vstack([Xs, Xs]), groups=np.repeat([0, 3], 7), return_std=True)
    out = dict(mp_mean=mp_mean, mp_std=mp_std, mean=mean, std=std, theta0=est.mean_kernel_.theta,
               theta_task=est.task_theta_, elbo=est.elbo_history_, post_mean=est.hyperposterior_.mean)
    return est, {k: np.asarray(v, np.float64) for k, v in out.items()}


def _fixed(X, y, g, placement, n_shards):
    """At fixed hyperparameters (distinct per task): the E-step and the per-task values and
    gradients of the task M-step (all tasks, and a subset listed per shard), on ``placement``."""
    layout = build_layout(X, y, g, n_shards=n_shards)
    mean_kernel, kernel = Constant(1.0) * RBF(2.0), Constant(1.0) * RBF(1.0) + White(0.1)
    with placement_scope(placement):
        data = place_task_data(task_data_from_layout(layout), placement)
        M_pad, M = data.X.shape[0], data.n_tasks
        # Task i's hyperparameters are the same on both layouts (10 or 12 padded tasks).
        theta = np.tile(np.asarray(kernel.theta), (M_pad, 1)) + 0.04 * np.arange(M_pad)[:, None]
        params = canonical(MagmaParams(mean_kernel, kernel, np.asarray(mean_kernel.theta), theta, np.asarray(0.3),
                                       False))
        jitter = jnp.asarray(1e-8)
        post = e_step(params, data, jitter)
        R = post.cov_sqrt()
        args = (params.theta_task, params, data, post.mean, R @ R.T, jitter, jnp.asarray(1.0))
        values, grads = task_objectives_and_grads(*args)
        sel = np.arange(1, M, 2)  # every other task
        rows, n_rows = shard_rows(sel, M_pad, task_shards(M_pad, data.chunk))
        sub, _ = task_objectives_and_grads(*args, False, 0, jnp.asarray(rows), jnp.asarray(n_rows))
    out = {"mean": post.mean, "lml": post.lml, "values": values[:M], "grads": grads[:M], "subset": sub[sel]}
    shards = {
        "M_pad": M_pad,
        "data_X": sorted((s.device.id, s.data.shape[0]) for s in data.X.addressable_shards),
        "values": sorted((s.device.id, s.data.shape[0]) for s in values.addressable_shards),
        "grads": sorted((s.device.id, s.data.shape[0]) for s in grads.addressable_shards),
    }
    return {k: np.asarray(v, np.float64) for k, v in out.items()}, shards


def report():
    X, y, g = _data()
    mesh = resolve_placement(jax.devices())
    report = {"n_devices": len(jax.devices())}
    for shared in (True, False):
        _, one = _fit(None, shared, X, y, g)
        est, many = _fit(jax.devices(), shared, X, y, g)
        report["shared" if shared else "distinct"] = {
            "diff": {k: float(np.max(np.abs(one[k] - many[k]))) for k in one},
            "scale": {k: float(np.max(np.abs(one[k]))) for k in one},
            "summary": est.summary(),
            "device_": est.device_,
        }
    one, _ = _fixed(X, y, g, jax.devices()[0], 1)
    many, report["shards"] = _fixed(X, y, g, mesh, 4)
    report["fixed"] = {k: float(np.max(np.abs(one[k] - many[k])) / max(1.0, np.max(np.abs(one[k])))) for k in one}
    return report


if __name__ == "__main__":
    print(json.dumps(report()))
