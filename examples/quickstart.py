"""Quickstart: ScalableGPRegressor as a drop-in for scikit-learn's GaussianProcessRegressor.

Fits a GP to noisy 1-D data with a scikit-learn kernel (amplitude x RBF + white
noise), learns the hyperparameters by maximising the marginal likelihood, prints
the fitted model's summary and a few predictions, and plots the posterior mean
with its 95% band.

Run ``python examples/quickstart.py`` (or ``make demo``; a few seconds). ``--quick``
(or ``SKGPX_EXAMPLES_QUICK=1``) uses fewer points. The figure is written to
``examples/output/quickstart.png``.
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
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel  # noqa: E402

from skgpx import ScalableGPRegressor  # noqa: E402

OUTPUT = Path(__file__).resolve().parent / "output"


def truth(x):
    return np.sin(x) + 0.3 * np.cos(3 * x)


def main(quick: bool = False) -> dict:
    rng = np.random.RandomState(0)
    n = 40 if quick else 120
    noise_std = 0.2
    # Inputs in two clusters leave a gap in the middle, where the band must widen.
    x = np.sort(np.concatenate([rng.uniform(0, 4, n // 2), rng.uniform(6, 10, n - n // 2)]))
    X = x[:, None]
    y = truth(x) + noise_std * rng.randn(n)

    kernel = ConstantKernel(1.0) * RBF(length_scale=1.0) + WhiteKernel(noise_level=0.1)
    gp = ScalableGPRegressor(kernel=kernel, n_restarts_optimizer=2, random_state=0)
    start = time.perf_counter()
    gp.fit(X, y)
    seconds = time.perf_counter() - start

    print(gp.summary())
    print(f"fit (3 optimiser runs, JAX compilation included) took {seconds:.2f} s")
    print(f"learned noise std: {np.sqrt(gp.kernel_.k2.noise_level):.3f} (true {noise_std})")

    X_new = np.array([[1.0], [5.0], [9.0]])
    mean, std = gp.predict(X_new, return_std=True)
    print("\npredictions (mean +/- 1.96 std; the std includes the learned WhiteKernel noise):")
    for xi, m, s in zip(X_new[:, 0], mean, std):
        print(f"  x = {xi:4.1f}: {m: .3f} +/- {1.96 * s:.3f}   (truth {truth(xi): .3f})")

    grid = np.linspace(-0.5, 10.5, 400)[:, None]
    m, s = gp.predict(grid, return_std=True)
    noise_var = float(gp.kernel_.k2.noise_level)
    # The WhiteKernel's variance is part of k(x, x), so `std` already includes the
    # observation noise; the latent-function band removes it.
    latent = np.sqrt(np.maximum(s**2 - noise_var, 0.0))

    OUTPUT.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 5), layout="constrained")
    ax.fill_between(grid[:, 0], m - 1.96 * s, m + 1.96 * s, color="C0", alpha=0.15,
                    label="95% band for a new observation")
    ax.fill_between(grid[:, 0], m - 1.96 * latent, m + 1.96 * latent, color="C0", alpha=0.35,
                    label="95% band for the function")
    ax.plot(grid[:, 0], m, color="C0", lw=2, label="posterior mean")
    ax.plot(grid[:, 0], truth(grid[:, 0]), color="k", lw=1, ls="--", label="true function")
    ax.scatter(x, y, s=14, color="C3", zorder=3, label=f"training data (n = {n})")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title("ScalableGPRegressor: C * RBF + White, hyperparameters learned from the data")
    fig.legend(loc="outside lower center", ncol=3, fontsize=8, frameon=False)
    path = OUTPUT / "quickstart.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"\nfigure: {path}")
    return {"path": path, "lml": gp.log_marginal_likelihood_value_}


def _quick_from_env() -> bool:
    return os.environ.get("SKGPX_EXAMPLES_QUICK", "0") not in ("", "0", "false", "False")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer points, for smoke tests")
    args = parser.parse_args()
    main(quick=args.quick or _quick_from_env())
