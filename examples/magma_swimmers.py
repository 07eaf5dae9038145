"""Magma on swimmers' progression curves: predict a new swimmer's future from her first races.

Uses ``../shared/data/swimmers.csv`` (French 100 m freestyle, women) when it is present
beside the project, and simulated Magma data (``skgpx.datasets.make_magma_data``)
otherwise. Trains ``MultiTaskMagmaRegressor`` on many tasks, then predicts the second
half of a held-out task from its first half and plots the mean process, the
prediction and its 95% band. Then fits MagmaClust (``n_clusters="auto"``: K chosen by
the variational BIC) and plots the clusters' mean processes, the training tasks coloured
by cluster and the new task's mixture prediction with its cluster probabilities.
``--quick`` (or ``SKGPX_EXAMPLES_QUICK=1``) shrinks it (and fits K = 2 without selection).
With the swimmers data (and not ``--quick``) the MagmaClust figure is also written,
quantised, to the guide's ``docs/img/magmaclust_swimmers.png``.

    .venv/bin/python examples/magma_swimmers.py
"""

from __future__ import annotations

import os
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.gaussian_process.kernels import RBF, ConstantKernel as C, WhiteKernel  # noqa: E402

from skgpx import MultiTaskMagmaRegressor  # noqa: E402
from skgpx.datasets import make_magma_data  # noqa: E402

QUICK = "--quick" in sys.argv or os.environ.get("SKGPX_EXAMPLES_QUICK") == "1"
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "swimmers.csv"
OUT = ROOT / "examples" / "output" / "magma_swimmers.png"
OUT_CLUST = ROOT / "examples" / "output" / "magmaclust_swimmers.png"
DOCS_IMG = ROOT / "docs" / "img" / "magmaclust_swimmers.png"


def load():
    n_train = 15 if QUICK else 100
    if DATA.exists() and not QUICK:
        D = np.loadtxt(DATA, delimiter=",", skiprows=1)
        D = D[D[:, 3] == 2]
        D[:, 1] = np.round(D[:, 1], 1)  # ages to 0.1 year: a ~100-point union grid
        key, inv = np.unique(D[:, :2], axis=0, return_inverse=True)
        y = np.bincount(inv.ravel(), D[:, 2]) / np.bincount(inv.ravel())
        ids = np.random.default_rng(0).permutation(np.unique(key[:, 0]))[: n_train + 1]
        keep = np.isin(key[:, 0], ids)
        return key[keep, 1:2], y[keep], key[keep, 0].astype(int), int(ids[-1]), "age (years)", "time (s)"
    X, y, g = make_magma_data(n_train + 1, 12, shared_inputs=False, random_state=0)
    return X, y, g, n_train, "input", "output"


def main():
    X, y, g, new_id, xlabel, ylabel = load()
    train = g != new_id
    est = MultiTaskMagmaRegressor(
        C(1.0) * RBF(3.0), C(0.5) * RBF(3.0) + WhiteKernel(0.1), prior_mean="constant",
        shared_hyperparameters=False,  # the new task learns its own (better on swimmers: see the guide)
        max_iter=4 if QUICK else 15,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X[train], y[train], g[train])
    rows = np.flatnonzero(g == new_id)
    rows = rows[np.argsort(X[rows, 0])]
    obs, tgt = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    grid = np.linspace(X[:, 0].min(), X[:, 0].max(), 200)[:, None]
    # One prediction call for the plotting grid and the held-out points (one compiled program).
    both = np.concatenate([grid, X[tgt]])
    mean, std = est.predict(both, np.full(len(both), -1), return_std=True, X_obs=X[obs], y_obs=y[obs],
                            groups_obs=np.full(len(obs), -1))
    mean, std, m_tgt = mean[: len(grid)], std[: len(grid)], mean[len(grid):]
    mu, mu_std = est.predict_mean_process(grid, return_std=True)
    print(est.summary())
    print(f"new task: MSE on its second half {np.mean((m_tgt - y[tgt]) ** 2):.3f}")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    shown = np.unique(g[train])[:20]
    for k, t in enumerate(shown):
        r = np.flatnonzero(g == t)
        lab = f"training tasks ({len(shown)} of {len(np.unique(g[train]))} shown)" if k == 0 else None
        ax.plot(X[r, 0], y[r], ".", color="0.8", ms=3, label=lab)
    ax.plot(grid[:, 0], mu, "k--", lw=1, label="mean process")
    ax.fill_between(grid[:, 0], mean - 1.96 * std, mean + 1.96 * std, alpha=0.25, label="95% interval of a new observation")
    ax.plot(grid[:, 0], mean, lw=2, label="Magma prediction")
    ax.plot(X[obs, 0], y[obs], "o", color="C1", label="observed (first half)")
    ax.plot(X[tgt, 0], y[tgt], "x", color="C3", label="held out (second half)")
    ax.set(xlabel=xlabel, ylabel=ylabel, title="Magma: a new task's second half predicted from its first")
    ax.legend(fontsize=8)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110, bbox_inches="tight")
    print(f"figure written to {OUT}")
    clusters(X, y, g, train, obs, tgt, grid, xlabel, ylabel)


def clusters(X, y, g, train, obs, tgt, grid, xlabel, ylabel):
    """MagmaClust: K by variational BIC, the clusters' mean processes, a new task's mixture prediction."""
    est = MultiTaskMagmaRegressor(
        C(1.0) * RBF(3.0), C(0.5) * RBF(3.0) + WhiteKernel(0.1), prior_mean="constant",
        n_clusters=2 if QUICK else "auto", new_task_hyperparameters="learn",
        max_iter=4 if QUICK else 25, random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X[train], y[train], g[train])
    print(est.summary())
    new = dict(X_obs=X[obs], y_obs=y[obs], groups_obs=np.full(len(obs), -1))
    both = np.concatenate([grid, X[tgt]])
    mean, std = est.predict(both, np.full(len(both), -1), return_std=True, **new)
    mean, std, m_tgt = mean[: len(grid)], std[: len(grid)], mean[len(grid):]
    proba = est.predict_cluster_proba([-1], **new)[0]
    mse = np.mean((m_tgt - y[tgt]) ** 2)
    print(f"new task (MagmaClust, K={est.n_clusters_}): MSE on its second half {mse:.3f}, "
          f"cluster probabilities {np.round(proba, 3)}")
    mu, mu_std = est.predict_mean_process(grid, return_std=True)
    mu, mu_std = np.atleast_2d(mu), np.atleast_2d(mu_std)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    labels = np.argmax(est.memberships_, axis=1)
    for i, t in enumerate(est.tasks_):
        r = np.flatnonzero(g == t)
        r = r[np.argsort(X[r, 0])]
        ax0.plot(X[r, 0], y[r], "-", color=f"C{labels[i]}", lw=0.5, alpha=0.35)
    for k in range(est.n_clusters_):
        ax0.plot(grid[:, 0], mu[k], color=f"C{k}", lw=2.5,
                 label=f"cluster {k}: {est.cluster_proportions_[k]:.0%} of tasks")
        ax0.fill_between(grid[:, 0], mu[k] - 1.96 * mu_std[k], mu[k] + 1.96 * mu_std[k], color=f"C{k}", alpha=0.2)
    title = f"MagmaClust: {est.n_clusters_} mean processes" + ("" if QUICK else " (K by variational BIC)")
    ax0.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax0.legend(fontsize=8)
    for k in range(est.n_clusters_):
        ax1.plot(grid[:, 0], mu[k], color=f"C{k}", lw=1, ls="--", label="cluster mean processes" if k == 0 else None)
    ax1.fill_between(grid[:, 0], mean - 1.96 * std, mean + 1.96 * std, color="0.6", alpha=0.3,
                     label="95% interval (mixture)")
    ax1.plot(grid[:, 0], mean, "k", lw=2, label="mixture prediction")
    ax1.plot(X[obs, 0], y[obs], "o", color="k", ms=5, label="observed (first half)")
    ax1.plot(X[tgt, 0], y[tgt], "x", color="m", ms=7, label="held out (second half)")
    ax1.set(xlabel=xlabel, title="new task: cluster probabilities " + ", ".join(f"{p:.2f}" for p in proba))
    ax1.legend(fontsize=8)
    fig.savefig(OUT_CLUST, dpi=100, bbox_inches="tight")
    print(f"figure written to {OUT_CLUST}")
    if not QUICK and DATA.exists():  # the guide's figure, quantised to a 64-colour palette (about 5x smaller)
        from PIL import Image

        DOCS_IMG.parent.mkdir(parents=True, exist_ok=True)
        Image.open(OUT_CLUST).convert("RGB").quantize(64).save(DOCS_IMG, optimize=True)
        print(f"figure written to {DOCS_IMG}")


if __name__ == "__main__":
    main()
