"""Exact GP at scale with solver="cg": time, memory, iterations and accuracy vs exact.

Problem (issue 7): 3-D inputs uniform on the unit cube, Matérn-3/2 with length scale 0.2,
noise variance 0.01, fixed hyperparameters; targets ``sin(6 x0) + cos(4 x1 x2) + noise``.

Run (each size in its own subprocess, so peak RSS is per size):

    .venv/bin/python benchmarks/scaling.py                      # n = 10k, 20k, 50k, 100k
    .venv/bin/python benchmarks/scaling.py --sizes 10000 20000  # the sizes with a Cholesky reference
    .venv/bin/python benchmarks/scaling.py --sizes 2000 5000    # quick
    .venv/bin/python benchmarks/scaling.py --train 20000        # training: 20 LML+gradient evaluations
    .venv/bin/python benchmarks/scaling.py --train 5000 --optimizer adam --steps 100 --exact
    .venv/bin/python benchmarks/scaling.py --sizes 100000 --no-ref  # time and memory only (no reference solves)

``--train N`` fits ``ScalableGPRegressor(C * Matern(nu=1.5) + White, solver="cg")`` from
``C = 1, l = 0.5, White = 0.05`` with ``skgpx.optimizers.LBFGSB(max_evals=steps)`` (a hard cap
of ``--steps``, default 20, evaluations of the log marginal likelihood and its gradient: PCG +
SLQ value, stochastic-trace gradient) or ``--optimizer adam`` (``Adam(max_iter=steps)``), then
conditions; it prints total time, evaluations, time per evaluation, the learned kernel,
peak RSS and the CG diagnostics of the final fit; ``--exact`` adds ``exact_lml``, the
Cholesky log marginal likelihood at the learned kernel (an n x n factorisation). The evaluations solve to ``train_tol``
(``train_tol_used``: ``max(tol, train_tol)``, default 1e-2), the final fit to ``tol`` (1e-6).

Columns: ``op`` dense / matrix-free operator; ``prec_s`` preconditioner build (``rp_cholesky``); ``rank``;
``fit_s`` full ``condition`` (PCG on targets + probes, SLQ; LOVE cache and check on the dense operator);
``its`` PCG iterations of the fit; ``it_s`` time per iteration of a single-RHS PCG solve
(``mf_it_s``: the same with the matrix-free operator, when the fit used the dense one);
``mv_s`` one bare kernel matvec (matrix-free operator: symmetric block pairs, each kernel
entry evaluated once for both triangles), ``rows_mv_s`` the same product by row tiles
(every entry evaluated: the plain floor), ``dmv_s`` one dense matvec;
``pred_s`` mean + std at ``--n-test`` points (``--n-test-large``, default 64, past
``--ref-max``) as ``predict(return_std=True)`` does it (``variance_method="auto"``: exact
batched solves up to 1024 points); ``exact_s`` / ``ref_its`` the reference solves (only when
there is no Cholesky reference); ``rss_GB`` peak resident memory of the CG part;
``mean_err`` max |mean - exact| / max |exact mean|; ``std_err`` median relative std error
(exact-solve std where LOVE was rejected or not built; ``love_err`` the LOVE estimate's own
median error); reference = dense Cholesky for ``n <= --ref-max``, else, at the first
``--n-check`` (32) test points, one block PCG of ``K(X, X_check)`` to relative residual
1e-10, which gives both the exact std and the exact mean ``K(X_check, X) K^{-1} y``;
``sk_s`` scikit-learn fit + predict(return_std) for ``n <= --sklearn-max``.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def _rss_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _timed(fn, *a):
    import jax

    t = time.perf_counter()
    out = jax.block_until_ready(fn(*a))
    return out, time.perf_counter() - t


def run_one(n, n_test, n_check, ref_max, sklearn_max, seed=0, reference=True):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from skgpx._blas import dense_factorisation_guard
    from skgpx._config import precision_scope
    from skgpx.gp import make_inference
    from skgpx.kernels import Matern
    from skgpx.operators import MatrixFreeKernelOperator, noise_diagonal, tiled_cross_mm
    from skgpx.solvers import pcg, rp_cholesky

    row = {"n": n}
    with precision_scope(np.float64):
        rng = np.random.default_rng(seed)
        Xn = rng.random((n, 3))
        yn = np.sin(6 * Xn[:, 0]) + np.cos(4 * Xn[:, 1] * Xn[:, 2]) + 0.1 * rng.standard_normal(n)
        Xsn = rng.random((n_test, 3))
        X, Y, Xs = jnp.asarray(Xn), jnp.asarray(yn[:, None]), jnp.asarray(Xsn)
        noise = jnp.full(n, 0.01)
        kernel = Matern(0.2, nu=1.5)
        inf = make_inference("cg", {"tol": 1e-6, "max_iter": 1000})

        # The floor: one bare matrix-free kernel matvec (compiled, second call timed).
        free = MatrixFreeKernelOperator(kernel, X, noise)
        mv = jax.jit(lambda op, v: op.mm(v))
        _timed(mv, free, Y)
        _, row["mv_s"] = _timed(mv, free, Y)
        # ... and the same product by row tiles (every kernel entry evaluated, not half of them).
        rows = jax.jit(lambda X, v: tiled_cross_mm(kernel, X, X, v, checkpoint=False))
        _timed(rows, X, Y)
        _, row["rows_mv_s"] = _timed(rows, X, Y)

        # Past --ref-max every step is timed on its first (compiling) call: compilation is
        # seconds, a second call minutes.
        def timed(fn, *a):
            if n <= ref_max:
                _timed(fn, *a)  # compile
            return _timed(fn, *a)

        # The preconditioner alone (before the fit, so that peak memory holds one factor).
        s_diag, r_buf = noise_diagonal(kernel, X, noise), inf._rank(X)
        prec = jax.jit(lambda: rp_cholesky(kernel, X, s_diag, r_buf, inf.trace_tol, key=jax.random.key(1)).rank)
        _, row["prec_s"] = timed(prec)

        post, row["fit_s"] = _timed(inf.condition, kernel, X, Y, noise, jax.random.key(seed))
        d = post.diagnostics()
        row.update(op=d["operator"], its=d["iterations"], rank=d["preconditioner_rank"],
                   love_err=d["love_std_rel_error_median"])
        op, P = post.operator, post.precond
        if d["operator"] == "dense":
            _timed(mv, op, Y)
            _, row["dmv_s"] = _timed(mv, op, Y)
        # Time per single-RHS PCG iteration: 8 iterations with the fit's operator and preconditioner
        # (and with the matrix-free operator when the fit used the dense one).
        solve8 = jax.jit(lambda op, P, b: pcg(op.mm, b, P.solve, tol=1e-30, max_iter=8))
        _, t8 = timed(solve8, op, P, Y)
        row["it_s"] = t8 / 8
        if d["operator"] == "dense":
            _, t8 = timed(solve8, free, P, Y)
            row["mf_it_s"] = t8 / 8

        # mean + std as predict(return_std=True) computes them (variance_method="auto").
        pred = jax.jit(lambda p, Z: (p.mean(Z), jnp.sqrt(p.var(Z))))
        (mu, sd), row["pred_s"] = _timed(pred, post, Xs)
        Xc = Xs[:n_check]
        if n > ref_max and not reference:  # --no-ref: timings and memory only
            row["rss_GB"] = _rss_gb()
            row["ref"] = "none"
            return row
        if n > ref_max:  # reference on the check subset: one block solve of K(X, Xc) to 1e-10
            def reference(post, Xc):
                Kc = kernel.cross(X, Xc)
                res = pcg(post.operator.mm, Kc, post.precond.solve, tol=1e-10, max_iter=5000)
                sd = jnp.sqrt(jnp.maximum(kernel.diag(Xc) - jnp.sum(Kc * res.x, axis=0), 0.0))
                return res.x.T @ Y, sd, res.iterations

            (mu_ref_c, sd_exact, its_ref), row["exact_s"] = _timed(jax.jit(reference), post, Xc)
            row["ref_its"] = int(its_ref)
        row["rss_GB"] = _rss_gb()
        del free, op, P

        if n <= ref_max:  # dense Cholesky reference on all test points
            K = kernel.gram(X).at[jnp.diag_indices(n)].add(noise)
            with dense_factorisation_guard(n):  # OpenBLAS dpotrf crash on AVX-512 AMD (skgpx._blas)
                L = jax.block_until_ready(jnp.linalg.cholesky(K))
            del K
            a = jax.scipy.linalg.cho_solve((L, True), Y)
            Ks = kernel.cross(X, Xs)
            mu_ref = Ks.T @ a
            sd_ref = jnp.sqrt(kernel.diag(Xs) - jnp.sum(jax.scipy.linalg.solve_triangular(L, Ks, lower=True) ** 2, 0))
            del L
            row["ref"] = "cholesky"
            sd_cmp, sd_ref_cmp = sd, sd_ref
        else:  # exact solves on the check subset
            mu_ref = None
            row["ref"] = f"1e-10 solves@{n_check}"
            sd_cmp, sd_ref_cmp = sd[:n_check], sd_exact
        if mu_ref is not None:
            row["mean_err"] = float(jnp.max(jnp.abs(mu - mu_ref)) / jnp.max(jnp.abs(mu_ref)))
        else:  # mean reference: k_c^T K^{-1} y from the 1e-10 solves of the check columns
            row["mean_err"] = float(jnp.max(jnp.abs(mu[:n_check] - mu_ref_c)) / jnp.max(jnp.abs(mu_ref_c)))
        row["std_err"] = float(jnp.median(jnp.abs(sd_cmp - sd_ref_cmp) / sd_ref_cmp))

    if n <= sklearn_max:
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import Matern as SkMatern

        t = time.perf_counter()
        gp = GaussianProcessRegressor(SkMatern(0.2, nu=1.5), alpha=0.01, optimizer=None).fit(Xn, yn)
        mu_sk, sd_sk = gp.predict(Xsn, return_std=True)
        row["sk_s"] = time.perf_counter() - t
        row["sk_mean_err"] = float(np.max(np.abs(np.asarray(mu)[:, 0] - mu_sk)) / np.max(np.abs(mu_sk)))
    return row


def run_train(n, steps, optimizer="lbfgsb", learning_rate=0.1, exact=False, seed=0):
    import numpy as np
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern as SkMatern, WhiteKernel

    from skgpx.estimators import ScalableGPRegressor
    from skgpx.optimizers import LBFGSB, Adam

    rng = np.random.default_rng(seed)
    Xn = rng.random((n, 3))
    yn = np.sin(6 * Xn[:, 0]) + np.cos(4 * Xn[:, 1] * Xn[:, 2]) + 0.1 * rng.standard_normal(n)
    evals = []
    opt = LBFGSB(max_evals=steps) if optimizer == "lbfgsb" else Adam(max_iter=steps, learning_rate=learning_rate)

    def timed_optimizer(obj_func, theta0, bounds):
        def f(theta, eval_gradient=True):
            t = time.perf_counter()
            out = obj_func(theta, eval_gradient=True)
            evals.append(time.perf_counter() - t)
            print(f"# eval {len(evals)}: {evals[-1]:.1f} s, -lml {float(out[0]):.6g}, theta {theta}", flush=True)
            return out

        return opt(f, theta0, bounds)

    kernel = ConstantKernel(1.0) * SkMatern(0.5, nu=1.5) + WhiteKernel(0.05)
    gp = ScalableGPRegressor(kernel, solver="cg", alpha=1e-6, optimizer=timed_optimizer, random_state=seed)
    t = time.perf_counter()
    gp.fit(Xn, yn)
    total = time.perf_counter() - t
    info = gp.solver_info_
    row = {}
    if exact:  # the exact (Cholesky) log marginal likelihood at the learned hyperparameters
        ex = ScalableGPRegressor(gp.kernel_, solver="cholesky", alpha=1e-6, optimizer=None).fit(Xn, yn)
        row["exact_lml"] = ex.log_marginal_likelihood_value_
    return row | {"n": n, "optimizer": repr(opt), "fit_s": total, "evals": len(evals),
            "first_eval_s": evals[0] if evals else None,
            "eval_s": float(np.median(evals[1:])) if len(evals) > 1 else None,
            "condition_s": total - sum(evals), "kernel": str(gp.kernel_),
            "lml": gp.log_marginal_likelihood_value_, "rss_GB": _rss_gb(), "op": info["operator"],
            "train_tol_used": getattr(gp.inference_, "lml_tol", None),
            "its": info["iterations"], "rank": info["preconditioner_rank"], "converged": info["converged"]}


COLS = ["n", "op", "rank", "prec_s", "fit_s", "its", "it_s", "mf_it_s", "mv_s", "rows_mv_s", "dmv_s", "pred_s", "exact_s", "ref_its",
        "rss_GB",
        "ref", "mean_err", "std_err", "love_err", "sk_s", "sk_mean_err"]


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.1f}" if abs(v) >= 1000 else f"{v:.3g}"
    return str(v)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 50_000, 100_000])
    p.add_argument("--n-test", type=int, default=256)
    p.add_argument("--n-test-large", type=int, default=64, help="test points past --ref-max")
    p.add_argument("--n-check", type=int, default=32, help="test points with 1e-10 reference solves past --ref-max")
    p.add_argument("--ref-max", type=int, default=20_000, help="largest n with a dense Cholesky reference")
    p.add_argument("--sklearn-max", type=int, default=10_000)
    p.add_argument("--no-ref", action="store_true", help="past --ref-max: skip the reference solves (errors)")
    p.add_argument("--train", type=int, help="instead: train the hyperparameters at this n")
    p.add_argument("--steps", type=int, default=20, help="LML+gradient evaluations for --train")
    p.add_argument("--optimizer", choices=["lbfgsb", "adam"], default="lbfgsb",
                   help="--train: skgpx.optimizers.LBFGSB(max_evals=steps) or Adam(max_iter=steps)")
    p.add_argument("--learning-rate", type=float, default=0.1, help="--train --optimizer adam: step size")
    p.add_argument("--exact", action="store_true", help="--train: also the exact (Cholesky) LML at the learned kernel")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.train:
        row = run_train(a.train, a.steps, a.optimizer, a.learning_rate, a.exact)
        print(" | ".join(row), flush=True)
        print(" | ".join(_fmt(v) for v in row.values()), flush=True)
        return
    if a.one:
        print(json.dumps(run_one(a.one, a.n_test, a.n_check, a.ref_max, a.sklearn_max, reference=not a.no_ref)))
        return
    print(" | ".join(COLS), flush=True)
    for n in a.sizes:
        n_test = a.n_test if n <= a.ref_max else a.n_test_large
        cmd = [sys.executable, __file__, "--one", str(n), "--n-test", str(n_test), "--n-check", str(a.n_check),
               "--ref-max", str(a.ref_max), "--sklearn-max", str(a.sklearn_max)] + (["--no-ref"] if a.no_ref else [])
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"n={n} failed:\n{out.stderr[-3000:]}", flush=True)
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(" | ".join(_fmt(row.get(c)) for c in COLS), flush=True)


if __name__ == "__main__":
    main()
