"""Where the exact GP's LAPACK stages beat one compiled program (sets ``LAPACK_MIN_N``).

Value and gradient of the exact log marginal likelihood (``C * Matern(2.5) + White``,
3-D), one compiled program (``skgpx.gp._fit.neg_lml_and_grad``) against LAPACK
``potrf``/``potri`` between compiled stages (``skgpx.gp._exact_lapack``); best of
several interleaved runs. Run::

    .venv/bin/python benchmarks/lapack_crossover.py 200 500 1000 1500 2000
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.gaussian_process.kernels import ConstantKernel as C, Matern, WhiteKernel  # noqa: E402

from skgpx.gp import ExactInference  # noqa: E402
from skgpx.gp._exact_lapack import lapack_lml_and_grad  # noqa: E402
from skgpx.gp._fit import neg_lml_and_grad, training_data  # noqa: E402
from skgpx.kernels import from_sklearn  # noqa: E402


def main(sizes):
    kernel = from_sklearn(C(1.0) * Matern(0.5, nu=2.5) + WhiteKernel(0.05))
    inference, theta = ExactInference(jitter=None), np.asarray(kernel.theta)
    print(f"{'n':>6} | {'compiled ms':>11} | {'LAPACK ms':>9} | ratio")
    for n in sizes:
        rng = np.random.RandomState(0)
        X = rng.uniform(0, 1, (n, 3))
        Y = np.sin(6 * X[:, :1]) + 0.1 * rng.randn(n, 1)
        data = training_data(X, Y, np.full(n, 1e-8))
        runs = (lambda: jax.block_until_ready(neg_lml_and_grad(theta, kernel, inference, data, None)),
                lambda: lapack_lml_and_grad(theta, kernel, data.X, data.Y, data.noise))
        best = [float("inf")] * 2
        for _ in range(max(3, min(30, int(2e9 / n**3)))):
            for i, run in enumerate(runs):
                t0 = time.perf_counter()
                run()
                best[i] = min(best[i], time.perf_counter() - t0)
        print(f"{n:>6} | {best[0] * 1e3:11.2f} | {best[1] * 1e3:9.2f} | {best[1] / best[0]:.2f}", flush=True)


if __name__ == "__main__":
    with jax.enable_x64(True):
        main([int(a) for a in sys.argv[1:]] or [200, 500, 1000, 1500, 2000])
