"""Millions of points with solver="rff" / "nystrom": time, peak memory and held-out accuracy.

Problem (issue 4): 3-D inputs uniform on the unit cube, targets
``f(x) = sin(6 x0) + cos(4 x1 x2) + 0.5 sin(5 x2)`` plus Gaussian noise (sd 0.1), so
held-out RMSE (against the noise-free ``f``) and NLPD (of noisy targets) mean
something. Kernel ``c * Matern(l, nu=1.5)`` with noise ``alpha``: the hyperparameters
are fitted ONCE by exact GP maximum likelihood on a ``--hyper-n`` subsample (time
reported as ``hyper_s``) and then held fixed (``optimizer=None``) for every model, so
``fit_s`` is the cost of conditioning on all ``n`` points (features + Woodbury).

Run (each configuration in its own subprocess, so the peak RSS is per configuration):

    .venv/bin/python benchmarks/large_n.py                                   # n = 1e5, 1e6; r = 256, 1024
    .venv/bin/python benchmarks/large_n.py --sizes 20000 --ranks 128 256     # quick

Columns: ``method`` (``exact`` = dense Cholesky GP on an ``--exact-n`` subsample, the
reference an exact solver can afford); ``fit_s`` conditioning; ``pred_s`` mean + std at
``--n-test`` points; ``rss_GB`` peak resident memory of the process; ``rmse`` vs the
noise-free function; ``nlpd`` mean negative log predictive density of noisy held-out
targets; ``d_exact`` RMS difference between the model's predictive mean and the exact
subsample GP's at the same test points; ``kerr`` the fitted model's own estimate of the
relative Frobenius kernel-approximation error on 200 training points (``diagnostics()``).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

NOISE_SD = 0.1


def _rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _truth(X):
    import numpy as np

    return np.sin(6 * X[:, 0]) + np.cos(4 * X[:, 1] * X[:, 2]) + 0.5 * np.sin(5 * X[:, 2])


def _data(n, n_test, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    Xt = rng.uniform(size=(n_test, 3))
    X = rng.uniform(size=(n, 3))
    y = _truth(X) + NOISE_SD * rng.normal(size=n)
    yt = _truth(Xt) + NOISE_SD * rng.normal(size=n_test)
    return X, y, Xt, yt


def _metrics(mu, sd, alpha, Xt, yt):
    import numpy as np

    var = sd**2 + alpha  # predictive variance of a noisy target
    rmse = float(np.sqrt(np.mean((mu - _truth(Xt)) ** 2)))
    nlpd = float(np.mean(0.5 * np.log(2 * np.pi * var) + 0.5 * (yt - mu) ** 2 / var))
    return rmse, nlpd


def _fit_hyper(args):
    """Exact-GP ML hyperparameters on a subsample; returns (c, l, alpha) and the time."""
    import numpy as np

    from skgpx.estimators import ScalableGPRegressor
    from skgpx.kernels import Matern, White

    X, y, _, _ = _data(args.hyper_n, 10, seed=1)
    t = time.perf_counter()
    est = ScalableGPRegressor(1.0 * Matern(0.3, nu=1.5) + White(0.01), solver="cholesky", random_state=0).fit(X, y)
    k = est.kernel_skgpx_
    c = float(np.asarray(k.k1.k1.constant_value))
    ls = float(np.asarray(k.k1.k2.length_scale))
    alpha = float(np.asarray(k.k2.noise_level))
    return {"c": c, "l": ls, "alpha": alpha, "hyper_s": time.perf_counter() - t}


def _single(cfg):
    """One configuration in this process; prints one JSON line."""
    import numpy as np

    from skgpx.estimators import ScalableGPRegressor
    from skgpx.gp import make_inference
    from skgpx.kernels import Matern

    X, y, Xt, yt = _data(cfg["n"], cfg["n_test"])
    kernel = cfg["c"] * Matern(cfg["l"], nu=1.5)
    alpha = cfg["alpha"]
    if cfg["method"] == "exact":
        idx = np.random.default_rng(2).choice(cfg["n"], cfg["exact_n"], replace=False)
        X, y = X[idx], y[idx]
        est = ScalableGPRegressor(kernel, alpha=alpha, optimizer=None, solver="cholesky")
    else:
        est = ScalableGPRegressor(
            kernel, alpha=alpha, optimizer=None, solver=make_inference(cfg["method"], {"n_components": cfg["r"]}),
            random_state=0,
        )
    t = time.perf_counter()
    est.fit(X, y)
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    mu, sd = est.predict(Xt, return_std=True)
    pred_s = time.perf_counter() - t
    rmse, nlpd = _metrics(mu, sd, alpha, Xt, yt)
    diag = est.posterior_.diagnostics()
    out = {
        "fit_s": fit_s,
        "pred_s": pred_s,
        "rss_GB": _rss_gb(),
        "rmse": rmse,
        "nlpd": nlpd,
        "kerr": diag.get("kernel_approx_rel_frobenius_error", 0.0),
        "mu": mu[: cfg["n_compare"]].tolist(),
    }
    print(json.dumps(out))


def _run(cfg):
    proc = subprocess.run(
        [sys.executable, __file__, "--_single", json.dumps(cfg)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"rc={proc.returncode}"}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    p.add_argument("--ranks", type=int, nargs="+", default=[256, 1024])
    p.add_argument("--methods", nargs="+", default=["rff", "nystrom"])
    p.add_argument("--n-test", type=int, default=10_000)
    p.add_argument("--n-compare", type=int, default=2_000, help="test points where d_exact is measured")
    p.add_argument("--exact-n", type=int, default=5_000)
    p.add_argument("--hyper-n", type=int, default=1_000)
    p.add_argument("--_single", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._single:
        _single(json.loads(args._single))
        return

    import numpy as np

    hyper = _fit_hyper(args)
    print(
        f"hyperparameters (exact GP ML on {args.hyper_n} points, {hyper['hyper_s']:.1f} s): "
        f"c={hyper['c']:.3f} l={hyper['l']:.3f} alpha={hyper['alpha']:.4f}  (true noise var {NOISE_SD**2})"
    )
    header = f"{'n':>9} {'method':>8} {'r':>5} {'fit_s':>8} {'pred_s':>7} {'rss_GB':>7} {'rmse':>7} {'nlpd':>7} {'d_exact':>8} {'kerr':>7}"
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        base = dict(hyper, n=n, n_test=args.n_test, n_compare=args.n_compare, exact_n=min(args.exact_n, n))
        ref = _run(dict(base, method="exact", r=0))
        rows = [("exact", base["exact_n"], ref)]
        for method in args.methods:
            for r in args.ranks:
                rows.append((method, r, _run(dict(base, method=method, r=r))))
        mu_ref = np.asarray(ref.get("mu", []))
        for method, r, res in rows:
            if "error" in res:
                print(f"{n:>9} {method:>8} {r:>5}  failed: {res['error']}")
                continue
            d = float(np.sqrt(np.mean((np.asarray(res["mu"]) - mu_ref) ** 2))) if mu_ref.size else float("nan")
            print(
                f"{n:>9} {method:>8} {r:>5} {res['fit_s']:>8.1f} {res['pred_s']:>7.2f} {res['rss_GB']:>7.2f} "
                f"{res['rmse']:>7.4f} {res['nlpd']:>7.3f} {d:>8.4f} {res['kerr']:>7.4f}"
            )
        sys.stdout.flush()


if __name__ == "__main__":
    main()
