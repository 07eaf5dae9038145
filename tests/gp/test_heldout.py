"""Closed-form leave-one-out predictions of the low-rank posteriors against brute-force refits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from skgpx.gp._heldout import low_rank_loo
from skgpx.gp._lowrank import NystromInference, RFFInference
from skgpx.kernels import Matern, White


@pytest.mark.parametrize("inference", [NystromInference(n_components=12, landmark_method="uniform"),
                                       RFFInference(n_components=40)])
def test_loo_matches_dense_leave_one_out(inference):
    rng = np.random.default_rng(0)
    n = 40
    X = jnp.asarray(rng.uniform(size=(n, 2)))
    Y = jnp.asarray(np.sin(4 * X[:, :1]) + 0.1 * rng.normal(size=(n, 2)))
    kernel = 1.3 * Matern(0.4, nu=1.5) + White(0.01)
    noise = jnp.full((n,), 0.02)
    post = inference.condition(kernel, X, Y, noise, jax.random.key(0))
    C = np.asarray(post.operator.as_matrix())  # the approximate model's noisy covariance
    rows = np.arange(n)
    z, var, usable = low_rank_loo(post, Y, jnp.asarray(rows))
    for i in rows:
        keep = rows != i
        w = np.linalg.solve(C[np.ix_(keep, keep)], C[keep, i])
        mu = w @ np.asarray(Y)[keep]
        s2 = C[i, i] - C[keep, i] @ w
        np.testing.assert_allclose(var[i], s2, rtol=1e-8)
        np.testing.assert_allclose(z[i], (np.asarray(Y)[i] - mu) / np.sqrt(s2), rtol=1e-7, atol=1e-9)
    usable = np.asarray(usable)
    if isinstance(inference, NystromInference):
        # The 12 landmarks (residual zero) are flagged, every other point is usable.
        assert usable.sum() == n - 12
    else:
        assert usable.all()
