"""One of the processes of tests/parallel/test_sharding.py's jax.distributed test.

Usage: python _multiprocess_run.py PORT NUM_PROCESSES PROCESS_ID. Every process runs the same
program on the same data (JAX's multi-controller model); the GP is sharded over the devices of
all processes (device="all"). Process 0 also fits on its own first device and prints a JSON line
with both results.
"""

import json
import sys

import jax

port, num_processes, process_id = (int(a) for a in sys.argv[1:4])
jax.distributed.initialize(coordinator_address=f"127.0.0.1:{port}", num_processes=num_processes,
                           process_id=process_id)
jax.config.update("jax_enable_x64", True)

import numpy as np  # noqa: E402
from sklearn.gaussian_process.kernels import ConstantKernel as C, Matern, WhiteKernel  # noqa: E402

from skgpx import ScalableGPRegressor  # noqa: E402
from skgpx.gp import CG  # noqa: E402


def fit(device, X, y, Xs):
    est = ScalableGPRegressor(C(1.0) * Matern(0.3, nu=1.5) + WhiteKernel(0.01), solver=CG(operator="dense", tol=1e-10),
                              device=device, random_state=0, optimizer=None)
    est.fit(X, y)
    mean, std = est.predict(Xs, return_std=True)
    return est, {"mean": mean.tolist(), "std": std.tolist(), "lml": est.log_marginal_likelihood_value_}


rng = np.random.default_rng(0)
X = rng.uniform(size=(60, 2))
y = np.sin(6 * X[:, 0]) + X[:, 1] + 0.05 * rng.normal(size=60)
Xs = rng.uniform(size=(20, 2))
est, many = fit("all", X, y, Xs)
if process_id == 0:
    _, one = fit(jax.local_devices()[0], X, y, Xs)
    print(json.dumps({"devices": len(jax.devices()), "processes": jax.process_count(), "device_": est.device_,
                      "many": many, "one": one}), flush=True)
jax.distributed.shutdown()
