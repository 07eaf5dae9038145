"""The Chordal kernel on a global longitude-latitude grid: ChordalGridOperator against the dense matrix.

``Chordal(Matern(0.1, nu=1.5))`` (length scale 0.1 Earth radius) on global grids of ``--steps``
degrees (longitudes -180..180-step, latitudes -90+step/2..90-step/2). Columns: grid points ``M``;
``build_s`` the operator (``N n_lat^2`` kernel values and their FFT) against the dense ``M x M``
matrix; ``mm_s`` one product with 8 right-hand sides; ``ratio`` dense / structured; ``err`` the
largest difference of the products relative to the largest entry of the dense one. The dense
matrix is formed only while ``M <= --dense-max``.

Run: ``PYTHONPATH=$PWD .venv/bin/python benchmarks/chordal_grid.py [--steps 4 2 1]``
"""

from __future__ import annotations

import argparse
import os
import time


def _timed(f):
    import jax

    jax.block_until_ready(f())
    t0 = time.perf_counter()
    out = jax.block_until_ready(f())
    return time.perf_counter() - t0, out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=float, nargs="+", default=[4.0, 2.0, 1.0])
    p.add_argument("--dense-max", type=int, default=20_000)
    args = p.parse_args()
    import jax

    jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    import numpy as np

    from skgpx.kernels import Chordal, Matern
    from skgpx.operators import Grid, grid_operator

    kernel = Chordal(Matern(0.1, nu=1.5))
    print(f"# chordal grid: {os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.1f}, "
          f"{time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC")
    print(f"{'step':>5s} | {'M':>7s} | {'build_s':>8s} | {'dense build_s':>13s} | {'mm_s':>8s} | {'dense mm_s':>10s} | "
          f"{'ratio':>6s} | {'err':>8s}")
    for step in args.steps:
        n_lon, n_lat = int(round(360 / step)), int(round(180 / step))
        grid = Grid([-180.0, -90.0 + step / 2], [step, step], [n_lon, n_lat])
        M = grid.size
        V = jnp.asarray(np.random.default_rng(0).standard_normal((M, 8)))
        build = jax.jit(lambda k: grid_operator(k, grid))
        tb, op = _timed(lambda: build(kernel))
        mm = jax.jit(lambda o, V: o.mm(V))
        tm, out = _timed(lambda: mm(op, V))
        row = f"{step:5.1f} | {M:7d} | {tb:8.3f} | "
        if M <= args.dense_max:
            U = grid.points()
            tdb, K = _timed(lambda: jax.jit(lambda k, U: k.cross(U, U))(kernel, U))
            tdm, ref = _timed(lambda: jax.jit(lambda K, V: K @ V)(K, V))
            err = float(jnp.max(jnp.abs(out - ref)) / jnp.max(jnp.abs(ref)))
            row += f"{tdb:13.3f} | {tm:8.4f} | {tdm:10.4f} | {tdm / tm:6.1f} | {err:8.1e}"
            del K
        else:
            row += f"{'-':>13s} | {tm:8.4f} | {'-':>10s} | {'-':>6s} | {'-':>8s}"
        print(row, flush=True)


if __name__ == "__main__":
    main()
