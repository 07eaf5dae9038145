"""solver="cg": mean, variances, LML and its gradient against a dense Cholesky reference.

Stated tolerances (n = 400, Matérn-3/2 l = 0.25 in 3-D + White, noise 0.01, CG tol 1e-8):
mean rtol 1e-5, std rtol 1e-4 (exact solves) and 2e-2 median (LOVE, when it reports itself
accurate), covariance atol 1e-7, LML within 4 SLQ standard errors + 0.1%, LML gradient
(3 probe draws) within 5 standard errors + 1%.
"""

import warnings

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from skgpx.gp import CG, make_inference, warn_if_not_converged
from skgpx.gp._auto import select_solver
from skgpx.kernels import RBF, Matern, White

N = 400


@pytest.fixture(scope="module")
def problem():
    rng = np.random.default_rng(0)
    X = jnp.asarray(rng.random((N, 3)))
    Xs = jnp.asarray(rng.random((50, 3)))
    f = np.stack([np.sin(6 * X[:, 0]) + np.cos(4 * X[:, 1] * X[:, 2]), np.cos(5 * X[:, 2])], axis=1)
    Y = jnp.asarray(f + 0.1 * rng.standard_normal((N, 2)))
    noise = jnp.full(N, 0.01)
    kernel = 1.5 * Matern(0.25, nu=1.5) + White(0.005)
    return kernel, X, Xs, Y, noise


@eqx.filter_jit  # one program per kernel structure (op by op, each primitive compiles on its own)
def _ref_lml(kernel, X, Y, noise):
    K = kernel.gram(X) + jnp.diag(noise)
    L = jnp.linalg.cholesky(K)
    a = jax.scipy.linalg.cho_solve((L, True), Y)
    n, t = Y.shape
    return -0.5 * jnp.sum(Y * a) - t * jnp.sum(jnp.log(jnp.diag(L))) - 0.5 * n * t * np.log(2 * np.pi)


@eqx.filter_jit
def _ref_post(kernel, X, Xs, Y, noise):
    K = kernel.gram(X) + jnp.diag(noise)
    L = jnp.linalg.cholesky(K)
    Ks = kernel.cross(X, Xs)
    mean = Ks.T @ jax.scipy.linalg.cho_solve((L, True), Y)
    cov = kernel.gram(Xs) - Ks.T @ jax.scipy.linalg.cho_solve((L, True), Ks)
    return mean, cov


# The fit of test_posterior_matches_cholesky; test_var_tol_controls_the_variance_solves_only
# conditions the same problem with only `var_tol` changed. exact_var_max=10 < 50 test points:
# var() takes the "auto" branch (LOVE if its measured error is small, exact solves otherwise),
# so the fallback is exercised too.
FIT_OPTS = {"tol": 1e-8, "tile_size": 128, "love_rank": 20, "exact_var_max": 10}


@eqx.filter_jit  # one compiled call for every prediction path (compiling beats op-by-op here)
def _predict_all(post, Xs, R):
    return post.mean(Xs), post.var(Xs), post.var_exact(Xs), post.var_love(Xs), post.cov(Xs), post.solve_train(R)


@pytest.fixture(scope="module")
def fits(problem):
    """``fits(operator, **options)`` -> (posterior, _predict_all at the test points): each
    configuration conditioned and predicted once per module, key 0."""
    kernel, X, Xs, Y, noise = problem
    R = jnp.asarray(np.random.default_rng(3).standard_normal((N, 2)))
    cache = {}

    def get(operator, **options):
        name = (operator, tuple(sorted(options.items())))
        if name not in cache:
            inf = make_inference("cg", {**FIT_OPTS, "operator": operator, **options})
            post = inf.condition(kernel, X, Y, noise, jax.random.key(0))
            cache[name] = post, _predict_all(post, Xs, R), R
        return cache[name]

    return get


@pytest.mark.parametrize("operator", ["dense", "matrix-free"])
def test_posterior_matches_cholesky(problem, fits, operator):
    kernel, X, Xs, Y, noise = problem
    post, (mean, var, var_exact, var_love, cov, sol), R = fits(operator)
    mean_ref, cov_ref = _ref_post(kernel, X, Xs, Y, noise)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-5, atol=1e-6 * float(jnp.max(jnp.abs(mean_ref))))
    std_ref = jnp.sqrt(jnp.diag(cov_ref))
    np.testing.assert_allclose(jnp.sqrt(var), std_ref, rtol=1e-4)
    np.testing.assert_allclose(jnp.sqrt(var_exact), std_ref, rtol=1e-4)
    d = post.diagnostics()
    if operator == "matrix-free":  # "auto" builds no LOVE cache past the dense budget
        assert d["love_rank"] == 0 and not d["love_accepted"] and np.isnan(d["love_std_rel_error_max"])
        inf = make_inference("cg", {**FIT_OPTS, "operator": operator, "variance_method": "love"})
        love_post = inf.condition(kernel, X, Y, noise, jax.random.key(0))
        var_love, d = love_post.var_love(Xs), love_post.diagnostics()
        assert d["love_rank"] == 20
    # The LOVE accuracy estimate (check points) tracks LOVE's real error at the test points.
    rel_love = np.abs(np.sqrt(np.asarray(var_love)) - std_ref) / std_ref
    assert d["love_accepted"] == (d["love_std_rel_error_max"] <= 0.02)
    if not d["love_accepted"]:
        assert np.max(rel_love) > 0.02  # the estimate did not cry wolf
    else:
        assert np.median(rel_love) < 0.02
    np.testing.assert_allclose(cov, cov_ref, atol=1e-7)
    K = kernel.gram(X) + jnp.diag(noise)
    np.testing.assert_allclose(K @ sol, R, atol=1e-6)
    d = post.diagnostics()
    assert d["operator"] == operator and d["converged"] and d["relative_residual"] <= 1e-8
    assert d["iterations"] > 0 and d["preconditioner_rank"] > 0
    # The LML value: SLQ estimate within 4 standard errors (+ a small bias allowance) of exact.
    ref = float(_ref_lml(kernel, X, Y, noise))
    err = abs(float(post.log_marginal_likelihood_value) - ref)
    assert err < 4 * 2 * d["logdet_stderr"] / 2 * Y.shape[1] + 1e-3 * abs(ref), (err, d["logdet_stderr"])


# Training-step programs (value and gradient in theta and the noise) shared by the tests of this
# module: tol=1e-8 with the default train_tol=1e-2 (the optimiser's loose solves), and with
# train_tol=None.
@pytest.fixture(scope="module")
def train_step(problem):
    """``train_step(seed, **options)`` -> (inference, (lml, (d theta, d noise))) at the problem's
    hyperparameters with ``jax.random.key(seed)``: one compiled program per configuration, each
    draw computed once (``fresh=True``: computed again)."""
    kernel, X, _, Y, noise = problem
    theta, programs, draws = jnp.asarray(kernel.theta), {}, {}

    def get(seed, fresh=False, **options):
        opts = {"tol": 1e-8, **options}
        name = tuple(sorted(opts.items()))
        if name not in programs:
            inf = make_inference("cg", opts)

            def f(theta, noise, key):
                return inf.log_marginal_likelihood(kernel.with_theta(theta), X, Y, noise, key)

            programs[name] = inf, jax.jit(jax.value_and_grad(f, argnums=(0, 1)))
        inf, step = programs[name]
        if fresh or (name, seed) not in draws:
            out = step(theta, noise, jax.random.key(seed))
            if fresh:
                return inf, out
            draws[name, seed] = out
        return inf, draws[name, seed]

    return get


def test_lml_gradient_matches_cholesky(problem, train_step):
    kernel, X, _, Y, noise = problem
    theta = jnp.asarray(kernel.theta)

    def ref(theta, noise):
        return _ref_lml(kernel.with_theta(theta), X, Y, noise)

    g_ref, gn_ref = jax.grad(ref, argnums=(0, 1))(theta, noise)
    draws = [train_step(s)[1][1] for s in range(3)]
    g = np.stack([np.asarray(d[0]) for d in draws])
    gn = np.array([float(jnp.sum(d[1])) for d in draws])
    # Stochastic tolerance: the mean of 3 draws within 5 of its own standard errors, plus 1%.
    se = g.std(axis=0, ddof=1) / np.sqrt(3)
    assert np.all(np.abs(g.mean(0) - np.asarray(g_ref)) <= 5 * se + 0.01 * np.abs(np.asarray(g_ref))), (g, g_ref)
    assert abs(gn.mean() - float(jnp.sum(gn_ref))) <= 5 * gn.std(ddof=1) / np.sqrt(3) + 0.01 * abs(float(jnp.sum(gn_ref)))
    # The data-fit part of the gradient is deterministic: the draws agree on the sign and size.
    assert np.all(np.sign(g) == np.sign(np.asarray(g_ref)))


def test_love_variances_and_reported_accuracy(problem):
    kernel, X, Xs, Y, noise = problem
    # A smooth kernel whose spectrum the preconditioner captures: LOVE is accurate and says so.
    k = RBF(0.5)
    post = make_inference("cg", {"variance_method": "love"}).condition(k, X, Y, noise, jax.random.key(0))
    _, cov_ref = _ref_post(k, X, Xs, Y, noise)
    rel = np.abs(np.sqrt(np.asarray(post.var(Xs))) - np.sqrt(np.diag(cov_ref))) / np.sqrt(np.diag(cov_ref))
    d = post.diagnostics()
    assert np.median(rel) < 2e-2
    assert d["love_std_rel_error_median"] < 2e-2 and d["love_accepted"]
    # (The hard kernel, where LOVE is rejected and "auto" falls back to exact solves, is
    # covered in test_posterior_matches_cholesky.)


def test_love_error_is_finite_on_near_noiseless_data():
    # Posterior sds near zero at the check points: the reported relative error is floored
    # at sqrt(eps) x the prior sd instead of dividing by ~0 (it used to read ~1e306).
    rng = np.random.default_rng(1)
    X = jnp.asarray(np.sort(rng.random((200, 1)), axis=0))
    Y = jnp.sin(6 * X)
    noise = jnp.full((200,), 1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        post = make_inference("cg", {"variance_method": "love"}).condition(RBF(0.3), X, Y, noise, jax.random.key(0))
    d = post.diagnostics()
    assert np.isfinite(d["love_std_rel_error_max"])
    assert d["love_std_rel_error_max"] <= 1.0 / np.sqrt(np.finfo(np.float64).eps)


def test_convergence_warning_when_max_iter_too_small(problem):
    kernel, X, _, Y, noise = problem
    inf = make_inference("cg", {"max_iter": 3, "preconditioner_rank": 0, "variance_method": "exact"})
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        post = inf.condition(kernel, X, Y, noise, jax.random.key(0))
        jax.effects_barrier()
    d = post.diagnostics()
    assert not d["converged"] and d["iterations"] == 3
    with pytest.warns(ConvergenceWarning):
        assert warn_if_not_converged(d) is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_if_not_converged({**d, "converged": True}) is True
    # (A converged fit emitting no ConvergenceWarning is checked on real fits in the estimator test.)


def test_bad_options():
    with pytest.raises(ValueError, match="variance_method"):
        make_inference("cg", {"variance_method": "fast"})
    with pytest.raises(ValueError, match="preconditioner_rank"):
        make_inference("cg", {"preconditioner_rank": -1})
    with pytest.raises(ValueError, match="love_rank"):
        make_inference("cg", {"love_rank": 0})
    with pytest.raises(ValueError, match="operator"):
        make_inference("cg", {"operator": "sparse"})


def test_auto_selection():
    gib = 2**30
    assert select_solver(1000, 3, memory_budget=gib) == "cholesky"
    # Past the Cholesky size: dense CG while one n x n Gram fits the budget, matrix-free past it.
    assert select_solver(8000, 3, memory_budget=gib) == "cg-dense"
    assert select_solver(50_000, 3, memory_budget=8 * gib) == "cg-matrix-free"
    # Memory, not only n: a tiny budget rules out the dense paths even at small n.
    assert select_solver(1000, 3, memory_budget=10**6) == "cg-matrix-free"
    assert select_solver(1000, 3, itemsize=4, memory_budget=3 * 4 * 1000**2) == "cholesky"
    # Without optimisation one factorisation is cheap up to CHOLESKY_MAX_N_FIXED, memory allowing.
    assert select_solver(8000, 3, memory_budget=2 * gib, optimize=False) == "cholesky"
    assert select_solver(8000, 3, memory_budget=gib, optimize=False) == "cg-dense"  # 3 n^2 floats > 1 GiB
    assert select_solver(16_000, 3, memory_budget=8 * gib, optimize=False) == "cg-dense"
    for name in ("cg-dense", "cg-matrix-free"):
        assert make_inference(name, {}).operator == name[3:]


def test_auto_selection_takes_time_groups_where_they_keep_the_operator():
    from skgpx.kernels import ActiveDims, Matern

    gib, n = 2**30, 8000
    rng = np.random.default_rng(0)
    days = np.repeat(np.arange(8.0), n // 8)
    X = np.column_stack([rng.random((n, 2)), days])
    st = ActiveDims(Matern(0.3, nu=1.5), dims=(0, 1)) * ActiveDims(Matern(2.0, nu=0.5), dims=(2,))
    assert select_solver(n, 3, memory_budget=gib, kernel=st, X=X) == "cg-time-groups"
    # not under a device mesh; not for a kernel that does not split on a time column
    assert select_solver(n, 3, memory_budget=gib, kernel=st, X=X, time_groups=False) == "cg-dense"
    assert select_solver(n, 3, memory_budget=gib, kernel=Matern(0.3, nu=1.5), X=X) == "cg-dense"
    # more distinct times than MAX_TIME_GROUPS: plain CG
    many = X.copy()
    many[:, 2] = np.arange(n) % 100
    assert select_solver(n, 3, memory_budget=gib, kernel=st, X=many) == "cg-dense"
    # the dense time-group form holds two n x n matrices: where only one fits, plain dense CG
    one = 8 * n * n + 8
    assert select_solver(n, 3, memory_budget=one, kernel=st, X=X) == "cg-dense"
    # matrix-free: groups padded to whole blocks of a quarter of the mean group; 8 equal groups pad
    # nothing, a few tiny groups among big ones pad each to a block (>= 128 rows) and lose
    small = 10**6
    assert select_solver(n, 3, memory_budget=small, kernel=st, X=X) == "cg-time-groups"
    lopsided = X.copy()
    lopsided[:, 2] = np.where(np.arange(n) < 60 * 10, np.arange(n) // 10 + 100.0, 0.0)  # 60 groups of 10
    assert select_solver(n, 3, memory_budget=small, kernel=st, X=lopsided) == "cg-matrix-free"
    inf = make_inference("cg-time-groups", {})
    assert inf.time_dim == "auto" and inf.name == "cg-time-groups"
    # "auto" that finds no groups runs (and reports) plain CG
    assert inf.for_data(st, many).name == "cg" and inf.for_data(st, X).name == "cg-time-groups"


def _max_var_size(closed):
    """Largest element count of any variable in a closed jaxpr, sub-jaxprs included."""
    best = 0

    def visit(jp):
        nonlocal best
        for eqn in jp.eqns:
            for v in list(eqn.invars) + list(eqn.outvars):
                shape = getattr(getattr(v, "aval", None), "shape", None)
                if shape is not None:
                    best = max(best, int(np.prod(shape)))
            for p in eqn.params.values():
                for sub in p if isinstance(p, (tuple, list)) else (p,):
                    if isinstance(sub, jax.extend.core.ClosedJaxpr):
                        visit(sub.jaxpr)
                    elif isinstance(sub, jax.extend.core.Jaxpr):
                        visit(sub)

    visit(closed.jaxpr)
    return best


def test_lml_gradient_jaxpr_has_no_n_by_n_array():
    # The whole training step of the matrix-free path (pivoted Cholesky, block PCG, SLQ and
    # the surrogate's tiled, checkpointed backward pass) never holds an n x n array.
    n = 600
    rng = np.random.default_rng(4)
    X = jnp.asarray(rng.random((n, 3)))
    Y = jnp.asarray(rng.standard_normal((n, 1)))
    noise = jnp.full(n, 0.01)
    k = 1.5 * Matern(0.2, nu=1.5) + White(0.01)
    opts = {"preconditioner_rank": 20, "n_probes": 4, "lanczos_order": 20, "tile_size": 32}

    def biggest(operator):
        inf = make_inference("cg", {**opts, "operator": operator})

        def f(theta, noise):
            return inf.log_marginal_likelihood(k.with_theta(theta), X, Y, noise, jax.random.key(0))

        return _max_var_size(jax.make_jaxpr(jax.grad(f, argnums=(0, 1)))(jnp.asarray(k.theta), noise))

    assert biggest("matrix-free") < n * n / 4
    assert biggest("dense") >= n * n  # the check can fail: the dense operator holds the Gram matrix


@pytest.mark.filterwarnings("error::sklearn.exceptions.ConvergenceWarning")  # converged CG fits must not warn
def test_estimator_auto_cg_matches_cholesky_and_is_deterministic(monkeypatch):
    import skgpx.gp._auto as auto
    from skgpx.estimators import ScalableGPRegressor

    rng = np.random.default_rng(1)
    X = rng.random((400, 3))
    y = np.sin(5 * X[:, 0]) + X[:, 1] ** 2 + 0.05 * rng.standard_normal(400)
    Xs = rng.random((30, 3))
    kern = Matern(0.3, nu=1.5) + White(0.01)

    def fit(solver, random_state=0, **kw):
        if solver == "auto" and kw:  # options need the object: the one "auto" picks here, with them set
            solver = CG(operator="matrix-free", love_rank=30, **kw)
        elif solver != "cholesky":
            solver = make_inference(solver, {"love_rank": 30, **kw})
        return ScalableGPRegressor(kern, solver=solver, optimizer=None, alpha=1e-3, random_state=random_state).fit(X, y)

    ref = fit("cholesky")
    assert ref.solver_ == "cholesky"
    # "auto" past the Cholesky size with a budget too small for an n x n Gram: matrix-free CG.
    monkeypatch.setattr(auto, "CHOLESKY_MAX_N", 100)
    monkeypatch.setattr(auto, "dense_memory_budget", lambda: 400 * 400 * 8 - 1)
    gp = fit("auto", tol=1e-8)
    assert gp.solver_ == "cg-matrix-free"
    info = gp.solver_info_
    assert info["operator"] == "matrix-free" and info["converged"] and info["relative_residual"] <= 1e-8
    assert info["iterations"] > 0 and info["preconditioner_rank"] > 0
    # Past the dense budget "auto" predicts std by exact solves and builds no LOVE cache.
    assert info["love_rank"] == 0 and not info["love_accepted"]
    mean, std = gp.predict(Xs, return_std=True)
    mean_ref, std_ref = ref.predict(Xs, return_std=True)
    np.testing.assert_allclose(mean, mean_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, std_ref, rtol=1e-4)
    # A fixed random_state gives identical results (SLQ probes, LOVE check points); another one does not.
    again = fit("auto", tol=1e-8)
    assert again.log_marginal_likelihood_value_ == gp.log_marginal_likelihood_value_
    np.testing.assert_array_equal(again.predict(Xs, return_std=True)[1], std)
    other = fit("auto", random_state=1, tol=1e-8)
    jax.effects_barrier()
    assert other.log_marginal_likelihood_value_ != gp.log_marginal_likelihood_value_


def test_train_tol_option(problem, train_step):
    kernel, X, _, Y, noise = problem
    # Default: training solves loosely (1e-2), the fit at `tol`; `train_tol=None` restores `tol`.
    inf, _ = train_step(0)
    assert inf.train_tol == 1e-2 and inf.lml_tol == 1e-2
    assert make_inference("cg", {"tol": 1e-8, "train_tol": None}).lml_tol == 1e-8
    assert make_inference("cg", {"tol": 0.1, "train_tol": 1e-3}).lml_tol == 0.1  # never tighter than `tol`
    with pytest.raises(ValueError, match="train_tol"):
        make_inference("cg", {"train_tol": 0.0})
    for s in range(2):
        v0, (g0, _) = train_step(s, train_tol=None)[1]
        v1, (g1, _) = train_step(s)[1]
        # Same probes: the loose solve moves the value and gradient far less than the probes do.
        assert abs(float(v1 - v0)) <= 1e-4 * abs(float(v0)), (v0, v1)
        np.testing.assert_allclose(g1, g0, rtol=1e-2, atol=1e-3 * float(jnp.max(jnp.abs(g0))))
    # Deterministic with a fixed key (computed again); another key draws other probes.
    a, b, c = train_step(0)[1], train_step(0, fresh=True)[1], train_step(1)[1]
    assert float(a[0]) == float(b[0]) and np.array_equal(a[1][0], b[1][0]) and np.array_equal(a[1][1], b[1][1])
    assert float(a[0]) != float(c[0])
    # A missed training tolerance still warns, naming that tolerance.
    few = make_inference("cg", {"max_iter": 2, "preconditioner_rank": 0, "train_tol": 1e-3})
    with pytest.warns(ConvergenceWarning, match=r"tol=0\.001 in the marginal likelihood"):
        jax.block_until_ready(jax.jit(few.log_marginal_likelihood)(kernel, X, Y, noise, jax.random.key(0)))
        jax.effects_barrier()


def test_kernel_surrogate_gradient_only_pass_matches_autodiff():
    # The gradient-only tiled pass gives the same kernel-leaf and input gradients as autodiff
    # through the checkpointed tiled product (padding: 301 rows in tiles of 64), and value 0.
    from skgpx.gp._cg import _kernel_surrogate_grad
    from skgpx.operators import tiled_cross_mm

    rng = np.random.default_rng(5)
    n = 301
    X = jnp.asarray(rng.random((n, 3)))
    V, W = jnp.asarray(rng.standard_normal((2, n, 5)))
    k = 1.5 * Matern(0.3, nu=1.5) + White(0.01)
    th = jnp.asarray(k.theta)
    ref = jax.grad(lambda t, X: jnp.sum(W * tiled_cross_mm(k.with_theta(t), X, X, V, 64)), argnums=(0, 1))(th, X)
    got = jax.grad(lambda t, X: 3.0 * _kernel_surrogate_grad(k.with_theta(t), X, V, W, 64), argnums=(0, 1))(th, X)
    np.testing.assert_allclose(got[0] / 3.0, ref[0], rtol=1e-12, atol=1e-12 * float(jnp.max(jnp.abs(ref[0]))))
    np.testing.assert_allclose(got[1] / 3.0, ref[1], rtol=1e-10, atol=1e-12 * float(jnp.max(jnp.abs(ref[1]))))
    assert float(_kernel_surrogate_grad(k, X, V, W, 64)) == 0.0


def test_auto_uses_cholesky_longer_when_nothing_is_optimised(monkeypatch):
    import skgpx.gp._auto as auto
    from sklearn.gaussian_process.kernels import RBF as SkRBF

    from skgpx import ScalableGPRegressor
    from skgpx.optimizers import LBFGSB

    rng = np.random.RandomState(0)
    X = rng.rand(300, 2)
    y = np.sin(4 * X[:, 0]) + 0.05 * rng.randn(300)
    monkeypatch.setattr(auto, "CHOLESKY_MAX_N", 100)  # 300 points: "too many" to optimise by Cholesky
    monkeypatch.setattr(auto, "HOST_MAX_N", 0)  # the compiled solvers' choice, not the NumPy host path
    fixed = ScalableGPRegressor(SkRBF(0.3), alpha=1e-2, optimizer=None).fit(X, y)
    assert fixed.solver_ == "cholesky"
    frozen = ScalableGPRegressor(SkRBF(0.3, length_scale_bounds="fixed"), alpha=1e-2).fit(X, y)
    assert frozen.solver_ == "cholesky"  # nothing free to learn: one factorisation
    learned = ScalableGPRegressor(SkRBF(0.3), alpha=1e-2, optimizer=LBFGSB(max_evals=3), random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        learned.fit(X, y)
    assert learned.solver_ == "cg-dense"


def test_var_tol_controls_the_variance_solves_only(problem, fits):
    kernel, X, Xs, Y, noise = problem
    _, cov_ref = _ref_post(kernel, X, Xs, Y, noise)
    sd_ref = np.sqrt(np.diag(np.asarray(cov_ref)))
    assert make_inference("cg", {"tol": 1e-8}).var_solve_tol == 1e-8  # None: `tol`
    with pytest.raises(ValueError, match="var_tol"):
        make_inference("cg", {"var_tol": -1.0})
    # var_tol=None: the dense fit of test_posterior_matches_cholesky; var_tol=1e-3: the same
    # options and key otherwise.
    _, (mean0, _, var0, _, cov0, _), _ = fits("dense")
    inf = make_inference("cg", {**FIT_OPTS, "operator": "dense", "var_tol": 1e-3})
    post = inf.condition(kernel, X, Y, noise, jax.random.key(0))
    mean, var, cov = eqx.filter_jit(lambda p, Z: (p.mean(Z), p.var_exact(Z), p.cov(Z)))(post, Xs)
    errs = {var_tol: np.median(np.abs(np.sqrt(np.asarray(v)) - sd_ref) / sd_ref)
            for var_tol, v in ((None, var0), (1e-3, var))}
    np.testing.assert_array_equal(mean, mean0)  # the fit's solve is untouched
    assert np.max(np.abs(np.diag(np.asarray(cov)) - np.diag(np.asarray(cov0)))) > 0  # return_cov uses it too
    assert errs[None] < 1e-6
    assert errs[None] < errs[1e-3] < 5e-2  # looser, and used
