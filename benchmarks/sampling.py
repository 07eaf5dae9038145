"""Posterior sampling at many test points: pathwise (Matheron) vs scikit-learn's ``sample_y``.

Problem: an exact GP (``solver="cholesky"``) on ``--n-train`` 3-D points, Matérn-3/2
(``0.5 * Matern(0.2, nu=1.5)``, ``alpha = 0.01``, fixed), ``--n-samples`` joint posterior
samples at ``m`` test points. scikit-learn's ``GaussianProcessRegressor.sample_y`` forms
the ``m x m`` posterior covariance and draws with ``rng.multivariate_normal`` (an SVD of
that matrix, ``O(m^3)`` time and ``O(m^2)`` memory), so it only runs for
``m <= --sklearn-max``. skgpx's ``sample_y(method="pathwise")`` uses random-feature
prior paths (1024 features per path, a fresh frequency draw per path) plus one
multi-right-hand-side Cholesky solve and a tiled cross-covariance product: ``O(m)``
per sample.

Run (each configuration in its own subprocess, so the peak RSS is per configuration):

    .venv/bin/python benchmarks/sampling.py                                  # m = 10k, 50k; sklearn at 2k, 5k
    .venv/bin/python benchmarks/sampling.py --sizes 2000 --sklearn-sizes 1000   # quick

Columns: ``time_s`` sampling wall time (after fit; the first pathwise call includes JIT
compilation, ``warm_s`` a second call); ``rss_GB`` peak RSS; ``max|z|`` largest
standardised error of the sample mean against the exact predictive mean,
``(mean_S - mu) / (sd / sqrt(S))``, whose reference distribution is N(0, 1) per point;
``sd_ratio`` median over points of sample sd / exact predictive sd (1 within sampling error
``~ 1 +- 1/sqrt(2 S)``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _data(n, m, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    X = rng.uniform(size=(n, 3))
    y = np.sin(6 * X[:, 0]) + np.cos(4 * X[:, 1] * X[:, 2]) + 0.1 * rng.normal(size=n)
    return X, y, rng.uniform(size=(m, 3))


def _single(cfg):
    import numpy as np

    X, y, Xs = _data(cfg["n_train"], cfg["m"])
    S = cfg["n_samples"]
    if cfg["method"] == "sklearn":
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern

        est = GaussianProcessRegressor(ConstantKernel(0.5) * Matern(0.2, nu=1.5), alpha=0.01, optimizer=None).fit(X, y)
        t = time.perf_counter()
        samples = est.sample_y(Xs, S, random_state=0)
        time_s, warm_s = time.perf_counter() - t, float("nan")
    else:
        from skgpx.estimators import ScalableGPRegressor
        from skgpx.kernels import Matern

        est = ScalableGPRegressor(0.5 * Matern(0.2, nu=1.5), alpha=0.01, optimizer=None, solver="cholesky").fit(X, y)
        t = time.perf_counter()
        samples = est.sample_y(Xs, S, random_state=0, method="pathwise")
        time_s = time.perf_counter() - t
        t = time.perf_counter()
        est.sample_y(Xs, S, random_state=1, method="pathwise")
        warm_s = time.perf_counter() - t
    rss = _rss_gb()
    k = min(cfg["m"], 2000)  # moments checked on the first 2000 points
    mu, sd = est.predict(Xs[:k], return_std=True)
    sm = samples[:k]
    z = (sm.mean(1) - mu) / (sd / np.sqrt(S))
    print(
        json.dumps(
            {
                "time_s": time_s,
                "warm_s": warm_s,
                "rss_GB": rss,
                "maxz": float(np.max(np.abs(z))),
                "sd_ratio": float(np.median(sm.std(1, ddof=1) / sd)),
            }
        )
    )


def _run(cfg):
    proc = subprocess.run(
        [sys.executable, __file__, "--_single", json.dumps(cfg)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc={proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 50_000], help="m for pathwise")
    p.add_argument("--sklearn-sizes", type=int, nargs="+", default=[2_000, 5_000], help="m for sklearn sample_y")
    p.add_argument("--n-train", type=int, default=2_000)
    p.add_argument("--n-samples", type=int, default=64)
    p.add_argument("--_single", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._single:
        _single(json.loads(args._single))
        return
    base = {"n_train": args.n_train, "n_samples": args.n_samples}
    print(f"n_train={args.n_train}, {args.n_samples} samples; expected max|z| over 2000 points ~ 3.5, sd_ratio ~ 1")
    header = f"{'m':>7} {'method':>9} {'time_s':>8} {'warm_s':>7} {'rss_GB':>7} {'max|z|':>7} {'sd_ratio':>8}"
    print(header)
    print("-" * len(header))
    jobs = sorted({(m, "pathwise") for m in args.sizes + args.sklearn_sizes} | {(m, "sklearn") for m in args.sklearn_sizes})
    for m, method in jobs:
        res = _run(dict(base, m=m, method=method))
        if "error" in res:
            print(f"{m:>7} {method:>9}  failed: {res['error']}")
            continue
        print(
            f"{m:>7} {method:>9} {res['time_s']:>8.1f} {res['warm_s']:>7.1f} {res['rss_GB']:>7.2f} "
            f"{res['maxz']:>7.2f} {res['sd_ratio']:>8.3f}"
        )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
