"""One GP and one Magma fit on 1, 2 and 4 devices, and many windows on Dask against the serial loop.

Part 1 (``--devices``): the same GP (Matern-3/2 in 2-D, fixed hyperparameters, ``solver`` =
``cg-dense`` and ``cg-matrix-free``) conditioned on ``n`` points with ``device=jax.devices()[:p]``.
Without accelerators the script asks XLA for 4 host CPU devices
(``--xla_force_host_platform_device_count=4``): they share the machine's cores, so on a CPU
the table shows correctness and the sharding overhead, not a speed-up. Columns: ``fit_s`` and
``mean_s`` (mean at ``--n-test`` points) after one warm-up fit (compilation excluded),
``iters`` PCG iterations, ``d_mean`` max |mean - mean on 1 device|.

Part 2 (``--magma-tasks``): the same Magma problem (``M`` tasks of ``m`` points at their own
inputs on a shared grid, shared and distinct task hyperparameters, a fixed number of EM
iterations: ``tol=0``) fitted with ``device=jax.devices()[:p]``: the per-task work of the E- and
M-steps split by tasks over the devices. ``fit_s`` after one warm-up fit (compilation excluded),
``d_mp`` max |mean-process mean - one device's| at 200 points, ``d_pred`` the same for the
training tasks' predictions, ``d_theta`` for the log-hyperparameters (an optimiser's optimum moves
with the order of the sums by about sqrt(eps)).

Part 3 (``--windows``): ``W`` independent daily windows of ``m`` points, each an optimised
exact GP (``solver="cholesky"``), fitted by the serial loop and by
``skgpx.parallel.fit_many`` on a ``LocalCluster`` (``--workers`` processes, 1 thread each).
``start_s`` is the cluster start-up, ``fit_s`` the fits (incl. each worker's first
compilation), ``d_mean`` the max difference of the windows' predictions against the serial fits.

Run:

    .venv/bin/python benchmarks/sharding.py                  # n = 4000, Magma 64 x 30, 8 windows of 400
    .venv/bin/python benchmarks/sharding.py --n 1000 --magma-tasks 32 --windows 4 --window-n 200   # quick
    .venv/bin/python benchmarks/sharding.py --skip-gp --skip-dask    # the Magma rows only
"""

from __future__ import annotations

import os

if "--xla_force_host_platform_device_count" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4").strip()

import argparse  # noqa: E402
import time  # noqa: E402

import jax  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.gaussian_process.kernels import RBF, ConstantKernel as C, Matern, WhiteKernel  # noqa: E402

from skgpx import ScalableGPRegressor  # noqa: E402


def _data(n, seed, shift=0.0):
    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 2))
    y = np.sin(6 * X[:, 0] + shift) + np.cos(4 * X[:, 1]) + 0.1 * rng.normal(size=n)
    return X, y


def devices_table(n, n_test, device_counts):
    X, y = _data(n, 0)
    Xs = _data(n_test, 1)[0]
    rows, ref = [], {}
    for solver in ("cg-dense", "cg-matrix-free"):
        for p in device_counts:
            if p > len(jax.devices()):
                continue
            devs = jax.devices()[:p]
            est = ScalableGPRegressor(C(1.0) * Matern(0.2, nu=1.5) + WhiteKernel(0.01), solver=solver,
                                      device=devs if p > 1 else devs[0], optimizer=None, random_state=0)
            est.fit(X, y).predict(Xs)  # warm-up: compile
            t0 = time.perf_counter()
            est.fit(X, y)
            fit_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            mean = est.predict(Xs)
            mean_s = time.perf_counter() - t0
            ref.setdefault(solver, mean)
            rows.append((solver, p, fit_s, mean_s, est.solver_info_["iterations"],
                         float(np.max(np.abs(mean - ref[solver])))))
            print(f"  {solver:15s} p={p} fit {fit_s:7.2f} s", flush=True)
    print(f"\nOne GP, n={n}, {n_test} test points, {jax.devices()[0].platform} devices "
          f"({jax.device_count()} available)\n")
    print(f"| {'solver':15s} | devices | fit_s | mean_s | iters | d_mean |")
    print("|---|---|---|---|---|---|")
    for solver, p, fit_s, mean_s, it, d in rows:
        print(f"| {solver:15s} | {p} | {fit_s:.2f} | {mean_s:.3f} | {it} | {d:.1e} |")


def _magma_data(n_tasks, n_points, seed=0):
    rng = np.random.default_rng(seed)
    grid = np.linspace(0, 10, 4 * n_points)
    X, y, g = [], [], []
    for i in range(n_tasks):
        t = np.sort(rng.choice(grid, n_points, replace=False))
        X.append(t)
        y.append(np.sin(t) + 0.5 * np.sin(1.5 * t + rng.uniform(0, 6)) + 0.1 * rng.normal(size=n_points))
        g.append(np.full(n_points, i))
    return np.concatenate(X)[:, None], np.concatenate(y), np.concatenate(g)


def magma_table(n_tasks, n_points, max_iter, device_counts):
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    from skgpx import MultiTaskMagmaRegressor
    from skgpx.kernels import RBF as SkgpxRBF, Constant, White

    X, y, g = _magma_data(n_tasks, n_points)
    Xs = np.linspace(0, 10, 200)[:, None]
    rows, ref = [], {}
    for shared in (True, False):
        hyper = "shared" if shared else "distinct"
        for p in device_counts:
            if p > len(jax.devices()):
                continue
            devs = jax.devices()[:p]
            est = MultiTaskMagmaRegressor(Constant(1.0) * SkgpxRBF(2.0), Constant(1.0) * SkgpxRBF(1.0) + White(0.1),
                                          shared_hyperparameters=shared, max_iter=max_iter, tol=0.0,
                                          device=devs if p > 1 else devs[0])
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # a fixed number of EM iterations
                est.fit(X, y, groups=g)  # warm-up: compile
                t0 = time.perf_counter()
                est.fit(X, y, groups=g)
                fit_s = time.perf_counter() - t0
            out = {"mp": est.predict_mean_process(Xs), "pred": est.predict(X, groups=g), "theta": est.task_theta_}
            r = ref.setdefault(hyper, out)
            d = {k: float(np.max(np.abs(out[k] - r[k]))) for k in out}
            rows.append((hyper, p, est._layout.X.shape[0], fit_s, d["mp"], d["pred"], d["theta"]))
            print(f"  Magma {hyper:8s} p={p} fit {fit_s:7.2f} s", flush=True)
    print(f"\nMagma, {n_tasks} tasks x {n_points} points (distinct inputs, grid {len(np.unique(X))}), {max_iter} EM "
          f"iterations, {jax.devices()[0].platform} devices ({jax.device_count()} available)\n")
    print("| task hyperparameters | devices | padded tasks | fit_s | d_mp | d_pred | d_theta |")
    print("|---|---|---|---|---|---|---|")
    for hyper, p, m_pad, fit_s, d_mp, d_pred, d_theta in rows:
        print(f"| {hyper} | {p} | {m_pad} | {fit_s:.2f} | {d_mp:.1e} | {d_pred:.1e} | {d_theta:.1e} |")


def windows_table(n_windows, window_n, workers):
    import distributed

    from skgpx.parallel import fit_many

    windows = [_data(window_n, 10 + w, shift=0.2 * w) for w in range(n_windows)]
    Xs = _data(200, 2)[0]
    est = ScalableGPRegressor(C(1.0) * RBF(0.3) + WhiteKernel(0.01), solver="cholesky", random_state=0)
    t0 = time.perf_counter()
    serial = [clone(est).fit(X, y) for X, y in windows]
    serial_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        start_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        fitted = fit_many(est, windows, client=client)
        dask_s = time.perf_counter() - t0
    d = max(float(np.max(np.abs(a.predict(Xs) - b.predict(Xs)))) for a, b in zip(serial, fitted))
    print(f"\n{n_windows} windows of {window_n} points (optimised exact GP each), {os.cpu_count()} CPU cores\n")
    print("| run | start_s | fit_s | d_mean |")
    print("|---|---|---|---|")
    print(f"| serial loop | - | {serial_s:.2f} | - |")
    print(f"| fit_many, LocalCluster {workers} workers x 1 thread | {start_s:.2f} | {dask_s:.2f} | {d:.1e} |")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    p.add_argument("--magma-tasks", type=int, default=64)
    p.add_argument("--magma-points", type=int, default=30)
    p.add_argument("--magma-iter", type=int, default=3)
    p.add_argument("--windows", type=int, default=8)
    p.add_argument("--window-n", type=int, default=400)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-gp", action="store_true")
    p.add_argument("--skip-magma", action="store_true")
    p.add_argument("--skip-dask", action="store_true")
    a = p.parse_args()
    if not a.skip_gp:
        devices_table(a.n, a.n_test, a.devices)
    if not a.skip_magma:
        magma_table(a.magma_tasks, a.magma_points, a.magma_iter, a.devices)
    if not a.skip_dask:
        windows_table(a.windows, a.window_n, a.workers)


if __name__ == "__main__":
    main()
