"""The dense GP on one device and on a mesh of 4 host CPU devices: ``report(n)`` is run by
tests/parallel/_four_device_run.py in a subprocess (XLA_FLAGS set by the parent: JAX fixes its
device count at start-up). Run alone, it prints its report as one JSON line."""

import json
import sys

import jax
import jax.numpy as jnp
import numpy as np

jax.config.update("jax_enable_x64", True)

from sklearn.gaussian_process.kernels import ConstantKernel as C, Matern, WhiteKernel  # noqa: E402

from skgpx import ScalableGPRegressor  # noqa: E402
from skgpx._mesh import placement_scope, put, resolve_placement  # noqa: E402
from skgpx.gp._cg import _kernel_surrogate_grad  # noqa: E402
from skgpx.kernels import Matern as SkgpxMatern  # noqa: E402
from skgpx.operators import kernel_operator  # noqa: E402


def _max_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


def estimator_run(device, X, y, Xs):
    est = ScalableGPRegressor(C(1.0) * Matern(0.3, nu=1.5) + WhiteKernel(0.01), solver="cg-dense", device=device,
                              random_state=0, optimizer=None)
    est.fit(X, y)
    mean, std = est.predict(Xs, return_std=True)
    lml, grad = est.log_marginal_likelihood(est.kernel_.theta + 0.1, eval_gradient=True)
    return est, dict(mean=mean, std=std, lml_fit=est.log_marginal_likelihood_value_, lml=lml, grad=grad)


def matrix_free_run(X, V, Wt, placement, block):
    """The matrix-free product and the tiled LML-gradient pass, on a device or the mesh."""
    kernel = SkgpxMatern(length_scale=0.3, nu=1.5)
    noise = jnp.full((X.shape[0],), 0.01)

    names = []

    @jax.jit
    def f(kernel, X, noise, V, Wt):
        op = kernel_operator(kernel, X, noise, "matrix-free", block)
        names.append(type(op).__name__)  # at trace time, under the placement's mesh
        grad = jax.grad(lambda k, Z: _kernel_surrogate_grad(k, Z, V, Wt, block), argnums=(0, 1))(kernel, X)
        return op.mm(V), grad

    with placement_scope(placement):
        out, grad = f(kernel, *(put(jnp.asarray(a), placement) for a in (X, noise, V, Wt)))
    return out, jax.tree_util.tree_leaves(grad), names[0]


def report(n=90):  # 90: not a multiple of 4, padded rows
    rng = np.random.default_rng(0)
    X = rng.uniform(size=(n, 2))
    y = np.sin(6 * X[:, 0]) + X[:, 1] + 0.05 * rng.normal(size=n)
    Xs = rng.uniform(size=(30, 2))
    mesh = resolve_placement(jax.devices())
    report = {"n_devices": len(jax.devices())}
    _, one = estimator_run(None, X, y, Xs)
    est, many = estimator_run(jax.devices(), X, y, Xs)
    shards = est.posterior_.operator.matrix.addressable_shards
    report["dense"] = {
        "diff": {k: _max_diff(one[k], many[k]) for k in one},
        "scale": {k: float(np.max(np.abs(np.asarray(one[k])))) for k in one},
        "operator": type(est.posterior_.operator).__name__,
        "kind": est.solver_info_["operator"],
        "shard_rows": sorted((s.device.id, s.data.shape[0]) for s in shards),
        "shard_cols": sorted({s.data.shape[1] for s in shards}),
        "summary": est.summary(),
    }
    V, Wt = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    out1, g1, _ = matrix_free_run(X, V, Wt, jax.devices()[0], 16)
    out4, g4, name = matrix_free_run(X, V, Wt, mesh, 16)
    report["matrix-free"] = {
        "operator": name,
        "mm": _max_diff(out1, out4) / float(np.max(np.abs(out1))),
        "grad": max(_max_diff(a, b) / max(1.0, float(np.max(np.abs(a)))) for a, b in zip(g1, g4)),
        "mm_rows": sorted((s.device.id, s.data.shape[0]) for s in out4.addressable_shards),
    }
    # "auto" budgets one device's rows: 200 x 50 entries fit where 200 x 200 do not.
    import skgpx.operators._factory as factory

    budget, factory.dense_memory_budget = factory.dense_memory_budget, lambda: 200 * 50 * 8
    try:  # restored: Magma's checks run next in the same process
        with placement_scope(mesh):
            report["auto_kind_mesh"] = factory.operator_kind("auto", 200)
        report["auto_kind_one"] = factory.operator_kind("auto", 200)
    finally:
        factory.dense_memory_budget = budget
    return report


if __name__ == "__main__":
    print(json.dumps(report(int(sys.argv[1]) if len(sys.argv) > 1 else 90)))
