"""Exact GP at scale with solver="cg": time, memory, iterations and accuracy vs exact.

Problem (issue 7): 3-D inputs uniform on the unit cube, Matérn-3/2 with length scale 0.2,
noise variance 0.01, fixed hyperparameters; targets ``sin(6 x0) + cos(4 x1 x2) + noise``.

Run (each size in its own subprocess, so peak RSS is per size):

    .venv/bin/python benchmarks/scaling.py                      # n = 10k, 20k, 50k, 100k
    .venv/bin/python benchmarks/scaling.py --sizes 10000 20000  # the sizes with a Cholesky reference
    .venv/bin/python benchmarks/scaling.py --sizes 2000 5000    # quick
    .venv/bin/python benchmarks/scaling.py --train 20000        # training: 20 LML+gradient evaluations

``--train N`` fits ``ScalableGPRegressor(C * Matern(nu=1.5) + White, solver="cg")`` from
``C = 1, l = 0.5, White = 0.05`` with L-BFGS-B capped at ``--steps`` (20) evaluations of the
log marginal likelihood and its gradient (PCG + SLQ value, stochastic-trace gradient), then
conditions; it prints total time, evaluations, time per evaluation, the learned kernel,
peak RSS and the CG diagnostics of the final fit. The evaluations solve to ``train_tol``
(``train_tol_used``: ``max(tol, train_tol)``, default 1e-2), the final fit to ``tol`` (1e-6).

Columns: ``op`` dense / matrix-free operator; ``prec_s`` pivoted-Cholesky build; ``rank``;
``fit_s`` full ``condition`` (PCG on targets + probes, SLQ, LOVE cache, LOVE check);
``its`` PCG iterations of the fit; ``it_s`` time per iteration of a single-RHS PCG solve
(``mf_it_s``: the same with the matrix-free operator, when the fit used the dense one);
``mv_s`` one bare kernel matvec (matrix-free, the floor) and ``dmv_s`` one dense matvec;
``pred_s`` mean + std at ``--n-test`` points as ``predict(return_std=True)`` does it
(``variance_method="auto"``: exact batched solves up to 1024 points); ``exact_s`` exact std at
``--n-check`` points (only when there is no Cholesky reference); ``rss_GB`` peak resident memory of the CG part; ``mean_err`` max |mean - exact| /
max |exact mean|; ``std_err`` median relative std error (exact-solve std where LOVE
was rejected; ``love_err`` the LOVE estimate's own median error); reference = dense
Cholesky for ``n <= --ref-max`` else exact solves at ``--n-check`` points; ``sk_s``
scikit-learn fit + predict(return_std) for ``n <= --sklearn-max``.
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


def run_one(n, n_test, n_check, ref_max, sklearn_max, seed=0):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from skgpx._config import precision_scope
    from skgpx.gp import make_inference
    from skgpx.kernels import Matern
    from skgpx.operators import MatrixFreeKernelOperator
    from skgpx.solvers import pcg, pivoted_cholesky

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

        post, row["fit_s"] = _timed(inf.condition, kernel, X, Y, noise, jax.random.key(seed))
        d = post.diagnostics()
        row.update(op=d["operator"], its=d["iterations"], rank=d["preconditioner_rank"],
                   love_err=d["love_std_rel_error_median"])
        op, P = post.operator, post.precond
        if d["operator"] == "dense":
            _timed(mv, op, Y)
            _, row["dmv_s"] = _timed(mv, op, Y)
        prec = jax.jit(lambda: pivoted_cholesky(kernel, X, op.diag_noise, P.L.shape[1], inf.trace_tol).L)
        _timed(prec)
        _, row["prec_s"] = _timed(prec)
        solve = jax.jit(lambda op, P, b: pcg(op.mm, b, P.solve, tol=inf.tol, max_iter=inf.max_iter))
        res, _ = _timed(solve, op, P, Y)
        res, t_solve = _timed(solve, op, P, Y)
        row["it_s"] = t_solve / max(int(res.iterations), 1)
        if d["operator"] == "dense":  # the matrix-free path's iteration, same preconditioner, 8 iterations
            solve8 = jax.jit(lambda op, P, b: pcg(op.mm, b, P.solve, tol=1e-30, max_iter=8))
            _timed(solve8, free, P, Y)
            res8, t8 = _timed(solve8, free, P, Y)
            row["mf_it_s"] = t8 / max(int(res8.iterations), 1)

        # mean + std as predict(return_std=True) computes them (variance_method="auto").
        pred = jax.jit(lambda p, Z: (p.mean(Z), jnp.sqrt(p.var(Z))))
        (mu, sd), row["pred_s"] = _timed(pred, post, Xs)
        Xc = Xs[:n_check]
        if n > ref_max:  # exact-solve std on the check subset as the reference
            exact_sd = jax.jit(lambda p, Z: jnp.sqrt(p.var_exact(Z)))
            sd_exact, row["exact_s"] = _timed(exact_sd, post, Xc)
        row["rss_GB"] = _rss_gb()
        del free, op, P

        if n <= ref_max:  # dense Cholesky reference on all test points
            K = kernel.gram(X).at[jnp.diag_indices(n)].add(noise)
            L = jnp.linalg.cholesky(K)
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
            row["ref"] = f"solves@{n_check}"
            sd_cmp, sd_ref_cmp = sd[:n_check], sd_exact
        if mu_ref is not None:
            row["mean_err"] = float(jnp.max(jnp.abs(mu - mu_ref)) / jnp.max(jnp.abs(mu_ref)))
        else:  # mean reference: a tighter CG solve
            tight = pcg(post.operator.mm, Y, post.precond.solve, tol=1e-10, max_iter=5000).x
            from skgpx.operators import tiled_cross_mm

            mu_t = tiled_cross_mm(kernel, Xc, X, tight)
            row["mean_err"] = float(jnp.max(jnp.abs(mu[:n_check] - mu_t)) / jnp.max(jnp.abs(mu_t)))
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


def run_train(n, steps, seed=0):
    import numpy as np
    import scipy.optimize
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern as SkMatern, WhiteKernel

    from skgpx.estimators import ScalableGPRegressor

    rng = np.random.default_rng(seed)
    Xn = rng.random((n, 3))
    yn = np.sin(6 * Xn[:, 0]) + np.cos(4 * Xn[:, 1] * Xn[:, 2]) + 0.1 * rng.standard_normal(n)
    evals = []

    def capped_lbfgs(obj_func, theta0, bounds):
        def f(theta):
            t = time.perf_counter()
            out = obj_func(theta, eval_gradient=True)
            evals.append(time.perf_counter() - t)
            print(f"# eval {len(evals)}: {evals[-1]:.1f} s, -lml {float(out[0]):.6g}, theta {theta}", flush=True)
            return out

        r = scipy.optimize.minimize(f, theta0, jac=True, method="L-BFGS-B", bounds=bounds,
                                    options={"maxfun": steps, "maxiter": steps})
        return r.x, r.fun

    kernel = ConstantKernel(1.0) * SkMatern(0.5, nu=1.5) + WhiteKernel(0.05)
    gp = ScalableGPRegressor(kernel, solver="cg", alpha=1e-6, optimizer=capped_lbfgs, random_state=seed)
    t = time.perf_counter()
    gp.fit(Xn, yn)
    total = time.perf_counter() - t
    info = gp.solver_info_
    return {"n": n, "fit_s": total, "evals": len(evals), "first_eval_s": evals[0] if evals else None,
            "eval_s": float(np.median(evals[1:])) if len(evals) > 1 else None, "kernel": str(gp.kernel_),
            "lml": gp.log_marginal_likelihood_value_, "rss_GB": _rss_gb(), "op": info["operator"],
            "train_tol_used": getattr(gp.inference_, "lml_tol", None),
            "its": info["iterations"], "rank": info["preconditioner_rank"], "converged": info["converged"]}


COLS = ["n", "op", "rank", "prec_s", "fit_s", "its", "it_s", "mf_it_s", "mv_s", "dmv_s", "pred_s", "exact_s", "rss_GB",
        "ref", "mean_err", "std_err", "love_err", "sk_s", "sk_mean_err"]


def _fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 20_000, 50_000, 100_000])
    p.add_argument("--n-test", type=int, default=256)
    p.add_argument("--n-check", type=int, default=64, help="test points with exact-solve std")
    p.add_argument("--ref-max", type=int, default=20_000, help="largest n with a dense Cholesky reference")
    p.add_argument("--sklearn-max", type=int, default=10_000)
    p.add_argument("--train", type=int, help="instead: train the hyperparameters at this n")
    p.add_argument("--steps", type=int, default=20, help="LML+gradient evaluations for --train")
    p.add_argument("--one", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.train:
        row = run_train(a.train, a.steps)
        print(" | ".join(row), flush=True)
        print(" | ".join(_fmt(v) for v in row.values()), flush=True)
        return
    if a.one:
        print(json.dumps(run_one(a.one, a.n_test, a.n_check, a.ref_max, a.sklearn_max)))
        return
    print(" | ".join(COLS), flush=True)
    for n in a.sizes:
        cmd = [sys.executable, __file__, "--one", str(n), "--n-test", str(a.n_test), "--n-check", str(a.n_check),
               "--ref-max", str(a.ref_max), "--sklearn-max", str(a.sklearn_max)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode != 0:
            print(f"n={n} failed:\n{out.stderr[-3000:]}", flush=True)
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        print(" | ".join(_fmt(row.get(c)) for c in COLS), flush=True)


if __name__ == "__main__":
    main()
