"""Magma E-step: the Gaussian hyper-posterior of the mean process on the union grid.

MAGMA.md A.2 (Leroy et al. 2022, Prop. 2):

    C^{-1} = K0^{-1} + S,          S = sum_i P_i^T Psi_i^{-1} P_i
    m      = C (K0^{-1} m0 + b),   b = sum_i P_i^T Psi_i^{-1} y_i

``C^{-1}`` and ``K0^{-1}`` are never formed. With ``K0 = L0 L0^T`` and the
well-conditioned ``B = I + L0^T S L0 = LB LB^T`` (eigenvalues >= 1):

    C = L0 B^{-1} L0^T,    m = L0 B^{-1} (L0^{-1} m0 + L0^T b),
    log|C| = log|K0| - log|B|.

The same factors give the marginal likelihood, the EM objective (MAGMA.md A.2
monitoring: the ELBO at this ``q``): ``y ~ N(m0, P K0 P^T + Psi)`` with ``Psi`` block
diagonal, so by the matrix determinant lemma and Woodbury, with ``r = y - m0`` and
``c = L0^T P^T Psi^{-1} r = L0^T (b - m0 S 1)``,

    log p(y | Theta) = -1/2 (r^T Psi^{-1} r - |LB^{-1} c|^2) - 1/2 (log|Psi| + log|B|)
                       - n/2 log 2 pi,
    r^T Psi^{-1} r = sum_i y_i^T Psi_i^{-1} y_i - 2 m0 1^T b + m0^2 1^T S 1,

where only ``sum_i y_i^T Psi_i^{-1} y_i`` and ``sum_i log|Psi_i|`` are new per-task sums.

``S`` and ``b`` are scatter-adds of the per-task ``Psi_i^{-1}`` blocks (batched
:func:`~skgpx.solvers.cho_inverse`, padded rows masked to zero), accumulated chunk
by chunk with ``lax.scan`` so memory stays O(N^2 + chunk * n_max^2); on a mesh, each
device scans its share of the tasks and the sums are added once (:mod:`._shard`). When all
tasks share the grid and the hyperparameters, one factorisation of ``Psi`` serves
every task: ``L0^T S L0 = M (Lpsi^{-1} L0)^T (Lpsi^{-1} L0)`` and
``b = Psi^{-1} sum_i y_i`` (MAGMA.md item 3).

A padded grid (``grid_mask``, :mod:`._layout` ``pad=True``) adds points observed by no
task (``S``, ``b`` zero there) with an identity block in ``K0``: ``L0``, ``B`` and ``LB`` are
then block diagonal, the real block that of the unpadded grid, the padded one the identity
(mean ``m0``, ``white`` zero, log-determinant zero), so the hyper-posterior on the real grid
and ``log p(y | Theta)`` are unchanged. :meth:`HyperPosterior.cov_sqrt` is zero on the
padded points, so the M-step's trace terms see no padded variance.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ..solvers import cho_inverse
from ._linalg import LOG_2PI, cho_solve, chol, logdet_from_chol, tri_solve
from ._model import MagmaParams, TaskData, grid_chol
from ._progress import chunk_done
from ._shard import like_tasks, over_tasks
from ._taskcov import task_factor, woodbury_precision

__all__ = ["HyperPosterior", "e_step", "task_precisions", "posterior_from_precisions"]


class HyperPosterior(eqx.Module):
    """``N(mean, C)`` of the mean process on ``grid``, stored through Cholesky factors.

    ``L0 = chol(K0(T, T) + jitter)``, ``LB = chol(I + L0^T S L0)``, ``C = R R^T`` with
    ``R = L0 LB^{-T}``, and ``white = L0^{-1} (mean - m0)`` (used by the
    conditioning formula of MAGMA.md A.3 step 1). ``lml``: ``log p(y | Theta)`` at the
    hyperparameters of this E-step (``None`` for a posterior built otherwise). ``grid_mask``:
    the real grid points of a padded grid (``None``: none padded; module docstring).
    """

    grid: object
    mean: object
    L0: object
    LB: object
    white: object
    m0: object
    lml: object = None
    grid_mask: object = None

    def cov_sqrt(self):
        """``R`` with ``C = R R^T`` (zero rows on padded grid points)."""
        R = tri_solve(self.LB, self.L0.T).T
        return R if self.grid_mask is None else jnp.where(self.grid_mask[:, None], R, 0.0)

    def cov(self):
        R = self.cov_sqrt()
        return R @ R.T

    def logdet_cov(self):
        return logdet_from_chol(self.L0) - logdet_from_chol(self.LB)


def task_precisions(params: MagmaParams, data: TaskData, jitter, task_rank=0, weights=None, progress=False):
    """``S``, ``b`` by chunked scatter-add (``L0^T S L0`` is built by the caller), and
    ``sum_i y_i^T Psi_i^{-1} y_i``, ``sum_i log|Psi_i|``.

    ``task_rank > 0``: each ``Psi_i^{-1}`` by Woodbury from its low-rank factor
    (:mod:`._taskcov`), ``O(n^2 r)`` instead of a Cholesky and an inverse.
    ``weights`` ``(M_pad, K)``: ``K`` weighted sums ``S_k = sum_i w_ik P_i^T Psi_i^{-1} P_i``,
    ``b_k = sum_i w_ik P_i^T Psi_i^{-1} y_i`` instead (``(K, N, N)``, ``(K, N)``; MagmaClust's
    VE-step, MAGMA.md A.4), from the same per-task factorisations. ``progress``: report the
    chunks done (``verbose``, :mod:`._progress`).
    """
    N = data.grid.shape[0]
    thetas = params.task_thetas(data.X.shape[0])
    dtype = data.y.dtype
    lead = () if weights is None else (weights.shape[1],)
    n_chunks = data.X.shape[0] // data.chunk

    def sums(params, jitter, *arrays):  # over this device's tasks (all of them without a mesh: ._shard)
        def per_task(x, y, mask, th):
            k = params.task_kernel.with_theta(th)
            y = jnp.where(mask, y, 0.0)
            if task_rank:
                Pinv, logdet = woodbury_precision(*task_factor(k, x, mask, jitter, task_rank), mask)
                r = Pinv @ y
                return Pinv, r, jnp.dot(y, r), logdet
            L = chol(k.gram(x, mask), jitter, mask)
            both = mask[:, None] & mask[None, :]
            Pinv = jnp.where(both, cho_inverse(L), 0.0)
            r = jnp.where(mask, cho_solve(L, y), 0.0)
            return Pinv, r, jnp.dot(y, r), logdet_from_chol(L)

        def body(carry, xs):
            S, b, quad, logdet = carry
            X, y, idx, mask, th = xs[:5]
            Pinv, r, q, ld = jax.vmap(per_task)(X, y, mask, th)
            if progress:
                chunk_done("E-step", n_chunks, q)
            if weights is not None:
                w = xs[5]
                if data.shared_inputs:
                    S = S + jnp.einsum("ck,cab->kab", w, Pinv)
                    b = b + w.T @ r
                else:
                    for k in range(w.shape[1]):  # K scatter-adds: no (chunk, K, n, n) array
                        S = S.at[k, idx[:, :, None], idx[:, None, :]].add(w[:, k, None, None] * Pinv)
                        b = b.at[k, idx].add(w[:, k, None] * r)
            elif data.shared_inputs:  # index[i] = arange(N): a plain sum
                S = S + jnp.sum(Pinv, axis=0)
                b = b + jnp.sum(r, axis=0)
            else:
                S = S.at[idx[:, :, None], idx[:, None, :]].add(Pinv)
                b = b.at[idx].add(r)
            return (S, b, quad + jnp.sum(q), logdet + jnp.sum(ld)), None

        zero = jnp.zeros((), dtype)
        init = (jnp.zeros(lead + (N, N), dtype), jnp.zeros(lead + (N,), dtype), zero, zero)
        out, _ = jax.lax.scan(body, like_tasks(init, arrays[0]), data.chunked(*arrays))
        return out

    arrays = (data.X, data.y, data.index, data.mask, thetas) + (() if weights is None else (weights,))
    S, b, quad, logdet = over_tasks(sums, arrays, (params, jitter), unit=data.chunk)
    return S, b, quad, logdet


def posterior_from_precisions(T, L0, LtSL, b, m0):
    """``(LB, u, w0)``: ``LB = chol(I + L0^T S L0)``, ``u = L0^{-1} mean`` and ``w0 = L0^{-1} m0``
    (the E-step's solve, module docstring), from ``L0^T S L0`` and ``b``."""
    N = T.shape[0]
    LB = jnp.linalg.cholesky(jnp.eye(N, dtype=T.dtype) + 0.5 * (LtSL + LtSL.T))
    w0 = tri_solve(L0, jnp.broadcast_to(m0, (N,)))
    u = cho_solve(LB, w0 + L0.T @ b)  # B^{-1}(L0^{-1} m0 + L0^T b) = L0^{-1} mean
    return LB, u, w0


@eqx.filter_jit
def e_step(params: MagmaParams, data: TaskData, jitter, task_rank: int = 0, progress: bool = False) -> HyperPosterior:
    """Hyper-posterior of the mean process on ``data.grid`` given ``params`` (A.2 E-step).

    ``task_rank > 0``: task precisions from low-rank factors (:mod:`._taskcov`). ``progress``:
    report the task chunks done (``verbose``; :mod:`._progress`).
    """
    T, gm = data.grid, data.grid_mask
    N = T.shape[0]
    L0 = grid_chol(params.mean_kernel_at(), T, jitter, gm)
    ones = jnp.ones((N,), T.dtype)
    if data.shared_inputs and params.shared_hyperparameters:
        # One factorisation of Psi for all tasks (MAGMA.md item 3).
        Lp = grid_chol(params.task_kernel.with_theta(params.theta_task), T, jitter, gm)
        A = tri_solve(Lp, L0)
        observed = jnp.ones((N,), T.dtype) if gm is None else gm.astype(T.dtype)  # S is zero off the real grid
        A = A * observed[:, None]
        n_real = jnp.sum(data.mask[:, 0])
        LtSL = n_real * (A.T @ A)
        Y = jnp.where(data.mask, data.y, 0.0).T  # (N, M_pad), zero for padded tasks
        b = cho_solve(Lp, jnp.sum(Y, axis=1))
        quad = jnp.sum(tri_solve(Lp, Y) ** 2)
        logdet_psi = n_real * logdet_from_chol(Lp)
        S1 = n_real * cho_solve(Lp, observed)  # S 1
    else:
        S, b, quad, logdet_psi = task_precisions(params, data, jitter, task_rank, progress=progress)
        LtSL = L0.T @ S @ L0
        S1 = S @ ones
    m0 = jnp.asarray(params.m0, T.dtype)
    LB, u, w0 = posterior_from_precisions(T, L0, LtSL, b, m0)
    mean = L0 @ u
    # log p(y | Theta), see the module docstring.
    quad_r = quad - 2.0 * m0 * jnp.sum(b) + m0 * m0 * jnp.dot(ones, S1)
    c = tri_solve(LB, L0.T @ (b - m0 * S1))
    n_obs = jnp.sum(data.mask)
    lml = -0.5 * (quad_r - jnp.dot(c, c)) - 0.5 * (logdet_psi + logdet_from_chol(LB)) - 0.5 * n_obs * LOG_2PI
    return HyperPosterior(grid=T, mean=mean, L0=L0, LB=LB, white=u - w0, m0=m0, lml=lml, grid_mask=gm)
