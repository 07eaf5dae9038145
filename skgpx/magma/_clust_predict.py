"""MagmaClust prediction: new tasks' memberships and hyperparameters, and the mixture predictive.

MAGMA.md A.5. With the training posterior ``q`` fixed, a task's outputs under cluster
``k`` are Gaussian, ``y* | Z = k ~ N(mhat_k(t*), Psi*(t*) + C_k(t*))`` (Magma's eq. (7) per
cluster), so

* a new task's membership is the exact posterior ``tau*_k propto pi_k N(y*; mhat_k(t*),
  Psi* + C_k(t*))`` (the marginal form: the R package mixes it with the variational
  trace form, MAGMA.md item 9; training tasks keep their VEM memberships);
* its own hyperparameters, when learned, maximise the mixture likelihood
  ``log sum_k pi_k N(y*; mhat_k(t*), Psi*_theta + C_k(t*))`` directly (one smooth
  objective, no alternation);
* the predictive at targets is the mixture of the per-cluster Magma predictives (Magma's
  :func:`~._predict.task_posteriors` with ``q(mu_k)``) with weights ``tau*``:
  mean ``sum_k tau_k mean_k``, variance ``sum_k tau_k (var_k + (mean_k - mean)^2)``.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._clust import cluster
from ._predict import _new_task_lml

__all__ = ["new_task_cluster_lml", "new_task_mixture_objective_and_grad", "mixture_moments"]


def _cluster_lmls(theta, hyper, mean_kernel, cluster_thetas, task_kernel, Xo, yo, mo, jitter):
    """``(K,)`` ``log N(y*; mhat_k(t*), Psi*_theta + C_k(t*))`` for one padded task."""

    def one(k, th0):
        return _new_task_lml(theta, cluster(hyper, k), mean_kernel.with_theta(th0), task_kernel, Xo, yo, mo, jitter)

    return jax.vmap(one)(jnp.arange(cluster_thetas.shape[0]), cluster_thetas)


def _tasks_lmls(thetas, hyper, mean_kernel, cluster_thetas, task_kernel, Xo, yo, mo, jitter):
    def f(t, x, y, m):
        return _cluster_lmls(t, hyper, mean_kernel, cluster_thetas, task_kernel, x, y, m, jitter)

    return jax.vmap(f)(thetas, Xo, yo, mo)


@eqx.filter_jit
def new_task_cluster_lml(thetas, hyper, mean_kernel, cluster_thetas, task_kernel, Xo, yo, mo, jitter):
    """``(B, K)`` per-cluster marginal log-likelihoods of ``B`` padded tasks."""
    return _tasks_lmls(thetas, hyper, mean_kernel, cluster_thetas, task_kernel, Xo, yo, mo, jitter)


@eqx.filter_jit
def new_task_mixture_objective_and_grad(thetas, log_pi, hyper, mean_kernel, cluster_thetas, task_kernel, Xo, yo, mo,
                                        jitter, scale):
    """``-scale * sum_j log sum_k pi_k N(y*_j; ...)`` and its gradient (independent tasks ``j``;
    fully masked, padded, tasks add zero)."""

    def total(th):
        lml = _tasks_lmls(th, hyper, mean_kernel, cluster_thetas, task_kernel, Xo, yo, mo, jitter)
        terms = jax.nn.logsumexp(lml + log_pi[None, :], axis=1)
        return -scale * jnp.sum(jnp.where(jnp.any(mo, axis=1), terms, 0.0))

    return jax.value_and_grad(total)(thetas)


def mixture_moments(tau, means, var):
    """Mixture mean and variance from per-cluster ``means``, ``var`` ``(K, m)`` with weights
    ``tau`` ``(K, m)`` (the weights of each row's task): ``sum_k tau_k (var_k + (mean_k - mean)^2)``."""
    mean = np.sum(tau * means, axis=0)
    d = means - mean[None, :]
    return mean, np.sum(tau * (var + d * d), axis=0)
