"""Size buckets: padded training sets and test inputs give the unpadded results, and a new
estimator, clone or nearby n reuses the compiled programs."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.gaussian_process.kernels import RBF as SkRBF, ConstantKernel as SkC, WhiteKernel

from skgpx import ScalableGPRegressor
from skgpx.gp import CG, ExactInference, Nystrom, RFF, bucket
from skgpx.gp._fit import condition_program, neg_lml, neg_lml_and_grad, training_data
from skgpx.kernels import RBF, Constant, Matern, White


def _data(n, t=1, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(0, 3, (n, 2))
    Y = np.column_stack([np.sin(2 * X[:, 0]) + X[:, 1] + 0.1 * rng.randn(n) for _ in range(t)])
    return X, Y, np.linspace(1e-4, 1e-3, n)


def test_buckets_cover_n_and_grow_slowly():
    sizes = [bucket(n) for n in range(1, 5000)]
    assert all(b >= n for n, b in zip(range(1, 5000), sizes))
    assert sizes == sorted(sizes)
    assert all(b <= 1.125 * n for n, b in zip(range(257, 5000), sizes[256:]))
    assert bucket(50) == bucket(51) and bucket(80) == bucket(100)  # nearby n, cross-validation folds


CASES = [
    (Constant(1.3) * Matern(0.8, nu=2.5) + White(0.05), "auto", 1),
    (Constant(0.7) * RBF(jnp.array([0.5, 1.5])), None, 2),
    (RBF(0.9) + White(0.1), 1e-6, 1),
]


@pytest.mark.parametrize("kernel, jitter, t", CASES)
def test_padded_equals_unpadded(kernel, jitter, t):
    X, Y, noise = _data(37, t)
    inference = ExactInference(jitter=jitter)
    plain, padded = training_data(X, Y, noise), training_data(X, Y, noise, bucket(37))
    assert padded.X.shape[0] == 40 and plain.mask is None
    theta = np.asarray(kernel.theta) + 0.1
    for program in (neg_lml, neg_lml_and_grad):
        a, b = program(theta, kernel, inference, plain, None), program(theta, kernel, inference, padded, None)
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(v, u, rtol=1e-10, atol=1e-10)
    p, q = condition_program(inference, kernel, plain, None), condition_program(inference, kernel, padded, None)
    np.testing.assert_allclose(q.lml, p.lml, rtol=1e-10)
    np.testing.assert_allclose(q.L[:37, :37], p.L, atol=1e-10)
    np.testing.assert_allclose(q.alpha[:37], p.alpha, atol=1e-10)
    assert np.all(np.asarray(q.alpha[37:]) == 0)
    Xs = jnp.asarray(_data(9, seed=1)[0])
    R = jnp.asarray(np.random.RandomState(2).randn(37, 3))
    for u, v in zip(_predictions(p, Xs, R), _predictions(q, Xs, R)):  # mean, var, cov, solve_train
        np.testing.assert_allclose(v, u, rtol=1e-10, atol=1e-10)
    assert q.diagnostics()["n_train"] == 37


def test_padded_equals_unpadded_with_adaptive_jitter():
    # Duplicate rows and no noise: the as-is factorisation fails and the retries add jitter
    # scaled by (and to) the real rows only.
    X = np.repeat(np.linspace(0, 1, 7), 2)[:, None]
    Y, noise = np.sin(3 * X), np.zeros(14)
    inference, kernel = ExactInference(), RBF(1.0)
    p = condition_program(inference, kernel, training_data(X, Y, noise), None)
    q = condition_program(inference, kernel, training_data(X, Y, noise, 24), None)
    assert float(p.jitter) > 0 and float(q.jitter) == float(p.jitter)
    # K + jitter has a condition number ~1e10 here: rounding alone moves y^T K^{-1} y by ~1e-8.
    np.testing.assert_allclose(q.lml, p.lml, rtol=1e-6)
    a = neg_lml_and_grad(np.asarray(kernel.theta), kernel, inference, training_data(X, Y, noise), None)
    b = neg_lml_and_grad(np.asarray(kernel.theta), kernel, inference, training_data(X, Y, noise, 24), None)
    for u, v in zip(a, b):
        np.testing.assert_allclose(v, u, rtol=1e-6)


def test_estimator_results_do_not_depend_on_the_bucket():
    # The same estimator fitted on n rows (bucket 56) agrees with one made to run unpadded.
    X, Y, _ = _data(50)
    kernel = SkC(1.0) * SkRBF(1.0) + WhiteKernel(0.1)
    ours = ScalableGPRegressor(kernel).fit(X, Y[:, 0])
    Xs = _data(13, seed=3)[0]
    unpadded = ScalableGPRegressor(kernel, solver=_Unpadded()).fit(X, Y[:, 0])
    np.testing.assert_allclose(ours.log_marginal_likelihood_value_, unpadded.log_marginal_likelihood_value_, rtol=1e-10)
    for a, b in zip(ours.predict(Xs, return_std=True), unpadded.predict(Xs, return_std=True)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(ours.L_, unpadded.L_, atol=1e-10)
    assert ours.L_.shape == (50, 50) and ours.alpha_.shape == (50,)


class _Unpadded(ExactInference):
    def prepare(self, X, Y, noise, dtype=None):
        return training_data(X, Y, noise, None, dtype)


def test_clone_with_other_values_and_nearby_n_does_not_retrace(count_traces):
    X, Y, _ = _data(45, seed=4)
    y = Y[:, 0]
    Xs = _data(11, seed=5)[0]
    est = ScalableGPRegressor(SkC(2.0) * SkRBF(0.7) + WhiteKernel(0.2)).fit(X[:44], y[:44])
    est.predict(Xs, return_std=True)
    est.log_marginal_likelihood(est.kernel_.theta, eval_gradient=True)
    est.log_marginal_likelihood(est.kernel_.theta)
    with count_traces() as traces:
        other = clone(est).set_params(kernel=SkC(0.5) * SkRBF(2.0) + WhiteKernel(0.01), alpha=1e-5)
        other.fit(X, y)  # 45 rows: the bucket of 44
        other.predict(Xs[:9], return_std=True)  # 9 test points: the bucket of 11
        other.log_marginal_likelihood(other.kernel_.theta + 0.1, eval_gradient=True)
        other.log_marginal_likelihood(other.kernel_.theta + 0.1)
    programs = ("neg_lml_and_grad", "neg_lml", "condition_program", "_mean", "_var")
    assert {name: traces[name] for name in programs} == dict.fromkeys(programs, 0)
    assert other.n_iter_ > 0


# -- CG and low-rank back-ends: the same mask ------------------------------------------------------
@eqx.filter_jit
def _predictions(post, Xs, R, love=False):
    # One compiled program per posterior for every prediction path: op by op, each loop inside
    # them compiles on its own.
    out = (post.mean(Xs), post.var(Xs), post.cov(Xs), post.solve_train(R))
    return out + (post.var_love(Xs),) if love else out


def _compare(inference, kernel, n, size, key, rtol, programs=(neg_lml, neg_lml_and_grad), love=False):
    X, Y, noise = _data(n, 2)
    plain, padded = training_data(X, Y, noise), training_data(X, Y, noise, size)
    theta = np.asarray(kernel.theta) + 0.1
    for program in programs:
        a, b = program(theta, kernel, inference, plain, key), program(theta, kernel, inference, padded, key)
        for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
            np.testing.assert_allclose(v, u, rtol=rtol, atol=rtol)
    p, q = condition_program(inference, kernel, plain, key), condition_program(inference, kernel, padded, key)
    np.testing.assert_allclose(q.lml, p.lml, rtol=rtol)
    Xs = jnp.asarray(_data(9, seed=1)[0])
    R = jnp.asarray(np.random.RandomState(2).randn(n, 3))
    pp, pq = _predictions(p, Xs, R, love), _predictions(q, Xs, R, love)
    for u, v in zip(pp[:4], pq[:4]):  # mean, var, cov, solve_train
        np.testing.assert_allclose(v, u, rtol=rtol, atol=rtol)
    return p, q, pp[4:], pq[4:]


CG_KERNEL = Constant(1.3) * Matern(0.8, nu=2.5) + White(0.05)


@pytest.mark.parametrize("inference, programs", [
    (CG(operator="dense"), ()),  # adaptive rank: the cap of the real rows
    (CG(operator="matrix-free", tile_size=16, variance_method="love", love_rank=60), (neg_lml_and_grad,)),
])
def test_cg_padded_equals_unpadded(inference, programs):
    # Probes, pivots and LOVE start are drawn per real row and are zero (or never drawn) on
    # padded rows, so every Krylov vector is zero there: the same numbers to rounding. (The
    # preconditioner draws its pivots in blocks of the buffer rounded up to a multiple of 8,
    # which the size bucket of n has too.) A weak preconditioner amplifies rounding: with a
    # rank-5 one here the two runs part at ~1e-5 after 14 iterations, within the CG tolerance.
    # The value-only program solves as the value-and-gradient one does (that one alone here:
    # CG's programs are slow to compile; the low-rank test below runs both). Its masked solve is
    # the conditioning program's (compared for both operators); its gradient pass (the tiled
    # surrogate) does not depend on the operator: compared with the matrix-free one, whose tiles
    # of 16 pad the rows again.
    p, q, (love_p,), (love_q,) = _compare(inference, CG_KERNEL, 37, bucket(37), jax.random.key(0), 1e-8,
                                          programs, love=True)
    dp, dq = p.diagnostics(), q.diagnostics()
    for name in ("iterations", "preconditioner_rank", "love_std_rel_error_max"):
        np.testing.assert_allclose(dq[name], dp[name], rtol=1e-8, atol=1e-10)
    assert np.all(np.asarray(q.alpha[37:]) == 0)
    np.testing.assert_allclose(love_q, love_p, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("inference, programs", [
    (RFF(n_components=64), (neg_lml, neg_lml_and_grad)),
    (Nystrom(n_components=20, landmark_method="rpcholesky"), (neg_lml, neg_lml_and_grad)),
    # The value-only program evaluates what the value-and-gradient one does: checked on the
    # two above, the value-and-gradient program alone below (each program is a compilation).
    (Nystrom(n_components=20, landmark_method="kmeans++"), (neg_lml_and_grad,)),
    # more landmarks than rows: unused slots
    (Nystrom(n_components=64, landmark_method="uniform"), (neg_lml_and_grad,)),
    (Nystrom(n_components=64, landmark_method="rpcholesky"), (neg_lml_and_grad,)),
])
def test_lowrank_padded_equals_unpadded(inference, programs):
    kernel = Constant(0.7) * RBF(jnp.array([0.5, 1.5])) + White(0.05)
    p, q, _, _ = _compare(inference, kernel, 37, 48, jax.random.key(3), 1e-10, programs)
    dp, dq = p.diagnostics(), q.diagnostics()
    assert dq["n_train"] == dp["n_train"] == 37 and dq["n_features_used"] == dp["n_features_used"]
    np.testing.assert_allclose(dq["kernel_approx_rel_frobenius_error"], dp["kernel_approx_rel_frobenius_error"],
                               rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("solver", ["cg-dense", "cg-matrix-free", "rff", "nystrom"])
def test_nearby_n_compiles_nothing_new(solver, count_traces):
    X, Y, _ = _data(51, seed=6)
    kernel = SkC(1.0) * SkRBF(1.0) + WhiteKernel(0.1)
    solver_obj = ({"rff": RFF(n_components=32), "nystrom": Nystrom(n_components=16)}.get(solver, solver))
    # CG's optimiser programs take long to compile: the conditioning program alone there.
    optimizer = None if solver.startswith("cg") else "fmin_l_bfgs_b"
    est = ScalableGPRegressor(kernel, solver=solver_obj, optimizer=optimizer, random_state=0)
    est.fit(X[:50], Y[:50, 0])
    with count_traces() as traces:
        est.fit(X, Y[:, 0])
    programs = ("neg_lml_and_grad", "neg_lml", "condition_program")
    assert {name: traces[name] for name in programs} == dict.fromkeys(programs, 0), dict(traces)
    assert sum(traces.values()) == 0, dict(traces)
