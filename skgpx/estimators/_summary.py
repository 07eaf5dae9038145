"""The text of ``ScalableGPRegressor.summary()``."""

from __future__ import annotations

import numpy as np

from .._config import resolve_dtype
from ..gp._host import HOST_SOLVER

__all__ = ["format_summary", "format_magma_summary"]


def format_summary(est) -> str:
    """Kernel with learned values, solver, device, data size, LML, optimiser runs, jitter, diagnostics."""
    n, d = est.y_train_.shape[0], getattr(est, "n_features_in_", "n/a (not vectors)")
    t = 1 if est.y_train_.ndim == 1 else est.y_train_.shape[1]
    auto = isinstance(est.solver, str) and est.solver == "auto"
    if est.solver_ == HOST_SOLVER:
        resolved = (f"{HOST_SOLVER} (exact, NumPy/SciPy through the kernel's own __call__: "
                    f"{est.solver_info_['host_reason']})")
    else:
        resolved = f"{est.solver_}: {est.inference_!r}" + (" (chosen by solver='auto')" if auto else "")
    lines = [
        "ScalableGPRegressor",
        f"  kernel             : {est.kernel_}",
        f"  solver             : {resolved}",
        f"  device / dtype     : {est.device_} / {resolve_dtype(est.dtype).name}",
        f"  training data      : n={n}, d={d}, targets={t}, normalize_y={est.normalize_y}",
        f"  log marginal lik.  : {est.log_marginal_likelihood_value_:.6g}",
    ]
    if est.optimizer_runs_:
        best = max(est.optimizer_runs_, key=lambda r: r["log_marginal_likelihood"])
        conv = {True: "converged", False: "did NOT converge", None: "callable optimizer"}[best["converged"]]
        lines.append(
            f"  optimiser          : {est.optimizer if isinstance(est.optimizer, str) else 'callable'}, "
            f"{len(est.optimizer_runs_)} run(s); best: {best['n_iter']} iterations, {conv}"
        )
    else:
        lines.append("  optimiser          : none (hyperparameters kept as given)")
    lines.append(f"  jitter             : {est.jitter_:.3g}" + ("" if est.jitter_ > 0 else " (none needed)"))
    diag = {k: v for k, v in est.posterior_.diagnostics().items() if k not in ("jitter", "solver")}
    if diag:
        lines.append("  back-end           : " + ", ".join(f"{k}={_fmt(v)}" for k, v in diag.items()))
    return "\n".join(lines)


def format_magma_summary(est) -> str:
    """Kernels with learned values, tasks and grid, prior mean, EM run, log-likelihood."""
    counts = np.asarray(est._layout.mask).sum(axis=1)[: len(est.tasks_)]
    hp = "shared by all tasks" if est.shared_hyperparameters else "one set per task; shown: their average"
    conv = "converged" if est.converged_ else f"did NOT converge (tol={est.tol:g})"
    m0 = " ".join(f"{v:.6g}" for v in np.atleast_1d(est.prior_mean_))
    lines = [
        "MultiTaskMagmaRegressor",
        f"  mean-process kernel: {est.mean_kernel_}",
        f"  task kernel        : {est.task_kernel_} ({hp})",
        f"  prior mean m0      : {m0}" + (" (learned)" if isinstance(est.prior_mean, str) else ""),
        f"  training data      : {len(est.tasks_)} tasks, {int(counts.sum())} points "
        f"(per task min {int(counts.min())} / median {float(np.median(counts)):g} / max {int(counts.max())}), "
        f"union grid {est.grid_.shape[0]} inputs, d={est.n_features_in_}",
        f"  EM                 : {est.n_iter_} iterations, {conv}, "
        f"{float(np.sum(est.iteration_times_)):.2f} s"
        + (f"; task M-step covariance of rank {int(est.m_step_cov_ranks_[-1])} (C minus the K0 jitter floor)"
           if len(est.m_step_cov_ranks_) and est.m_step_cov_ranks_[-1] else ""),
        f"  log-likelihood     : {est.log_marginal_likelihood_value_:.6g} (normalised targets)"
        if est.normalize_y else f"  log-likelihood     : {est.log_marginal_likelihood_value_:.6g}",
        f"  device / dtype     : {est.device_} / {resolve_dtype(est.dtype).name}",
    ]
    scores = getattr(est, "n_clusters_scores_", None)
    if getattr(est, "n_clusters_", 1) > 1 or scores:
        lines[0] = "MultiTaskMagmaRegressor (MagmaClust)" if est.n_clusters_ > 1 else lines[0]
        lines += _cluster_lines(est, scores)
    return "\n".join(lines)


def _cluster_lines(est, scores):
    """Clusters: proportions, sizes (tasks whose largest membership is the cluster), prior means,
    kernels; the variational BIC per candidate K."""
    K = est.n_clusters_
    labels = np.argmax(est.memberships_, axis=1)
    lines = [f"  clusters           : K={K}" + (" (selected by variational BIC)" if scores and len(scores) > 1 else "")]
    if K > 1:
        lines[0] += f", ELBO {est.elbo_:.6g} (normalised targets)"
        sure = np.mean(np.max(est.memberships_, axis=1) > 0.95)
        lines.append(f"  memberships        : {100 * sure:.0f}% of tasks have a membership > 0.95")
        for k in range(K):
            lines.append(
                f"    cluster {k}: proportion {est.cluster_proportions_[k]:.3f}, {int(np.sum(labels == k))} tasks, "
                f"prior mean {est.cluster_prior_means_[k]:.4g}, kernel {est.cluster_mean_kernels_[k]}"
            )
    if scores and len(scores) > 1:
        lines.append("  variational BIC    : " + ", ".join(
            f"K={k}: {v:.5g}" + (" *" if k == K else "") for k, v in sorted(scores.items())))
    return lines


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
