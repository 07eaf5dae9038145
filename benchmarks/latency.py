"""Latency where users meet skgpx first: scikit-learn and skgpx side by side, in one run.

Every row is timed for both libraries in the same run (on a shared machine read the
ratios, not the seconds). Rows:

* ``import``: a fresh interpreter's ``import jax`` alone, then ``import skgpx`` (which
  includes JAX), and scikit-learn's ``sklearn.gaussian_process``;
* ``first fit+predict n=...``: in a fresh process (imports excluded for both), one
  ``fit`` (L-BFGS-B on ``C * RBF + White``, 2-D inputs) then ``predict(return_std=True)``
  on 50 points: what a script that fits one model pays, compilation included;
* ``warm fit+predict n=...``: the same in a process that already fitted that model
  (best of several runs, interleaved);
* ``LML n=20`` / ``LML+grad n=20``: one ``log_marginal_likelihood(theta)`` call of a
  fitted model, without and with ``eval_gradient=True`` (median of many calls);
* ``first fit <solver> n=50`` then ``... n=51``: in a fresh process per solver, the
  first fit at 50 points, then a fit at 51 points (the new size must not recompile);
  scikit-learn's column is its exact GP on the same data;
* ``GridSearchCV``: ``GridSearchCV(cv=5)`` over three kernels at n = 100, fresh process;
* ``Magma guide``: the Magma guide's example (``docs/guide/magma.md``) fit, fresh process
  (no scikit-learn equivalent); then, in another fresh process, ``GridSearchCV`` with
  ``GroupKFold(3)`` (held-out tasks) over two task kernels (RBF, Matern-5/2) on its 20
  training tasks: 6 fits on 13-14 tasks, the refit on 20.

Run::

    .venv/bin/python benchmarks/latency.py           # everything (several minutes)
    .venv/bin/python benchmarks/latency.py --quick   # fewer repeats, n = 1000 rows skipped
    .venv/bin/python benchmarks/latency.py --solver cholesky   # the compiled exact path throughout

With the default ``solver="auto"``, a scikit-learn kernel below ``skgpx.gp.HOST_MAX_N`` rows on
the CPU runs on the NumPy host path (nothing to compile); ``--solver cholesky`` times the
compiled exact path in the same rows.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import textwrap
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)  # this checkout's skgpx, also where another one is installed
SOLVERS = ("cholesky", "cg-dense", "cg-matrix-free", "rff", "nystrom")

# Shared by every child process: data, kernels, one timed fit+predict.
PRELUDE = textwrap.dedent(
    """
    import json, os, time, warnings
    import numpy as np
    warnings.filterwarnings("ignore")
    SOLVER = os.environ.get("SKGPX_BENCH_SOLVER", "auto")  # skgpx's solver where a row names none

    def data(n, seed=0, m=50):
        rng = np.random.RandomState(seed)
        X = rng.uniform(0, 5, (n + m, 2))
        y = np.sin(X[:, 0]) * np.cos(0.7 * X[:, 1]) + 0.1 * rng.randn(n + m)
        return X[:n], y[:n], X[n:]

    def kernel(which=0):
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel as C, Matern, RationalQuadratic, WhiteKernel
        return [C(1.0) * RBF(1.0) + WhiteKernel(0.1),
                C(1.0) * Matern(1.0, nu=1.5) + WhiteKernel(0.1),
                C(1.0) * RationalQuadratic(1.0, 1.0) + WhiteKernel(0.1)][which]

    def estimator(lib, **kw):
        if lib == "sklearn":
            from sklearn.gaussian_process import GaussianProcessRegressor
            kw.pop("solver", None)
            return GaussianProcessRegressor(kernel(), **kw)
        from skgpx import ScalableGPRegressor
        kw.setdefault("solver", SOLVER)
        return ScalableGPRegressor(kernel(), **kw)

    def fit_predict(lib, n, **kw):
        X, y, Xs = data(n)
        t0 = time.perf_counter()
        estimator(lib, **kw).fit(X, y).predict(Xs, return_std=True)
        return time.perf_counter() - t0

    def emit(**values):
        print("RESULT " + json.dumps(values), flush=True)
    """
)


def child(code: str, timeout: float) -> dict:
    """Run ``PRELUDE + code`` in a fresh interpreter; return what it ``emit``-ted (or an error)."""
    try:
        proc = subprocess.run(
            [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
            capture_output=True, text=True, timeout=timeout, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")},
        )
    except subprocess.TimeoutExpired:
        return {"error": f"> {timeout:.0f} s"}
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1][:60]}


IMPORTS = {
    "jax": "import jax",
    "skgpx": "from skgpx import ScalableGPRegressor",
    "sklearn": "from sklearn.gaussian_process import GaussianProcessRegressor",
}


# What a fresh process imports before a timed row (the import itself is the "import" rows).
IMPORT = {"skgpx": IMPORTS["skgpx"], "sklearn": IMPORTS["sklearn"]}


def import_times(repeats):
    # The PRELUDE imports numpy only; each statement is timed in its own fresh interpreter.
    code = """
    t0 = time.perf_counter()
    {stmt}
    emit(t=time.perf_counter() - t0)
    """
    return {name: min(child(code.format(stmt=stmt), 120).get("t", float("nan")) for _ in range(repeats))
            for name, stmt in IMPORTS.items()}


def first_fit_predict(lib, n):
    return child(f"""
    {IMPORT[lib]}
    emit(t=fit_predict({lib!r}, {n}))
    """, 900).get("t", float("nan"))


def solver_first_fits(solver):
    # scikit-learn's column: its exact GP on the same data, same process shape.
    lib = "sklearn" if solver == "sklearn" else "skgpx"
    kw = "" if lib == "sklearn" else f"solver={solver!r}, random_state=0"
    return child(f"""
    {IMPORT[lib]}
    a = fit_predict({lib!r}, 50, {kw})
    b = fit_predict({lib!r}, 51, {kw})
    emit(t50=a, t51=b)
    """, 900)


def grid_search(lib):
    return child(f"""
    from sklearn.model_selection import GridSearchCV
    {IMPORT[lib]}
    X, y, _ = data(100)
    t0 = time.perf_counter()
    GridSearchCV(estimator({lib!r}), {{"kernel": [kernel(0), kernel(1), kernel(2)]}}, cv=5).fit(X, y)
    emit(t=time.perf_counter() - t0)
    """, 900).get("t", float("nan"))


def magma_guide():
    return child("""
    from sklearn.gaussian_process.kernels import RBF, ConstantKernel as C, WhiteKernel
    from skgpx import MultiTaskMagmaRegressor
    from skgpx.datasets import make_magma_data
    X, y, groups = make_magma_data(n_tasks=21, n_points=10, shared_inputs=False, random_state=0)
    train = groups < 20
    t0 = time.perf_counter()
    est = MultiTaskMagmaRegressor(mean_kernel=C(1.0) * RBF(1.5), task_kernel=C(0.5) * RBF(1.0) + WhiteKernel(0.1),
                                  shared_hyperparameters=True, prior_mean="constant", max_iter=5)
    est.fit(X[train], y[train], groups=groups[train])
    emit(t=time.perf_counter() - t0)
    """, 900).get("t", float("nan"))


def magma_gridsearch():
    return child("""
    import sklearn
    from sklearn.gaussian_process.kernels import RBF, Matern, ConstantKernel as C, WhiteKernel
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from skgpx import MultiTaskMagmaRegressor
    from skgpx.datasets import make_magma_data
    X, y, groups = make_magma_data(n_tasks=21, n_points=10, shared_inputs=False, random_state=0)
    train = groups < 20
    kernels = [C(0.5) * RBF(1.0) + WhiteKernel(0.1), C(0.5) * Matern(1.0, nu=2.5) + WhiteKernel(0.1)]
    t0 = time.perf_counter()
    with sklearn.config_context(enable_metadata_routing=True):
        est = MultiTaskMagmaRegressor(mean_kernel=C(1.0) * RBF(1.5), shared_hyperparameters=True,
                                      prior_mean="constant", max_iter=5)
        est.set_fit_request(groups=True).set_score_request(groups=True)
        search = GridSearchCV(est, {"task_kernel": kernels}, cv=GroupKFold(3))
        search.fit(X[train], y[train], groups=groups[train])
    emit(t=time.perf_counter() - t0)
    """, 900).get("t", float("nan"))


def in_process(sizes, repeats, lml_calls):
    """Warm fit+predict and LML per call, both libraries in this process."""
    ns = {}
    exec(PRELUDE, ns)  # noqa: S102 - our own prelude: the same helpers as the children
    out = {}
    for n in sizes:
        best = {"sklearn": float("inf"), "skgpx": float("inf")}
        ns["fit_predict"]("skgpx", n)  # compile
        for _ in range(repeats):
            for lib in best:
                best[lib] = min(best[lib], ns["fit_predict"](lib, n))
        out[f"warm fit+predict n={n}"] = (best["sklearn"], best["skgpx"])
    X, y, _ = ns["data"](20)
    for grad in (False, True):
        per_call = {}
        for lib in ("sklearn", "skgpx"):
            gp = ns["estimator"](lib).fit(X, y)
            theta = gp.kernel_.theta + 0.1
            gp.log_marginal_likelihood(theta, eval_gradient=grad)  # compile
            times = []
            for _ in range(lml_calls):
                t0 = time.perf_counter()
                gp.log_marginal_likelihood(theta, eval_gradient=grad)
                times.append(time.perf_counter() - t0)
            per_call[lib] = sorted(times)[len(times) // 2]
        out[f"LML{'+grad' if grad else ''} per call n=20"] = (per_call["sklearn"], per_call["skgpx"])
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats; n = 1000 rows skipped")
    parser.add_argument("--skip", nargs="*", default=[],
                        choices=["import", "first", "warm", "solvers", "gridsearch", "magma"], help="sections to skip")
    parser.add_argument("--solver", default="auto",
                        help="skgpx's solver in the fit, LML and GridSearchCV rows (default: auto)")
    parser.add_argument("--solvers", nargs="*", default=list(SOLVERS), choices=SOLVERS,
                        help="solvers of the first-fit rows (default: all)")
    args = parser.parse_args()
    sizes = (20, 100) if args.quick else (20, 100, 1000)
    os.environ["SKGPX_BENCH_SOLVER"] = args.solver  # read by PRELUDE, here and in every child
    rows = []

    def show(name, sk, ours, target=""):
        fmt = lambda v: "–" if v is None else f"{v:.4f}" if v < 0.1 else f"{v:.2f}"  # noqa: E731
        ratio = "" if (sk is None or ours is None or not sk) else f"{ours / sk:.2f}"
        rows.append((name, fmt(sk), fmt(ours), ratio, target))
        print(f"{name:<34} | {fmt(sk):>10} | {fmt(ours):>10} | {ratio:>6} | {target}", flush=True)

    print(f"# latency benchmark: {platform.node()}, {os.cpu_count()} CPU cores, {time.strftime('%Y-%m-%d %H:%M')}, "
          f"load average {os.getloadavg()[0]:.1f}, skgpx solver={args.solver!r}")
    print(f"{'what (seconds)':<34} | {'sklearn':>10} | {'skgpx':>10} | {'ratio':>6} | target")
    if "import" not in args.skip:
        t = import_times(1 if args.quick else 3)
        show("import: sklearn GPR / skgpx GPR", t["sklearn"], t["skgpx"])
        show("import: JAX alone / skgpx GPR", t["jax"], t["skgpx"], "skgpx - jax <= 1 s")
    if "first" not in args.skip:
        for n in sizes:
            show(f"first fit+predict n={n}", first_fit_predict("sklearn", n), first_fit_predict("skgpx", n), "<= 2x")
    if "warm" not in args.skip:
        import jax

        with jax.enable_x64(True):
            for name, (sk, ours) in in_process(sizes, 2 if args.quick else 5, 30 if args.quick else 200).items():
                show(name, sk, ours, "<= 1x")
    if "solvers" not in args.skip:
        ref = solver_first_fits("sklearn")
        for solver in args.solvers:
            r = solver_first_fits(solver)
            if "error" in r:
                print(f"first fit {solver}: {r['error']}")
                continue
            show(f"first fit {solver} n=50", ref.get("t50"), r["t50"], "skgpx <= 10 s")
            show(f"then fit {solver} n=51", ref.get("t51"), r["t51"], "skgpx <= 2 s")
    if "gridsearch" not in args.skip:
        show("GridSearchCV(cv=5) 3 kernels n=100", grid_search("sklearn"), grid_search("skgpx"), "<= 1.5x")
    if "magma" not in args.skip:
        show("Magma guide example fit", None, magma_guide())
        show("Magma GridSearchCV(GroupKFold(3)) 2 kernels", None, magma_gridsearch())


if __name__ == "__main__":
    main()
