"""Kernel benchmark: skgpx against a naive per-pair kernel and a hand-vectorised floor.

Command::

    .venv/bin/python benchmarks/kernels.py            # full run (a few minutes on 2 cores)
    .venv/bin/python benchmarks/kernels.py --quick    # fewer repeats, smaller large cases
    .venv/bin/python benchmarks/kernels.py --distance-paths   # direct vs GEMM distances
    options: --float32 (float32 inputs), --clock wall (wall time instead of CPU time)

What it measures (all jitted, float64 inside ``jax.enable_x64(True)``, one warm-up
call before timing, ``block_until_ready`` on every call, best of several interleaved
repeats, process CPU time unless ``--clock wall``):
the RBF kernel (length scale 0.3) on the cases of the seed notebook - pairwise 1-D
and 4-D; Gram M=100 on 1-D and 4-D regular, irregular and 20%-padded inputs;
batched B=250 x M=100 with shared and distinct hyperparameters - plus a Gram at
M=2000 and a batch of B=250 x M=500, each computed by three implementations in
the same process:

* ``naive``: a per-pair ``vmap`` with ``lax.cond`` NaN guards, as the seed's
  ``StaticAbstractKernel`` (batched over tasks with an outer ``vmap``);
* ``hand``: a plain hand-vectorised ``jnp`` function (direct differences in 1-D,
  the GEMM identity in 4-D, the same identity/zero padding semantics) - the floor;
* ``skgpx``: ``RBF.gram`` / ``Batched(RBF).gram`` (padded inputs with ``mask="nan"``).

A last column times ``jnp.exp`` alone on an array of the output's shape: the n^2
exponentials all three implementations must evaluate. In float64 on CPU they
dominate, which bounds how much faster any vectorised Gram can be than the naive
one; ``--float32`` shows the ratios when the exponential is cheap.

Each implementation is a jitted function of ``(length_scale, inputs)``. Outputs are
checked against each other before timing. The table reports times per call and the
ratios naive/skgpx (target >= 5 on 4-D cases, >= 1 on 1-D) and skgpx/hand (target
<= 1.5). The machine load average is printed since the CI machine is shared.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax, vmap

import skgpx.kernels as K

LS = 0.3


# -- (a) naive per-pair kernel with lax.cond NaN guards (the seed's design) -------------
def _naive_pair(ls, x1, x2):
    d = x1 - x2
    return jnp.exp(-0.5 * (d @ d) / ls**2)


def _naive_pair_guarded(ls, x1, x2):
    bad = jnp.any(jnp.isnan(x1) | jnp.isnan(x2))
    return lax.cond(bad, lambda: jnp.nan * jnp.ones((), x1.dtype), lambda: _naive_pair(ls, x1, x2))


def _naive_row(ls, X2, x):
    return lax.cond(
        jnp.any(jnp.isnan(x)),
        lambda: jnp.full(X2.shape[0], jnp.nan, X2.dtype),
        lambda: vmap(lambda y: _naive_pair_guarded(ls, y, x))(X2),
    )


def naive_gram(ls, X):
    return vmap(lambda x: _naive_row(ls, X, x))(X)


# -- (b) hand-vectorised floor -----------------------------------------------------------
def hand_gram(ls, X, padded=False):
    A = X / ls
    if padded:
        mask = ~jnp.any(jnp.isnan(X), axis=-1)
        A = jnp.where(mask[:, None], A, 0.0)
    if X.shape[-1] == 1:
        r2 = (A - A.T) ** 2
    else:
        a2 = jnp.sum(A * A, axis=-1)
        r2 = jnp.maximum(a2[:, None] + a2[None, :] - 2.0 * (A @ A.T), 0.0)
    Kx = jnp.exp(-0.5 * r2)
    if padded:
        Kx = jnp.where(mask[:, None] & mask[None, :], Kx, 0.0) + jnp.diag((~mask).astype(Kx.dtype))
    return Kx


# -- data (as the seed notebook) ---------------------------------------------------------
def make_inputs(rng, m, d, kind, batch=None):
    shape = (m, d) if batch is None else (batch, m, d)
    if kind == "regular":
        if d == 1:
            X = np.linspace(0.0, 10.0, m)[:, None]
        else:
            g = np.linspace(0.0, 5.0, int(np.ceil(m ** (1 / d))))
            X = np.stack([a.ravel() for a in np.meshgrid(*([g] * d), indexing="ij")], -1)[:m]
        return X if batch is None else np.broadcast_to(X, shape).copy()
    X = rng.uniform(0.0, 10.0, shape)
    if kind == "padded":  # 20% of the rows get a NaN in one feature (same rows in each task)
        rows = rng.choice(m, int(0.2 * m), replace=False)
        X[..., rows, rng.integers(0, d, rows.size)] = np.nan
    return X


# -- timing --------------------------------------------------------------------------------
# Process CPU time by default: on a shared machine wall time mostly measures waiting for
# a core. It sums XLA's worker threads, so it is total CPU work rather than latency.
CLOCK = {"cpu": time.process_time, "wall": time.perf_counter}
_clock = [time.process_time]


def _loop(f, args, number):
    clock = _clock[0]
    t0 = clock()
    for _ in range(number):
        jax.block_until_ready(f(*args))
    return (clock() - t0) / number


def best_times(fs, args, min_run, repeat):
    """Best per-call time of each function; runs are interleaved so load spikes hit all alike."""
    numbers = []
    for f in fs:
        jax.block_until_ready(f(*args))  # compile and warm up
        number = 1
        while number < 10_000:  # calibrate: loops per run so that a run lasts >= min_run
            t = _loop(f, args, number) * number
            if t >= min_run:
                break
            number *= max(2, int(min_run / max(t, 1e-9)) + 1)
        numbers.append(number)
    best = [np.inf] * len(fs)
    for _ in range(repeat):
        for i, f in enumerate(fs):
            best[i] = min(best[i], _loop(f, args, numbers[i]))
    return best


def best_time(f, args, min_run, repeat):
    return best_times([f], args, min_run, repeat)[0]


def fmt(t):
    return f"{t * 1e6:8.1f} us" if t < 1e-3 else f"{t * 1e3:8.2f} ms" if t < 1 else f"{t:8.3f} s "


def check(name, ref, got, nan_ok=False):
    ref, got = np.asarray(ref), np.asarray(got)
    if nan_ok:  # the naive kernel returns NaN rows where skgpx returns identity/zero blocks
        keep = ~np.isnan(ref)
        ref, got = ref[keep], got[keep]
    tol = 1e-10 if ref.dtype == np.float64 else 1e-4
    if not np.allclose(ref, got, rtol=tol, atol=tol):
        raise AssertionError(f"{name}: implementations disagree (max {np.max(np.abs(ref - got)):.2e})")


# -- cases ---------------------------------------------------------------------------------
def cases(quick):
    """(name, kind, distinct, inputs, n_features, grad): the seed's cases, then larger ones."""
    rng = np.random.default_rng(0)
    big_m, bb, bm = (500, 50, 200) if quick else (2000, 250, 500)
    out = [(f"pairwise {d}-D", "pair", None, (np.zeros(d), np.ones(d)), d, False) for d in (1, 4)]
    for d in (1, 4):
        for kind in ("regular", "irregular", "padded"):
            out.append((f"gram M=100 {d}-D {kind}", kind, None, make_inputs(rng, 100, d, kind), d, False))
    for distinct in (False, True):
        for d in (1, 4):
            for kind in ("regular", "irregular", "padded"):
                X = make_inputs(rng, 100, d, kind, batch=250)
                tag = "distinct" if distinct else "shared"
                out.append((f"batch 250x100 {tag} {d}-D {kind}", kind, distinct, X, d, False))
    for d in (1, 4):
        X = make_inputs(rng, big_m, d, "irregular")
        out.append((f"gram M={big_m} {d}-D irregular", "irregular", None, X, d, False))
    for d in (1, 4):
        X = make_inputs(rng, bm, d, "irregular", batch=bb)
        out.append((f"batch {bb}x{bm} distinct {d}-D irregular", "irregular", True, X, d, False))
    # Training needs d(sum K)/d(length scale) too: the backward pass of each implementation.
    for d in (1, 4):
        out.append((f"grad gram M=100 {d}-D", "irregular", None, make_inputs(rng, 100, d, "irregular"), d, True))
    for d in (1, 4):
        X = make_inputs(rng, big_m, d, "irregular")
        out.append((f"grad gram M={big_m} {d}-D", "irregular", None, X, d, True))
    X = make_inputs(rng, 100, 4, "irregular", batch=250)
    out.append(("grad batch 250x100 distinct 4-D", "irregular", True, X, 4, True))
    return out


def implementations(kind, distinct, X, grad):
    """(naive, hand, skgpx) jitted functions of (length_scale, inputs) and the length scale."""
    padded = kind == "padded"
    mask = "nan" if padded else None
    ls = LS
    if kind == "pair":
        fs = (_naive_pair_guarded, _naive_pair, lambda ls, a, b: K.RBF(ls).pairwise(a, b))
    elif distinct is None:
        fs = (naive_gram, lambda ls, X: hand_gram(ls, X, padded), lambda ls, X: K.RBF(ls).gram(X, mask))
    else:
        B = X.shape[0]
        ax = 0 if distinct else None
        ls = np.linspace(0.2, 0.4, B) if distinct else LS
        template = K.Batched(K.RBF(LS), B, distinct=distinct)
        fs = (
            vmap(naive_gram, in_axes=(ax, 0)),
            vmap(lambda l, x: hand_gram(l, x, padded), in_axes=(ax, 0)),
            lambda ls, X: template.replace(kernel__length_scale=ls).gram(X, mask),
        )
    if grad:
        fs = tuple(jax.grad(lambda ls, X, f=f: jnp.sum(f(ls, X))) for f in fs)
    return (*(jax.jit(f) for f in fs), ls)


_exp = jax.jit(jnp.exp)


def run(quick, dtype):
    min_run, repeat = (0.02, 3) if quick else (0.05, 7)
    load0 = os.getloadavg()
    print(f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} CPUs, {np.dtype(dtype).name}, "
          f"load average {load0}")
    print(f"best of {repeat} interleaved runs of >= {min_run:.2f} s each, {_clock[0].__name__} per call\n")
    header = (f"{'case':<38s}|{'naive':>12s} |{'hand':>12s} |{'skgpx':>12s} | naive/skgpx | skgpx/hand "
              f"|{'exp floor':>12s}")
    print(header + "\n" + "-" * len(header))
    misses = []
    for name, kind, distinct, X, d, grad in cases(quick):
        f_naive, f_hand, f_sk, ls = implementations(kind, distinct, X, grad)
        X = tuple(np.asarray(x, dtype) for x in X) if kind == "pair" else np.asarray(X, dtype)
        ls = np.asarray(ls, dtype)
        args = (ls, *X) if kind == "pair" else (ls, X)
        r_sk = f_sk(*args)
        check(name + " hand", f_hand(*args), r_sk)
        check(name + " naive", f_naive(*args), r_sk, nan_ok=kind == "padded")
        # exp floor: the n^2 exponentials every implementation evaluates, timed alone on
        # an array of the Gram's shape.
        fwd = implementations(kind, distinct, X, False)[2](*args) if grad else r_sk
        neg = -jnp.abs(jnp.asarray(fwd, dtype)) - 0.1
        t_n, t_h, t_s = best_times((f_naive, f_hand, f_sk), args, min_run, repeat)
        t_e = best_time(_exp, (neg,), min_run, repeat)
        speedup, floor = t_n / t_s, t_s / t_h
        flags = []
        if speedup < (5.0 if d > 1 else 0.95):  # 1-D: "not slower", within +-5% run-to-run noise
            flags.append("naive/skgpx")
        if floor > 1.5:
            flags.append("skgpx/hand")
        if flags:
            misses.append((name, flags))
        mark = "  <-- " + ", ".join(flags) if flags else ""
        print(f"{name:<38s}|{fmt(t_n):>12s} |{fmt(t_h):>12s} |{fmt(t_s):>12s} |{speedup:12.1f} |{floor:11.2f} |{fmt(t_e):>12s}{mark}")
    print(f"\nload average before {load0}, after {os.getloadavg()}")
    print("targets: naive/skgpx >= 5 on 4-D (>= 0.95 on 1-D), skgpx/hand <= 1.5; missed:")
    for name, flags in misses:
        print(f"  {name}: {', '.join(flags)}")


def distance_paths():
    """Squared-distance forms for the RBF Gram (sets ``_DIRECT_MAX_FEATURES``)."""

    def broadcast(A):
        diff = A[:, None, :] - A[None, :, :]
        return jnp.exp(-0.5 * jnp.sum(diff * diff, -1))

    def columns(A):  # skgpx's direct form
        r2 = 0.0
        for j in range(A.shape[1]):
            diff = A[:, j][:, None] - A[:, j][None, :]
            r2 = r2 + diff * diff
        return jnp.exp(-0.5 * r2)

    def gemm(A):  # skgpx's GEMM form
        a2 = jnp.sum(A * A, -1)
        r2 = jnp.maximum(a2[:, None] + a2[None, :] - 2.0 * (A @ A.T), 0.0)
        return jnp.exp(-0.5 * jnp.where(jnp.eye(A.shape[0], dtype=bool), 0.0, r2))

    print(f"load average {os.getloadavg()}; RBF Gram, forward | forward+grad wrt the length scale; "
          f"{_clock[0].__name__}, best of 5 interleaved runs")
    for n, B in ((100, None), (100, 250), (2000, None)):
        for d in (1, 2, 3, 4, 6, 8):
            X = np.random.default_rng(0).normal(size=(n, d) if B is None else (B, n, d))
            fs = []
            for path in (broadcast, columns, gemm):
                p = path if B is None else vmap(path)
                fs.append(jax.jit(lambda ls, X, p=p: p(X / ls)))
                fs.append(jax.jit(jax.grad(lambda ls, X, p=p: p(X / ls).sum())))
            t = best_times(fs, (1.3, X), 0.05, 5)
            size = f"n={n}" if B is None else f"B={B} x n={n}"
            print(f"{size:>13s} d={d}: forward broadcast/columns/gemm {fmt(t[0])} {fmt(t[2])} {fmt(t[4])} | "
                  f"grad {fmt(t[1])} {fmt(t[3])} {fmt(t[5])}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="skgpx kernel benchmark (see the module docstring)")
    parser.add_argument("--quick", action="store_true", help="fewer repeats and smaller large cases")
    parser.add_argument("--distance-paths", action="store_true", help="time direct vs GEMM squared distances")
    parser.add_argument("--float32", action="store_true", help="float32 inputs (cheaper exp) instead of float64")
    parser.add_argument("--clock", choices=sorted(CLOCK), default="cpu", help="process CPU time (default) or wall")
    args = parser.parse_args()
    _clock[0] = CLOCK[args.clock]
    with jax.enable_x64(True):
        distance_paths() if args.distance_paths else run(args.quick, np.float32 if args.float32 else np.float64)
