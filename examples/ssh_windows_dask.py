"""Thirty daily sea-surface-height maps, one GP per day, fitted side by side on Dask.

An altimetry product is a daily map: each day's along-track observations (plus a few days
around it) give one optimal-interpolation map. The days are independent fits, the
textbook case for many small GPs in parallel rather than one huge one. This example

1. simulates 30 days of along-track SSH observations (a meandering jet with drifting eddies,
   3 cm noise; a few hundred points a day here, no download);
2. fits one ``ScalableGPRegressor`` per day (Matérn-5/2 in lon/lat plus white noise,
   hyperparameters learned per day) with ``skgpx.parallel.fit_many`` on a Dask
   ``LocalCluster`` of 2 worker processes, printing a line per finished day;
3. checks one day against the serial fit, and maps every day's posterior mean into a strip
   of panels, the observations of the day on top.

For a real cluster pass ``client="tcp://scheduler:8786"`` (or a ``distributed.Client``).

Run ``python examples/ssh_windows_dask.py`` (30 days, about a minute on 2 cores), or with
``--quick`` (or ``SKGPX_EXAMPLES_QUICK=1``) for 4 days used by the test suite. The figure
is written to ``examples/output/ssh_windows_dask.png``.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.gaussian_process.kernels import ConstantKernel as C, Matern, WhiteKernel  # noqa: E402

from skgpx import ScalableGPRegressor  # noqa: E402
from skgpx.parallel import fit_many  # noqa: E402

OUTPUT = Path(__file__).resolve().parent / "output"
LON = (-70.0, -50.0)
LAT = (30.0, 42.0)
NOISE_STD = 0.03  # m


def ssh_truth(lon, lat, t):
    """A jet meandering westward and two rings, SSH anomaly in m (t in days)."""
    axis = 36.0 + 1.5 * np.sin(2 * np.pi * (lon + 0.25 * t + 60.0) / 9.0)
    h = 0.45 * np.tanh((axis - lat) / 0.9)
    for lon0, lat0, amp in ((-64.0, 33.5, -0.35), (-56.0, 39.5, 0.3)):
        r2 = ((lon - lon0 + 0.25 * t) * np.cos(np.deg2rad(lat0))) ** 2 + (lat - lat0) ** 2
        h = h + amp * np.exp(-r2 / (2 * 1.0**2))
    return h


def day_observations(day, n_tracks, per_track, rng):
    """Straight ascending/descending passes across the box on ``day``: (lon, lat) and SSH."""
    lon, lat = [], []
    for k in range(n_tracks):
        slope = 1.6 if k % 2 == 0 else -1.6
        la = np.linspace(*LAT, per_track)
        lo = rng.uniform(*LON) + (la - np.mean(LAT)) / slope
        keep = (lo >= LON[0]) & (lo <= LON[1])
        lon.append(lo[keep])
        lat.append(la[keep])
    X = np.column_stack([np.concatenate(lon), np.concatenate(lat)])
    y = ssh_truth(X[:, 0], X[:, 1], day) + rng.normal(0.0, NOISE_STD, len(X))
    return X, y


def main(quick: bool = False) -> dict:
    n_days, n_tracks, per_track, grid = (4, 4, 25, (30, 18)) if quick else (30, 10, 50, (60, 36))
    rng = np.random.default_rng(0)
    days = {f"day {d + 1:02d}": day_observations(d, n_tracks, per_track, rng) for d in range(n_days)}
    estimator = ScalableGPRegressor(C(0.1) * Matern(length_scale=2.0, nu=2.5) + WhiteKernel(NOISE_STD**2),
                                    normalize_y=True, random_state=0)

    start = time.perf_counter()
    models = fit_many(estimator, days, verbose=1)  # a LocalCluster for this call
    seconds = time.perf_counter() - start
    print(f"{n_days} daily fits on a Dask LocalCluster: {seconds:.1f} s (cluster start-up included)")

    glon, glat = np.meshgrid(np.linspace(*LON, grid[0]), np.linspace(*LAT, grid[1]))
    G = np.column_stack([glon.ravel(), glat.ravel()])
    first = next(iter(days))
    serial = clone(estimator).fit(*days[first])
    diff = float(np.max(np.abs(serial.predict(G) - models[first].predict(G))))
    print(f"{first}: max |Dask map - serial map| = {diff:.1e} m")

    cols = min(n_days, 10)
    rows = int(np.ceil(n_days / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.35 * rows + 0.4), sharex=True, sharey=True,
                             squeeze=False)
    rmse = []
    for ax, (name, (X, _)), d in zip(axes.flat, days.items(), range(n_days)):
        mean = models[name].predict(G).reshape(glon.shape)
        rmse.append(float(np.sqrt(np.mean((mean - ssh_truth(glon, glat, d)) ** 2))))
        ax.pcolormesh(glon, glat, mean, cmap="RdBu_r", vmin=-0.7, vmax=0.7, shading="auto")
        ax.plot(X[:, 0], X[:, 1], ",", color="k", alpha=0.4)
        ax.set_title(name, fontsize=7)
        ax.tick_params(labelsize=5)
    for ax in list(axes.flat)[n_days:]:
        ax.axis("off")
    fig.suptitle(f"Posterior-mean SSH (m), one GP per day, {n_days} fits on Dask "
                 f"(median RMSE vs truth {np.median(rmse) * 100:.1f} cm)", fontsize=9)
    fig.tight_layout()
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / "ssh_windows_dask.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"median RMSE of the daily maps against the truth: {np.median(rmse) * 100:.1f} cm")
    print(f"figure: {path}")
    return {"path": path, "rmse": rmse, "diff": diff}


def _quick_from_env() -> bool:
    return os.environ.get("SKGPX_EXAMPLES_QUICK", "0") not in ("", "0", "false", "False")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer days, for smoke tests")
    args = parser.parse_args()
    main(quick=args.quick or _quick_from_env())
