"""SKI's grid refinement against the exact GP on a rough 3-D kernel: error and cost, before/after.

Data drawn from the model: Matérn-3/2 (length scale 0.3) on the unit cube, noise variance 0.01
(the calibration benchmark's rough case), ``n`` training and 200 test points; hyperparameters
fixed at the truth. Rows: SKI with its grid at 4 points per length scale (``interpolation_tol=None``,
the old default), refined to ``interpolation_tol`` alone, and the default (``interpolation_std_tol``
too). Columns: the grid, the fit's measured interpolation error (max, relative to the prior
variance), the tolerance the refinement used, ``d_mean`` |SKI mean - exact mean| in prior sd
(median, max over the test points), ``d_std`` |SKI std - exact std| / exact std (median, max;
SKI's std by a CG solve per point: the model's own, not LOVE's), fit and predict seconds.

Run:

    PYTHONPATH=. .venv/bin/python benchmarks/ski_refinement.py [--n 3000]
"""

from __future__ import annotations

import argparse
import time
import warnings

import jax.numpy as jnp
import numpy as np

from skgpx import ScalableGPRegressor, precision_scope
from skgpx.gp import SKI
from skgpx.kernels import Matern


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=3000)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(a.seed)
    n, m = a.n, 200
    k = Matern(0.3, nu=1.5)
    X = rng.uniform(size=(n + m, 3))
    with precision_scope(np.float64):
        K = np.asarray(k.gram(jnp.asarray(X)))
    f = np.linalg.cholesky(K + 1e-10 * np.eye(n + m)) @ rng.standard_normal(n + m)
    y = f[:n] + 0.1 * rng.standard_normal(n)
    Xs = X[n:]
    ex = ScalableGPRegressor(k, alpha=0.01, optimizer=None, solver="cholesky").fit(X[:n], y)
    me, se = ex.predict(Xs, return_std=True)
    print(f"n = {n}; exact posterior variance / prior variance at the test points (median): {np.median(se**2):.3g}")
    print("| grid refinement | grid | M | interp err (fit) | tol used | d_mean (median, max) | d_std (median, max) "
          "| fit_s | predict+std_s |")
    print("|---|---|---|---|---|---|---|---|---|")
    rows = [("none (4 points/length scale)", dict(interpolation_tol=None)),
            ("interpolation_tol=5e-3 only", dict(interpolation_std_tol=None)), ("default", {})]
    for label, opts in rows:
        t = time.perf_counter()
        g = ScalableGPRegressor(k, alpha=0.01, optimizer=None, solver=SKI(**opts), random_state=0).fit(X[:n], y)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        ms, ss = g.predict(Xs, return_std=True)
        p_s = time.perf_counter() - t
        i = g.solver_info_
        dm, ds = np.abs(ms - me), np.abs(ss - se) / se
        print(f"| {label} | {'x'.join(map(str, i['grid_shape']))} | {np.prod(i['grid_shape'])} | "
              f"{i['interpolation_error_max']:.2g} | {i.get('grid_tol', float('nan')):.2g} | {np.median(dm):.2g}, "
              f"{np.max(dm):.2g} | {np.median(ds):.3f}, {np.max(ds):.3f} | {fit_s:.0f} | {p_s:.0f} |", flush=True)


if __name__ == "__main__":
    main()
