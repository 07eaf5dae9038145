"""The distinct-hyperparameter task M-step: tasks evaluated by subsets, each at its own rank."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

from skgpx.datasets import make_magma_data
from skgpx.kernels import RBF, Constant, White
from skgpx.magma import MagmaParams, build_layout, canonical, e_step, task_data_from_layout
from skgpx.magma._em import _task_bounds
from skgpx.magma._objectives import m_step_covariance, task_objectives_and_grads
from skgpx.magma._separable import _at, separable_m_step
from skgpx.magma._taskcov import rank_cap, task_needs

JIT = jnp.asarray(1e-8)


def _problem(shortest=1.0):
    X, y, g = make_magma_data(10, 200, shared_inputs=False, shared_hyperparameters=False, grid_size=400,
                              task_length_scale=(1.5, 4.0), random_state=8)
    layout = build_layout(X, (y - y.mean()) / y.std(), g, chunk_budget=3 * 200 * 200)  # chunks of 3 tasks
    data = task_data_from_layout(layout)
    kt = Constant(0.4) * RBF(2.5, length_scale_bounds=(min(shortest, 1.0), 10.0)) + White(0.05)
    th = np.tile(np.asarray(kt.theta), (layout.X.shape[0], 1))
    th[:, 1] = np.log(np.linspace(1.0, 5.0, layout.X.shape[0]))  # length scales, so numerical ranks, differ
    th[0, 1] = np.log(shortest)
    k0 = Constant(1.0) * RBF(1.5)
    params = canonical(MagmaParams(k0, kt, np.asarray(k0.theta), th, np.asarray(0.0), False))
    post = e_step(params, data, JIT)
    F, lowrank = m_step_covariance(post, JIT, data.X.shape[1])
    return data, params, post, F, lowrank, jnp.asarray(1.0 / float(data.n_obs))


def test_subset_evaluation_equals_full_evaluation():
    data, params, post, F, lowrank, scale = _problem()
    args = (params.theta_task, params, data, post.mean, F, JIT, scale, lowrank, 32)
    f_all, g_all = task_objectives_and_grads(*args)
    n_pad = data.X.shape[0]
    for chosen in ([7, 2, 5, 0], [9], list(range(10))):  # partial chunks, one task, all
        rows = np.zeros(n_pad, np.int32)
        rows[: len(chosen)] = chosen
        f, g = task_objectives_and_grads(*args, jnp.asarray(rows), jnp.asarray(len(chosen), jnp.int32))
        np.testing.assert_allclose(np.asarray(f)[chosen], np.asarray(f_all)[chosen], rtol=1e-12)
        np.testing.assert_allclose(np.asarray(g)[chosen], np.asarray(g_all)[chosen], rtol=1e-10, atol=1e-14)
        others = np.setdiff1d(np.arange(n_pad), chosen)
        assert np.all(np.asarray(f)[others] == 0) and np.all(np.asarray(g)[others] == 0)


@pytest.mark.parametrize("shortest", [1.0, 0.1])  # 0.1: task 0 is too rough for a low rank
def test_per_task_ranks_suffice_and_match_the_dense_m_step(shortest):
    data, params, post, F, lowrank, scale = _problem(shortest)
    bounds = _task_bounds(params, data.X.shape[0])
    x, res, ranks, needs_after, _ = separable_m_step(
        params, data, post.mean, F, lowrank, JIT, scale, bounds, lambda p: task_needs(p, data, JIT), None, 200, 1e-10
    )
    real = slice(0, data.n_tasks)
    assert len(np.unique(ranks[real])) > 1  # tasks at ranks of their own
    assert np.all(ranks[1 : data.n_tasks] > 0) and (ranks[0] == 0) == (shortest < 1.0)  # dense where needed
    assert np.all(ranks[real] <= rank_cap(data))
    np.testing.assert_array_equal(needs_after[1], task_needs(_at(params, x), data, JIT)[1])  # needs at x
    low = ranks[real] > 0
    assert np.all(needs_after[1][real][low] <= ranks[real][low])  # every rank still suffices at the result
    assert res.fun <= res.fun_start
    xd, resd, ranks_d, _, _ = separable_m_step(params, data, post.mean, F, lowrank, JIT, scale, bounds, lambda p: None,
                                               None, 200, 1e-10)
    assert np.all(ranks_d == 0)
    np.testing.assert_allclose(res.fun_rows[real], resd.fun_rows[real], rtol=1e-7)
    np.testing.assert_allclose(x[real], xd[real], atol=2e-3)
