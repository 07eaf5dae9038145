"""Choosing a kernel by cross-validation: GridSearchCV over a Pipeline.

``ScalableGPRegressor`` is a scikit-learn estimator, so it goes into a
``Pipeline`` after a ``StandardScaler`` (the Friedman #2 features below live on
scales from 0-1 to 0-1800, which an isotropic kernel cannot handle raw) and into
``GridSearchCV`` with the kernel as a grid parameter. Each candidate kernel still
has its own hyperparameters tuned by maximising the marginal likelihood inside
every cross-validation fit; the grid search compares the kernel families by
held-out R^2.

Run ``python examples/grid_search_pipeline.py`` (16 GP fits; about a minute on 2 CPU cores), or with
``--quick`` (or ``SKGPX_EXAMPLES_QUICK=1``) for a tiny version used by the test suite.
The figure is written to ``examples/output/grid_search_pipeline.png``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import make_friedman2  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from skgpx import ScalableGPRegressor  # noqa: E402
from skgpx.kernels import RBF, Matern, RationalQuadratic, White  # noqa: E402

OUTPUT = Path(__file__).resolve().parent / "output"


def candidate_kernels():
    """Three kernel families, each with a learned amplitude and a learned noise level."""
    return {
        "RBF": 1.0 * RBF(length_scale=1.0) + White(noise_level=0.1),
        "Matern 3/2": 1.0 * Matern(length_scale=1.0, nu=1.5) + White(noise_level=0.1),
        "RationalQuadratic": 1.0 * RationalQuadratic(length_scale=1.0, alpha=1.0) + White(noise_level=0.1),
    }


def main(quick: bool = False) -> dict:
    n = 64 if quick else 400  # quick: 48 training points, two equal folds (one compiled shape)
    X, y = make_friedman2(n_samples=n, noise=50.0, random_state=0)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0)

    kernels = candidate_kernels()
    pipe = Pipeline([("scale", StandardScaler()), ("gp", ScalableGPRegressor(normalize_y=True))])
    search = GridSearchCV(pipe, {"gp__kernel": list(kernels.values())}, cv=2 if quick else 5, scoring="r2")
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        # A RationalQuadratic whose alpha runs to its upper bound has become an RBF: the
        # ConvergenceWarning says so; collect such warnings and summarise them below.
        warnings.simplefilter("always", ConvergenceWarning)
        search.fit(X_train, y_train)
    seconds = time.perf_counter() - start
    near_bounds = sorted({str(w.message).split(" parameter ")[1].split(" is ")[0] for w in caught
                          if issubclass(w.category, ConvergenceWarning) and " parameter " in str(w.message)})

    names = list(kernels)
    scores = search.cv_results_["mean_test_score"]
    spread = search.cv_results_["std_test_score"]
    best = search.best_estimator_
    mean, std = best.predict(X_test, return_std=True)
    test_r2 = best.score(X_test, y_test)
    coverage = np.mean(np.abs(y_test - mean) <= 1.96 * std)

    OUTPUT.mkdir(parents=True, exist_ok=True)
    fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.8), layout="constrained")
    rows = np.arange(len(names))[::-1]
    for i, (row, s, sd) in enumerate(zip(rows, scores, spread)):
        color = "C1" if i == search.best_index_ else "C0"
        ax0.errorbar(s, row, xerr=sd, fmt="o", color=color, capsize=4)
        ax0.annotate(f"{s:.4f}", (s, row), xytext=(0, 7), textcoords="offset points", ha="center")
    ax0.set_yticks(rows, names)
    ax0.set_ylim(rows.min() - 0.6, rows.max() + 0.6)
    ax0.set_xlabel(f"R$^2$: mean ± 1 sd over {search.n_splits_} CV folds")
    ax0.set_title("Kernels compared by GridSearchCV\n(orange: the one chosen)")
    if near_bounds:
        ax0.text(0.02, 0.02, "ConvergenceWarning in CV: " + ", ".join(near_bounds) + "\nended near a bound"
                 + (" (RationalQuadratic, alpha → ∞: an RBF)" if any(n.endswith("__alpha") for n in near_bounds)
                    else ""),
                 transform=ax0.transAxes, fontsize=8, color="0.3", va="bottom")
    ax0.grid(axis="x", alpha=0.3)
    lo, hi = float(min(y_test.min(), mean.min())), float(max(y_test.max(), mean.max()))
    ax1.plot([lo, hi], [lo, hi], color="0.5", lw=0.8, label="predicted = true")
    ax1.errorbar(
        y_test, mean, yerr=1.96 * std, fmt="o", ms=3, lw=0.6, color="C1", label="posterior mean ± 95% predictive interval"
    )
    ax1.set_xlabel("true y (held-out test set; Friedman #2 target, no unit)")
    ax1.set_ylabel("predicted y")
    ax1.set_title(f"Chosen pipeline on {len(y_test)} held-out test points\n"
                  f"R$^2$ = {test_r2:.3f}; the 95% intervals cover {coverage:.0%} of them")
    ax1.legend(loc="upper left")
    path = OUTPUT / "grid_search_pipeline.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)

    print(
        f"GridSearchCV: {len(names)} kernels x {search.n_splits_} folds on {len(y_train)} points "
        f"in {seconds:.1f} s"
    )
    for name, s, sd in zip(names, scores, spread):
        print(f"  {name:<18} CV R^2 = {s:.4f} +/- {sd:.4f}")
    print(f"best: {names[search.best_index_]}; learned kernel: {best.named_steps['gp'].kernel_}")
    if near_bounds:
        note = ("; a RationalQuadratic whose alpha reaches its upper bound has become an RBF"
                if any(name.endswith("__alpha") for name in near_bounds) else "")
        print(f"(ConvergenceWarning during CV: {', '.join(near_bounds)} ended near a bound{note})")
    print(f"test R^2 = {test_r2:.3f}, 95% interval coverage = {coverage:.2f}")
    print(f"figure: {path}")
    return {"path": path, "best": names[search.best_index_], "test_r2": test_r2}


def _quick_from_env() -> bool:
    return os.environ.get("SKGPX_EXAMPLES_QUICK", "0") not in ("", "0", "false", "False")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny problem, for smoke tests")
    args = parser.parse_args()
    main(quick=args.quick or _quick_from_env())
