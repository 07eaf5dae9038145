"""A mesoscale sea-surface-height map from along-track observations with solver="ski".

Problem (issue 19): a regional SSH-like field in kilometre coordinates, drawn from the GP
prior ``0.01 m^2 * Matern-3/2(|dx| / 100 km) * Matern-1/2(|dt| / 10 days)`` over a
2000 km x 2000 km box and 10 days (exactly, by circulant embedding on a 10 km x 0.5 day
grid, then trilinear interpolation), sampled along straight satellite passes (7 km
along-track spacing, ~300 points per pass, each pass at one time) with 3 cm noise. The
hyperparameters are the true ones, fixed (``optimizer=None``): ``fit_s`` is the cost of
conditioning on all ``n`` points. The product is a 200 x 200 map (10 km) at the central day
with mean, standard deviation (LOVE on the grid) and 10 pathwise samples.

Run (each size in its own subprocess, so the peak RSS is per size):

    .venv/bin/python benchmarks/structured.py                       # n = 2e4, 1e5
    .venv/bin/python benchmarks/structured.py --sizes 20000 --exact-n 10000
    .venv/bin/python benchmarks/structured.py --sizes 20000 --separable --peer-python PY   # with GPyTorch

GPyTorch's KISS-GP is a product of one-dimensional kernels of one smoothness (its ``GridKernel``
evaluates the base kernel per dimension), so the side-by-side runs on ``--separable``: the
product of 1-D Matern-3/2 kernels (100 km, 100 km, 10 days) for the truth, skgpx, the exact GP
and GPyTorch alike, on skgpx's grid size. ``PY`` is an interpreter with gpytorch (the
optional ``peers`` extra); its row is computed in that interpreter on the same data.

Columns: ``fit_s`` conditioning (grid, interpolation, CG, SLQ, LOVE cache, checks);
``mean_s`` / ``std_s`` / ``samp_s`` the 40 000-point mean map, std map and 10 samples;
``lml_s`` one log-likelihood-and-gradient evaluation (compiled, second call); ``rss_GB``
peak resident memory; ``iters`` CG iterations of the fit; ``rmse`` map mean vs the true
field; ``cover`` fraction of map points with the truth inside mean +- 1.96 std; ``d_mean``
median |mean - exact mean| / prior sd and ``d_std`` median relative std error against the
exact GP (dense Cholesky on all n points, at 256 map points; only for n <= --exact-n);
``interp`` the fit's measured interpolation error (max, relative to the prior variance);
``love`` the std map's measured error on its held-out check points (max; LOVE, or with ``--variance
samples`` the average of ``--n-var-samples`` zero-mean posterior draws on the grid); ``rank`` the
LOVE rank the fit reached (grown 128 Lanczos steps at a time until the error met 2%, at most 2048);
``refine`` the grid refinement steps taken to meet ``--interp-tol`` (``SKI(interpolation_tol=...)``).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

BOX, DAYS, NOISE_SD, SIGNAL_VAR, L_SPACE, L_TIME = 2000.0, 10.0, 0.03, 0.01, 100.0, 10.0


SEPARABLE_NU = 1.5


def _kernel(separable=False):
    from skgpx.kernels import ActiveDims, Matern

    if separable:  # GPyTorch's KISS-GP model: a product of one-dimensional Matern kernels of one nu
        return (SIGNAL_VAR * ActiveDims(Matern(L_SPACE, nu=SEPARABLE_NU), (0,))
                * ActiveDims(Matern(L_SPACE, nu=SEPARABLE_NU), (1,)) * ActiveDims(Matern(L_TIME, nu=SEPARABLE_NU), (2,)))
    return SIGNAL_VAR * ActiveDims(Matern(L_SPACE, nu=1.5), (0, 1)) * ActiveDims(Matern(L_TIME, nu=0.5), (2,))


def truth_field(seed, separable=False):
    """The true field on a 10 km x 0.5 day grid (exact prior draw) and that grid."""
    import jax
    import jax.numpy as jnp

    from skgpx.operators import Grid, grid_operator

    grid = Grid([0.0, 0.0, 0.0], [10.0, 10.0, 0.5], [201, 201, 21])
    op = grid_operator(_kernel(separable), grid).with_psd_embedding(tol=1e-6)
    z = jax.random.normal(jax.random.key(seed), (op.embed_size, 1), jnp.float64)
    return np.asarray(jax.jit(lambda o, z: o.sqrt_mm(z))(op, z)).reshape(grid.shape), grid


def trilinear(field, grid, X):
    u = (X - np.asarray(grid.origin)) / np.asarray(grid.spacing)
    i0 = np.clip(np.floor(u).astype(int), 0, np.asarray(grid.shape) - 2)
    t = u - i0
    out = np.zeros(len(X))
    for c in np.ndindex(2, 2, 2):
        w = np.prod([t[:, a] if c[a] else 1 - t[:, a] for a in range(3)], axis=0)
        out += w * field[i0[:, 0] + c[0], i0[:, 1] + c[1], i0[:, 2] + c[2]]
    return out


def tracks(n, rng):
    """``n`` along-track points: passes at +-20 degrees from north, 7 km spacing, one time each."""
    pts = []
    total = 0
    while total < n:
        ang = np.deg2rad(rng.choice([-20.0, 20.0]) + rng.normal(0, 1.0))
        d = np.array([np.sin(ang), np.cos(ang)])
        x0 = rng.uniform(-BOX * 0.4, BOX * 1.4)
        s = np.arange(-400, 400) * 7.0
        P = np.array([x0, 0.0]) + s[:, None] * d
        P = P[(P[:, 0] >= 0) & (P[:, 0] <= BOX) & (P[:, 1] >= 0) & (P[:, 1] <= BOX)]
        if len(P) == 0:
            continue
        t = rng.uniform(0, DAYS)
        pts.append(np.column_stack([P, np.full(len(P), t)]))
        total += len(P)
    return np.concatenate(pts)[:n]


def problem(n, seed, rng, separable=False):
    """``(X, y, Xm, truth)``: ``n`` noisy along-track observations of the true field (seed
    ``seed``, tracks from ``rng``), the 200 x 200 map points at the central day and the field there."""
    field, fgrid = truth_field(seed, separable)
    X = tracks(n, rng)
    y = trilinear(field, fgrid, X) + NOISE_SD * rng.standard_normal(n)
    gx = np.arange(200) * 10.0
    MX, MY = np.meshgrid(gx, gx, indexing="ij")
    Xm = np.column_stack([MX.ravel(), MY.ravel(), np.full(MX.size, DAYS / 2)])
    truth = field[:200, :200, 10].ravel()
    # The map lies inside the data's extent only where tracks reach; clip to the data box.
    lo, hi = X.min(0), X.max(0)
    Xm[:, :2] = np.clip(Xm[:, :2], lo[:2], hi[:2])
    return X, y, Xm, truth


def lml_only(n, ppl, seed, interp_tol="default"):
    """One log-likelihood-and-gradient evaluation of ``solver="ski"`` at ``n`` (the optimiser's
    objective, ``inference.objective``): first call (compilation included) and second call."""
    import jax

    jax.config.update("jax_enable_x64", True)
    from skgpx.gp import SKI

    X, y, _, _ = problem(n, seed, np.random.default_rng(seed))
    tol = {} if interp_tol == "default" else {"interpolation_tol": None if interp_tol == "none" else float(interp_tol)}
    kernel = _kernel()
    inf = SKI(points_per_length_scale=tuple(ppl) if len(ppl) > 1 else ppl[0], **tol).for_data(kernel, X, NOISE_SD**2)
    data = inf.prepare(X, y[:, None], np.full(n, NOISE_SD**2), np.float64)
    key = jax.random.key(seed)
    theta = np.asarray(kernel.theta)
    out = {}
    for name in ("first", "second"):
        t0 = time.perf_counter()
        value, grad = inf.objective(theta, kernel, data, key)
        out[name + "_s"] = time.perf_counter() - t0
    return [dict(lib="skgpx", n=n, grid="x".join(map(str, inf.grid.shape)), lml_s=out["second_s"],
                 lml_first_s=out["first_s"], value=float(value), grad_norm=float(np.linalg.norm(grad)),
                 rss_GB=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)]


def run_one(n, exact_n, ppl, seed, variance, n_var_samples, interp_tol="default", separable=False, peer=None):
    import jax

    jax.config.update("jax_enable_x64", True)
    from skgpx import ScalableGPRegressor
    from skgpx.gp import SKIInference

    rng = np.random.default_rng(seed)
    X, y, Xm, truth = problem(n, seed, rng, separable)

    tol = {} if interp_tol == "default" else {"interpolation_tol": None if interp_tol == "none" else float(interp_tol)}
    solver = SKIInference(points_per_length_scale=tuple(ppl) if len(ppl) > 1 else ppl[0],
                          variance_method=variance, love_rank=128,
                          n_variance_samples=n_var_samples, **tol)
    gpr = ScalableGPRegressor(_kernel(separable), alpha=NOISE_SD**2, optimizer=None, solver=solver, random_state=seed)
    t0 = time.perf_counter()
    gpr.fit(X, y)
    fit_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    mean = gpr.predict(Xm)
    mean_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    _, std = gpr.predict(Xm, return_std=True)
    std_s = time.perf_counter() - t0 - mean_s  # predict(return_std) recomputes the mean (cheap)
    t0 = time.perf_counter()
    samples = gpr.sample_y(Xm, n_samples=10, random_state=1, method="pathwise")
    samp_s = time.perf_counter() - t0
    theta = gpr.kernel_.theta
    gpr.log_marginal_likelihood(theta, eval_gradient=True)
    t0 = time.perf_counter()
    gpr.log_marginal_likelihood(theta, eval_gradient=True)
    lml_s = time.perf_counter() - t0
    info = gpr.solver_info_
    row = dict(lib="skgpx", n=n, fit_s=fit_s, mean_s=mean_s, std_s=max(std_s, 0.0), samp_s=samp_s, lml_s=lml_s,
               rss_GB=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, iters=info["iterations"],
               rmse=float(np.sqrt(np.mean((mean - truth) ** 2))),
               cover=float(np.mean(np.abs(truth - mean) <= 1.96 * std)),
               d_mean=float("nan"), d_std=float("nan"), interp=info["interpolation_error_max"],
               love=info["love_std_rel_error_max"], rank=info["love_rank"], grid="x".join(map(str, info["grid_shape"])),
               refine=info.get("grid_refinement_steps", 0),
               samples_ok=bool(np.all(np.isfinite(samples))))
    if n <= exact_n:
        import scipy.linalg

        idx = rng.choice(len(Xm), 256, replace=False)
        k = _kernel(separable)
        K = np.asarray(k.gram(X)) + NOISE_SD**2 * np.eye(n)
        c = scipy.linalg.cho_factor(K, overwrite_a=True)
        Ks = np.asarray(k.cross(X, Xm[idx]))
        me = Ks.T @ scipy.linalg.cho_solve(c, y)
        se = np.sqrt(SIGNAL_VAR - np.sum(Ks * scipy.linalg.cho_solve(c, Ks), axis=0))
        row["d_mean"] = float(np.median(np.abs(mean[idx] - me)) / np.sqrt(SIGNAL_VAR))
        row["d_std"] = float(np.median(np.abs(std[idx] - se) / se))
    else:
        idx, me, se = np.zeros(0, int), np.zeros(0), np.zeros(0)
    rows = [row]
    if peer is not None:
        rows.append(_peer_row(peer, X, y, Xm, truth, idx, me, se, info["grid_shape"], separable))
    return rows


def _peer_row(python, X, y, Xm, truth, idx, me, se, grid_shape, separable):
    """GPyTorch's KISS-GP on the same data and grid size, in ``python`` (an interpreter with gpytorch)."""
    import tempfile

    if not separable:
        raise SystemExit("--peer-python needs --separable: GPyTorch's KISS-GP is a product of 1-D kernels.")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, X=X, y=y, Xm=Xm, truth=truth, idx=idx, me=me, se=se, grid_shape=np.asarray(grid_shape),
                 lo=X.min(0), hi=X.max(0), ls=np.array([L_SPACE, L_SPACE, L_TIME]), nu=SEPARABLE_NU,
                 signal_var=SIGNAL_VAR, noise_var=NOISE_SD**2)
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_gpytorch_peer.py")
        out = subprocess.run([python, script, path, "1e-6", "2000", "1024"], capture_output=True, text=True)
    if out.returncode:
        errors = [ln for ln in out.stderr.splitlines() if "Error" in ln] or ["no error message"]
        return {"lib": "gpytorch", "error": f"exit status {out.returncode}: {errors[-1][:80]}"}
    row = json.loads(out.stdout.strip().splitlines()[-1])
    row.update(n=len(X), grid="x".join(map(str, grid_shape)))
    return row


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[20000, 100000])
    p.add_argument("--exact-n", type=int, default=20000)
    p.add_argument("--ppl", type=float, nargs="+", default=[4.0], help="grid points per length scale (one, or x y t)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--variance", default="love", choices=["love", "samples"], help="std map method")
    p.add_argument("--n-var-samples", type=int, default=64, help="posterior draws for --variance samples")
    p.add_argument("--interp-tol", default="default",
                   help="SKI(interpolation_tol=...): a number, 'none' (no grid refinement) or 'default'")
    p.add_argument("--separable", action="store_true",
                   help="the product of 1-D Matern-3/2 kernels (GPyTorch's KISS-GP model) instead of the issue's kernel")
    p.add_argument("--peer-python", help="an interpreter with gpytorch: GPyTorch's KISS-GP on the same data "
                   "(needs --separable)")
    p.add_argument("--lml-only", action="store_true",
                   help="only one log-likelihood-and-gradient evaluation per size (first and second call)")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one is not None and a.lml_only:
        print(json.dumps(lml_only(a.one, a.ppl, a.seed, a.interp_tol)))
        return
    if a.one is not None:
        rows = run_one(a.one, a.exact_n, a.ppl, a.seed, a.variance, a.n_var_samples, a.interp_tol, a.separable,
                       a.peer_python)
        print(json.dumps(rows))
        return
    if a.lml_only:
        cols = ["lib", "n", "grid", "lml_first_s", "lml_s", "value", "grad_norm", "rss_GB"]
    else:
        cols = ["lib", "n", "grid", "fit_s", "mean_s", "std_s", "samp_s", "lml_s", "rss_GB", "iters", "rmse", "cover",
                "d_mean", "d_std", "interp", "love", "rank", "refine"]
    print(" | ".join(cols))
    for n in a.sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--exact-n", str(a.exact_n), "--ppl", *map(str, a.ppl),
               "--seed", str(a.seed), "--variance", a.variance, "--n-var-samples", str(a.n_var_samples),
               "--interp-tol", a.interp_tol] + (["--separable"] if a.separable else []) + (
                   ["--peer-python", a.peer_python] if a.peer_python else []) + (["--lml-only"] if a.lml_only else [])
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this checkout's skgpx
        env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
        # Progress lines of the long solves ("[skgpx] ...") pass through to stderr as they come.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)  # its stderr is ours
        lines = []
        for line in proc.stdout:
            if line.startswith("[skgpx]"):
                print(line, end="", file=sys.stderr, flush=True)
            else:
                lines.append(line)
        if proc.wait():
            print(f"{n} | failed: exit status {proc.returncode} (its error above)")
            continue
        for r in json.loads("".join(lines).strip().splitlines()[-1]):
            if "error" in r:
                print(f"{r['lib']} | {n} | failed: {r['error']}", flush=True)
                continue
            cells = [r.get(c) for c in cols]
            print(" | ".join("–" if v is None else f"{v:.3g}" if isinstance(v, float) else str(v) for v in cells),
                  flush=True)


if __name__ == "__main__":
    main()
