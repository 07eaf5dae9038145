"""Forecasting a Mauna-Loa-like CO2 series with a composite kernel.

The kernel is the one of Rasmussen & Williams (2006), section 5.4.3, as in
scikit-learn's CO2 example:

* a long-term smooth trend:         ``c1 * RBF(l1)``
* a seasonal component that can drift slowly away from exact periodicity:
                                    ``c2 * RBF(l2) * ExpSineSquared(l3, period=1 year)``
* medium-term irregularities:       ``c3 * RationalQuadratic(l4, alpha)``
* measurement noise:                ``c4 * RBF(l5) + White(noise)``

The data are generated here (no download): a quadratic trend rising from ~0.8 to
~1.8 ppm/yr, a seasonal cycle of ~6 ppm peak to peak with two harmonics whose
amplitude drifts slowly, smooth irregularities (~0.65 ppm) and white noise
(0.2 ppm), sampled monthly. The model is trained on 1958-2001 and forecasts 20
years ahead; the generated continuation is held out to check the forecast and its
95% interval. As in scikit-learn's CO2 example the series' mean is subtracted and
``normalize_y=False``, so the learned amplitudes print in ppm. Because the kernel is
a sum, the posterior mean is a sum too: the figure's last panel shows the part
explained by the irregular (RationalQuadratic) term next to the irregularities the
generator put in.

Run ``python examples/co2_composite_kernel.py`` (about a minute on 2 CPU cores), or with
``--quick`` (or ``SKGPX_EXAMPLES_QUICK=1``) for a tiny version used by the test suite.
The figure is written to ``examples/output/co2_composite_kernel.png``.
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

from skgpx import ScalableGPRegressor, precision_scope  # noqa: E402
from skgpx.kernels import RBF, ExpSineSquared, RationalQuadratic, White  # noqa: E402

OUTPUT = Path(__file__).resolve().parent / "output"


def make_co2_like(start=1958.0, stop=2001.0, per_year=12, seed=0, return_parts=False):
    """A synthetic monthly CO2-like record: ``(t in decimal years, ppm)``.

    With ``return_parts=True`` also a dict of the components (trend, seasonal,
    irregular, noise), in ppm.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(start, stop, 1.0 / per_year) + 0.5 / per_year
    s = t - start
    trend = 315.0 + 0.75 * s + 0.0125 * s**2
    amplitude = 1.0 + 0.08 * np.sin(2 * np.pi * s / 23.0)  # slow drift of the seasonal amplitude
    seasonal = amplitude * (2.8 * np.sin(2 * np.pi * t + 0.6) + 0.7 * np.sin(4 * np.pi * t + 2.0))
    # Smooth irregularities: random Fourier series with periods of 1.5-8 years.
    periods = rng.uniform(1.5, 8.0, 12)
    phases = rng.uniform(0, 2 * np.pi, 12)
    weights = rng.normal(0, 0.5, 12)
    irregular = np.sum(weights * np.sin(2 * np.pi * t[:, None] / periods + phases), axis=1)
    noise = rng.normal(0, 0.2, t.size)
    y = trend + seasonal + irregular + noise
    if return_parts:
        return t, y, {"trend": trend, "seasonal": seasonal, "irregular": irregular, "noise": noise}
    return t, y


def co2_kernel():
    """Rasmussen & Williams' CO2 kernel, starting values in ppm and years (``normalize_y=False``)."""
    long_term = 50.0**2 * RBF(length_scale=50.0)
    seasonal = (
        2.0**2
        * RBF(length_scale=100.0, length_scale_bounds=(1.0, 1e4))
        * ExpSineSquared(length_scale=1.0, periodicity=1.0, periodicity_bounds="fixed")
    )
    irregular = 0.5**2 * RationalQuadratic(length_scale=1.0, alpha=1.0)
    noise = 0.1**2 * RBF(length_scale=0.1) + White(noise_level=0.1**2, noise_level_bounds=(1e-5, 1e1))
    return long_term + seasonal + irregular + noise


def main(quick: bool = False) -> dict:
    # Tiny mode: 10 years sampled every second month; the full run: 43 years of monthly values.
    # The series is generated past the end of training so the forecast can be checked.
    split, horizon, per_year = (1968.0, 5.0, 6) if quick else (2001.0, 20.0, 12)
    t_all, y_all, parts = make_co2_like(stop=split + horizon, per_year=per_year, return_parts=True)
    train = t_all < split
    t, y = t_all[train], y_all[train]
    t_held, y_held = t_all[~train], y_all[~train]

    # Subtract the training mean and keep normalize_y=False (as scikit-learn's CO2 example):
    # the kernel's amplitudes are then learned, and printed, in ppm.
    y_offset = float(y.mean())
    gp = ScalableGPRegressor(kernel=co2_kernel(), normalize_y=False, solver="cholesky")
    start = time.perf_counter()
    gp.fit(t[:, None], y - y_offset)
    fit_seconds = time.perf_counter() - start

    t_grid = np.linspace(t[0], split + horizon, 300 if quick else 1500)
    mean, std = gp.predict(t_grid[:, None], return_std=True)
    mean = mean + y_offset
    mean_held, std_held = gp.predict(t_held[:, None], return_std=True)
    mean_held = mean_held + y_offset

    # The posterior mean of a sum of kernels is the sum of the terms' posterior means,
    # k_term(t*, t) @ alpha_ (R&W eq. 2.25 term by term): the irregular (RationalQuadratic) part.
    irregular_kernel = gp.kernel_.k1.k2
    with precision_scope("float64"):
        irregular_mean = np.asarray(irregular_kernel(t_all[:, None], t[:, None])) @ np.ravel(gp.alpha_)
    coverage = float(np.mean(np.abs(y_held - mean_held) <= 1.96 * std_held))
    rmse = float(np.sqrt(np.mean((y_held - mean_held) ** 2)))

    OUTPUT.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(3, 1, figsize=(9, 9.5), layout="constrained", height_ratios=(3, 2, 2))
    zoom = (split - 4.0, split + 4.0)
    for ax, window in zip(axes[:2], (None, zoom)):
        ax.plot(t, y, ".", color="k", ms=2.5, label="training data (synthetic)")
        ax.plot(t_held, y_held, ".", color="C3", ms=2.5, label="held-out future (not used in fit)")
        ax.plot(t_grid, mean, color="C0", lw=1, label="posterior mean")
        band = (mean - 1.96 * std, mean + 1.96 * std)
        ax.fill_between(t_grid, *band, color="C0", alpha=0.3, lw=0, label="95% interval for an observation")
        ax.axvline(split, color="0.5", ls="--", lw=0.8)
        ax.set_ylabel("CO$_2$ concentration (ppm)")
        ax.set_xlabel("year")
        if window is not None:
            inside = (t_grid >= window[0]) & (t_grid <= window[1])
            lo = (mean - 1.96 * std)[inside].min()
            hi = (mean + 1.96 * std)[inside].max()
            ax.set_xlim(*window)
            ax.set_ylim(lo - 1.0, hi + 1.0)
            ax.set_title(f"zoom on the start of the forecast (dashed line: end of training, {split:.0f})")
    axes[0].set_title(
        "Mauna-Loa-like CO$_2$: composite-kernel GP, "
        f"{horizon:.0f}-year forecast\n(the 95% interval covers {coverage:.0%} of the held-out values; "
        f"RMSE {rmse:.2f} ppm)"
    )
    axes[0].legend(loc="upper left")
    ax = axes[2]
    ax.plot(t_all, parts["irregular"], color="k", lw=1, label="irregularities put in by the generator")
    ax.plot(t_all, irregular_mean, color="C2", lw=1.2, label="posterior mean of the RationalQuadratic term")
    ax.axvline(split, color="0.5", ls="--", lw=0.8)
    ax.axhline(0.0, color="0.8", lw=0.6)
    ax.set_xlabel("year")
    ax.set_ylabel("ppm")
    ax.set_title("one kernel term, one component: the irregular part of the fit (reverts to 0 in the forecast)")
    ax.legend(loc="upper left", ncol=2, fontsize=8)
    path = OUTPUT / "co2_composite_kernel.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)

    print(f"trained on {t.size} values {t[0]:.1f}-{t[-1]:.1f} ({per_year} per year) in {fit_seconds:.1f} s")
    print(gp.summary())
    print(f"(fitted to the series minus its mean, {y_offset:.1f} ppm: the kernel's amplitudes are in ppm)")
    corr = float(np.corrcoef(irregular_mean[train], parts["irregular"][train])[0, 1])
    print(f"irregular term vs the generator's irregularities over the training period: correlation {corr:.2f}")
    print(
        f"forecast {split:.0f}-{split + horizon:.0f}: RMSE {rmse:.2f} ppm against the held-out series, "
        f"95% interval coverage {coverage:.0%}"
    )
    print(f"figure: {path}")
    return {"path": path, "lml": gp.log_marginal_likelihood_value_, "coverage": coverage}


def _quick_from_env() -> bool:
    return os.environ.get("SKGPX_EXAMPLES_QUICK", "0") not in ("", "0", "false", "False")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny problem, for smoke tests")
    args = parser.parse_args()
    main(quick=args.quick or _quick_from_env())
