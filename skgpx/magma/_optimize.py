"""Bounded L-BFGS on log-hyperparameters: SciPy's L-BFGS-B driving a compiled value-and-gradient.

Why SciPy rather than optimistix: the kernels carry scikit-learn style bounds
(log-space box constraints) that keep the hyperparameters finite on hard data,
and L-BFGS-B enforces them exactly; optimistix has no box-constrained
quasi-Newton solver. The objective and its exact autodiff gradient are one
``eqx.filter_jit`` function compiled once per data shape and reused by every
M-step, so the host loop costs only a device round trip per evaluation.

The objective is minimised; a non-finite value (a failed Cholesky far from the
optimum) is reported to the line search as ``+inf`` so it backtracks. If the
result is not better than the start, the start is returned (a generalised EM
step must never decrease its objective).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..optimizers import lbfgsb
from ._progress import evaluations

__all__ = ["OptimResult", "minimize_lbfgsb", "minimize_separable"]


@dataclasses.dataclass(frozen=True)
class OptimResult:
    x: np.ndarray
    fun: float
    fun_start: float
    n_iter: int
    n_eval: int
    success: bool
    message: str
    state: object = None  # minimize_separable: the rows' inverse-Hessian approximations
    fun_rows: object = None  # minimize_separable: each row's final value


def minimize_lbfgsb(value_and_grad, x0, bounds, *, max_iter, tol, label="M-step") -> OptimResult:
    """Minimise ``value_and_grad(x) -> (f, g)`` (JAX) over the box ``bounds`` ``(n, 2)``.

    ``x0`` may have any shape; it is flattened for SciPy and reshaped back. ``label``: names
    the optimisation in progress lines (``verbose`` EM, :mod:`._progress`).
    """
    x0 = np.asarray(x0, dtype=np.float64)
    shape = x0.shape
    lo, hi = np.asarray(bounds, dtype=np.float64).reshape(-1, 2).T
    x0 = np.clip(x0.ravel(), lo, hi)
    if x0.size == 0:
        f0 = float(value_and_grad(x0.reshape(shape))[0])
        return OptimResult(x0.reshape(shape), f0, f0, 0, 1, True, "no free hyperparameters")

    last = {}  # SciPy evaluates x0 again first: the start's evaluation is reused
    report = evaluations(label)

    def fun(x):
        key = np.asarray(x, dtype=np.float64).tobytes()
        if key in last:
            f, g = last[key]
            return f, g.copy()
        f, g = value_and_grad(x.reshape(shape))
        f = float(f)
        g = np.asarray(g, dtype=np.float64).ravel()
        out = (np.inf, np.zeros_like(x)) if not np.isfinite(f) or not np.all(np.isfinite(g)) else (f, g)
        if report is not None:
            report(f)
        last.clear()
        last[key] = out
        return out[0], out[1].copy()

    f0, _ = fun(x0)
    res = lbfgsb(fun, x0, np.stack([lo, hi], axis=1), options={"maxiter": int(max_iter), "ftol": float(tol), "gtol": 1e-8})
    x, f = res.x, float(res.fun)
    if not (np.isfinite(f) and f <= f0):
        x, f = x0, f0
    return OptimResult(x.reshape(shape), f, f0, int(res.nit), int(res.nfev), bool(res.success), str(res.message))


def minimize_separable(
    values_and_grads, x0, bounds, *, max_iter, tol, inverse_hessians=None, rows=None
) -> OptimResult:
    """Minimise ``sum_i f_i(x_i)`` over independent rows ``x_i`` of ``x0`` ``(M, p)``.

    ``values_and_grads(X, needed) -> (f (M,), G (M, p))`` evaluates the rows of the
    boolean mask ``needed`` at once (one batched call per round; the other rows'
    outputs are ignored, so it may skip them). ``rows``: optimise only these rows
    (boolean mask); the others stay at ``x0`` and are never evaluated. Each row runs its
    own projected BFGS (a ``p x p`` inverse-Hessian approximation, Nocedal & Wright 2006,
    eq. 6.17, with the initial scaling of eq. 6.20) with its own Armijo backtracking
    inside its box ``bounds`` ``(M * p, 2)``: the
    block-diagonal Hessian of a separable problem, which one joint L-BFGS-B over all
    ``M p`` variables cannot represent (its memory mixes every task, and one line search
    serves all). A row stops when an accepted step lowers ``f_i`` by at most
    ``tol * |f_i|`` (SciPy's ``ftol`` rule, per row), when its projected gradient
    vanishes, after ``max_iter`` accepted steps, or when backtracking fails; the loop
    stops when every row has, or after ``3 * max_iter`` rounds. Every accepted step
    lowers its row's ``f_i``, so the sum never increases (a generalised EM step).

    ``inverse_hessians`` ``(M, p, p)``: start from these approximations (returned as
    ``state`` by a previous call on a nearby problem, e.g. the previous EM iteration's
    M-step) instead of a first steepest-descent step of unit length per row.
    """
    x = np.asarray(x0, dtype=np.float64).copy()
    M, p = x.shape
    lo, hi = np.asarray(bounds, dtype=np.float64).reshape(M, p, 2).transpose(2, 0, 1)
    x = np.clip(x, lo, hi)

    rows = np.ones(M, bool) if rows is None else np.asarray(rows, bool)

    report = evaluations("per-task M-step")

    def evaluate(X, needed):
        f, G = values_and_grads(X, needed)
        if report is not None:
            report(np.sum(np.asarray(f)[needed]))
        f = np.where(needed, np.asarray(f, dtype=np.float64), 0.0)
        G = np.where(needed[:, None], np.asarray(G, dtype=np.float64), 0.0)
        bad = ~np.isfinite(f) | ~np.all(np.isfinite(G), axis=1)
        f[bad], G[bad] = np.inf, 0.0
        return f, G

    f, g = evaluate(x, rows)
    f_start = float(np.sum(f[np.isfinite(f)]))
    eye = np.eye(p)
    if inverse_hessians is None:
        H = np.broadcast_to(eye, (M, p, p)).copy()
        first = np.ones(M, bool)  # no curvature pair yet: H is rescaled at the first update
    else:
        H = np.asarray(inverse_hessians, dtype=np.float64).reshape(M, p, p).copy()
        first = np.zeros(M, bool)
    alpha = np.ones(M)
    steps = np.zeros(M, int)
    active = rows & np.isfinite(f)
    rounds = 0
    d = np.zeros_like(x)

    def directions(rows):
        # Projected direction: variables at a bound with the gradient pointing out stay.
        free = ~(((x <= lo) & (g > 0)) | ((x >= hi) & (g < 0)))
        gf = np.where(free, g, 0.0)
        dd = -np.einsum("mij,mj->mi", H, gf) * free
        gnorm = np.linalg.norm(gf, axis=1)
        steep = -gf / np.maximum(gnorm, 1e-300)[:, None]
        # Not a descent direction (or no curvature yet): a unit steepest-descent step.
        use_steep = first | (np.sum(dd * gf, axis=1) >= 0)
        dd = np.where(use_steep[:, None], steep, dd)
        d[rows] = dd[rows]
        return gnorm

    gnorm = directions(np.arange(M))
    active &= gnorm > 0
    while np.any(active) and rounds < 3 * max_iter:
        trial = np.where(active[:, None], np.clip(x + alpha[:, None] * d, lo, hi), x)
        ft, gt = evaluate(trial, active)
        rounds += 1
        s = trial - x
        accept = active & np.isfinite(ft) & (ft <= f + 1e-4 * np.sum(g * s, axis=1)) & (ft <= f)
        # Backtracking: the minimiser of the quadratic through f, its slope and the trial
        # value, kept within [0.1, 0.5] of the rejected step; give up below 1e-10.
        reject = active & ~accept
        slope = np.sum(g * s, axis=1)
        curv = ft - f - slope
        with np.errstate(divide="ignore", invalid="ignore"):
            shrink = np.where(np.isfinite(ft) & (curv > 0), -0.5 * slope / curv, 0.1)
        alpha[reject] *= np.clip(shrink[reject], 0.1, 0.5)
        active[reject & (alpha < 1e-10)] = False
        if np.any(accept):
            a = np.flatnonzero(accept)
            y = gt[a] - g[a]
            sa = s[a]
            sy = np.sum(sa * y, axis=1)
            ok = sy > 1e-12 * np.linalg.norm(sa, axis=1) * np.linalg.norm(y, axis=1)
            u, su, yu, syu = a[ok], sa[ok], y[ok], sy[ok]
            scaled = first[u]  # first curvature pair: H0 = (s.y / y.y) I
            H[u[scaled]] = eye * (syu[scaled] / np.sum(yu[scaled] ** 2, axis=1))[:, None, None]
            first[u] = False
            rho = 1.0 / syu
            V = eye - rho[:, None, None] * np.einsum("mi,mj->mij", su, yu)
            H[u] = np.einsum("mij,mjk,mlk->mil", V, H[u], V) + rho[:, None, None] * np.einsum("mi,mj->mij", su, su)
            small = (f[a] - ft[a]) <= tol * np.maximum(np.maximum(np.abs(f[a]), np.abs(ft[a])), 1e-300)
            x[a], f[a], g[a] = trial[a], ft[a], gt[a]
            alpha[a] = 1.0
            steps[a] += 1
            gnorm = directions(a)
            done = small | (gnorm[a] == 0) | (steps[a] >= max_iter)
            active[a[done]] = False
    total = float(np.sum(f[np.isfinite(f)]))
    converged = not np.any(active)
    message = "every row converged" if converged else f"stopped after {rounds} rounds"
    return OptimResult(x, total, f_start, int(steps.max(initial=0)), rounds + 1, converged, message, H, f)
