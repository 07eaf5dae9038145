"""Magma training cost: time per EM iteration, total fit time and peak memory on simulated data.

Run (from the repository root)::

    .venv/bin/python benchmarks/magma.py            # full: 20x15, 200x150, 600x450, 5000x20
    .venv/bin/python benchmarks/magma.py --quick    # small cases only (seconds)
    .venv/bin/python benchmarks/magma.py --clust    # MagmaClust: K = 3 given, and "auto" (K = 1..6)
    .venv/bin/python benchmarks/magma.py --clust --xla-threads 1   # one XLA/BLAS thread per fit

Cases are ``tasks x points`` from :func:`skgpx.datasets.make_magma_data`, with shared or
distinct inputs (``SI``/``DI``) and shared or distinct task hyperparameters
(``SHP``/``DHP``). Each case is fitted once (``max_iter`` EM iterations, first
iteration includes compilation) in a fresh subprocess so that its peak RSS is its own.
Each row also gives the load average of the machine while the case ran (``load``).
``--xla-threads 1`` runs each case with one XLA and one BLAS thread: on a machine shared
with other jobs, XLA's thread pool otherwise spends most of its time waiting for cores
(small matrix operations measured 20-400x slower at a load average of 10), and the
single-threaded CPU time is then what one idle core needs. On the smallest case a naive dense-NumPy E-step (explicit inverses, a Python loop over
tasks, as the reference R code does) is timed against skgpx's compiled E-step.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

FULL = [
    (20, 15, True, True), (20, 15, False, False),
    (200, 150, True, True), (200, 150, False, True), (200, 150, True, False), (200, 150, False, False),
    (600, 450, True, True), (600, 450, False, True), (600, 450, False, False),
    (5000, 20, False, True),
]
QUICK = [(20, 15, True, True), (20, 15, False, False), (60, 30, False, True)]
# MagmaClust: (tasks, points, shared inputs, n_clusters) on 3 simulated clusters.
CLUST = [
    (200, 150, True, 3), (200, 150, False, 3), (1000, 50, True, 3), (1000, 50, False, 3),
    (200, 150, True, "auto"), (200, 150, False, "auto"), (1000, 50, True, "auto"), (1000, 50, False, "auto"),
]
CLUST_QUICK = [(30, 12, True, 3), (30, 12, False, 3)]


def run_clust_case(M, n, shared_inputs, n_clusters, max_iter):
    """One MagmaClust fit (shared task and mean hyperparameters) with the estimator's stopping rule."""
    import resource
    import warnings

    import numpy as np
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel as C, WhiteKernel
    from sklearn.metrics import adjusted_rand_score

    from skgpx import MultiTaskMagmaRegressor
    from skgpx.datasets import make_magmaclust_data

    grid_size = max(2 * n, 201)
    X, y, g, truth = make_magmaclust_data(M, n, 3, shared_inputs=shared_inputs, grid_size=grid_size,
                                          random_state=0, return_truth=True)
    est = MultiTaskMagmaRegressor(C(1.0) * RBF(1.5), C(0.5) * RBF(1.0) + WhiteKernel(0.1), n_clusters=n_clusters,
                                  prior_mean="constant", max_iter=max_iter, m_step_max_iter=25, random_state=0)
    t0, c0 = time.perf_counter(), time.process_time()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y, g)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    it = est.iteration_times_
    return dict(M=M, n=n, inputs="SI" if shared_inputs else "DI", K=str(n_clusters), cpu_s=cpu,
                load=os.getloadavg()[0],
                selected=int(est.n_clusters_), grid=int(est.grid_.shape[0]), iters=int(est.n_iter_),
                per_iter_s=float(np.median(it[1:])) if len(it) > 1 else float(it[0]), total_s=total,
                ari=float(adjusted_rand_score(truth.labels, est.memberships_.argmax(axis=1))),
                peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)


def run_case(M, n, shared_inputs, shared_hp, max_iter):
    import resource
    import warnings

    import numpy as np
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel as C, WhiteKernel

    from skgpx import MultiTaskMagmaRegressor
    from skgpx.datasets import make_magma_data

    grid_size = max(2 * n, 201) if not shared_inputs else max(n, 201)
    X, y, g = make_magma_data(M, n, shared_inputs=shared_inputs, shared_hyperparameters=shared_hp,
                              grid_size=grid_size, random_state=0)
    est = MultiTaskMagmaRegressor(C(1.0) * RBF(1.5), C(0.5) * RBF(1.0) + WhiteKernel(0.1),
                                  shared_hyperparameters=shared_hp, prior_mean="constant",
                                  max_iter=max_iter, tol=0.0, m_step_max_iter=25)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y, g)
    total = time.perf_counter() - t0
    it = est.iteration_times_
    out = dict(M=M, n=n, inputs="SI" if shared_inputs else "DI", hp="SHP" if shared_hp else "DHP",
               grid=int(est.grid_.shape[0]), iters=int(est.n_iter_), first_iter_s=float(it[0]),
               per_iter_s=float(np.median(it[1:])) if len(it) > 1 else float(it[0]), total_s=total,
               peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    if M * n <= 300:
        out.update(naive_estep_ratio(est, X, y, g))
    return out


def naive_estep_ratio(est, X, y, g):
    """Dense NumPy E-step (inverses, loop over tasks) vs the compiled E-step, same parameters."""
    import jax
    import numpy as np

    from skgpx.magma import MagmaParams, build_layout, canonical, e_step, task_data_from_layout

    jax.config.update("jax_enable_x64", True)
    lay = build_layout(X, (y - y.mean()) / y.std(), g)
    mk, tk = est._mean_kernel_skgpx, est._task_kernel_skgpx
    T = lay.grid

    def naive_once():
        K0 = np.asarray(mk.gram(T)) + 1e-8 * np.eye(len(T))
        prec = np.linalg.inv(K0)
        rhs = np.zeros(len(T))
        for i in range(lay.n_tasks):
            m = lay.mask[i]
            idx = lay.index[i][m]
            Pi = np.linalg.inv(np.asarray(tk.gram(lay.X[i][m])))
            prec[np.ix_(idx, idx)] += Pi
            rhs[idx] += Pi @ lay.y[i][m]
        C = np.linalg.inv(prec)
        return C @ rhs

    # Warm up first: the kernels' Gram matrices are JAX calls whose first evaluation at a
    # shape compiles (a first naive pass took 0.3 s against 0.035 s warm). Best of 3.
    naive_once()
    naive = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        naive_once()
        naive = min(naive, time.perf_counter() - t0)
    params = canonical(MagmaParams(mk, tk, np.asarray(mk.theta), np.asarray(tk.theta), np.asarray(0.0), True))
    data = task_data_from_layout(lay)
    jax.block_until_ready(e_step(params, data, 1e-8).mean)
    fast = np.inf
    for _ in range(3):  # best of 3 means of 10 calls
        t0 = time.perf_counter()
        for _ in range(10):
            jax.block_until_ready(e_step(params, data, 1e-8).mean)
        fast = min(fast, (time.perf_counter() - t0) / 10)
    return dict(naive_estep_s=naive, skgpx_estep_s=fast, estep_speedup=naive / fast)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small cases only")
    ap.add_argument("--max-iter", type=int, default=5, help="EM iterations per fit (tol=0: all are run)")
    ap.add_argument("--case-timeout", type=float, default=900.0, help="seconds per case before it is reported as timed out")
    ap.add_argument("--only", help="run only cases whose 'MxN' label matches, e.g. --only 600x450")
    ap.add_argument("--clust", action="store_true", help="MagmaClust cases (EM to convergence, at most --max-iter)")
    ap.add_argument("--xla-threads", type=int, help="run each case with this many XLA and BLAS threads (1: "
                    "one; default: XLA's own choice)")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.case:
        case = json.loads(args.case)
        run = run_clust_case if args.clust else run_case
        print(json.dumps(run(*case, args.max_iter)))
        return
    if args.clust:
        cases = CLUST_QUICK if args.quick else CLUST
        cols = ["M", "n", "inputs", "K", "selected", "grid", "iters", "per_iter_s", "total_s", "cpu_s", "ari",
                "peak_rss_mb", "load"]
    else:
        cases = QUICK if args.quick else FULL
        cols = ["M", "n", "inputs", "hp", "grid", "iters", "first_iter_s", "per_iter_s", "total_s", "peak_rss_mb"]
    if args.only:
        cases = [c for c in cases if f"{c[0]}x{c[1]}" == args.only]
    env = dict(os.environ)
    if args.xla_threads:
        t = args.xla_threads
        env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + f" --xla_cpu_multi_thread_eigen={'false' if t == 1 else 'true'}"
                            f" intra_op_parallelism_threads={t}").strip()
        env["OMP_NUM_THREADS"] = env["OPENBLAS_NUM_THREADS"] = str(t)
    print(f"load average at start {os.getloadavg()[0]:.1f}; XLA threads: {args.xla_threads or 'default'}")
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    extra = []
    for case in cases:
        try:
            proc = subprocess.run(
                [sys.executable, __file__, "--case", json.dumps(case), "--max-iter", str(args.max_iter)]
                + (["--clust"] if args.clust else []),
                capture_output=True, text=True, timeout=args.case_timeout, env=env,
            )
        except subprocess.TimeoutExpired:
            print(f"| {case} did not finish {args.max_iter} EM iterations in {args.case_timeout:.0f} s |", flush=True)
            continue
        if proc.returncode != 0:
            print(f"| {case} failed: {proc.stderr.strip().splitlines()[-1]} |")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print("| " + " | ".join(f"{r[c]:.3g}" if isinstance(r[c], float) else str(r[c]) for c in cols) + " |",
              flush=True)
        if "estep_speedup" in r:
            extra.append(r)
    for r in extra:
        print(f"E-step {r['M']}x{r['n']} {r['inputs']}/{r['hp']}: naive dense NumPy {r['naive_estep_s'] * 1e3:.2f} ms, "
              f"skgpx {r['skgpx_estep_s'] * 1e3:.2f} ms, ratio {r['estep_speedup']:.1f}x")


if __name__ == "__main__":
    main()
