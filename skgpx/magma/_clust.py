"""MagmaClust (Leroy, Latouche, Guedj, Gey, JMLR 2023): a mixture of K mean processes, by variational EM.

Model (MAGMA.md A.4): ``Z_i ~ Mult(1, pi)``; given ``Z_ik = 1``,
``y_i = mu_k(t_i) + f_i(t_i) + eps_i`` with ``mu_k ~ GP(m_k, K_gamma_k)`` and Magma's task
process. Mean-field posterior ``q = prod_k N(mu_k; mhat_k, C_k) prod_i Mult(Z_i; tau_i)``,
and the evidence lower bound

    ELBO = sum_k [J0_k + 1/2 log|C_k| + N/2 (1 + log 2 pi)] + sum_ik tau_ik (E_ik + log pi_k - log tau_ik),
    J0_k = log N(mhat_k; m_k, K_k) - 1/2 tr(K_k^{-1} C_k),
    E_ik = log N(y_i; mhat_k(t_i), Psi_i) - 1/2 tr(Psi_i^{-1} C_k(t_i)).

One iteration (:class:`ClustEM`, driven by Magma's :func:`~._em.iterate`) raises it
coordinate by coordinate:

1. VM-step: ``pi_k = mean_i tau_ik``; the mean kernels ``gamma`` by L-BFGS-B on
   ``-sum_k J0_k`` (one set shared by the clusters, or one per cluster); the constant
   prior means ``m_k`` by GLS (exact); the task hyperparameters by Magma's task M-step on
   the mixture moments each task sees (:mod:`._mixture`).
2. VE-step: each ``q(mu_k)`` is Magma's E-step with the task precisions weighted by
   ``tau_ik`` (exact), then ``tau_ik propto pi_k exp(E_ik)`` (exact).

Every step maximises the ELBO over its block (the L-BFGS-B steps accept only
non-decreasing moves), so it increases at every iteration; :func:`~._em.iterate` warns
when it does not. As in the R package, the first VE-step keeps the initial (k-means)
memberships. No inverse is formed: the same Cholesky/Woodbury per-task precisions as
Magma (one pass builds all K weighted sums), the same low-rank task covariances.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..solvers._cholesky import cho_inverse
from ._em import EMOptions, TaskMStep, factor_rank, iterate, task_report, with_values
from ._estep import HyperPosterior, posterior_from_precisions, task_precisions
from ._linalg import LOG_2PI, cho_solve, chol, logdet_from_chol, tri_solve
from ._mixture import MixtureMoments
from ._model import MagmaParams, TaskData, canonical, grid_chol, grid_size
from ._objectives import gls_constant, m_step_covariance, mean_process_term
from ._optimize import minimize_lbfgsb
from ._shard import over_tasks
from ._taskcov import task_factor, woodbury_precision

__all__ = [
    "ClustParams",
    "ClustPosterior",
    "ClustResult",
    "ClustEM",
    "cluster",
    "cluster_e_step",
    "cluster_task_terms",
    "initial_memberships",
    "run_vem",
    "n_free_parameters",
]


class ClustParams(eqx.Module):
    """Hyperparameters of MagmaClust.

    ``theta0``: mean-kernel log-hyperparameters, ``(p0,)`` shared by the clusters or
    ``(K, p0)``; ``m0`` ``(K,)`` constant prior means; ``pi`` ``(K,)`` proportions;
    ``theta_task`` as in :class:`~._model.MagmaParams`.
    """

    mean_kernel: object
    task_kernel: object
    theta0: object
    theta_task: object
    m0: object
    pi: object
    shared_hyperparameters: bool = eqx.field(static=True)
    shared_mean_hyperparameters: bool = eqx.field(static=True)

    @property
    def n_clusters(self) -> int:
        return self.m0.shape[0]

    def cluster_thetas(self):
        th = jnp.asarray(self.theta0)
        return jnp.broadcast_to(th, (self.n_clusters,) + th.shape[-1:])

    def task_view(self) -> MagmaParams:
        """The task part as Magma parameters (for Magma's task objectives and M-step)."""
        return MagmaParams(self.mean_kernel, self.task_kernel, self.cluster_thetas()[0], self.theta_task, self.m0[0],
                           self.shared_hyperparameters)

    def task_thetas(self, n_tasks):
        return self.task_view().task_thetas(n_tasks)


class ClustPosterior(eqx.Module):
    """``q``: the cluster hyper-posteriors (a :class:`~._estep.HyperPosterior` whose arrays
    have a leading cluster axis; :func:`cluster` takes one), memberships ``tau``
    ``(M_pad, K)``, the per-task terms ``E`` ``(M_pad, K)`` and the ELBO."""

    hyper: HyperPosterior
    tau: object
    terms: object
    elbo: object


def cluster(hyper: HyperPosterior, k) -> HyperPosterior:
    """Cluster ``k``'s hyper-posterior."""
    return HyperPosterior(hyper.grid, hyper.mean[k], hyper.L0[k], hyper.LB[k], hyper.white[k], hyper.m0[k],
                          grid_mask=hyper.grid_mask)


@jax.jit
def _cov_sqrts(hyper):
    """Per cluster :meth:`~._estep.HyperPosterior.cov_sqrt` ``(K, N, N)`` (zero rows on padded grid points)."""
    return jax.vmap(lambda L0, LB: cluster_like(hyper, L0, LB).cov_sqrt())(hyper.L0, hyper.LB)


def cluster_like(hyper, L0, LB):
    return HyperPosterior(hyper.grid, None, L0, LB, None, None, grid_mask=hyper.grid_mask)


def real_means(hyper):
    """The cluster means ``(K, N)``, zero on padded grid points (what the task terms on the
    whole grid, shared inputs, may see)."""
    return hyper.mean if hyper.grid_mask is None else jnp.where(hyper.grid_mask[None, :], hyper.mean, 0.0)


@jax.jit
def _full_covs(hyper):
    R = _cov_sqrts(hyper)
    return jnp.einsum("kab,kcb->kac", R, R)


def _structured(params, data) -> bool:
    return data.shared_inputs and params.shared_hyperparameters


@eqx.filter_jit
def cluster_e_step(params: ClustParams, data: TaskData, tau, jitter, task_rank: int = 0,
                   progress: bool = False) -> HyperPosterior:
    """The K hyper-posteriors ``q(mu_k)`` for memberships ``tau`` (VE-step, MAGMA.md A.4);
    ``progress``: report the task chunks done (``verbose``)."""
    T, gm = data.grid, data.grid_mask
    L0 = jax.vmap(lambda th: grid_chol(params.mean_kernel.with_theta(th), T, jitter, gm))(params.cluster_thetas())
    if _structured(params, data):
        Lp = grid_chol(params.task_kernel.with_theta(params.theta_task), T, jitter, gm)
        A = jax.vmap(lambda L: tri_solve(Lp, L))(L0)  # Lp^{-1} L0_k
        if gm is not None:  # S is zero off the real grid (._estep)
            A = jnp.where(gm[None, :, None], A, 0.0)
        n_k = jnp.sum(tau, axis=0)
        LtSL = n_k[:, None, None] * jnp.einsum("kab,kac->kbc", A, A)
        Y = jnp.where(data.mask, data.y, 0.0).T
        b = cho_solve(Lp, Y @ tau).T  # (K, N)
    else:
        S, b, _, _ = task_precisions(params.task_view(), data, jitter, task_rank, weights=tau, progress=progress)
        LtSL = jnp.einsum("kba,kbc,kcd->kad", L0, S, L0)
    m0 = jnp.asarray(params.m0, T.dtype)
    LB, u, w0 = jax.vmap(posterior_from_precisions, in_axes=(None, 0, 0, 0, 0))(T, L0, LtSL, b, m0)
    mean = jnp.einsum("kab,kb->ka", L0, u)
    return HyperPosterior(grid=T, mean=mean, L0=L0, LB=LB, white=u - w0, m0=m0, grid_mask=gm)


@eqx.filter_jit
def cluster_task_terms(params: ClustParams, data: TaskData, hyper: HyperPosterior, jitter, task_rank: int = 0):
    """``E_ik = log N(y_i; mhat_k(t_i), Psi_i) - 1/2 tr(Psi_i^{-1} C_k(t_i))``, ``(M_pad, K)``
    (padded tasks 0): one factorisation of each ``Psi_i`` serves every cluster."""
    R = _cov_sqrts(hyper)
    C = jnp.einsum("kab,kcb->kac", R, R)
    means = real_means(hyper)
    N = grid_size(data.grid, data.grid_mask)
    if _structured(params, data):
        L = grid_chol(params.task_kernel.with_theta(params.theta_task), data.grid, jitter, data.grid_mask)
        A = tri_solve(L, jnp.where(data.mask, data.y, 0.0).T)
        B = tri_solve(L, means.T)
        quad = jnp.sum(A * A, axis=0)[:, None] - 2.0 * A.T @ B + jnp.sum(B * B, axis=0)[None, :]
        tr = jax.vmap(lambda W: jnp.sum(tri_solve(L, W) ** 2))(R)
        E = -0.5 * (quad + tr[None, :] + logdet_from_chol(L) + N * LOG_2PI)
        return jnp.where(data.mask[:, :1], E, 0.0)

    def local(task_kernel, means, C, jitter, *arrays):  # this device's tasks (all without a mesh: ._shard)
        def per_task(x, y, idx, mask, th):
            k = task_kernel.with_theta(th)
            both = mask[:, None] & mask[None, :]
            if task_rank:
                W, logdet = woodbury_precision(*task_factor(k, x, mask, jitter, task_rank), mask)
            else:
                L = chol(k.gram(x, mask), jitter, mask)
                W, logdet = jnp.where(both, cho_inverse(L), 0.0), logdet_from_chol(L)
            r = jnp.where(mask[None, :], y[None, :] - means[:, idx], 0.0)  # (K, n)
            quad = jnp.sum(r * (r @ W), axis=1)
            tr = jnp.einsum("ab,kab->k", W, jnp.where(both[None], C[:, idx[:, None], idx[None, :]], 0.0))
            return -0.5 * (quad + tr + logdet + jnp.sum(mask) * LOG_2PI)

        E = jax.lax.map(lambda a: jax.vmap(per_task)(*a), data.chunked(*arrays))
        return E.reshape(arrays[0].shape[0], -1)

    thetas = params.task_thetas(data.X.shape[0])
    return over_tasks(local, (data.X, data.y, data.index, data.mask, thetas), (params.task_kernel, means, C, jitter),
                      unit=data.chunk, out="split")


def _mean_terms(params: ClustParams, hyper: HyperPosterior, jitter):
    """Per cluster ``J0_k + 1/2 log|C_k| + N/2 (1 + log 2 pi)`` ``(K,)``."""
    R = _cov_sqrts(hyper)
    N = grid_size(hyper.grid, hyper.grid_mask)

    def one(th, m0, mean, Rk, L0, LB):
        j0 = mean_process_term(th, m0, params.mean_kernel, hyper.grid, mean, Rk, jitter, hyper.grid_mask)
        return j0 + 0.5 * (logdet_from_chol(L0) - logdet_from_chol(LB)) + 0.5 * N * (1.0 + LOG_2PI)

    return jax.vmap(one)(params.cluster_thetas(), params.m0, hyper.mean, R, hyper.L0, hyper.LB)


def update_memberships(E, pi, real):
    """``tau_ik propto pi_k exp(E_ik)`` (log-sum-exp), zero rows where not ``real``."""
    logits = jnp.where(pi > 0, jnp.log(jnp.where(pi > 0, pi, 1.0)), -jnp.inf)[None, :] + E
    tau = jax.nn.softmax(logits, axis=1)
    return jnp.where(real[:, None], tau, 0.0)


def vem_elbo(mean_terms, E, tau, pi):
    """The ELBO from its parts (module docstring)."""
    mix = jax.scipy.special.xlogy(tau, pi[None, :]) - jax.scipy.special.xlogy(tau, tau)
    return jnp.sum(mean_terms) + jnp.sum(tau * E) + jnp.sum(mix)


@eqx.filter_jit
def _memberships_and_elbo(params: ClustParams, hyper: HyperPosterior, E, tau, real, jitter, update):
    """``(tau, ELBO)``: the memberships updated (``update``, a traced bool: one compilation
    serves both) or kept, and the ELBO at them."""
    tau = jnp.where(update, update_memberships(E, params.pi, real), tau)
    return tau, vem_elbo(_mean_terms(params, hyper, jitter), E, tau, params.pi)


@eqx.filter_jit
def _mean_objective_and_grad(theta0, params: ClustParams, hyper: HyperPosterior, R, jitter, scale):
    """``-scale * sum_k J0_k`` and its gradient w.r.t. ``theta0`` (shared or per cluster)."""
    K = hyper.mean.shape[0]

    def f(t):
        ths = jnp.broadcast_to(t, (K,) + t.shape[-1:])
        terms = jax.vmap(mean_process_term, in_axes=(0, 0, None, None, 0, 0, None, None))(
            ths, params.m0, params.mean_kernel, hyper.grid, hyper.mean, R, jitter, hyper.grid_mask
        )
        return -scale * jnp.sum(terms)

    return jax.value_and_grad(f)(theta0)


@eqx.filter_jit
def _gls_means(params: ClustParams, hyper: HyperPosterior, jitter):
    """Per cluster the constant ``m_k`` maximising ``log N(mhat_k; m_k 1, K_k)`` (exact)."""

    def one(th, mean):
        return gls_constant(th, params.mean_kernel, hyper.grid, mean, jitter, hyper.grid_mask)

    return jax.vmap(one)(params.cluster_thetas(), hyper.mean)


# The mixture factor [sqrt(tau_k) F_k, sqrt(tau_k) d_k]_k is used while its width is at most
# this fraction of the longest task (beyond it the dense per-task covariance is as cheap).
_MIXTURE_LOWRANK_FRACTION = 0.5


class ClustEM:
    """EM state of MagmaClust (variational EM): the memberships ``tau`` and Magma's task
    M-step state (:class:`~._em.TaskMStep`); :func:`~._em.iterate` runs it."""

    name = "MagmaClust"

    def __init__(self, data: TaskData, options: EMOptions, tau0):
        self.data, self.options = data, options
        self.tasks = TaskMStep(data, options)
        # Placed like the data: the VE-step's memberships come back placed, and an
        # unplaced first value would compile the E-step a second time.
        self.tau = jax.device_put(jnp.asarray(tau0, data.y.dtype), data.y.sharding)
        self.real = jnp.arange(data.X.shape[0]) < data.n_tasks
        self.m_step_cov_ranks, self.task_ranks = [], []
        self.min_proportion = np.inf  # the smallest pi_k any VM-step set

    def canonical(self, params):
        return canonical(params, np.dtype(self.data.y.dtype))

    def start(self, params):
        self.tasks.start(params.task_view())
        return self._e_step(params, update=False)

    def e_step(self, params):
        return self._e_step(params, update=True)

    def _e_step(self, params, update):
        jitter, rank = self.tasks.jitter, self.tasks.rank
        hyper = cluster_e_step(params, self.data, self.tau, jitter, rank, bool(self.options.verbose))
        E = cluster_task_terms(params, self.data, hyper, jitter, rank)
        self.tau, value = _memberships_and_elbo(params, hyper, E, self.tau, self.real, jitter, jnp.asarray(update))
        return ClustPosterior(hyper, self.tau, E, value)

    @staticmethod
    def value(post) -> float:
        return float(post.elbo)

    def moments(self, hyper, tau, full=False):
        """The mixture moments of the task M-step: factors when every cluster's M-step
        covariance is low-rank and the mixture stays narrow, else the full covariances."""
        K = hyper.mean.shape[0]
        if not full:
            n_max = self.data.longest
            parts = [m_step_covariance(cluster(hyper, k), self.tasks.jitter, n_max) for k in range(K)]
            q = max(F.shape[1] for F, _ in parts)
            if all(low for _, low in parts) and K * (q + 1) <= _MIXTURE_LOWRANK_FRACTION * n_max:
                F = jnp.stack([jnp.pad(F, ((0, 0), (0, q - F.shape[1]))) for F, _ in parts])
                return MixtureMoments(lowrank=True, means=real_means(hyper), covs=F, tau=tau)
        return MixtureMoments(lowrank=False, means=real_means(hyper), covs=_full_covs(hyper), tau=tau)

    def m_step(self, params, post):
        o, data, jitter = self.options, self.data, self.tasks.jitter
        hyper, tau = post.hyper, post.tau
        pi = np.asarray(tau).sum(axis=0) / data.n_tasks
        self.min_proportion = min(self.min_proportion, float(pi.min()))
        params = with_values(params, pi=pi)
        # Mean processes: gamma (shared or per cluster), then the GLS constants m_k.
        R = _cov_sqrts(hyper)
        bounds = np.asarray(params.mean_kernel.bounds)
        if not params.shared_mean_hyperparameters:
            bounds = np.tile(bounds, (params.n_clusters, 1))
        r0 = minimize_lbfgsb(
            lambda th: _mean_objective_and_grad(jnp.asarray(th, data.y.dtype), params, hyper, R, jitter,
                                                self.tasks.scale),
            params.theta0, bounds, max_iter=o.m_step_max_iter, tol=o.m_step_tol,
        )
        params = with_values(params, theta0=jnp.asarray(r0.x))
        if o.learn_prior_mean:
            params = with_values(params, m0=_gls_means(params, hyper, jitter))
        # Tasks: Magma's task M-step on the mixture moments.
        structured = _structured(params, data)
        moments = self.moments(hyper, tau, full=structured)
        self.m_step_cov_ranks.append(factor_rank(moments.covs[0]) if moments.lowrank else 0)
        view, rt, rank, per_task = self.tasks.step(
            params.task_view(), moments, None, moments.lowrank,
            full_cov=lambda: (self.moments(hyper, tau, full=True), None, False),
        )
        self.task_ranks.append(rank)
        params = with_values(params, theta_task=view.theta_task)
        return params, (
            f"mean-process L-BFGS {r0.n_iter} its, "
            + task_report(view, rt, self.m_step_cov_ranks[-1], rank, per_task, data.n_tasks)
            + ", proportions " + " ".join(f"{float(p):.3f}" for p in np.asarray(pi))
        )


@dataclasses.dataclass(frozen=True)
class ClustResult:
    params: ClustParams
    posterior: ClustPosterior
    elbo_history: np.ndarray  # ELBO after the first VE-step, then after every iteration
    n_iter: int
    converged: bool
    iteration_times: np.ndarray
    m_step_cov_ranks: np.ndarray
    task_ranks: np.ndarray
    min_proportion: float  # the smallest pi_k set by any VM-step (0: a cluster emptied)


def run_vem(params: ClustParams, data: TaskData, tau0, options: EMOptions) -> ClustResult:
    """Variational EM from ``params`` and initial memberships ``tau0`` ``(M_pad, K)``."""
    model = ClustEM(data, options, tau0)
    params, post, history, it, converged, times = iterate(model, params)
    return ClustResult(params, post, history, it, converged, times, np.asarray(model.m_step_cov_ranks, int),
                       np.asarray(model.task_ranks, int), model.min_proportion)


def initial_memberships(layout, n_clusters: int, random_state) -> np.ndarray:
    """Hard k-means memberships on each task's (min, mean, max) of outputs (MAGMA.md A.4,
    ``ini_kmeans``), ``(M_pad, K)`` with zero rows for padded tasks."""
    from sklearn.cluster import KMeans

    M = layout.n_tasks
    y = np.where(layout.mask[:M], layout.y[:M], np.nan)
    feats = np.stack([np.nanmin(y, axis=1), np.nanmean(y, axis=1), np.nanmax(y, axis=1)], axis=1)
    labels = KMeans(n_clusters, n_init=10, random_state=random_state).fit_predict(feats)
    tau = np.zeros((layout.X.shape[0], n_clusters))
    tau[np.arange(M), labels] = 1.0
    return tau


def n_free_parameters(params: ClustParams, n_tasks: int, learn_prior_mean: bool) -> int:
    """Free parameters counted by the variational BIC: mean-kernel and task-kernel
    log-hyperparameters, the learned prior means and ``K - 1`` proportions."""
    K = params.n_clusters
    p0 = np.asarray(params.theta0).shape[-1]
    p = np.asarray(params.theta_task).shape[-1]
    n_mean = p0 * (1 if params.shared_mean_hyperparameters else K) + (K if learn_prior_mean else 0)
    n_task = p * (1 if params.shared_hyperparameters else n_tasks)
    return int(n_mean + n_task + K - 1)
