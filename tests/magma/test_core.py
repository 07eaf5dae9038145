"""The Magma numerical core against dense NumPy formulas (MAGMA.md A.2, A.3) at small sizes."""

from __future__ import annotations

import numpy as np
import pytest

import jax.numpy as jnp

from skgpx.datasets import make_magma_data
from skgpx.kernels import RBF, Constant, White
from skgpx.magma import (
    MagmaParams,
    build_layout,
    canonical,
    e_step,
    elbo,
    mean_process_at,
    task_data_from_layout,
    task_posteriors,
)

JIT = 1e-8


def _kernels():
    return Constant(1.3) * RBF(0.9), Constant(0.6) * RBF(0.7) + White(0.05)


def _params(shared, M_pad, m0=0.2):
    k0, kt = _kernels()
    th = np.asarray(kt.theta)
    if not shared:
        rng = np.random.default_rng(1)
        th = th + 0.3 * rng.standard_normal((M_pad, th.size))
    return canonical(MagmaParams(k0, kt, np.asarray(k0.theta), th, np.asarray(m0), shared))


def _jittered(K):
    return K + JIT * np.mean(np.diag(K)) * np.eye(K.shape[0])


def _dense_reference(params, layout):
    """Dense E-step, ELBO pieces and log p(y) with explicit inverses (the formulas as written)."""
    k0 = params.mean_kernel_at()
    T = layout.grid
    K0 = _jittered(np.asarray(k0.gram(jnp.asarray(T))))
    N = T.shape[0]
    prec = np.linalg.inv(K0)
    rhs = prec @ np.full(N, float(params.m0))
    thetas = np.asarray(params.task_thetas(layout.X.shape[0]))
    blocks = []
    for i in range(layout.n_tasks):
        m = layout.mask[i]
        x, yi, idx = layout.X[i][m], layout.y[i][m], layout.index[i][m]
        Psi = _jittered(np.asarray(params.task_kernel.with_theta(thetas[i]).gram(jnp.asarray(x))))
        Pi = np.linalg.inv(Psi)
        prec[np.ix_(idx, idx)] += Pi
        rhs[idx] += Pi @ yi
        blocks.append((idx, yi, Psi))
    C = np.linalg.inv(prec)
    mean = C @ rhs
    # log p(y | Theta): y ~ N(m0, P K0 P^T + blockdiag(Psi_i)).
    idx_all = np.concatenate([b[0] for b in blocks])
    y_all = np.concatenate([b[1] for b in blocks])
    S = K0[np.ix_(idx_all, idx_all)].copy()
    o = 0
    for idx, _, Psi in blocks:
        S[o : o + len(idx), o : o + len(idx)] += Psi
        o += len(idx)
    r = y_all - float(params.m0)
    _, logdet = np.linalg.slogdet(S)
    lml = -0.5 * r @ np.linalg.solve(S, r) - 0.5 * logdet - 0.5 * len(r) * np.log(2 * np.pi)
    return mean, C, lml, blocks


@pytest.mark.parametrize("shared_inputs", [True, False])
@pytest.mark.parametrize("shared_hp", [True, False])
def test_e_step_and_elbo_match_dense(shared_inputs, shared_hp):
    X, y, g = make_magma_data(6, 7, shared_inputs=shared_inputs, grid_size=25, random_state=3)
    if not shared_inputs:  # ragged tasks: drop a few rows so padding is exercised
        keep = np.ones(len(y), bool)
        keep[[0, 1, 9, 20]] = False
        X, y, g = X[keep], y[keep], g[keep]
    y = (y - y.mean()) / y.std()
    layout = build_layout(X, y, g, chunk_budget=2 * 7 * 7)  # several chunks of tasks
    assert layout.shared_inputs == shared_inputs
    params = _params(shared_hp, layout.X.shape[0])
    data = task_data_from_layout(layout)
    post = e_step(params, data, JIT)
    mean, C, lml, _ = _dense_reference(params, layout)
    np.testing.assert_allclose(np.asarray(post.mean), mean, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(np.asarray(post.cov()), C, rtol=1e-7, atol=1e-9)
    _, logdet = np.linalg.slogdet(C)
    np.testing.assert_allclose(float(post.logdet_cov()), logdet, rtol=1e-9)
    # Right after an E-step the ELBO equals log p(y | Theta) (MAGMA.md A.2 monitoring),
    # which the E-step also computes from its own factors.
    np.testing.assert_allclose(float(elbo(params, data, post, JIT)), lml, rtol=1e-9)
    np.testing.assert_allclose(float(post.lml), lml, rtol=1e-9)


@pytest.mark.parametrize("checkpoint", [False, True])
@pytest.mark.parametrize("shared_hp", [True, False])
def test_task_objective_gradient_matches_dense_autodiff(shared_hp, checkpoint, monkeypatch):
    """The hand-written reverse rule of the task terms == autodiff of the formula with inverses."""
    import jax

    from skgpx.magma import _objectives
    from skgpx.magma._objectives import task_terms, task_terms_and_grad

    if checkpoint:  # the large-problem path: chunk bodies recomputed in the backward pass
        monkeypatch.setattr(_objectives, "_CHECKPOINT_ENTRIES", 0)

    X, y, g = make_magma_data(5, 6, shared_inputs=False, grid_size=20, random_state=4)
    keep = np.ones(len(y), bool)
    keep[[0, 7]] = False  # ragged tasks
    X, y, g = X[keep], y[keep], g[keep]
    layout = build_layout(X, (y - y.mean()) / y.std(), g, chunk_budget=2 * 6 * 6)
    params = _params(shared_hp, layout.X.shape[0])
    data = task_data_from_layout(layout)
    post = e_step(params, data, JIT)
    mean, cov = post.mean, post.cov()

    def dense(theta):
        thetas = jnp.broadcast_to(theta, (layout.X.shape[0],) + theta.shape[-1:]) if shared_hp else theta
        total = 0.0
        for i in range(layout.n_tasks):
            m = layout.mask[i]
            x, yi, idx = layout.X[i][m], layout.y[i][m], layout.index[i][m]
            K = params.task_kernel.with_theta(thetas[i]).gram(jnp.asarray(x))
            Psi = K + JIT * jnp.mean(jnp.diag(K)) * jnp.eye(len(idx))
            Pi = jnp.linalg.inv(Psi)
            r = yi - mean[idx]
            total += (-0.5 * r @ Pi @ r - 0.5 * jnp.linalg.slogdet(Psi)[1]
                      - 0.5 * jnp.trace(Pi @ cov[np.ix_(idx, idx)]) - 0.5 * len(idx) * np.log(2 * np.pi))
        return total

    th = params.theta_task
    fast = lambda t: task_terms(t, params, data, mean, cov, JIT)  # noqa: E731
    np.testing.assert_allclose(float(fast(th)), float(dense(th)), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(jax.grad(fast)(th)), np.asarray(jax.grad(dense)(th)), rtol=1e-7, atol=1e-9)
    # the M-step's forward-only value and gradient (tasks differentiated inside the chunk loop)
    value, grad = jax.jit(lambda t: task_terms_and_grad(t, params, data, mean, cov, JIT))(th)
    np.testing.assert_allclose(float(value), float(dense(th)), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(grad), np.asarray(jax.grad(dense)(th)), rtol=1e-7, atol=1e-9)


def test_hyperposterior_at_new_inputs_matches_a_fresh_e_step():
    """Conditioning formula (A.3 step 1) == E-step on T u A with A's points observed by no task."""
    X, y, g = make_magma_data(5, 6, shared_inputs=False, grid_size=30, random_state=0)
    y = (y - y.mean()) / y.std()
    layout = build_layout(X, y, g)
    params = _params(True, layout.X.shape[0])
    post = e_step(params, task_data_from_layout(layout), JIT)
    A = np.array([[0.33], [2.5], [7.77], [11.0]])
    m, cov = mean_process_at(post, params.mean_kernel_at(), jnp.asarray(A), True)
    # Dense: joint prior on [T, A], observations only on T.
    k0 = params.mean_kernel_at()
    TA = np.vstack([layout.grid, A])
    K = np.array(k0.gram(jnp.asarray(TA)))
    N = layout.grid.shape[0]
    K[:N, :N] = _jittered(K[:N, :N])
    _, C_T, _, blocks = _dense_reference(params, layout)
    # mu(A) | mu(T) is Gaussian; marginalise q(mu(T)) = N(m_T, C_T).
    G = K[N:, :N] @ np.linalg.inv(K[:N, :N])
    m_T = np.asarray(post.mean)
    mean_ref = float(params.m0) + G @ (m_T - float(params.m0))
    cov_ref = K[N:, N:] - G @ K[:N, N:] + G @ C_T @ G.T
    np.testing.assert_allclose(np.asarray(m), mean_ref, rtol=1e-7, atol=1e-8)
    np.testing.assert_allclose(np.asarray(cov), cov_ref, rtol=1e-6, atol=1e-8)


def test_task_posterior_matches_dense_and_ignores_padding():
    X, y, g = make_magma_data(4, 8, shared_inputs=False, grid_size=40, random_state=2)
    y = (y - y.mean()) / y.std()
    layout = build_layout(X, y, g)
    params = _params(True, layout.X.shape[0])
    post = e_step(params, task_data_from_layout(layout), JIT)
    k0, kt = params.mean_kernel_at(), params.task_kernel.with_theta(params.theta_task)
    rng = np.random.default_rng(0)
    xo, yo = np.sort(rng.uniform(0, 10, (5, 1)), 0), rng.standard_normal(5)
    xp = np.array([[1.0], [4.2], [9.0]])
    # Dense reference (A.3 step 2).
    A = np.vstack([xo, xp])
    mA, CA = mean_process_at(post, k0, jnp.asarray(A), True)
    mA, CA = np.asarray(mA), np.asarray(CA)
    G = np.asarray(kt.gram(jnp.asarray(A))) + CA
    Goo = _jittered(G[:5, :5])
    mean_ref = mA[5:] + G[5:, :5] @ np.linalg.solve(Goo, yo - mA[:5])
    cov_ref = G[5:, 5:] - G[5:, :5] @ np.linalg.solve(Goo, G[:5, 5:])
    # Padded: observations padded to 9 rows, targets to 6, inside a batch of 2 tasks.
    th = np.tile(np.asarray(params.theta_task), (2, 1))
    Xo = np.zeros((2, 9, 1)); Yo = np.zeros((2, 9)); Mo = np.zeros((2, 9), bool)
    Xo[0, [0, 2, 3, 6, 8]] = xo; Yo[0, [0, 2, 3, 6, 8]] = yo; Mo[0, [0, 2, 3, 6, 8]] = True
    Xo[1, :5] = xo; Yo[1, :5] = yo; Mo[1, :5] = True
    Xo[0, ~Mo[0]] = 123.0  # garbage in padded rows must not matter
    Xp = np.zeros((2, 6, 1)); Mp = np.zeros((2, 6), bool)
    Xp[0, [1, 2, 5]] = xp; Mp[0, [1, 2, 5]] = True
    Xp[1, :3] = xp; Mp[1, :3] = True
    for full in (True, False):
        mean, second = task_posteriors(
            post, k0, params.task_kernel, jnp.asarray(th), jnp.asarray(Xo), jnp.asarray(Yo), jnp.asarray(Mo),
            jnp.asarray(Xp), jnp.asarray(Mp), jnp.asarray(JIT), full, 1,
        )
        mean, second = np.asarray(mean), np.asarray(second)
        for b, sel in ((0, [1, 2, 5]), (1, [0, 1, 2])):
            np.testing.assert_allclose(mean[b, sel], mean_ref, rtol=1e-8, atol=1e-9)
            ref = cov_ref if full else np.diag(cov_ref)
            got = second[b][np.ix_(sel, sel)] if full else second[b, sel]
            np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("shared_hp", [True, False])
def test_low_rank_m_step_covariance(shared_hp, monkeypatch):
    """C's uninformed directions sit on K0's jitter floor; the M-step's low-rank factor is
    C minus that floor, and the task terms with the factor equal the full terms with F F^T."""
    import jax

    from skgpx.magma import _objectives
    from skgpx.magma._objectives import m_step_covariance, task_terms_and_grad

    X, y, g = make_magma_data(8, 12, shared_inputs=False, grid_size=200, random_state=3)
    layout = build_layout(X, (y - y.mean()) / y.std(), g)
    params = _params(shared_hp, layout.X.shape[0])
    data = task_data_from_layout(layout)
    post = e_step(params, data, jnp.asarray(JIT))
    monkeypatch.setattr(_objectives, "_LOWRANK_MAX_FRACTION", 10.0)  # 12-point tasks: allow it here
    F, lowrank = m_step_covariance(post, jnp.asarray(JIT), layout.X.shape[1])
    assert lowrank and F.shape[1] % 8 == 0 and F.shape[1] < F.shape[0]
    C = np.asarray(post.cov())
    floor = JIT * np.mean(np.diag(np.asarray(params.mean_kernel_at().gram(data.grid))))
    # C - F F^T is the floor on the complement of F's span: eigenvalues in [0, floor (1 + 1e-3)]
    ev = np.linalg.eigvalsh(C - np.asarray(F) @ np.asarray(F).T)
    assert ev.min() > -1e-12 and ev.max() < floor * 1.001
    # the factor path of the task terms == the dense path with C_m = F F^T
    th = params.theta_task
    Cm = jnp.asarray(np.asarray(F) @ np.asarray(F).T)
    v1, g1 = jax.jit(lambda t: task_terms_and_grad(t, params, data, post.mean, F, JIT, True))(th)
    v0, g0 = jax.jit(lambda t: task_terms_and_grad(t, params, data, post.mean, Cm, JIT, False))(th)
    np.testing.assert_allclose(float(v1), float(v0), rtol=1e-11)
    np.testing.assert_allclose(np.asarray(g1), np.asarray(g0), rtol=1e-8, atol=1e-11)
    # and differs from the exact C only at the jitter's size
    ve, _ = jax.jit(lambda t: task_terms_and_grad(t, params, data, post.mean, post.cov(), JIT, False))(th)
    assert abs(float(v1) - float(ve)) < 1e-6 * abs(float(ve))
    # too large a rank for the tasks: the full C
    monkeypatch.setattr(_objectives, "_LOWRANK_MAX_FRACTION", 0.0)
    C2, lowrank2 = m_step_covariance(post, jnp.asarray(JIT), layout.X.shape[1])
    assert not lowrank2 and C2.shape == (F.shape[0], F.shape[0])


def test_verbose_progress_per_task_chunk(monkeypatch, capsys):
    """verbose: the E-step reports its task chunks, the M-step optimisers their evaluations, once
    the work has run for _progress.EVERY seconds (0 here: every chunk, every evaluation)."""
    from skgpx.magma import _progress, minimize_lbfgsb

    monkeypatch.setattr(_progress, "EVERY", 0.0)
    X, y, g = make_magma_data(6, 7, shared_inputs=False, grid_size=25, random_state=3)
    layout = build_layout(X, y, g, chunk_budget=2 * 7 * 7)  # 2 tasks per chunk: 3 chunks
    assert layout.X.shape[0] // layout.chunk == 3
    data = task_data_from_layout(layout)
    params = _params(False, layout.X.shape[0])
    quiet = e_step(params, data, jnp.asarray(JIT))
    assert capsys.readouterr().out == ""
    loud = e_step(params, data, jnp.asarray(JIT), 0, True)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("[Magma] E-step")]
    assert [ln.split(" task chunks")[0] for ln in lines] == [f"[Magma] E-step: {k}/3" for k in (1, 2, 3)]
    np.testing.assert_array_equal(np.asarray(quiet.mean), np.asarray(loud.mean))

    def run():
        return minimize_lbfgsb(lambda x: (jnp.sum((x - 1.0) ** 2), 2.0 * (x - 1.0)), np.zeros(2),
                               [[-5.0, 5.0]] * 2, max_iter=20, tol=1e-12, label="test M-step")

    run()
    assert capsys.readouterr().out == ""  # outside a verbose EM iteration
    with _progress.reporting(True):
        res = run()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == res.n_eval and lines[0].startswith("[Magma] test M-step: 1 evaluations, objective 2 (")
