"""Progress of long Magma work (``verbose``): a line every few seconds, silent on short work.

Two kinds of long work: a compiled pass over the task chunks (the E-step's task
precisions: :func:`chunk_done`, called from inside the loop, one call per chunk and
device, counted on the host), and an M-step's optimiser, one compiled evaluation after
another (:func:`evaluations`, on the host). Nothing is printed before
:data:`EVERY` seconds have passed since the start of the pass or the optimisation, so
small problems print only the per-iteration lines of the EM loop.
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import time

import jax
import jax.numpy as jnp

__all__ = ["EVERY", "chunk_done", "evaluations", "reporting"]

# Seconds between two progress lines (and before the first one).
EVERY = 5.0


class _Pass:
    """Chunks done in the current pass over ``total`` chunks (reset when a pass completes)."""

    def __init__(self):
        self.done, self.start, self.last = 0, 0.0, 0.0

    def tick(self, label: str, total: int):
        now = time.perf_counter()
        if self.done == 0:
            self.start = self.last = now
        self.done += 1
        if now - self.last >= EVERY:
            print(f"[Magma] {label}: {self.done}/{total} task chunks done ({now - self.start:.0f} s)", flush=True)
            self.last = now
        if self.done >= total:
            self.done = 0


_PASSES: dict = {}


def _tick(label, total, _):
    _PASSES.setdefault((label, total), _Pass()).tick(label, total)


def chunk_done(label: str, total: int, value):
    """Inside a compiled loop over ``total`` task chunks (over every device together): one
    chunk is done. ``value``: an array of the chunk's result, so the call follows its work."""
    jax.debug.callback(functools.partial(_tick, label, int(total)), jnp.sum(value))


_REPORT = contextvars.ContextVar("skgpx_magma_progress", default=False)


@contextlib.contextmanager
def reporting(verbose):
    """Within: :func:`evaluations` reports (when ``verbose``)."""
    token = _REPORT.set(bool(verbose))
    try:
        yield
    finally:
        _REPORT.reset(token)


def evaluations(label: str):
    """For an optimiser starting now: a function to call with the objective after each
    evaluation, printing a line every :data:`EVERY` seconds; None outside :func:`reporting`."""
    if not _REPORT.get():
        return None
    start = last = time.perf_counter()
    count = 0

    def done(value):
        nonlocal last, count
        count += 1
        now = time.perf_counter()
        if now - last >= EVERY:
            print(f"[Magma] {label}: {count} evaluations, objective {float(value):.6g} ({now - start:.0f} s)",
                  flush=True)
            last = now

    return done
