"""SKI in space and exact in time against 3-D SKI: the posterior mean of the SSH benchmark.

The problem of ``benchmarks/structured.py`` (issue 19's kernel ``0.01 * Matern-3/2(100 km) *
Matern-1/2(10 days)``, 3 cm noise, along-track passes each at one time, hyperparameters fixed at
the truth). Both routes solve ``A alpha = y`` by CG to ``--tol`` (one right-hand side) and map the
mean on the 200 x 200 grid at the central day:

* ``ski-3d``: ``SKI()`` as the estimator builds it (automatic space-time grid, refined to its
  interpolation tolerance within its cap; cubic in all three axes);
* ``time-slices``: :class:`skgpx.operators.TimeSliceSKIOperator`, cubic in space at ``--ppl``
  points per length scale, the Matern-1/2 time factor exact over the passes' distinct times (the
  two-sweep recursion);
* ``estimator``: the same operator through ``ScalableGPRegressor(solver=SKI(time_dim=2))`` (its
  automatic spatial grid, refined to the interpolation tolerances): fit (CG, SLQ, LOVE cache),
  then the mean and standard-deviation map (``solve_s`` is the fit, ``map_s`` the predict). Adds
  ``coverage95`` against the truth, ``d_std`` median and ``d_std_max`` max relative error of the
  standard deviation against the exact GP, the LOVE rank and its measured error.

Columns: ``G`` distinct times, ``grid`` the spatial (and time) grid, ``solve_s`` the CG solve
(first call, compilation included), ``iters``, ``map_s`` the 40 000-point mean map, ``rmse``
against the true field, ``d_mean`` median and ``d_mean_max`` max ``|mean - exact|`` over 256 map
points, relative to the prior sd (exact GP: dense Cholesky, only for ``n <= --exact-n``), ``interp``
the largest spatial/space-time interpolation error over the map points' pairs with the data (relative
to the prior variance).

    .venv/bin/python benchmarks/time_slices.py --sizes 5000 20000 --exact-n 20000
    .venv/bin/python benchmarks/time_slices.py --sizes 5000 --routes estimator
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from structured import L_SPACE, NOISE_SD, SIGNAL_VAR, _kernel, problem  # noqa: E402


def _exact(kernel, X, y, Xs):
    """The exact GP's mean and standard deviation at ``Xs`` (dense Cholesky)."""
    import scipy.linalg

    K = np.array(kernel.gram(X))
    K[np.diag_indices_from(K)] += NOISE_SD**2
    c = scipy.linalg.cho_factor(K, overwrite_a=True)
    Ks = np.asarray(kernel.cross(X, Xs))
    var = np.asarray(kernel.diag(Xs)) - np.sum(Ks * scipy.linalg.cho_solve(c, Ks), axis=0)
    return Ks.T @ scipy.linalg.cho_solve(c, y), np.sqrt(np.maximum(var, 0.0))


def run(n, exact_n, ppl, tol, seed, routes, variance_method="love", ski_options=None):
    import jax
    import jax.numpy as jnp

    jax.config.update("jax_enable_x64", True)
    from skgpx.gp import SKI

    ski_options = ski_options or {}
    from skgpx.operators import auto_grid, interpolation_weights
    from skgpx.operators import time_slice_operator, time_slices
    from skgpx.solvers import pcg

    rng = np.random.default_rng(seed)
    X, y, Xm, truth = problem(n, seed, rng)
    kernel = _kernel()
    idx = rng.choice(len(Xm), 256, replace=False)
    exact, exact_sd = _exact(kernel, X, y, Xm[idx]) if n <= exact_n else (None, None)
    Xj, yj, Xmj = jnp.asarray(X), jnp.asarray(y)[:, None], jnp.asarray(Xm)
    noise = jnp.full(n, NOISE_SD**2)
    rows = []

    def row(route, G, grid, solve_s, iters, map_s, mean, sd=None, **extra):
        r = dict(route=route, n=n, G=G, grid="x".join(map(str, grid)), solve_s=solve_s, iters=iters, map_s=map_s,
                 rmse=float(np.sqrt(np.mean((mean - truth) ** 2))),
                 rss_GB=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, **extra)
        if sd is not None:
            r.update(coverage95=float(np.mean(np.abs(mean - truth) <= 1.96 * sd)))
        if exact is not None:
            d = np.abs(mean[idx] - exact) / np.sqrt(SIGNAL_VAR)
            r.update(d_mean=float(np.median(d)), d_mean_max=float(np.max(d)))
            if sd is not None:
                ds = np.abs(sd[idx] - exact_sd) / exact_sd
                r.update(d_std=float(np.median(ds)), d_std_max=float(np.max(ds)))
        rows.append(r)
        print(" | ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items()), flush=True)

    if "ski-3d" in routes:
        inf = SKI().for_data(kernel, X, NOISE_SD**2)

        @jax.jit
        def solve3(X, y, noise):
            op = inf.operator(kernel, X, noise)
            res = pcg(op.mm, y, tol=tol, max_iter=5000, label="3-D SKI solve")
            return res.x, res.iterations, op.grid_op.mm(op.interp.scatter(res.x))

        t0 = time.perf_counter()
        alpha, it, field_u = jax.block_until_ready(solve3(Xj, yj, noise))
        solve_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        mean = np.asarray(jax.jit(lambda Xm, f: interpolation_weights(Xm, inf.grid, 3).gather(f))(Xmj, field_u))[:, 0]
        row("ski-3d", "-", inf.grid.shape, solve_s, int(it), time.perf_counter() - t0, mean)

    if "time-slices" in routes:
        scales = np.array([L_SPACE, L_SPACE, np.inf])
        grid = auto_grid(X, scales, ppl, pad=2)
        tau, slots = time_slices(X, 2)

        @jax.jit
        def solve_ts(X, y, noise):
            op = time_slice_operator(kernel, X, noise, grid, 2, tau, slots)
            res = pcg(op.mm, y, tol=tol, max_iter=5000, label="time-slice SKI solve")
            return res.x, res.iterations

        @jax.jit
        def map_mean(X, alpha, Xm):
            return time_slice_operator(kernel, X, noise, grid, 2, tau, slots).cross_mm(Xm, alpha)[:, 0]

        t0 = time.perf_counter()
        alpha, it = jax.block_until_ready(solve_ts(Xj, yj, noise))
        solve_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        mean = np.asarray(map_mean(Xj, alpha, Xmj))
        row("time-slices", len(tau), grid.shape, solve_s, int(it), time.perf_counter() - t0, mean)

    if "estimator" in routes:  # the same operator through ScalableGPRegressor(solver=SKI(time_dim=2))
        from skgpx import ScalableGPRegressor

        est = ScalableGPRegressor(kernel, alpha=NOISE_SD**2, optimizer=None, random_state=seed,
                                  solver=SKI(time_dim=2, tol=tol, variance_method=variance_method, **ski_options))
        t0 = time.perf_counter()
        est.fit(X, y)
        fit_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        mean, sd = est.predict(Xm, return_std=True)
        info = est.solver_info_
        row("estimator", info["time_slices"], info["grid_shape"], fit_s, info["iterations"], time.perf_counter() - t0,
            mean, sd, precond=info["preconditioner"], love_rank=info["love_rank"],
            love_err_max=info["love_std_rel_error_max"],
            interp=info["interpolation_error_max"])
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    p.add_argument("--exact-n", type=int, default=20000)
    p.add_argument("--ppl", type=float, default=8.0, help="spatial grid points per length scale (time-slices)")
    p.add_argument("--tol", type=float, default=1e-8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--routes", nargs="+", default=["ski-3d", "time-slices"],
                   help="ski-3d, time-slices (the operator alone), estimator (SKI(time_dim=2): fit, mean and std map)")
    p.add_argument("--variance-method", default="love", help="the estimator route's SKI variance_method")
    p.add_argument("--interpolation-std-tol", default="default",
                   help="the estimator route's SKI interpolation_std_tol ('none': interpolation_tol alone)")
    p.add_argument("--preconditioner", default="auto",
                   help="the estimator route's SKI preconditioner ('auto': block-Jacobi here; 'none': plain CG)")
    a = p.parse_args()
    opts = {} if a.interpolation_std_tol == "default" else {
        "interpolation_std_tol": None if a.interpolation_std_tol == "none" else float(a.interpolation_std_tol)}
    opts["preconditioner"] = a.preconditioner
    for n in a.sizes:
        run(n, a.exact_n, a.ppl, a.tol, a.seed, a.routes, a.variance_method, opts)


if __name__ == "__main__":
    main()
