"""Magma against MagmaClust on the French swimmers (100 m freestyle), women and men.

Reads ``../shared/data/swimmers.csv`` (columns ID, Age, Performance, Gender; 1 = men,
2 = women) beside the project; exits when it is absent. Per gender: ages rounded to 0.1
year (repeated (swimmer, age) results averaged), ``--train`` swimmers drawn at random
for training and ``--test`` other swimmers held out (swimmers with at least 6 results);
each held-out swimmer's second half of results (by age) is predicted from the first
half. Reported: MSE (s^2) and the share of held-out results inside the 95% predictive
interval (mean +- 1.96 std of a new observation). Both models use the same kernels, a
learned constant prior mean, shared task hyperparameters in training and, for the held-out
swimmers, their own hyperparameters learned from their first half
(``new_task_hyperparameters="learn"``); MagmaClust selects K by the variational BIC
over ``--clusters`` (default K = 1..6).

    .venv/bin/python benchmarks/magmaclust_swimmers.py [--train 200 --test 60 --seed 0]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.gaussian_process.kernels import RBF, ConstantKernel as C, WhiteKernel

from skgpx import MultiTaskMagmaRegressor

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "swimmers.csv"


def load(gender):
    D = np.loadtxt(DATA, delimiter=",", skiprows=1)
    D = D[D[:, 3] == gender]
    D[:, 1] = np.round(D[:, 1], 1)
    key, inv = np.unique(D[:, :2], axis=0, return_inverse=True)
    inv = inv.ravel()
    perf = np.bincount(inv, D[:, 2]) / np.bincount(inv)
    return key[:, 1:2], perf, key[:, 0].astype(int)


def split(X, y, g, n_train, n_test, seed):
    ids, counts = np.unique(g, return_counts=True)
    rng = np.random.default_rng(seed)
    test_ids = rng.choice(ids[counts >= 6], n_test, replace=False)
    train_ids = rng.choice(np.setdiff1d(ids, test_ids), n_train, replace=False)
    train = np.isin(g, train_ids)
    obs, tgt = [], []
    for i in test_ids:
        rows = np.flatnonzero(g == i)
        rows = rows[np.argsort(X[rows, 0])]
        obs.append(rows[: len(rows) // 2])
        tgt.append(rows[len(rows) // 2 :])
    return train, np.concatenate(obs), np.concatenate(tgt)


def evaluate(est, X, y, g, train, obs, tgt):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X[train], y[train], g[train])
    fit_s = time.perf_counter() - t0
    new = lambda r: g[r] + 10**7  # noqa: E731  (labels unseen in fit)
    mean, std = est.predict(X[tgt], new(tgt), return_std=True, X_obs=X[obs], y_obs=y[obs], groups_obs=new(obs))
    mse = float(np.mean((mean - y[tgt]) ** 2))
    cov = float(np.mean(np.abs(mean - y[tgt]) <= 1.959964 * std))
    return mse, cov, fit_s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=200)
    ap.add_argument("--test", type=int, default=60)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clusters", default="auto", help="'auto' or a comma-separated list of K")
    ap.add_argument("--genders", default="2,1", help="2 = women, 1 = men")
    args = ap.parse_args()
    if not DATA.exists():
        print(f"{DATA} not present")
        return
    clusters = "auto" if args.clusters == "auto" else [int(k) for k in args.clusters.split(",")]
    common = dict(prior_mean="constant", new_task_hyperparameters="learn", max_iter=25, random_state=args.seed)
    kernels = lambda: (C(1.0) * RBF(3.0), C(0.5) * RBF(3.0) + WhiteKernel(0.1))  # noqa: E731
    print("| gender | model | K | MSE (s²) | 95% coverage | fit (s) |")
    print("|---|---|---|---|---|---|")
    for gender in (int(s) for s in args.genders.split(",")):
        X, y, g = load(gender)
        train, obs, tgt = split(X, y, g, args.train, args.test, args.seed)
        name = "women" if gender == 2 else "men"
        magma = MultiTaskMagmaRegressor(*kernels(), **common)
        mse, cov, fit_s = evaluate(magma, X, y, g, train, obs, tgt)
        print(f"| {name} | Magma | 1 | {mse:.2f} | {cov:.2f} | {fit_s:.0f} |", flush=True)
        clust = MultiTaskMagmaRegressor(*kernels(), n_clusters=clusters, **common)
        mse, cov, fit_s = evaluate(clust, X, y, g, train, obs, tgt)
        scores = ", ".join(f"{k}: {v:.1f}" for k, v in sorted(clust.n_clusters_scores_.items()))
        print(f"| {name} | MagmaClust | {clust.n_clusters_} | {mse:.2f} | {cov:.2f} | {fit_s:.0f} |", flush=True)
        print(f"<!-- {name}: V-BIC per K {scores}; proportions {np.round(clust.cluster_proportions_, 3)} -->",
              flush=True)


if __name__ == "__main__":
    main()
