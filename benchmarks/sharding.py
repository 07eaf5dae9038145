"""One GP on 1, 2 and 4 devices, and many windows on Dask against the serial loop.

Part 1 (``--devices``): the same GP (Matern-3/2 in 2-D, fixed hyperparameters, ``solver`` =
``cg-dense`` and ``cg-matrix-free``) conditioned on ``n`` points with ``device=jax.devices()[:p]``.
Without accelerators the script asks XLA for 4 host CPU devices
(``--xla_force_host_platform_device_count=4``): they share the machine's cores, so on a CPU
the table shows correctness and the sharding overhead, not a speed-up. Columns: ``fit_s`` and
``mean_s`` (mean at ``--n-test`` points) after one warm-up fit (compilation excluded),
``iters`` PCG iterations, ``d_mean`` max |mean - mean on 1 device|.

Part 2 (``--windows``): ``W`` independent daily windows of ``m`` points, each an optimised
exact GP (``solver="cholesky"``), fitted by the serial loop and by
``skgpx.parallel.fit_many`` on a ``LocalCluster`` (``--workers`` processes, 1 thread each).
``start_s`` is the cluster start-up, ``fit_s`` the fits (incl. each worker's first
compilation), ``d_mean`` the max difference of the windows' predictions against the serial fits.

Run:

    .venv/bin/python benchmarks/sharding.py                  # n = 4000, 8 windows of 400
    .venv/bin/python benchmarks/sharding.py --n 1000 --windows 4 --window-n 200   # quick
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
    p.add_argument("--windows", type=int, default=8)
    p.add_argument("--window-n", type=int, default=400)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--skip-dask", action="store_true")
    a = p.parse_args()
    devices_table(a.n, a.n_test, a.devices)
    if not a.skip_dask:
        windows_table(a.windows, a.window_n, a.workers)


if __name__ == "__main__":
    main()
