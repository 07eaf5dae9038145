"""Calibration of predictive intervals: every solver and Magma, on data from the model and on real data.

For each case and method: the coverage of the central 50/80/95% predictive intervals
(the fraction of held-out values inside ``mean +- z * std``), the mean negative log
predictive density (NLPD, natural log, in the units of ``y``), the mean width of the
95% interval, and the probability integral transform ``Phi((y - mean) / std)``
(uniform for calibrated intervals: its histograms are drawn to ``--figure``).
``band`` is the binomial 3-sigma band of the 95% coverage for the number of values
(``skgpx.estimators._calibration.coverage_band``): exact for independent values, only
indicative where the held-out values are correlated (a forecast, neighbouring map
points). ``target`` says what the interval is for: ``y`` a new noisy observation,
``f`` the noise-free latent function (known only for simulated data). ``warned``:
the fitted estimator issued a ``CalibrationWarning`` (its held-out check, see the
calibration guide).

Cases:

* GP solvers, data from the model (hyperparameters fixed at their true values, where
  calibration must hold in expectation): a 3-D Matérn-3/2 field and a 2-D RBF field,
  20 test points times independent draws (the columns of a multi-output ``y``).
* GP solvers, CO2: the Mauna Loa weekly record shipped with statsmodels (1958-2001;
  skipped when statsmodels is not installed), the last 10 years held out, Rasmussen &
  Williams' composite kernel on monthly means (``examples/co2_composite_kernel.py``) fitted by the exact
  solver on the training years, then every solver conditions with it.
* GP solvers, SSH: the simulated along-track sea-surface height of ``examples/ssh_map.py``
  (a deterministic field, not a GP draw); hyperparameters from an exact fit on a
  subsample; held-out track points (``y``) and the noise-free map at mid-period (``f``).
* Magma, data from the model (``skgpx.datasets.make_magma_data``, constant prior mean),
  shared and distinct task hyperparameters: new tasks (the second half of each
  held-out task predicted from its first half) and training tasks (25% of each
  training task's points held out before fitting), pooled over 4 independent draws
  (2 with ``--quick``); beside each, the exact joint GP of all tasks with the true
  hyperparameters on the same rows ("true model": how well a single draw can cover).
* MagmaClust, data from its model (``skgpx.datasets.make_magmaclust_data``, 3 clusters),
  fitted with ``n_clusters=3``: new and training tasks as for Magma.
* Magma, swimmers (``../shared/data/swimmers.csv``, skipped when absent), women and men
  separately, shared and distinct hyperparameters and MagmaClust (K = 3, shared): new
  swimmers' second half (by age) from their first half, and 20% of each training
  swimmer's results.

SKI (``solver="ski"``) predicts on its grid only (NaN outside, which covers the training
inputs): for the CO2 forecast it gets a grid covering the held-out years too; the SSH
kernel (chordal distance on the sphere) has no length scale in the input coordinates,
so SKI has no row there.

Adding a solver is one line in ``SOLVERS``.

Run (about an hour on 2 busy CPU cores, most of it compiling; ``--quick`` a third of that):

    .venv/bin/python benchmarks/calibration.py [--quick] [--only gpr|magma] [--methods ski,...] [--figure docs/img/calibration_pit.png]
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
import warnings
from pathlib import Path

import jax
import numpy as np
from scipy.stats import norm

import skgpx.gp
from skgpx import MultiTaskMagmaRegressor, ScalableGPRegressor, precision_scope
from skgpx.datasets import make_magma_data, make_magmaclust_data
from skgpx.estimators._calibration import CalibrationWarning, coverage_band
from skgpx.kernels import RBF, Matern

ROOT = Path(__file__).resolve().parents[1]
SWIMMERS = ROOT / ".." / "shared" / "data" / "swimmers.csv"
LEVELS = (0.5, 0.8, 0.95)


def _solver(name, **options):
    """``ScalableGPRegressor`` keywords for solver `name` with `options` (a solver object where
    :mod:`skgpx.gp` has the class, else the name and flat options)."""
    if not options:
        return {"solver": name}
    cls = getattr(skgpx.gp, {"nystrom": "Nystrom", "rff": "RFF", "ski": "SKI"}.get(name, ""), None)
    return {"solver": cls(**options)} if cls is not None else {"solver": name, **options}


# label -> ScalableGPRegressor keywords: one line per solver.
SOLVERS = {
    "cholesky": _solver("cholesky"),
    "cg-dense": _solver("cg-dense"),
    "cg-matrix-free": _solver("cg-matrix-free"),
    "nystrom": _solver("nystrom", n_components=1024),
    "nystrom r=256": _solver("nystrom", n_components=256),
    "rff": _solver("rff", n_components=1024),
    "ski": _solver("ski"),
}


# -- scores ------------------------------------------------------------------------------------
def scores(y, mean, std):
    """Coverage at ``LEVELS``, NLPD, mean 95% width and PIT values of Gaussian predictions."""
    y, mean, std = (np.ravel(np.asarray(a, np.float64)) for a in (y, mean, std))
    std = np.maximum(std, 1e-300)
    z = (y - mean) / std
    out = {f"cov{round(100 * p)}": float(np.mean(np.abs(z) <= norm.ppf(0.5 + p / 2))) for p in LEVELS}
    out["nlpd"] = float(np.mean(0.5 * np.log(2 * np.pi * std**2) + 0.5 * z**2))
    out["width95"] = float(np.mean(2 * norm.ppf(0.975) * std))
    out["n"] = int(y.size)
    out["pit"] = norm.cdf(z)
    return out


ROWS: list[dict] = []
METHODS: set | None = None  # --methods: run only these labels (solvers and Magma configurations)


def record(group, case, method, target, y, mean, std, warned=False, seconds=float("nan")):
    row = dict(group=group, case=case, method=method, target=target, warned=warned, seconds=seconds)
    row.update(scores(y, mean, std))
    ROWS.append(row)
    lo, hi = coverage_band(row["n"])
    print(
        f"  {case:28s} {method:16s} {target}  n={row['n']:5d}  cov50 {row['cov50']:.3f}  cov80 {row['cov80']:.3f}  "
        f"cov95 {row['cov95']:.3f} [{lo:.3f}, {hi:.3f}]  nlpd {row['nlpd']:7.3f}  width {row['width95']:.3g}"
        f"{'  WARNED' if warned else ''}  ({seconds:.1f} s)",
        flush=True,
    )


def _fit_gpr(kwargs, X, y, **params):
    """Fit, returning the estimator and whether it warned about its calibration."""
    est = ScalableGPRegressor(random_state=0, **kwargs, **params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(X, y)
    return est, any(issubclass(w.category, CalibrationWarning) for w in caught)


def _example(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- GP solvers: data from the model ----------------------------------------------------------
def gpr_model(case, kernel, d, n, noise, n_draws, rng):
    """Exact GP draws at ``n`` training + 20 test inputs (``n_draws`` independent columns)."""
    m = 20
    X = rng.uniform(size=(n + m, d))
    with precision_scope(np.float64):
        K = np.asarray(kernel.gram(jax.numpy.asarray(X)))
    F = np.linalg.cholesky(K + 1e-10 * np.eye(n + m)) @ rng.standard_normal((n + m, n_draws))
    Y = F + np.sqrt(noise) * rng.standard_normal(F.shape)
    print(f"{case}: n={n}, {m} test points x {n_draws} draws, noise variance {noise}")
    for label, kwargs in SOLVERS.items():
        t = time.perf_counter()
        try:
            est, warned = _fit_gpr(kwargs, X[:n], Y[:n], kernel=kernel, alpha=noise, optimizer=None)
            mean, std = est.predict(X[n:], return_std=True)
        except ValueError as err:  # e.g. no spectral density for random features
            print(f"  {case:28s} {label:16s} n/a: {str(err).splitlines()[0][:90]}")
            continue
        seconds = time.perf_counter() - t
        # `std` is of the latent f (the noise is in alpha); a new observation adds alpha.
        record("gpr", case, label, "f", F[n:], mean, std, warned, seconds)
        record("gpr", case, label, "y", Y[n:], mean, np.sqrt(std**2 + noise), warned, seconds)


# -- GP solvers: CO2 ---------------------------------------------------------------------------
def gpr_co2(quick):
    try:
        from statsmodels.datasets import co2
    except ImportError:
        print("co2: statsmodels is not installed (pip install statsmodels); case skipped")
        return
    data = co2.load().data.dropna()
    t = np.asarray(data.index.year + (data.index.dayofyear - 0.5) / 365.25, np.float64)
    y = np.asarray(data["co2"], np.float64)
    # Monthly means of the weekly record (~520 values; every 4th month with --quick).
    _, inv = np.unique(np.floor(t * 12), return_inverse=True)
    t, y = np.bincount(inv, t) / np.bincount(inv), np.bincount(inv, y) / np.bincount(inv)
    if quick:
        t, y = t[::4], y[::4]
    split = t.max() - 10.0
    train = t < split
    offset = float(y[train].mean())
    kernel = _example("co2_composite_kernel").co2_kernel()
    t0 = time.perf_counter()
    exact = ScalableGPRegressor(kernel, normalize_y=False, solver="cholesky").fit(t[train, None], y[train] - offset)
    print(f"co2: {train.sum()} monthly values {t[0]:.0f}-{split:.1f}, {(~train).sum()} held out; hyperparameters by the "
          f"exact solver in {time.perf_counter() - t0:.0f} s: {exact.kernel_}")
    for label, kwargs in SOLVERS.items():
        t1 = time.perf_counter()
        if label == "ski":  # SKI predicts on its grid only (NaN outside): a forecast needs one covering the test years
            from skgpx.kernels import length_scales
            from skgpx.operators import auto_grid

            kwargs = {"solver": skgpx.gp.SKI(grid=auto_grid(t[:, None], length_scales(exact.kernel_, 1)))}
        try:
            est, warned = _fit_gpr(kwargs, t[train, None], y[train] - offset, kernel=exact.kernel_,
                                   normalize_y=False, optimizer=None)
            mean, std = est.predict(t[~train, None], return_std=True)  # the kernel's White: a new y
        except ValueError as err:
            print(f"  {'co2 (last 10 years)':28s} {label:16s} n/a: {str(err).splitlines()[0][:90]}")
            continue
        record("gpr", "co2 (last 10 years)", label, "y", y[~train], mean + offset, std, warned,
               time.perf_counter() - t1)


# -- GP solvers: SSH ---------------------------------------------------------------------------
def gpr_ssh(quick):
    ssh = _example("ssh_map")
    n, n_test, n_sub = (1_000, 500, 400) if quick else (2_000, 1_000, 800)
    X, y = ssh.make_along_track(n + n_test, seed=3)
    rng = np.random.default_rng(4)
    sub = rng.choice(n, n_sub, replace=False)
    t0 = time.perf_counter()
    small = ScalableGPRegressor(ssh.space_time_kernel(), solver="cholesky").fit(X[sub], y[sub])
    signal, noise = small.kernel_.k1, float(small.kernel_.k2.noise_level)
    print(f"ssh: n={n}, {n_test} held-out track points, map at day {0.5 * ssh.DAYS}; hyperparameters on "
          f"{n_sub} points in {time.perf_counter() - t0:.0f} s: {small.kernel_}")
    lon, lat = np.meshgrid(np.linspace(*ssh.LON, 40), np.linspace(*ssh.LAT, 24))
    Xg = np.column_stack([lon.ravel(), lat.ravel(), np.full(lon.size, 0.5 * ssh.DAYS)])
    truth = ssh.ssh_truth(Xg[:, 0], Xg[:, 1], Xg[:, 2])
    for label, kwargs in SOLVERS.items():
        t1 = time.perf_counter()
        try:
            est, warned = _fit_gpr(kwargs, X[:n], y[:n], kernel=signal, alpha=noise, optimizer=None)
            mean, std = est.predict(X[n:], return_std=True)
            mg, sg = est.predict(Xg, return_std=True)
        except ValueError as err:
            print(f"  {'ssh':28s} {label:16s} n/a: {str(err).splitlines()[0][:90]}")
            continue
        seconds = time.perf_counter() - t1
        record("gpr", "ssh (held-out track points)", label, "y", y[n:], mean, np.sqrt(std**2 + noise), warned, seconds)
        record("gpr", "ssh (map at mid-period)", label, "f", truth, mg, sg, warned, seconds)


# -- Magma -------------------------------------------------------------------------------------
def _halves(X, groups, tasks):
    """Rows of the first and second half (by the first input) of each task in `tasks`."""
    obs, tgt = [], []
    for task in tasks:
        rows = np.flatnonzero(groups == task)
        rows = rows[np.argsort(X[rows, 0], kind="stable")]
        obs.append(rows[: len(rows) // 2])
        tgt.append(rows[len(rows) // 2 :])
    return np.concatenate(obs), np.concatenate(tgt)


def _split(X, groups, train_tasks, new_tasks, held_fraction, rng):
    """Rows ``(fit, held, obs, tgt)``: training rows fitted / held out (`held_fraction` of each
    training task), new tasks' first halves (observed) and second halves (predicted)."""
    is_train = np.isin(groups, train_tasks)
    held = is_train & (rng.uniform(size=len(groups)) < held_fraction)
    obs, tgt = (np.isin(np.arange(len(groups)), rows) for rows in _halves(X, groups, new_tasks))
    return is_train & ~held, held, obs, tgt


def _magma_fit_predict(X, y, groups, rows, params, magma_kwargs):
    """Fit one configuration on ``rows[0]``; ``({kind: (y, mean, std)}, seconds)`` for the new
    and the training tasks."""
    fit_rows, held, obs, tgt = rows
    offset = np.max(groups) + 1  # labels unseen in fit
    t0 = time.perf_counter()
    est = MultiTaskMagmaRegressor(**magma_kwargs, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X[fit_rows], y[fit_rows], groups[fit_rows])
    seconds = time.perf_counter() - t0
    out = {"new tasks": (y[tgt], *est.predict(X[tgt], groups[tgt] + offset, return_std=True, X_obs=X[obs],
                                              y_obs=y[obs], groups_obs=groups[obs] + offset))}
    out["training tasks"] = (y[held], *est.predict(X[held], groups[held], return_std=True))
    return out, seconds


def _magma_case(case, X, y, groups, train_tasks, new_tasks, held_fraction, configs, rng, magma_kwargs):
    """Fit each config on the training tasks minus `held_fraction` of their rows; score both kinds."""
    rows = _split(X, groups, train_tasks, new_tasks, held_fraction, rng)
    for label, params in configs.items():
        if METHODS is not None and label not in METHODS:
            continue
        out, seconds = _magma_fit_predict(X, y, groups, rows, params, magma_kwargs)
        for kind, (yk, mean, std) in out.items():
            record("magma", f"{case}, {kind}", label, "y", yk, mean, std, seconds=seconds)


def _magma_oracle(X, y, groups, rows, mean, cluster, v0, l0, vi, li, si):
    """The exact joint GP of all tasks with the true hyperparameters (what calibration on
    this draw can be at best): ``{kind: (y, mean, std)}`` as :func:`_magma_fit_predict`.

    Task ``t`` is in cluster ``cluster[t]``, whose mean process has prior mean
    ``mean[cluster[t]]`` and kernel ``v0 SE(l0)`` (one cluster: Magma; the clusters known,
    for MagmaClust); its own part ``vi[t] SE(li[t])`` plus noise ``si[t]``.
    """
    fit_rows, held, obs, tgt = rows
    x, c = X[:, 0], cluster[groups]
    vi, li, si = (np.broadcast_to(np.asarray(v, np.float64), (groups.max() + 1,)) for v in (vi, li, si))

    def cov(a, b):
        d2 = (x[a][:, None] - x[b][None, :]) ** 2
        same_task = groups[a][:, None] == groups[b][None, :]
        same_cluster = c[a][:, None] == c[b][None, :]
        ta = groups[a][:, None]
        return (np.where(same_cluster, v0 * np.exp(-0.5 * d2 / l0**2), 0.0)
                + np.where(same_task, vi[ta] * np.exp(-0.5 * d2 / li[ta] ** 2), 0.0))

    out = {}
    for kind, cond, pred in (("new tasks", fit_rows | obs, tgt), ("training tasks", fit_rows, held)):
        K = cov(cond, cond) + np.diag(si[groups[cond]])
        Ks = cov(pred, cond)
        L = np.linalg.cholesky(K)
        m = mean[c[pred]] + Ks @ np.linalg.solve(K, y[cond] - mean[c[cond]])
        V = np.linalg.solve(L, Ks.T)
        var = v0 + vi[groups[pred]] + si[groups[pred]] - np.sum(V * V, axis=0)
        out[kind] = (y[pred], m, np.sqrt(var))
    return out


def _pooled_case(case, label, draw, n_draws, n_train, n_new, params, magma_kwargs, rng):
    """Fit `params` on `n_draws` independent draws ``draw(d) -> (X, y, g, oracle(rows))`` and
    record the pooled rows of Magma and of the true model."""
    pooled, seconds = {}, 0.0
    for d in range(n_draws):
        X, y, g, oracle = draw(d)
        rows = _split(X, g, np.arange(n_train), np.arange(n_train, n_train + n_new), 0.25, rng)
        out, sec = _magma_fit_predict(X, y, g, rows, params, magma_kwargs)
        seconds += sec
        for method, res in ((label, out), ("true model", oracle(rows))):
            for kind, arrays in res.items():
                pooled.setdefault((kind, method), []).append(arrays)
    for (kind, method), parts in pooled.items():
        yk, mean, std = (np.concatenate(a) for a in zip(*parts))
        record("magma", f"{case}, {kind}", method, "y", yk, mean, std,
               seconds=seconds if method == label else float("nan"))


def _magma_kernels():
    from sklearn.gaussian_process.kernels import RBF as SkRBF, ConstantKernel as SkC, WhiteKernel

    return dict(mean_kernel=SkC(1.0) * SkRBF(3.0), task_kernel=SkC(0.5) * SkRBF(3.0) + WhiteKernel(0.1),
                prior_mean="constant")


def magma_model(quick, rng):
    """Independent draws of the Magma model, pooled (one draw's coverage varies by about
    +-0.02 even for the true model: its tasks share one mean process); next to Magma,
    the exact joint GP with the true hyperparameters on the same rows ("true model")."""
    n_train, n_new, n_draws = (20, 20, 2) if quick else (40, 30, 4)
    for shared in (True, False):
        label = "shared" if shared else "distinct"
        print(f"magma model data ({label} task hyperparameters): {n_draws} draws of {n_train} training tasks, "
              f"{n_new} new, 20 points each")
        if METHODS is not None and label not in METHODS:
            continue

        def draw(d, shared=shared):
            X, y, g, t = make_magma_data(n_train + n_new, 20, shared_inputs=False, shared_hyperparameters=shared,
                                         mean_slope=0.0, random_state=5 + shared + 10 * d, return_truth=True)
            mean, one = np.asarray([t.prior_mean[0]]), np.zeros(n_train + n_new, int)
            return X, y, g, lambda rows: _magma_oracle(X, y, g, rows, mean, one, float(t.mean_variance),
                                                       float(t.mean_length_scale), t.task_variance,
                                                       t.task_length_scale, t.noise)

        _pooled_case(f"magma model ({label} HP)", label, draw, n_draws, n_train, n_new,
                     dict(shared_hyperparameters=shared), dict(_magma_kernels(), max_iter=5 if quick else 10), rng)


def magmaclust_model(quick, rng):
    """MagmaClust on independent draws of its model (3 clusters, shared hyperparameters: the
    generator's defaults), fitted with K = 3, pooled; beside it the exact GP with the true
    hyperparameters and the clusters known."""
    n_train, n_new, n_draws = (24, 15, 1) if quick else (45, 30, 3)
    print(f"magmaclust model data (3 clusters): {n_draws} draws of {n_train} training tasks, {n_new} new, "
          "20 points each")
    if METHODS is not None and "clust K=3" not in METHODS:
        return
    kernels = _magma_kernels()
    kernels.pop("prior_mean")

    def draw(d):
        X, y, g, t = make_magmaclust_data(n_train + n_new, 20, 3, shared_inputs=False, random_state=7 + 10 * d,
                                          return_truth=True)
        # the generator's defaults: cluster prior means spaced 10 apart, 4 SE(1.5), tasks SE(1.0), noise 0.1
        means = 10.0 * (np.arange(3) - 1.0)
        return X, y, g, lambda rows: _magma_oracle(X, y, g, rows, means, t.labels, 4.0, 1.5, 1.0, 1.0, 0.1)

    _pooled_case("magmaclust model (K=3)", "clust K=3", draw, n_draws, n_train, n_new, dict(n_clusters=3),
                 dict(kernels, max_iter=5 if quick else 10), rng)


def magma_swimmers(quick, rng):
    if not SWIMMERS.exists():
        print(f"swimmers: {SWIMMERS} not present; case skipped")
        return
    D = np.loadtxt(SWIMMERS, delimiter=",", skiprows=1)
    n_train, n_new = (30, 10) if quick else (60, 20)
    for gender, name in ((2, "women"),) if quick else ((2, "women"), (1, "men")):
        G = D[D[:, 3] == gender].copy()
        G[:, 1] = np.round(G[:, 1], 1)  # ages to 0.1 year: a ~100-point union grid
        key, inv = np.unique(G[:, :2], axis=0, return_inverse=True)
        inv = inv.ravel()
        perf = np.bincount(inv, G[:, 2]) / np.bincount(inv)
        perm = np.random.default_rng(0).permutation(np.unique(key[:, 0]))
        keep = np.isin(key[:, 0], perm[: n_train + n_new])
        X, y, g = key[keep, 1:2], perf[keep], key[keep, 0].astype(int)
        print(f"swimmers ({name}): {n_train} training swimmers, {n_new} new")
        configs = {"shared": dict(shared_hyperparameters=True), "distinct": dict(shared_hyperparameters=False),
                   "clust K=3": dict(shared_hyperparameters=True, n_clusters=3)}
        _magma_case(f"swimmers {name}", X, y, g, perm[:n_train], perm[n_train : n_train + n_new], 0.2, configs, rng,
                    dict(_magma_kernels(), max_iter=4 if quick else 10))


# -- report ------------------------------------------------------------------------------------
def table(rows):
    head = "| case | method | target | n | cov50 | cov80 | cov95 | 95% band | NLPD | width95 | warned |"
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        lo, hi = coverage_band(r["n"])
        lines.append(
            f"| {r['case']} | {r['method']} | {r['target']} | {r['n']} | {r['cov50']:.3f} | {r['cov80']:.3f} | "
            f"{r['cov95']:.3f} | {lo:.3f}-{hi:.3f} | {r['nlpd']:.3f} | {r['width95']:.3g} | "
            f"{'yes' if r['warned'] else ''} |"
        )
    return "\n".join(lines)


def pit_figure(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = 6
    nrows = -(-len(rows) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(2.6 * cols, 1.9 * nrows), layout="constrained", squeeze=False)
    bins = np.linspace(0, 1, 11)
    for ax, r in zip(axes.ravel(), rows):
        ax.hist(r["pit"], bins=bins, density=True, color="C1" if r["warned"] else "C0")
        ax.axhline(1.0, color="k", lw=0.8, ls="--")
        ax.set_ylim(0, 3)
        ax.set_xticks([0, 0.5, 1])
        ax.set_yticks([])
        ax.set_title(f"{r['case']}\n{r['method']} ({r['target']}): {r['cov95']:.2f}", fontsize=7)
    for ax in axes.ravel()[len(rows) :]:
        ax.axis("off")
    fig.suptitle("PIT histograms (flat = calibrated; U = too narrow; hump = too wide). "
                 "Title: case, method (target), 95% coverage", fontsize=9)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"PIT histograms written to {path}")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small sizes (a few minutes)")
    p.add_argument("--only", choices=("gpr", "magma"), default=None)
    p.add_argument("--figure", type=Path, default=None, help="PNG of the PIT histograms")
    p.add_argument("--methods", default=None,
                   help="comma-separated labels to run, e.g. 'ski,clust K=3' (default: all; see SOLVERS)")
    args = p.parse_args()
    global METHODS
    if args.methods is not None:
        METHODS = {m.strip() for m in args.methods.split(",")}
        for label in list(SOLVERS):
            if label not in METHODS:
                del SOLVERS[label]
    rng = np.random.default_rng(0)
    n, draws = (600, 25) if args.quick else (1500, 50)
    if args.only in (None, "gpr"):
        gpr_model("model: Matern-3/2, 3-D", Matern(0.3, nu=1.5), 3, n, 0.01, draws, rng)
        if not args.quick:
            gpr_model("model: RBF, 2-D", RBF(0.2), 2, n, 0.01, draws, rng)
        gpr_co2(args.quick)
        gpr_ssh(args.quick)
    if args.only in (None, "magma"):
        magma_model(args.quick, rng)
        magmaclust_model(args.quick, rng)
        magma_swimmers(args.quick, rng)
    print()
    print(table(ROWS))
    if args.figure is not None:
        pit_figure(ROWS, args.figure)


if __name__ == "__main__":
    sys.exit(main())
