"""Magma prediction: the hyper-posterior at new inputs and the posterior of (new or training) tasks.

MAGMA.md A.3 (Leroy et al. 2022, Sec. 3.3, Prop. 3 and eq. (7)-(8)).

1. Hyper-posterior at inputs ``A`` by conditioning ``mu0 | mu0(T)`` and
   marginalising over ``q(mu0(T)) = N(m, C)`` (no new E-step on ``T u A``). With
   ``V = L0^{-1} K0(T, A)``, ``white = L0^{-1}(m - m0)`` and ``C = L0 B^{-1} L0^T``:

       m(A) = m0 + V^T white
       C(A) = K0(A, A) - V^T V + V^T B^{-1} V = K0(A, A) - V^T V + W^T W,   W = LB^{-1} V

2. Task posterior (multi-task prior mean ``m(.)`` and covariance ``K_theta* + C(.)``),
   observed inputs ``t*`` and targets ``t^p``:

       G_oo = Psi*(t*, t*) + C(t*, t*)          (Psi* includes the task noise)
       G_po = K*(t^p, t*) + C(t^p, t*),   G_pp = Psi*(t^p, t^p) + C(t^p, t^p)
       mean = m(t^p) + G_po G_oo^{-1} (y* - m(t*))
       cov  = G_pp - G_po G_oo^{-1} G_op

   ``G_pp`` uses the task kernel's Gram matrix, so a ``White`` term adds the noise on
   its diagonal: the predictive distribution is for new noisy observations (as the R
   package's ``Var`` and scikit-learn's ``predict`` with a ``WhiteKernel``).

3. Hyperparameters of a new task (distinct-hyperparameter models), eq. (7):
   ``theta* = argmax log N(y*; m(t*), Psi_theta*(t*, t*) + C(t*, t*))``, optionally plus
   ``log p(theta*)`` with ``p`` a Gaussian fitted to the training tasks' log-hyperparameters
   (:func:`population_prior`). Maximum likelihood on a new task's few points often puts the
   noise or the task variance near zero and its intervals far too narrow; the population
   prior is the hierarchical model's answer (the new task is one more draw from the
   population the training tasks came from).

Everything is vectorised over tasks (``vmap`` inside ``lax.map`` over chunks of
tasks), with padded observed/target rows masked exactly as in training.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._estep import HyperPosterior
from ._linalg import LOG_2PI, cho_solve, chol, logdet_from_chol, tri_solve

__all__ = ["mean_process_at", "task_posteriors", "new_task_objective_and_grad", "population_prior"]


def _hyper_at(post: HyperPosterior, mean_kernel, A, mask=None):
    """``(m(A), C(A))`` (step 1); padded rows of ``A`` get mean ``m0`` and identity covariance.
    Padded grid points have zero cross-covariance with ``A`` (and ``L0``, ``LB`` identity there),
    so they add nothing."""
    K_TA = mean_kernel.cross(post.grid, A, post.grid_mask, mask)
    V = tri_solve(post.L0, K_TA)
    W = tri_solve(post.LB, V)
    mean = post.m0 + V.T @ post.white
    cov = mean_kernel.gram(A, mask) - V.T @ V + W.T @ W
    if mask is not None:
        both = mask[:, None] & mask[None, :]
        cov = jnp.where(both, cov, jnp.eye(A.shape[0], dtype=A.dtype))
        mean = jnp.where(mask, mean, post.m0)
    return mean, cov


@eqx.filter_jit
def mean_process_at(post: HyperPosterior, mean_kernel, A, full_cov: bool, mask=None):
    """Mean and covariance (``full_cov``) or variance of the mean process at ``A`` ``(m, d)``
    (``mask``: real rows of a padded ``A``)."""
    mean, cov = _hyper_at(post, mean_kernel, A, mask)
    return mean, (cov if full_cov else jnp.diagonal(cov))


def _one_task(post, mean_kernel, task_kernel, theta, Xo, yo, mo, Xp, mp, jitter, full_cov):
    n = Xo.shape[0]
    A = jnp.concatenate([Xo, Xp], axis=0)
    mA = jnp.concatenate([mo, mp], axis=0)
    mean_A, cov_A = _hyper_at(post, mean_kernel, A, mA)
    both = mA[:, None] & mA[None, :]
    # Task-kernel Gram on [t*, t^p]: identity on padded rows, White noise on the diagonal.
    G = task_kernel.with_theta(theta).gram(A, mA) + jnp.where(both, cov_A, 0.0)
    G_oo, G_po, G_pp = G[:n, :n], G[n:, :n], G[n:, n:]
    L = chol(G_oo, jitter, mo)
    r = jnp.where(mo, yo - mean_A[:n], 0.0)
    mean = mean_A[n:] + G_po @ cho_solve(L, r)
    Z = tri_solve(L, jnp.where(mo[None, :], G_po, 0.0).T)  # L^{-1} G_op
    if full_cov:
        cov = G_pp - Z.T @ Z
        cov = jnp.where(mp[:, None] & mp[None, :], cov, 0.0)
        return jnp.where(mp, mean, 0.0), cov
    var = jnp.diagonal(G_pp) - jnp.sum(Z * Z, axis=0)
    return jnp.where(mp, mean, 0.0), jnp.where(mp, var, 0.0)


@eqx.filter_jit
def task_posteriors(post, mean_kernel, task_kernel, thetas, Xo, yo, mo, Xp, mp, jitter, full_cov: bool, batch: int):
    """Posterior of every task (step 2), ``batch`` tasks at a time.

    ``thetas`` ``(B, p)``; observed ``Xo (B, n, d)``, ``yo``/``mo (B, n)``; targets
    ``Xp (B, m, d)``, ``mp (B, m)``. Returns means ``(B, m)`` and variances ``(B, m)``
    or covariances ``(B, m, m)``; padded targets are 0.
    """

    def f(args):
        return _one_task(post, mean_kernel, task_kernel, *args, jitter, full_cov)

    return jax.lax.map(f, (thetas, Xo, yo, mo, Xp, mp), batch_size=batch)


def _new_task_lml(theta, post, mean_kernel, task_kernel, Xo, yo, mo, jitter):
    """``log N(y*; m(t*), Psi_theta(t*) + C(t*))`` for one padded task (eq. (7))."""
    mean, cov = _hyper_at(post, mean_kernel, Xo, mo)
    both = mo[:, None] & mo[None, :]
    G = task_kernel.with_theta(theta).gram(Xo, mo) + jnp.where(both, cov, 0.0)
    L = chol(G, jitter, mo)
    a = tri_solve(L, jnp.where(mo, yo - mean, 0.0))
    return -0.5 * jnp.dot(a, a) - 0.5 * logdet_from_chol(L) - 0.5 * jnp.sum(mo) * LOG_2PI


@eqx.filter_jit
def new_task_objective_and_grad(thetas, post, mean_kernel, task_kernel, Xo, yo, mo, jitter, scale, prior=None):
    """Value and gradient of ``-scale * sum_j [log N(y*_j; ...) + log p(theta_j)]`` over new tasks ``j``.

    `prior`: ``None`` (maximum likelihood, eq. (7)) or ``(mean, precision)`` of a Gaussian
    on the log-hyperparameters, ``log p(theta) = -1/2 (theta - mean)^T precision (theta - mean)``
    (the population of the training tasks' hyperparameters: a maximum a posteriori estimate).
    Fully masked (padded) tasks add exactly zero, prior included.
    """

    def total(th):
        f = lambda t, x, y, m: _new_task_lml(t, post, mean_kernel, task_kernel, x, y, m, jitter)  # noqa: E731
        value = jnp.sum(jax.vmap(f)(th, Xo, yo, mo))
        if prior is not None:
            delta = jnp.where(jnp.any(mo, axis=1)[:, None], th - prior[0], 0.0)
            value = value - 0.5 * jnp.sum((delta @ prior[1]) * delta)
        return -scale * value

    return jax.value_and_grad(total)(thetas)


def population_prior(task_thetas, min_tasks_full: int = 2, task_covariance=None):
    """Gaussian ``(mean, precision)`` of the training tasks' log-hyperparameters ``(M, p)``, or ``None``.

    ``None`` when they are all equal (shared hyperparameters: no spread to learn from).
    The covariance is the sample covariance of ``task_thetas`` plus ``task_covariance``
    ``(p, p)``, the average posterior covariance of one task's ``theta_i`` when the
    thetas are posterior modes under a previous prior (the empirical-Bayes EM update;
    without it, re-fitting a prior to the modes it shrank collapses the spread to zero);
    diagonal when there are fewer than ``min_tasks_full * p`` tasks, with a ridge of 1e-3
    of its mean variance so that a parameter every task put on the same bound does not
    make it singular.
    """
    T = np.asarray(task_thetas, np.float64)
    M, p = T.shape
    if M < 2 or np.allclose(T, T[0]):
        return None
    mean = T.mean(axis=0)
    cov = np.cov(T, rowvar=False).reshape(p, p)
    if task_covariance is not None:
        cov = cov + np.asarray(task_covariance, np.float64).reshape(p, p)
    if M < min_tasks_full * p:
        cov = np.diag(np.diag(cov))
    ridge = 1e-3 * max(float(np.trace(cov)) / p, 1e-12)
    return mean, np.linalg.inv(cov + ridge * np.eye(p))
