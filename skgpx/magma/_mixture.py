"""The mean-process moments a MagmaClust task sees: a mixture of the cluster hyper-posteriors.

MagmaClust's task M-step (MAGMA.md A.4, ``elbo_clust_multi_GP``) maximises, per task,

    sum_k tau_ik [log N(y_i; m_k(t_i), Psi_i) - 1/2 tr(Psi_i^{-1} C_k(t_i))].

Expanding the quadratic forms around the task's mixture mean ``mbar_i = sum_k tau_ik m_k``
(``sum_k tau_ik = 1``),

    sum_k tau_ik (y - m_k)^T W (y - m_k) = (y - mbar)^T W (y - mbar) + sum_k tau_ik d_k^T W d_k,
    d_k = m_k - mbar,

so the objective is exactly Magma's task term ``log N(y_i; mbar_i, Psi_i) - 1/2 tr(Psi_i^{-1}
Cbar_i)`` with the task's own covariance

    Cbar_i = sum_k tau_ik (C_k + d_k d_k^T)   (on t_i).

Magma's task objectives, their hand-written reverse rules, the low-rank task covariances
and the per-task M-step all apply unchanged (:class:`~._objectives.TaskMoments`). When
every cluster's M-step covariance is a factor ``F_k`` (:func:`~._objectives.m_step_covariance`),
``Cbar_i = Fbar_i Fbar_i^T`` with ``Fbar_i = [sqrt(tau_ik) F_k(t_i), sqrt(tau_ik) d_k]_k``,
``K (q + 1)`` columns.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ._linalg import cho_solve, tri_solve
from ._objectives import TaskMoments

__all__ = ["MixtureMoments"]


class MixtureMoments(TaskMoments):
    """Per-task mixture moments: cluster means ``(K, N)``, covariances ``(K, N, N)`` or
    factors ``(K, N, q)`` (``lowrank``), memberships ``tau`` ``(M_pad, K)`` (zero rows for
    padded tasks)."""

    means: object
    covs: object
    tau: object

    def at(self, i, idx, mask):
        t = self.tau[i]
        Mk = self.means[:, idx]  # (K, n)
        mbar = t @ Mk
        s = jnp.sqrt(t)
        D = (Mk - mbar[None, :]) * s[:, None]  # rows sqrt(tau_k) d_k
        if self.lowrank:
            F = self.covs[:, idx, :] * s[:, None, None]  # (K, n, q)
            F = jnp.moveaxis(F, 0, 1).reshape(idx.shape[0], -1)
            return mbar, jnp.concatenate([F, D.T], axis=1)
        C = jnp.einsum("k,kab->ab", t, self.covs[:, idx[:, None], idx[None, :]])
        return mbar, C + D.T @ D

    def pooled(self, L, y, mask):
        """Shared inputs: ``sum_ik tau_ik ||L^{-1}(y_i - m_k)||^2`` and ``sum_k n_k tr(Psi^{-1} C_k)``."""
        A = tri_solve(L, jnp.where(mask, y, 0.0).T)  # (N, M_pad)
        B = tri_solve(L, self.means.T)  # (N, K)
        quad = jnp.sum(self.tau * (jnp.sum(A * A, axis=0)[:, None] - 2.0 * A.T @ B + jnp.sum(B * B, axis=0)[None, :]))
        n_k = jnp.sum(self.tau, axis=0)
        if self.lowrank:
            tr_k = jax.vmap(lambda F: jnp.sum(tri_solve(L, F) ** 2))(self.covs)
        else:
            tr_k = jax.vmap(lambda C: jnp.trace(cho_solve(L, C)))(self.covs)
        return quad, jnp.dot(n_k, tr_k)

    def subset(self, rows):
        return MixtureMoments(lowrank=self.lowrank, means=self.means, covs=self.covs, tau=self.tau[rows])
