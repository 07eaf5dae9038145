"""Filling the gaps of a gridded field: the exact GP on a 500 x 500 grid with 40% of it missing.

Gridded products (satellite sea-surface temperature under clouds, a radar mosaic, a
model field with a land mask) are regular lattices with holes. On such data
``solver="ski"`` needs no interpolation: it recognises the lattice, puts the kernel on the
full grid (a Toeplitz operator applied by FFT) and *selects* the observed cells, so
``A = S K_grid S^T + noise`` is the exact GP's matrix and CG solves it with one FFT product
per iteration (``solver_info_["interpolation_order"] == 0``, ``interpolation_error_max ~ 0``).
This example

1. draws a 500 x 500 field from a Matérn-3/2 GP prior (length scale 15 cells) and hides
   40% of it under "clouds" (the cells where a smoother random field is largest), adds
   white noise (standard deviation 0.1) to the rest: 150 000 observations;
2. conditions on all of them with the known hyperparameters (``optimizer=None``);
3. maps the posterior mean on all 250 000 cells (one gather from a field on the grid),
   one posterior sample (pathwise: prior by circulant embedding, corrected by CG), and the
   exact posterior standard deviation at 16 points of a transect that crosses the gaps
   (one CG solve with a column per point).

Run ``python examples/gapped_field.py`` (about 6 minutes on 2 CPU cores: the fit and the mean
map about 70 s, the 16 exact standard deviations most of the rest), or with ``--quick`` (or
``SKGPX_EXAMPLES_QUICK=1``) for a 48 x 48 version used by the test suite.
The figure is written to ``examples/output/gapped_field.png``.
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

from skgpx import ScalableGPRegressor  # noqa: E402
from skgpx.gp import SKI  # noqa: E402
from skgpx.kernels import Matern  # noqa: E402

OUTPUT = Path(__file__).resolve().parent / "output"
NOISE_STD = 0.1
LENGTH = 15.0  # cells


def prior_draw(side: int, length: float, seed: int) -> np.ndarray:
    """A ``side x side`` draw of a unit-variance Matérn-3/2 field: exact, by circulant embedding
    on a ``2 side`` torus (in NumPy, float64; its spectrum is non-negative for these sizes)."""
    lag = np.minimum(np.arange(2 * side), 2 * side - np.arange(2 * side)).astype(float)
    r = np.sqrt(lag[:, None] ** 2 + lag[None, :] ** 2) * np.sqrt(3.0) / length
    lam = np.fft.rfft2((1.0 + r) * np.exp(-r)).real
    z = np.random.default_rng(seed).standard_normal((2 * side, 2 * side))
    return np.fft.irfft2(np.sqrt(np.maximum(lam, 0.0)) * np.fft.rfft2(z), s=z.shape)[:side, :side]


def main(quick: bool = False, side: int | None = None) -> dict:
    side = side or (48 if quick else 500)
    truth = prior_draw(side, LENGTH, 0)
    clouds = prior_draw(side, 2.5 * LENGTH, 1)
    missing = clouds > np.quantile(clouds, 0.6)  # 40% of the cells, in contiguous patches
    rng = np.random.default_rng(0)
    ii, jj = np.meshgrid(np.arange(side, dtype=float), np.arange(side, dtype=float), indexing="ij")
    cells = np.column_stack([ii.ravel(), jj.ravel()])
    obs = ~missing.ravel()
    X, y = cells[obs], truth.ravel()[obs] + NOISE_STD * rng.standard_normal(int(obs.sum()))

    # The exact GP by masked-grid CG: variances by CG solves (a few points), no LOVE cache.
    solver = SKI(variance_method="exact", n_probes=4, n_check=2)
    gpr = ScalableGPRegressor(Matern(LENGTH, nu=1.5), alpha=NOISE_STD**2, optimizer=None, solver=solver,
                              random_state=0)
    t0 = time.perf_counter()
    gpr.fit(X, y)
    t_fit = time.perf_counter() - t0
    info = gpr.solver_info_
    t0 = time.perf_counter()
    mean = gpr.predict(cells).reshape(side, side)
    t_mean = time.perf_counter() - t0
    t0 = time.perf_counter()
    sample = gpr.sample_y(cells, n_samples=1, random_state=1, method="pathwise").reshape(side, side)
    t_sample = time.perf_counter() - t0
    # A transect through the middle row: exact standard deviations at 16 points (one CG block).
    row = side // 2
    cols = np.linspace(0, side - 1, 16).round().astype(int)
    Xt = np.column_stack([np.full(cols.size, row, float), cols.astype(float)])
    t0 = time.perf_counter()
    mt, st = gpr.predict(Xt, return_std=True)
    t_std = time.perf_counter() - t0

    gap = missing.ravel()
    rmse_gap = float(np.sqrt(np.mean((mean.ravel() - truth.ravel())[gap] ** 2)))
    rmse_obs = float(np.sqrt(np.mean((mean.ravel() - truth.ravel())[~gap] ** 2)))

    OUTPUT.mkdir(exist_ok=True)
    fig, axes = plt.subplots(1, 4, figsize=(15, 4.2), constrained_layout=True)
    field = dict(cmap="RdBu_r", vmin=-2.5, vmax=2.5, origin="lower", interpolation="nearest")
    shown = np.where(missing, np.nan, truth + NOISE_STD * rng.standard_normal(truth.shape))
    for ax, img, title in [(axes[0], truth, "truth"), (axes[1], shown, f"observed ({gap.mean():.0%} missing)"),
                           (axes[2], mean, "posterior mean (exact GP)")]:
        im = ax.imshow(img.T, **field)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[1].axvline(row, color="k", lw=0.6, ls="--")
    fig.colorbar(im, ax=axes[:3], shrink=0.8, pad=0.01)
    ax = axes[3]
    ax.plot(np.arange(side), truth[row], color="k", lw=0.8, label="truth")
    ax.plot(np.arange(side), mean[row], color="C0", lw=1.2, label="mean")
    ax.errorbar(cols, mt, yerr=1.96 * st, fmt="o", ms=2, color="C0", lw=1, capsize=2, label="95% interval")
    ax.plot(np.arange(side), sample[row], color="C1", lw=0.6, label="posterior sample")
    gaps = np.flatnonzero(missing[row])
    ax.scatter(gaps, np.full(gaps.size, -2.8), s=8, color="0.5", marker="|", label="missing cells")
    ax.set_ylim(-3.0, 3.0)
    ax.set_title(f"transect: row {row}")
    ax.set_xlabel("column")
    ax.legend(fontsize=7, loc="upper right", ncols=2)
    fig.suptitle(f"{side} x {side} field, {X.shape[0]:,} noisy cells observed: exact GP by masked-grid CG "
                 f"({info['iterations']} iterations, fit {t_fit:.0f} s). RMSE vs truth {rmse_gap:.3f} in the gaps, "
                 f"{rmse_obs:.3f} on observed cells")
    path = OUTPUT / "gapped_field.png"
    fig.savefig(path, dpi=50 if quick else 80)
    plt.close(fig)

    print(f"{side} x {side} grid, {X.shape[0]:,} observed cells ({gap.mean():.0%} missing), noise std {NOISE_STD}")
    print(f"solver_={gpr.solver_!r}, grid {info['grid_shape']}, interpolation order {info['interpolation_order']} "
          f"(interpolation error {info['interpolation_error_max']:.1e}: the exact GP)")
    print(f"fit: {info['iterations']} CG iterations (relative residual {info['relative_residual']:.1e}) in {t_fit:.1f} s")
    print(f"mean on all {side * side:,} cells in {t_mean:.2f} s, one pathwise sample in {t_sample:.1f} s, "
          f"exact std at {cols.size} transect points in {t_std:.1f} s")
    print(f"RMSE vs truth: {rmse_gap:.3f} in the gaps, {rmse_obs:.3f} on observed cells (noise {NOISE_STD})")
    print(f"95% interval coverage on the transect: {np.mean(np.abs(truth[row, cols] - mt) <= 1.96 * st):.0%}")
    return dict(rmse_gap=rmse_gap, rmse_obs=rmse_obs, t_fit=t_fit)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="48 x 48 grid (test suite)")
    p.add_argument("--side", type=int, help="grid side (default 500)")
    a = p.parse_args()
    main(quick=a.quick or os.environ.get("SKGPX_EXAMPLES_QUICK") == "1", side=a.side)
