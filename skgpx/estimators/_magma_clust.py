"""MagmaClust inside ``MultiTaskMagmaRegressor(n_clusters=...)``: fit, selection of K, mixture predictions.

``n_clusters=1`` is Magma (``_magma.py``); ``n_clusters=K >= 2`` fits MagmaClust by
variational EM (:mod:`skgpx.magma._clust`); ``"auto"`` (K = 1..6) or a list of candidates
fits every candidate and keeps the one with the largest variational BIC,
``ELBO - 1/2 (number of free parameters) log(number of tasks)`` (MAGMA.md A.4). This
module holds only the scikit-learn side; the maths is in :mod:`skgpx.magma`.
"""

from __future__ import annotations

import warnings
from numbers import Integral

import jax
import jax.numpy as jnp
import numpy as np
from sklearn.base import clone
from sklearn.utils import check_random_state

from .._config import precision_scope
from .._mesh import describe_placement, placement_scope
from ..magma import (
    ClustParams,
    EMOptions,
    build_layout,
    cluster,
    initial_memberships,
    minimize_lbfgsb,
    mixture_moments,
    n_free_parameters,
    new_task_cluster_lml,
    new_task_mixture_objective_and_grad,
    place_task_data,
    run_vem,
    task_data_from_layout,
)
from ._state import to_host

__all__ = ["ClusterMixin", "cluster_candidates", "AUTO_CLUSTERS"]

# Candidates of n_clusters="auto".
AUTO_CLUSTERS = (1, 2, 3, 4, 5, 6)


def cluster_candidates(n_clusters, n_tasks):
    """The candidate numbers of clusters, checked against the number of tasks."""
    if isinstance(n_clusters, str):
        cands = [k for k in AUTO_CLUSTERS if k <= n_tasks]
    elif isinstance(n_clusters, Integral):
        cands = [int(n_clusters)]
    else:
        cands = sorted({int(k) for k in n_clusters})
        if not cands or any(k < 1 for k in cands):
            raise ValueError(f"`n_clusters` candidates must be integers >= 1, got {n_clusters!r}.")
    if max(cands) > n_tasks:
        raise ValueError(
            f"n_clusters={n_clusters!r} asks for {max(cands)} clusters but there are only {n_tasks} training "
            "tasks; each cluster needs at least one task. Pass n_clusters <= the number of tasks, or 'auto'."
        )
    return cands


class ClusterMixin:
    """MagmaClust methods of :class:`~skgpx.MultiTaskMagmaRegressor` (used when ``n_clusters != 1``)."""

    @property
    def _clustered(self) -> bool:
        return getattr(self, "n_clusters_", 1) > 1

    # -- fit --------------------------------------------------------------------------
    def _fit_clusters(self, X, y, groups):
        n_tasks = np.unique(groups).shape[0]
        cands = cluster_candidates(self.n_clusters, n_tasks)
        if len(cands) == 1 and cands[0] == 1:
            return clone(self).set_params(n_clusters=1).fit(X, y, groups)
        scores, elbos, best = {}, {}, None
        for K in cands:
            if self.verbose:
                print(f"[MagmaClust] fitting K={K}")
            if K == 1:
                fit = clone(self).set_params(n_clusters=1).fit(X, y, groups)
                elbo, n_par = fit.log_marginal_likelihood_value_, _magma_free_parameters(fit)
            else:
                fit = clone(self)._fit_vem(X, y, groups, K)
                elbo, n_par = fit.elbo_, fit._n_free_parameters
            elbos[K] = float(elbo)
            scores[K] = float(elbo - 0.5 * n_par * np.log(n_tasks))
            if best is None or scores[K] > scores[best[0]]:
                best = (K, fit)
        K, fit = best
        if K > 1 and fit._min_proportion < _EMPTY:
            warnings.warn(
                f"A cluster emptied during variational EM (smallest proportion {fit._min_proportion:.2e}); it is "
                "kept with (near) zero weight and no task belongs to it. The data support fewer clusters: pass a "
                "smaller n_clusters, or n_clusters='auto'.",
                RuntimeWarning,
                stacklevel=3,
            )
        self.__dict__.update({k: v for k, v in fit.__dict__.items() if k not in self.get_params()})
        if K == 1:  # Magma won
            self.elbo_ = float(self.log_marginal_likelihood_value_)
        self.n_clusters_scores_ = scores
        self.n_clusters_elbos_ = elbos
        if self.verbose and len(cands) > 1:
            print("[MagmaClust] variational BIC: " + ", ".join(f"K={k}: {v:.5g}" for k, v in scores.items())
                  + f" -> K={K}")
        return self

    def _fit_vem(self, X, y, groups, K):
        dtype, device = self._context()
        mk, tk = self._kernels()
        y_n, self._y_mean, self._y_std = _normalise_like(self, y)
        layout = build_layout(X, y_n, groups, decimals=self.input_decimals, max_grid_size=self.max_grid_size,
                              n_shards=int(device.size) if isinstance(device, jax.sharding.Mesh) else 1, pad=True)
        learn_m0 = isinstance(self.prior_mean, str)
        rng = check_random_state(self.random_state)
        tau0 = initial_memberships(layout, K, rng.randint(np.iinfo(np.int32).max))
        if learn_m0:  # each cluster starts from the average output of its k-means tasks
            w = tau0[: layout.n_tasks]
            sums = w.T @ np.where(layout.mask, layout.y, 0.0)[: layout.n_tasks].sum(axis=1)
            m0 = sums / np.maximum(w.T @ layout.mask[: layout.n_tasks].sum(axis=1), 1)
        else:
            m0 = np.full(K, (float(self.prior_mean) - self._y_mean) / self._y_std)
        theta0 = np.asarray(mk.theta, np.float64)
        if not self.shared_mean_hyperparameters:
            theta0 = np.tile(theta0, (K, 1))
        theta_task = np.asarray(tk.theta, np.float64)
        if not self.shared_hyperparameters:
            theta_task = np.tile(theta_task, (layout.X.shape[0], 1))
        pi0 = tau0[: layout.n_tasks].mean(axis=0)
        self.jitter_ = jitter = self._jitter(dtype)
        options = EMOptions(self.max_iter, self.tol, self.m_step_max_iter, self.m_step_tol, jitter, learn_m0,
                            self.low_rank_tasks, self.verbose)
        self.device_ = describe_placement(device)
        with precision_scope(dtype), placement_scope(device):
            data = place_task_data(task_data_from_layout(layout, dtype=dtype), device)
            params = ClustParams(mk, tk, theta0, theta_task, m0, pi0, bool(self.shared_hyperparameters),
                                 bool(self.shared_mean_hyperparameters))
            res = run_vem(params, data, tau0, options)
        P = to_host(res.params)
        self._layout = layout
        self.tasks_ = layout.task_ids
        self.grid_ = layout.real_grid
        self._n_grid = layout.n_grid
        post = to_host(res.posterior)
        self.cluster_hyperposteriors_ = post.hyper
        self.hyperposterior_ = post.hyper  # fitted marker; per cluster: cluster(hyperposterior_, k)
        self.memberships_ = np.asarray(post.tau)[: layout.n_tasks]
        self.cluster_proportions_ = np.asarray(P.pi)
        self.n_clusters_ = K
        thetas = np.asarray(P.cluster_thetas())
        self._cluster_thetas = thetas
        self._cluster_kernels_skgpx = [mk.with_theta(t) for t in thetas]
        self.cluster_mean_kernels_ = [self._export(k, self._sklearn_kernels[0]) for k in self._cluster_kernels_skgpx]
        self._mean_kernel_skgpx = self._cluster_kernels_skgpx[0]
        self._mean_template = mk
        self.mean_kernel_ = self.cluster_mean_kernels_[0]
        tt = np.asarray(P.theta_task, np.float64)
        self.task_theta_ = np.tile(tt, (layout.n_tasks, 1)) if tt.ndim == 1 else tt[: layout.n_tasks]
        self._task_kernel_skgpx = tk.with_theta(self.task_theta_.mean(axis=0))
        self._task_template = tk
        self.task_kernel_ = self._export(self._task_kernel_skgpx, self._sklearn_kernels[1])
        self.cluster_prior_means_ = np.asarray(P.m0) * self._y_std + self._y_mean
        self.prior_mean_ = self.cluster_prior_means_
        self.elbo_history_ = res.elbo_history
        self.elbo_ = float(res.elbo_history[-1])
        self.log_marginal_likelihood_value_ = self.elbo_  # a lower bound on log p(y | Theta)
        self.n_iter_ = res.n_iter
        self.converged_ = res.converged
        self.iteration_times_ = res.iteration_times
        self.m_step_cov_ranks_ = res.m_step_cov_ranks
        self.task_cov_ranks_ = res.task_ranks
        self._n_free_parameters = n_free_parameters(P, layout.n_tasks, learn_m0)
        self.n_clusters_scores_ = {K: self.elbo_ - 0.5 * self._n_free_parameters * np.log(layout.n_tasks)}
        self.n_clusters_elbos_ = {K: self.elbo_}
        self._min_proportion = res.min_proportion
        return self

    # -- memberships and mixture predictions --------------------------------------------
    def _new_task_thetas_clust(self, thetas, Xo, yo, mo):
        """New tasks' hyperparameters maximising their mixture likelihood (all tasks at once)."""
        dtype, device = self._context()
        tk = self._task_template
        bounds = np.tile(np.asarray(tk.bounds), (thetas.shape[0], 1))
        with precision_scope(dtype), placement_scope(device):
            args = self._clust_args(dtype) + [jnp.asarray(a, dtype) for a in (Xo, yo)] + [jnp.asarray(mo)]
            jit = jnp.asarray(self.jitter_, dtype)
            scale = jnp.asarray(1.0 / max(int(mo.sum()), 1), dtype)
            log_pi = jnp.log(jnp.asarray(np.maximum(self.cluster_proportions_, 1e-300), dtype))
            res = minimize_lbfgsb(
                lambda th: new_task_mixture_objective_and_grad(jnp.asarray(th, dtype), log_pi, *args, jit, scale),
                thetas, bounds, max_iter=self.m_step_max_iter * 4, tol=self.m_step_tol,
            )
        return np.asarray(res.x)

    def _clust_args(self, dtype):
        return [self.cluster_hyperposteriors_, self._mean_template, jnp.asarray(self._cluster_thetas, dtype),
                self._task_template]

    def _new_task_memberships(self, new_obs):
        """``(n_new, K)``: ``tau*_k propto pi_k N(y*; mhat_k, Psi* + C_k)`` (:mod:`skgpx.magma._clust_predict`)."""
        dtype, device = self._context()
        with precision_scope(dtype), placement_scope(device):
            lml = new_task_cluster_lml(
                jnp.asarray(new_obs["theta"], dtype), *self._clust_args(dtype),
                *(jnp.asarray(new_obs[k], dtype) for k in ("X", "y")), jnp.asarray(new_obs["mask"]),
                jnp.asarray(self.jitter_, dtype),
            )
        logits = np.asarray(lml) + np.log(np.maximum(self.cluster_proportions_, 1e-300))[None, :]
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def _memberships_of(self, labels, known, new_obs):
        """Rows of memberships for task ``labels`` (training: VEM's; new: :meth:`_new_task_memberships`;
        neither: the proportions)."""
        from ._magma import _key

        new_tau = self._new_task_memberships(new_obs) if new_obs.get("X") is not None else None
        out = np.empty((len(labels), self.n_clusters_))
        for b, t in enumerate(labels):
            k = _key(t)
            if k in known:
                out[b] = self.memberships_[known[k]]
            elif k in new_obs["index"]:
                out[b] = new_tau[new_obs["index"][k]]
            else:
                out[b] = self.cluster_proportions_
        return out

    def predict_cluster_proba(self, groups, *, X_obs=None, y_obs=None, groups_obs=None):
        """Cluster memberships ``(len(groups), n_clusters_)`` of the tasks labelled `groups`.

        Training tasks: their variational memberships. New tasks (observations given by
        `X_obs`, `y_obs`, `groups_obs`): the posterior probabilities of the clusters given
        those observations (their hyperparameters learned first when
        ``new_task_hyperparameters`` asks for it). Any other label: the proportions.
        """
        from ._magma import _key

        self._check_clustered("predict_cluster_proba")
        groups = np.asarray(groups).reshape(-1)
        if self.n_clusters_ == 1:  # Magma (also when "auto" selected K = 1): one cluster holds every task
            return np.ones((len(groups), 1))
        known = {_key(t): i for i, t in enumerate(self.tasks_)}
        new_obs = self._new_task_observations(X_obs, y_obs, groups_obs, known)
        return self._memberships_of(list(groups), known, new_obs)

    def _check_clustered(self, method):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self, "hyperposterior_")
        if not hasattr(self, "n_clusters_"):
            raise AttributeError(f"{method}() needs a model fitted with n_clusters != 1 (MagmaClust).")

    def _cluster_predictions(self, X, groups, known, new_obs, full_cov):
        """Per-cluster task predictions ``(K, m)`` (normalised scale) of every row, and the rows' memberships."""
        labels = np.unique(groups)
        tau_labels = self._memberships_of(list(labels), known, new_obs)
        task_of_row = np.searchsorted(labels, groups)
        means, seconds = [], []
        for k in range(self.n_clusters_):
            m, s, tor, pos = self._task_predictions(
                X, groups, known, new_obs, full_cov, post=cluster(self.cluster_hyperposteriors_, k),
                mean_kernel=self._cluster_kernels_skgpx[k],
            )
            means.append(m[tor, pos])
            seconds.append(s if full_cov else s[tor, pos])
        return np.stack(means), seconds, tau_labels[task_of_row].T, tor, pos

    def _predict_clust(self, X, groups, return_std, return_cov, known, new_obs, unknown_rows):
        """Mixture predictions (see :meth:`predict`) on the original scale."""
        m = X.shape[0]
        K = self.n_clusters_
        means = np.zeros((K, m))
        var = np.zeros((K, m))
        covs = np.zeros((K, m, m)) if return_cov else None
        tau = np.tile(self.cluster_proportions_[:, None], (1, m))
        if unknown_rows.any():  # no observations: the mixture of the mean processes
            for k in range(K):
                mu, c = self._mean_process_cluster(X[unknown_rows], k)
                means[k, unknown_rows], var[k, unknown_rows] = mu, np.diag(c)
                if return_cov:
                    covs[k][np.ix_(unknown_rows, unknown_rows)] = c
        rows = np.flatnonzero(~unknown_rows)
        if rows.size:
            mk, sk, tau_r, tor, pos = self._cluster_predictions(X[rows], groups[rows], known, new_obs, bool(return_cov))
            means[:, rows], tau[:, rows] = mk, tau_r
            for k in range(K):
                if return_cov:
                    var[k, rows] = sk[k][tor, pos, pos]
                    for b in np.unique(tor):
                        sel = tor == b
                        covs[k][np.ix_(rows[sel], rows[sel])] = sk[k][b][np.ix_(pos[sel], pos[sel])]
                else:
                    var[k, rows] = sk[k]
        var = np.maximum(var, 0.0)
        mean, mix_var = mixture_moments(tau, means, var)
        out = dict(means=means * self._y_std + self._y_mean, var=var * self._y_std**2, proba=tau.T,
                   mean=mean * self._y_std + self._y_mean, mix_var=mix_var * self._y_std**2)
        if return_cov:
            out["covs"] = covs * self._y_std**2
        return out

    def _mean_process_cluster(self, X, k):
        return self._mean_process(cluster(self.cluster_hyperposteriors_, k), self._cluster_kernels_skgpx[k], X, True)

    def predict_clusters(self, X, groups, return_cov=False, *, X_obs=None, y_obs=None, groups_obs=None):
        """The full mixture predictive: per cluster, each row's predictive mean and standard
        deviation (or covariance), with the membership probabilities of the row's task.

        **Returns:** ``(means (m, K), stds (m, K), proba (m, K))``; with `return_cov`,
        ``covs`` ``(K, m, m)`` (block-diagonal by task) instead of ``stds``. Same
        arguments as :meth:`predict`; :meth:`predict` returns the mixture's mean and
        standard deviation from these.
        """
        self._check_clustered("predict_clusters")
        out = self._predict(X, groups, False, bool(return_cov), X_obs, y_obs, groups_obs, unknown="error",
                            full_output=True)
        second = out["covs"] if return_cov else np.sqrt(out["var"]).T
        return out["means"].T, second, out["proba"]

    def _sample_clusters(self, X, groups, n_samples, rng, X_obs, y_obs, groups_obs):
        """Draws: per task and sample, a cluster from the task's memberships, then a GP sample from
        that cluster's predictive (not an average of clusters; MAGMA.md A.5)."""
        out = self._predict(X, groups, False, True, X_obs, y_obs, groups_obs, unknown="error", full_output=True)
        groups = np.asarray(groups)
        draws = np.empty((X.shape[0], int(n_samples)))
        K = self.n_clusters_
        for label in np.unique(groups):
            rows = np.flatnonzero(groups == label)
            z = rng.choice(K, size=int(n_samples), p=out["proba"][rows[0]] / out["proba"][rows[0]].sum())
            for k in np.unique(z):
                s = np.flatnonzero(z == k)
                draws[np.ix_(rows, s)] = rng.multivariate_normal(
                    out["means"][k, rows], out["covs"][k][np.ix_(rows, rows)], s.size
                ).T
        return draws


# A VM-step proportion below this means the cluster has emptied.
_EMPTY = 1e-8


def _normalise_like(est, y):
    from ._magma import _normalise

    return _normalise(y, est.normalize_y)


def _magma_free_parameters(est) -> int:
    """Free parameters of a Magma fit for the variational BIC (K = 1)."""
    p0 = np.asarray(est._mean_kernel_skgpx.theta).size
    p = est.task_theta_.shape[1]
    n_task = p if est.shared_hyperparameters else p * est.task_theta_.shape[0]
    return int(p0 + (1 if isinstance(est.prior_mean, str) else 0) + n_task)
