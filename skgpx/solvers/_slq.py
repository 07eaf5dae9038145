"""Stochastic Lanczos quadrature (SLQ) for ``log|A|`` from preconditioned CG coefficients.

For probes ``z ~ N(0, P)`` the vectors ``w = P^{-1/2} z`` are standard normal, so
Hutchinson's estimator gives ``log|P^{-1/2} A P^{-1/2}| = E[w^T log(Â) w]``. Running PCG on
``A u = z`` with preconditioner ``P`` is Lanczos on ``Â = P^{-1/2} A P^{-1/2}`` started
at ``w / ||w||``; its tridiagonal matrix is (Saad, *Iterative Methods*, Sec. 6.7.3)

    T_11 = 1/alpha_1,  T_ii = 1/alpha_i + beta_{i-1}/alpha_{i-1},  T_{i,i+1} = sqrt(beta_i)/alpha_i,

and Gauss quadrature gives ``w^T log(Â) w ~ ||w||^2 sum_l U_{1l}^2 log(theta_l)`` with
``T = U diag(theta) U^T`` (Golub & Meurant; Ubaru, Chen & Saad 2017). With ``||w||^2 = z^T P^{-1} z``:

    log|A| = log|P| + mean_j  z_j^T P^{-1} z_j * e_1^T log(T_j) e_1.

This is the mBCG estimator of Gardner et al. (2018): the probe solves ``A^{-1} z``
needed for the gradient's trace term give the log-determinant at no extra products.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["cg_tridiagonal", "slq_logdet", "slq_quadratures"]


def cg_tridiagonal(alphas, betas, n_steps):
    """Lanczos tridiagonal matrices ``(k, m, m)`` from CG coefficients ``(m, k)``.

    Column ``j`` uses its first ``n_steps[j]`` coefficients; the remaining rows are
    decoupled (diagonal 1, off-diagonal 0) so they do not touch ``e_1^T f(T) e_1``.
    """
    m = alphas.shape[0]
    i = jnp.arange(m)[:, None]
    used = i < n_steps[None, :]
    a = jnp.where(used, alphas, 1.0)
    b = jnp.where(used, betas, 0.0)
    a_prev = jnp.concatenate([jnp.ones_like(a[:1]), a[:-1]], axis=0)
    b_prev = jnp.concatenate([jnp.zeros_like(b[:1]), b[:-1]], axis=0)
    diag = jnp.where(used, 1.0 / a + b_prev / a_prev, 1.0)
    off_used = (i + 1) < n_steps[None, :]
    off = jnp.where(off_used, jnp.sqrt(jnp.maximum(b, 0.0)) / a, 0.0)[:-1]

    def build(d, o):
        return jnp.diag(d) + jnp.diag(o, 1) + jnp.diag(o, -1)

    return jax.vmap(build, in_axes=(1, 1))(diag, off)


def slq_quadratures(alphas, betas, n_steps, fn=jnp.log):
    """``e_1^T fn(T_j) e_1`` for every probe column ``j`` (shape ``(k,)``)."""
    T = cg_tridiagonal(alphas, betas, n_steps)
    theta, U = jnp.linalg.eigh(T)
    theta = jnp.maximum(theta, jnp.finfo(theta.dtype).tiny)
    return jnp.sum(U[:, 0, :] ** 2 * fn(theta), axis=-1)


def slq_logdet(res, cols: slice, Z, PinvZ=None, logdet_P=0.0):
    """``(log|A|, samples)`` from a PCG run ``res`` whose columns ``cols`` solved ``A u = z``
    for the probes ``Z ~ N(0, P)`` (``PinvZ = P^{-1} Z``, ``logdet_P = log|P|``; both omitted:
    plain CG, ``P = I``): ``log|P| + mean_j`` of the unbiased samples
    ``z_j^T P^{-1} z_j e_1^T log(T_j) e_1`` (module docstring)."""
    quad = slq_quadratures(res.alphas[:, cols], res.betas[:, cols], res.n_steps[cols])
    samples = jnp.sum(Z * (Z if PinvZ is None else PinvZ), axis=0) * quad
    return logdet_P + jnp.mean(samples), samples
