"""Magma against MagmaClust on the French swimmers (100 m freestyle), women and men.

Reads ``../shared/data/swimmers.csv`` (columns ID, Age, Performance, Gender; 1 = men,
2 = women) beside the project; exits when it is absent. Per gender: ages rounded to 0.1
year (repeated (swimmer, age) results averaged), training swimmers drawn at random and
other swimmers held out; each held-out swimmer's later results (by age) are predicted
from her earlier ones. Two protocols:

* default: ``--train`` training swimmers, ``--test`` held-out swimmers (at least 6
  results), the second half of each held-out swimmer predicted from the first half;
* ``--paper``: the split of the MagmaClust authors' experiment script
  (``Real_data_study.R`` in github.com/ArthurLeroy/MAGMAclust): 60% of the gender's
  swimmers for training, the other 40% held out, each held-out swimmer's first 60% of
  results observed and the last 40% predicted.

Reported: the MSE (s²) over all predicted results, the mean over held-out swimmers of
each swimmer's MSE (the authors' summary), and the share of predicted results inside
the 95% predictive interval (mean +- 1.96 std of a new observation). Both models use the
same kernels, a learned constant prior mean, shared task hyperparameters in training
and, for the held-out swimmers, their own hyperparameters learned from their observed
results (``new_task_hyperparameters="learn"``). MagmaClust is fitted for every K in
``--clusters`` (default 2..6) and the row marked ``*`` is the one the variational BIC
selects among K = 1 (Magma) and those, i.e. what ``n_clusters="auto"`` returns; nothing
is chosen on the held-out swimmers.

    .venv/bin/python benchmarks/magmaclust_swimmers.py [--train 150 --test 50 --seed 0]
    .venv/bin/python benchmarks/magmaclust_swimmers.py --paper
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


def split(X, y, g, n_train, n_test, seed, obs_frac=0.5):
    """``(train mask, observed rows, target rows)``; ``n_train`` a count, or a fraction of
    the swimmers when below 1 (then every other swimmer is held out)."""
    ids, counts = np.unique(g, return_counts=True)
    rng = np.random.default_rng(seed)
    if n_train < 1:
        train_ids = rng.choice(ids, int(round(n_train * len(ids))), replace=False)
        test_ids = np.setdiff1d(ids, train_ids)
        test_ids = test_ids[counts[np.searchsorted(ids, test_ids)] >= 2]
    else:
        test_ids = rng.choice(ids[counts >= 6], n_test, replace=False)
        train_ids = rng.choice(np.setdiff1d(ids, test_ids), n_train, replace=False)
    train = np.isin(g, train_ids)
    obs, tgt = [], []
    for i in test_ids:
        rows = np.flatnonzero(g == i)
        rows = rows[np.argsort(X[rows, 0])]
        n_obs = max(1, min(len(rows) - 1, int(round(obs_frac * len(rows)))))
        obs.append(rows[:n_obs])
        tgt.append(rows[n_obs:])
    return train, np.concatenate(obs), np.concatenate(tgt)


def fit(est, X, y, g, train):
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X[train], y[train], g[train])
    return time.perf_counter() - t0


def evaluate(est, X, y, g, obs, tgt):
    """Pooled MSE, mean per-swimmer MSE, 95% coverage of the held-out results."""
    new = lambda r: g[r] + 10**7  # noqa: E731  (labels unseen in fit)
    mean, std = est.predict(X[tgt], new(tgt), return_std=True, X_obs=X[obs], y_obs=y[obs], groups_obs=new(obs))
    err = (mean - y[tgt]) ** 2
    labels, inv = np.unique(g[tgt], return_inverse=True)
    per_swimmer = np.bincount(inv, err) / np.bincount(inv)
    cov = float(np.mean(np.abs(mean - y[tgt]) <= 1.959964 * std))
    return float(np.mean(err)), float(np.mean(per_swimmer)), cov


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--train", type=int, default=150)
    ap.add_argument("--test", type=int, default=50)
    ap.add_argument("--paper", action="store_true", help="the authors' split: 60%% of swimmers for training, "
                    "the rest held out, their first 60%% of results observed")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--clusters", default="2,3,4,5,6", help="comma-separated K fitted besides Magma (K = 1)")
    ap.add_argument("--genders", default="2,1", help="2 = women, 1 = men")
    ap.add_argument("--max-iter", type=int, default=25)
    args = ap.parse_args()
    if not DATA.exists():
        print(f"{DATA} not present")
        return
    clusters = [int(k) for k in args.clusters.split(",")]
    common = dict(prior_mean="constant", new_task_hyperparameters="learn", max_iter=args.max_iter,
                  random_state=args.seed)
    kernels = lambda: (C(1.0) * RBF(3.0), C(0.5) * RBF(3.0) + WhiteKernel(0.1))  # noqa: E731
    print("| gender | model | K | V-BIC | MSE (s²) | mean per-swimmer MSE (s²) | 95% coverage | fit (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for gender in (int(s) for s in args.genders.split(",")):
        X, y, g = load(gender)
        if args.paper:
            train, obs, tgt = split(X, y, g, 0.6, 0, args.seed, obs_frac=0.6)
        else:
            train, obs, tgt = split(X, y, g, args.train, args.test, args.seed)
        name = "women" if gender == 2 else "men"
        rows = []
        for K in [1] + clusters:
            est = MultiTaskMagmaRegressor(*kernels(), n_clusters=K, **common)
            fit_s = fit(est, X, y, g, train)
            score = est.n_clusters_scores_[K] if K > 1 else None
            if K == 1:  # the variational BIC of Magma, as n_clusters="auto" scores it
                from skgpx.estimators._magma_clust import _magma_free_parameters

                n_tasks = len(np.unique(g[train]))
                score = est.log_marginal_likelihood_value_ - 0.5 * _magma_free_parameters(est) * np.log(n_tasks)
            rows.append((K, float(score), *evaluate(est, X, y, g, obs, tgt), fit_s))
        best = max(rows, key=lambda r: r[1])[0]
        for K, score, mse, mse_sw, cov, fit_s in rows:
            model = "Magma" if K == 1 else "MagmaClust"
            mark = " *" if K == best else ""
            print(f"| {name} | {model} | {K}{mark} | {score:.1f} | {mse:.2f} | {mse_sw:.2f} | {cov:.2f} "
                  f"| {fit_s:.0f} |", flush=True)
        n_train = len(np.unique(g[train]))
        n_test = len(np.unique(g[tgt]))
        print(f"<!-- {name}: {n_train} training swimmers, {n_test} held out, {len(obs)} observed and {len(tgt)} "
              f"predicted results -->", flush=True)


if __name__ == "__main__":
    main()
