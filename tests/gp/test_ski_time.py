"""SKI(time_dim=...): SKI in space, exact in time, against the dense matrices it stands for."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skgpx import ScalableGPRegressor
from skgpx.gp import SKI
from skgpx.gp._ski_time import _prior_in_time
from skgpx.kernels import RBF, ActiveDims, Constant, Matern

TIMES = np.array([0.0, 0.4, 1.1, 3.0])


def _kernel(time_kernel=None):
    time_kernel = Matern(1.5, nu=0.5) if time_kernel is None else time_kernel
    return Constant(1.5) * ActiveDims(Matern(0.3, nu=1.5), dims=(0, 1)) * ActiveDims(time_kernel, dims=(2,))


def _data(n=160, seed=0):
    rng = np.random.default_rng(seed)
    S = rng.random((n, 2))
    t = rng.choice(TIMES, n)
    y = np.sin(4 * S[:, 0]) * np.cos(3 * S[:, 1]) * np.exp(-t / 4) + 0.2 * rng.standard_normal(n)
    return np.column_stack([S, t]), y[:, None], np.full(n, 0.04)


# Test points between, on, before and after the data's times.
XS = np.column_stack([np.linspace(0.15, 0.85, 8), np.linspace(0.8, 0.2, 8), [0.2, 0.2, 0.4, 0.7, 2.0, 3.0, -0.5, 4.0]])


@pytest.fixture(scope="module")
def fitted():
    X, y, noise = _data()
    k = _kernel()
    inf = SKI(time_dim=2, points_per_length_scale=5.0, interpolation_tol=None, tol=1e-10, n_probes=4, n_check=8,
              love_rank=32, n_interp_check=64).for_data(k, X, noise)
    post = inf.condition(k, jnp.asarray(X), jnp.asarray(y), jnp.asarray(noise), jax.random.key(0))
    op = post.operator
    Xs = jnp.asarray(XS)

    @jax.jit
    def dense(op, Xs):  # the same approximation, densely: (W K_ss W^T) * K_t
        Kss = op.grid_op.mm(jnp.eye(op.grid_op.grid.size))
        W, Ws = op.interp.as_matrix(), op.weights_at(Xs).as_matrix()
        Ks = (Ws @ Kss @ W.T) * op.temporal.cross(Xs, op._times(op.tau))[:, op.slots]
        Kxx = (Ws @ Kss @ Ws.T) * op.temporal.cross(Xs, Xs)
        return op.as_matrix(), Ks, Kxx

    A, Ks, Kxx = (np.asarray(a) for a in dense(op, Xs))
    return dict(X=X, y=y, noise=noise, kernel=k, inf=inf, post=post, A=A, Ks=Ks, Kxx=Kxx)


_call = eqx.filter_jit(lambda post, Xs, name: getattr(post, name)(Xs))


def test_posterior_equals_the_dense_time_slice_gp(fitted):
    """Mean, exact variances and covariance equal the dense GP on ``(W K_ss W^T) * K_t`` (CG to 1e-10),
    at test times the data do not have too; the operator is the time-slice one, exact in time."""
    post, A, Ks, Kxx, y = fitted["post"], fitted["A"], fitted["Ks"], fitted["Kxx"], fitted["y"]
    assert type(post.operator).__name__ == "TimeSliceSKIOperator" and post.operator.n_slots == len(TIMES)
    info = post.diagnostics()
    assert info["time_dim"] == 2 and info["time_slices"] == 4 and info["grid_shape"][2] == 1
    Xs = jnp.asarray(XS)
    mean = Ks @ np.linalg.solve(A, y)
    cov = Kxx - Ks @ np.linalg.solve(A, Ks.T)
    np.testing.assert_allclose(_call(post, Xs, "mean"), mean, atol=1e-8)
    np.testing.assert_allclose(_call(post, Xs, "var_exact"), np.diag(cov), atol=1e-8)
    np.testing.assert_allclose(_call(post, Xs, "cov"), cov, atol=1e-8)
    # LOVE, formed per distinct test time, is exactly prior - |k*^T V L^{-T}|^2 with the dense k*.
    VL = np.asarray(post.love_R)
    np.testing.assert_allclose(_call(post, Xs, "var_cached"), np.diag(Kxx) - np.sum((Ks @ VL) ** 2, axis=1),
                               atol=1e-10)
    # and close to the exact variances (the fit measured its LOVE error on held-out check points)
    assert info["love_accepted"]
    np.testing.assert_allclose(np.sqrt(_call(post, Xs, "var_cached")), np.sqrt(np.diag(cov)), rtol=0.1)


def test_time_slices_only_interpolate_space(fitted):
    """Against the exact GP the only error is the spatial interpolation's, which the fit reports."""
    X, y, noise, k = fitted["X"], fitted["y"], fitted["noise"], fitted["kernel"]
    K = np.asarray(eqx.filter_jit(lambda k, X: k.gram(X))(k, jnp.asarray(X))) + np.diag(noise)
    Kse = np.asarray(eqx.filter_jit(lambda k, A, B: k.cross(A, B))(k, jnp.asarray(XS), jnp.asarray(X)))
    exact = Kse @ np.linalg.solve(K, y)
    err = np.max(np.abs(np.asarray(_call(fitted["post"], jnp.asarray(XS), "mean")) - exact))
    info = fitted["post"].diagnostics()
    assert 0 < info["interpolation_error_max"] < 0.05
    assert err < 0.05 * np.std(y)


@pytest.mark.parametrize("time_kernel", [Matern(1.5, nu=0.5), RBF(1.0)], ids=["ar1", "cholesky"])
def test_prior_in_time_has_the_time_kernel_covariance(time_kernel):
    """Samples' time part: unit spatial draws through the AR(1) recursion (Matern-1/2) or the Cholesky
    factor give exactly K_t over the merged data and test times."""
    X, _, noise = _data(40)
    k = _kernel(time_kernel)
    inf = SKI(time_dim=2, points_per_length_scale=3.0, interpolation_tol=None).for_data(k, X)

    @eqx.filter_jit
    def factor(X, noise, times):  # one program, not one per operation
        op = inf.operator(k, X, noise)
        F = _prior_in_time(op, times, jnp.eye(times.shape[0])[:, None, :])[:, 0, :]  # (T, T): the factor itself
        return op.markov, F, op.temporal.cross(op._times(times), op._times(times))

    markov, F, Kt = factor(jnp.asarray(X), jnp.asarray(noise), jnp.asarray(np.union1d(TIMES, [-0.5, 0.7, 4.0])))
    assert markov == (time_kernel.nu == 0.5 if isinstance(time_kernel, Matern) else False)
    np.testing.assert_allclose(F @ F.T, Kt, atol=1e-9)


def test_pathwise_samples_have_the_posterior_moments(fitted):
    post, A, Ks, Kxx, y = fitted["post"], fitted["A"], fitted["Ks"], fitted["Kxx"], fitted["y"]
    inf = post.inference
    post = eqx.tree_at(lambda p: p.inference, post, inf.replace(tol=1e-6))
    Xs = XS[::2]
    S = 400
    samples = np.asarray(post.pathwise(jnp.asarray(y), jnp.asarray(Xs), S, jax.random.key(3),
                                       include_white=False))[:, :, 0]
    mean = (Ks @ np.linalg.solve(A, y))[::2, 0]
    var = np.diag(Kxx - Ks @ np.linalg.solve(A, Ks.T))[::2]
    z = (samples.mean(0) - mean) / np.sqrt(var / S)
    assert np.max(np.abs(z)) < 4.5
    assert np.max(np.abs(samples.var(0, ddof=1) / var - 1.0)) < 4.5 * np.sqrt(2.0 / S) + 0.01


def test_estimator_with_time_dim():
    """``ScalableGPRegressor(solver=SKI(time_dim=2))`` fits with nothing else set (automatic spatial
    grid, refined to its tolerance) and predicts the exact GP's mean and standard deviation closely."""
    X, y, noise = _data(120, seed=1)
    k = _kernel()
    est = ScalableGPRegressor(k, alpha=noise, optimizer=None, solver=SKI(time_dim=2, n_probes=4, n_check=8),
                              random_state=0).fit(X, y[:, 0])
    assert est.solver_ == "ski" and est.solver_info_["time_slices"] == 4
    mean, sd = est.predict(XS, return_std=True)
    assert mean.dtype == np.float64 and sd.dtype == np.float64
    K = np.asarray(eqx.filter_jit(lambda k, X: k.gram(X))(k, jnp.asarray(X))) + np.diag(noise)
    Ks = np.asarray(eqx.filter_jit(lambda k, A, B: k.cross(A, B))(k, jnp.asarray(XS), jnp.asarray(X)))
    var = 1.5 - np.sum(Ks * np.linalg.solve(K, Ks.T).T, axis=1)
    np.testing.assert_allclose(mean, Ks @ np.linalg.solve(K, y[:, 0]), atol=0.01 * np.std(y))
    np.testing.assert_allclose(sd, np.sqrt(var), rtol=0.02)


def test_time_dim_errors_name_the_fix():
    X, _, noise = _data(30)
    with pytest.raises(ValueError, match="time_dim"):
        SKI(time_dim=5).for_data(_kernel(), X)
    with pytest.raises(ValueError, match="ActiveDims"):
        SKI(time_dim=2).for_data(Constant(1.0) * Matern(0.3), X)  # not space x time
    with pytest.raises(ValueError, match="samples"):
        SKI(time_dim=2, variance_method="samples")
    with pytest.raises(ValueError, match="time_dim"):
        SKI(time_dim=-1)
    with pytest.raises(ValueError, match="one node"):
        from skgpx.operators import Grid

        SKI(time_dim=2, grid=Grid([0, 0, 0], [0.1, 0.1, 0.1], [12, 12, 4])).for_data(_kernel(), X)
