"""CG with time groups (``CG(time_dim=2)``) against plain CG on daily satellite passes.

Problem: the SSH kernel of ``benchmarks/structured.py`` (``0.01 m^2 * Matern-3/2(|dx| / 100 km) *
Matern-1/2(|dt| / 10 days)``, 3 cm noise) on ``n`` along-track points over ``--days`` days, every
pass at a whole day (``G = --days`` time groups). The targets are noise (the timings do not depend
on them beyond the CG iteration count, the same for both operators).

Rows, each timed on its second call (compiled) through the solver's host entry point (the
program the estimator's optimiser runs):

* ``lml+grad``: one log-likelihood-and-gradient evaluation, all hyperparameters free;
* ``lml+grad, space fixed``: the same with the spatial hyperparameters fixed (bounds "fixed"):
  time groups skip the spatial kernel's gradient pass and, on the dense operator, reach the
  temporal hyperparameters from the stored blocks without a kernel evaluation;
* ``new temporal weights``: the dense operator for a changed temporal length scale, built anew
  (``time_group_operator``) against reusing the spatial blocks (``TimeGroupOperator.with_kernel``),
  each followed by one product;
* ``mean at 40k map points``: the predictive mean at one time (Exploit A) from the fitted weights;
* ``estimator fit + mean map``: ``ScalableGPRegressor(optimizer=None)`` with ``CG(operator=...)``
  against ``CG(operator=..., time_dim="auto")`` (what ``solver="auto"`` runs past the Cholesky
  range on such data): ``fit`` and ``predict`` of the map, second call.

for the dense and the matrix-free operator. ``ratio`` = plain / time groups.

Run: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/time_groups.py [--n 6000] [--days 10] [--rows estimator]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))


def _timed(f, repeat=1):
    f()
    t0 = time.perf_counter()
    for _ in range(repeat):
        f()
    return (time.perf_counter() - t0) / repeat


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=6000)
    p.add_argument("--days", type=int, default=10)
    p.add_argument("--operators", nargs="+", default=["dense", "matrix-free"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rows", nargs="+", default=["operator", "estimator"],
                   help="operator: the solver-level rows; estimator: fit + mean map through ScalableGPRegressor")
    args = p.parse_args()

    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp

    from structured import L_SPACE, L_TIME, NOISE_SD, SIGNAL_VAR, tracks
    from skgpx import ScalableGPRegressor
    from skgpx.gp import CG
    from skgpx.kernels import ActiveDims, Constant, Matern
    from skgpx.operators import time_group_operator, tiled_cross_mm

    rng = np.random.default_rng(args.seed)
    X = tracks(args.n, rng)
    X[:, 2] = np.floor(X[:, 2] * args.days / X[:, 2].max()).clip(0, args.days - 1)  # whole days
    y = NOISE_SD * rng.standard_normal((args.n, 1))
    noise = np.full(args.n, NOISE_SD**2)

    def kernel(space_fixed=False):
        b = "fixed" if space_fixed else (1e-5, 1e5)
        return (Constant(SIGNAL_VAR, b) * ActiveDims(Matern(L_SPACE, nu=1.5, length_scale_bounds=b), (0, 1))
                * ActiveDims(Matern(L_TIME, nu=0.5), (2,)))

    gx = np.linspace(0, 2000.0, 200)
    MX, MY = np.meshgrid(gx, gx, indexing="ij")
    Xm = jnp.asarray(np.column_stack([MX.ravel(), MY.ravel(), np.full(MX.size, args.days / 2)]))
    load = os.getloadavg()[0]
    counts = np.unique(X[:, 2], return_counts=True)[1]
    print(f"# time groups: n={args.n}, {args.days} days, G={len(counts)} groups of {counts.min()}-{counts.max()} points, "
          f"{os.cpu_count()} CPU cores, load {load:.1f}, "
          f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC")
    print(f"{'operator':12s} | {'what':28s} | {'plain s':>9s} | {'groups s':>9s} | {'ratio':>6s}")
    key = jax.random.key(0)
    for operator in args.operators:
        rows = []
        if "estimator" in args.rows:
            est = []
            for inf in (CG(operator=operator), CG(operator=operator, time_dim="auto")):
                gp = ScalableGPRegressor(kernel(), alpha=NOISE_SD**2, optimizer=None, solver=inf)
                est.append(_timed(lambda: gp.fit(X, y[:, 0]).predict(np.asarray(Xm))))
            rows.append(("estimator fit + mean map", *est))
        if "operator" not in args.rows:
            for what, a, b in rows:
                print(f"{operator:12s} | {what:28s} | {a:9.3f} | {b:9.3f} | {a / b:6.2f}", flush=True)
            continue
        for what, fixed in (("lml+grad", False), ("lml+grad, space fixed", True)):
            k = kernel(fixed)
            th = np.asarray(k.theta)
            out = []
            for inf in (CG(operator=operator), CG(operator=operator, time_dim=2)):
                inf = inf.for_data(k, X)
                data = inf.prepare(X, y, noise)
                out.append(_timed(lambda: inf.objective(th, k, data, key)))
            rows.append((what, *out))
        if operator == "dense":
            k = kernel()
            inf = CG(time_dim=2).for_data(k, X)
            dim, sizes = inf.time_groups
            Xj, nj = jnp.asarray(X), jnp.asarray(noise)
            build = jax.jit(lambda kk, X, s: time_group_operator(kk, X, s, dim, sizes, "dense"))
            op = build(k, Xj, nj)
            k2 = k.replace(k2__kernel__length_scale=2 * L_TIME)
            v = jnp.ones((args.n, 1))
            new = jax.jit(lambda kk, X, s, v: build(kk, X, s).mm(v))
            reuse = jax.jit(lambda op, kk, v: op.with_kernel(kk).mm(v))
            rows.append(("new temporal weights",
                         _timed(lambda: jax.block_until_ready(new(k2, Xj, nj, v))),
                         _timed(lambda: jax.block_until_ready(reuse(op, k2, v)))))
        k = kernel()
        inf0, inf1 = CG(operator=operator).for_data(k, X), CG(operator=operator, time_dim=2).for_data(k, X)
        p0 = inf0.fit(k, inf0.prepare(X, y, noise), key)
        p1 = inf1.fit(k, inf1.prepare(X, y, noise), key)
        m0 = jax.jit(lambda p, Z: tiled_cross_mm(p.kernel, Z, p.X, p.alpha, checkpoint=False))
        m1 = jax.jit(lambda p, Z: p.mean(Z))
        rows.append(("mean at 40k map points", _timed(lambda: jax.block_until_ready(m0(p0, Xm))),
                     _timed(lambda: jax.block_until_ready(m1(p1, Xm)))))
        dm = float(jnp.max(jnp.abs(m0(p0, Xm) - m1(p1, Xm))))
        for what, a, b in rows:
            print(f"{operator:12s} | {what:28s} | {a:9.3f} | {b:9.3f} | {a / b:6.2f}", flush=True)
        print(f"{operator:12s} | max |mean difference| {dm:.2e} (CG tol 1e-6); fit iterations "
              f"{p0.diagnostics()['iterations']} / {p1.diagnostics()['iterations']}", flush=True)
    print(f"# load at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
