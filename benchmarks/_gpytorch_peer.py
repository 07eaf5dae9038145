"""GPyTorch's KISS-GP on the data ``structured.py`` saved (run by it with ``--peer-python``).

Reads an ``.npz`` (``X``, ``y``, ``Xm``, ``truth``, ``idx``, ``me``, ``se``, ``grid_shape``, ``lo``,
``hi``, ``ls``, ``nu``, ``signal_var``, ``noise_var``), prints one JSON row. The model is
GPyTorch's: ``ScaleKernel(GridInterpolationKernel(MaternKernel(nu, ard_num_dims=3)))``, which
on its grid is the Kronecker product of one-dimensional Matérn kernels (GPyTorch's ``GridKernel``
evaluates the base kernel per dimension), i.e. the separable kernel ``structured.py
--separable`` gives skgpx and the exact GP. Hyperparameters fixed at the truth, float64, CG
tolerance ``cg_tol`` at prediction (GPyTorch's own default is 0.01; training keeps its defaults), LOVE for the standard
deviations (``fast_pred_var``).
"""

import json
import resource
import sys
import time

import gpytorch
import numpy as np
import torch


def main(path, cg_tol, max_iter, love_rank):
    torch.set_default_dtype(torch.float64)
    d = np.load(path)
    X, y, Xm = (torch.as_tensor(d[k]) for k in ("X", "y", "Xm"))
    lo, hi, shape = d["lo"], d["hi"], [int(s) for s in d["grid_shape"]]
    # GPyTorch's grid spans the bounds plus one spacing on each side; give it the data box.
    bounds = [(float(a), float(b)) for a, b in zip(lo, hi)]

    class KISS(gpytorch.models.ExactGP):
        def __init__(self, X, y, lik):
            super().__init__(X, y, lik)
            self.mean_module = gpytorch.means.ZeroMean()
            base = gpytorch.kernels.MaternKernel(nu=float(d["nu"]), ard_num_dims=3)
            self.covar_module = gpytorch.kernels.ScaleKernel(
                gpytorch.kernels.GridInterpolationKernel(base, grid_size=shape, num_dims=3, grid_bounds=bounds))

        def forward(self, x):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

    lik = gpytorch.likelihoods.GaussianLikelihood()
    model = KISS(X, y, lik)
    model.covar_module.base_kernel.base_kernel.lengthscale = torch.as_tensor(d["ls"])
    model.covar_module.outputscale = float(d["signal_var"])
    lik.noise = float(d["noise_var"])
    row = {"lib": "gpytorch"}
    # Training (the likelihood evaluation) keeps GPyTorch's defaults (CG tolerance 1, 20 iterations for
    # the log-determinant's Lanczos); prediction solves to ``cg_tol`` like skgpx's fit (``SKI.tol``).
    # GPyTorch's default pivoted-Cholesky preconditioner reads kernel entries through the
    # interpolated operator's index tensors, which dominates its time and memory on KISS-GP
    # (figures: docs/performance.md); off, as one would set it there.
    settings = [gpytorch.settings.eval_cg_tolerance(cg_tol), gpytorch.settings.max_cg_iterations(max_iter),
                gpytorch.settings.max_root_decomposition_size(love_rank), gpytorch.settings.max_preconditioner_size(0)]
    for s in settings:
        s.__enter__()
    # One log-likelihood-and-gradient evaluation (second call: the first builds caches).
    model.train()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(lik, model)
    for _ in range(2):
        t0 = time.perf_counter()
        loss = -mll(model(X), y)
        loss.backward()
        row["lml_s"] = time.perf_counter() - t0
        print("lml", row["lml_s"], file=sys.stderr, flush=True)
    model.eval()
    chunks = torch.split(Xm, 2000)  # a 40 000-point joint predictive at once holds dense test blocks
    with torch.no_grad():
        t0 = time.perf_counter()
        mean = np.concatenate([model(c).mean.numpy() for c in chunks])
        row["mean_s"] = time.perf_counter() - t0  # includes the training solve (GPyTorch's mean cache)
        print("mean", row["mean_s"], file=sys.stderr, flush=True)
        with gpytorch.settings.fast_pred_var():
            model(Xm[:10]).variance  # builds the LOVE cache
            t0 = time.perf_counter()
            var = np.concatenate([model(c).variance.numpy() for c in chunks])
            row["std_s"] = time.perf_counter() - t0
    std = np.sqrt(np.maximum(var, 0.0))
    truth, idx, me, se = d["truth"], d["idx"], d["me"], d["se"]
    row.update(rss_GB=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
               rmse=float(np.sqrt(np.mean((mean - truth) ** 2))),
               cover=float(np.mean(np.abs(truth - mean) <= 1.96 * std)),
               d_mean=float(np.median(np.abs(mean[idx] - me)) / np.sqrt(float(d["signal_var"]))) if len(me) else None,
               d_std=float(np.median(np.abs(std[idx] - se) / se)) if len(se) else None)
    print(json.dumps(row))


if __name__ == "__main__":
    main(sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
