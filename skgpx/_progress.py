"""Progress of long iterative solves: a line every few seconds, silent on short work.

A compiled loop (CG, Lanczos) on a system of at least :data:`MIN_ROWS` rows (a static
shape: smaller loops compile without any callback) calls :func:`iteration`; every
:data:`CHECK_EVERY` iterations that costs one host callback, which prints nothing until the
loop has run for :data:`EVERY` seconds, then one line every :data:`EVERY` seconds (and a
last one when a loop that printed ends). A fit of a few seconds therefore prints nothing.
Magma's task-chunk and optimiser progress is :mod:`skgpx.magma._progress` (same cadence).
"""

from __future__ import annotations

import functools
import sys
import time

import jax

__all__ = ["CHECK_EVERY", "EVERY", "MIN_ROWS", "iteration"]

# Seconds before the first line and between two lines.
EVERY = 5.0
# Loop iterations between two host callbacks (each costs about a millisecond on the CPU).
CHECK_EVERY = 10
# Smallest system (rows) whose loops report: below it a whole solve takes well under EVERY.
MIN_ROWS = 4096


class _Loop:
    def __init__(self, now):
        self.start = self.last = now
        self.printed = False
        self.i = -1


_LOOPS: dict = {}


def _tick(label, unit, what, target, i, value, last):
    i, now = int(i), time.perf_counter()
    loop = _LOOPS.get(label)
    if loop is None or i <= loop.i:  # a new run of this loop
        loop = _LOOPS[label] = _Loop(now)
    loop.i = i
    due = now - loop.last >= EVERY
    if due or (bool(last) and loop.printed):
        tail = "" if target is None else f" (target {target:.3g})"
        end = ", done" if bool(last) else ""
        print(f"[skgpx] {label}: {i} {unit}, {what} {float(value):.3g}{tail}{end} ({now - loop.start:.0f} s)",
              file=sys.stdout, flush=True)
        loop.last, loop.printed = now, True
    if bool(last):
        _LOOPS.pop(label, None)


def iteration(label: str, rows: int, i, value, last, *, unit: str = "iterations",
              what: str = "max relative residual", target: float | None = None, every: int | None = None):
    """Inside a compiled loop on a system of ``rows`` rows (static; below :data:`MIN_ROWS`
    nothing is compiled in): iteration ``i`` (traced int) done with ``value`` (traced scalar,
    e.g. the largest relative residual); ``last`` (traced bool): the loop ends here. Calls the
    host every ``every`` (default :data:`CHECK_EVERY`) iterations and on the last."""
    if rows < MIN_ROWS:
        return
    every = CHECK_EVERY if every is None else int(every)
    tick = functools.partial(_tick, label, unit, what, target)
    jax.lax.cond((i % every == 0) | last, lambda: jax.debug.callback(tick, i, value, last), lambda: None)
