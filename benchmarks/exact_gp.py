"""Exact GP: skgpx's ScalableGPRegressor(solver="cholesky") vs scikit-learn, in one process.

3-D inputs, a Matérn-2.5 kernel (``C * Matern(nu=2.5) + WhiteKernel``), a smooth
target plus noise. Two experiments:

* fixed hyperparameters (``optimizer=None``): ``fit`` then ``predict(X_test,
  return_std=True)`` on 1,000 test points, for n = 1k, 2k, 5k, 10k;
* hyperparameter optimisation (L-BFGS-B from the same start): ``fit``, for
  n = 1k, 2k, 5k.

For skgpx the first call at a given shape includes JAX compilation ("cold"); the
second ("warm") is what every later fit of the same shape costs (for n = 10000
with fixed hyperparameters and n = 5000 optimised, compilation is negligible and
only one run is made: cold = warm). Below 5000 points the warm skgpx time and the
scikit-learn time are each the best of several interleaved runs (fixed
hyperparameters: 7, each pair of runs well under a second; optimisation: 3). The ratio
column is warm skgpx time / scikit-learn time; the ``eval`` columns time one
``log_marginal_likelihood(theta, eval_gradient=True)`` call of each fitted model at
scikit-learn's optimum (best of 3; what one optimiser step costs, plus each library's
per-call Python overhead). ``|dLML|`` is the absolute
difference of the fitted log marginal likelihoods.

Run::

    .venv/bin/python benchmarks/exact_gp.py            # full (scikit-learn at 10k takes minutes)
    .venv/bin/python benchmarks/exact_gp.py --quick    # n = 500, 1000: a few tens of seconds
    .venv/bin/python benchmarks/exact_gp.py --only optimised   # one of the two experiments
"""

from __future__ import annotations

import argparse
import os
import platform
import time
import warnings

import jax
import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

from skgpx import ScalableGPRegressor

N_TEST = 1000


def make_data(n, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(0, 1, (n + N_TEST, 3))
    f = np.sin(6 * X[:, 0]) + np.cos(4 * X[:, 1]) * X[:, 2] + 0.5 * X[:, 2] ** 2
    y = f + 0.1 * rng.randn(n + N_TEST)
    return X[:n], y[:n], X[n:]


def kernel():
    return ConstantKernel(1.0) * Matern(length_scale=0.5, nu=2.5) + WhiteKernel(noise_level=0.05)


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _best_of(repeats, ours, sk):
    """Best time of ``repeats`` runs of each, interleaved (ours, sk, ours, sk, ...) so that
    load on a shared machine falls on both alike; returns ``(t_ours, out_ours, t_sk, out_sk)``."""
    best = [(np.inf, None), (np.inf, None)]
    for _ in range(repeats):
        for k, fn in enumerate((ours, sk)):
            t, out = _timed(fn)
            if t < best[k][0]:
                best[k] = (t, out)
    return best[0][0], best[0][1], best[1][0], best[1][1]


def _repeats(n, optimised=True):
    # Below 5000 points one run is at the mercy of the machine's load (measured: the same
    # 2000-point optimisation 5.6-7.2 s; the ratio of fit + predict with fixed
    # hyperparameters at n = 2000 ranged 0.46-0.61 over 12 runs taking the best of 3, and
    # 0.44-0.47 over 6 runs taking the best of 7); best of several, as timeit reports.
    return 1 if n >= 5000 else 3 if optimised else 7


def run_fixed(n):
    X, y, Xs = make_data(n)

    def sk():
        gp = GaussianProcessRegressor(kernel(), alpha=1e-8, optimizer=None).fit(X, y)
        return gp, gp.predict(Xs, return_std=True)

    def ours():
        gp = ScalableGPRegressor(kernel(), alpha=1e-8, optimizer=None, solver="cholesky").fit(X, y)
        return gp, gp.predict(Xs, return_std=True)

    t_cold, (g1, (m1, s1)) = _timed(ours)
    if n <= 5000:
        t_warm, (g1, (m1, s1)), t_sk, (g0, (m0, s0)) = _best_of(_repeats(n, optimised=False), ours, sk)
    else:
        t_warm = t_cold
        t_sk, (g0, (m0, s0)) = _timed(sk)
    err = max(np.abs(m1 - m0).max(), np.abs(s1 - s0).max())
    return t_cold, t_warm, t_sk, abs(g1.log_marginal_likelihood_value_ - g0.log_marginal_likelihood_value_), err


def run_optimised(n):
    X, y, _ = make_data(n, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = lambda: ScalableGPRegressor(kernel(), alpha=1e-8, solver="cholesky").fit(X, y)  # noqa: E731
        sk = lambda: GaussianProcessRegressor(kernel(), alpha=1e-8).fit(X, y)  # noqa: E731
        t_cold, g1 = _timed(ours)
        if n < 5000:
            t_warm, g1, t_sk, g0 = _best_of(_repeats(n), ours, sk)
        else:
            t_warm = t_cold
            t_sk, g0 = _timed(sk)
    d = g1.log_marginal_likelihood_value_ - g0.log_marginal_likelihood_value_
    # One log-marginal-likelihood + gradient evaluation at the optimum (what each optimiser
    # step costs), best of 3; the compiled objective of the fit is reused.
    theta = g0.kernel_.theta
    e_ours = min(_timed(lambda: g1.log_marginal_likelihood(theta, eval_gradient=True))[0] for _ in range(3))
    e_sk = min(_timed(lambda: g0.log_marginal_likelihood(theta, eval_gradient=True))[0] for _ in range(3))
    return t_cold, t_warm, t_sk, d, g1.n_iter_, e_ours, e_sk


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="n = 500, 1000 only")
    parser.add_argument("--only", choices=["fixed", "optimised"], help="run one of the two experiments")
    args = parser.parse_args()
    fixed_sizes = [500, 1000] if args.quick else [1000, 2000, 5000, 10000]
    opt_sizes = [500, 1000] if args.quick else [1000, 2000, 5000]

    print(f"# exact GP benchmark: {platform.node()}, {os.cpu_count()} CPU cores, JAX device {jax.devices()[0]}")
    print(f"# kernel {kernel()}, 3-D inputs, {N_TEST} test points, float64")
    print()
    if args.only != "optimised":
        print("## fixed hyperparameters: fit + predict(return_std=True)")
        print(f"{'n':>6} | {'skgpx cold s':>12} | {'skgpx warm s':>12} | {'sklearn s':>9} | {'ratio':>5} | {'|dLML|':>8} | max|d pred|")
        for n in fixed_sizes:
            cold, warm, sk, dlml, err = run_fixed(n)
            print(f"{n:>6} | {cold:12.2f} | {warm:12.2f} | {sk:9.2f} | {warm / sk:5.2f} | {dlml:8.1e} | {err:.1e}", flush=True)
        print()
    if args.only != "fixed":
        print("## hyperparameter optimisation (L-BFGS-B, same start): fit; then one LML + gradient evaluation")
        print(f"{'n':>6} | {'skgpx cold s':>12} | {'skgpx warm s':>12} | {'sklearn s':>9} | {'ratio':>5} | LML skgpx - sklearn | iters"
              f" | {'eval skgpx s':>12} | {'eval sklearn s':>14} | eval ratio")
        for n in opt_sizes:
            cold, warm, sk, d, iters, e1, e0 = run_optimised(n)
            print(f"{n:>6} | {cold:12.2f} | {warm:12.2f} | {sk:9.2f} | {warm / sk:5.2f} | {d:+19.2e} | {iters:5d}"
                  f" | {e1:12.3f} | {e0:14.3f} | {e1 / e0:10.2f}", flush=True)

if __name__ == "__main__":
    with jax.enable_x64(True):
        main()
