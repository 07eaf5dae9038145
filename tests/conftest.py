"""Test configuration: float64 for the whole test session (the library itself never sets it)."""

import collections

import jax
import pytest

jax.config.update("jax_enable_x64", True)

# JAX reports every trace of a jitted function (and so every compilation) under this event.
_TRACE_EVENT = "/jax/core/compile/jaxpr_trace_duration"


@pytest.fixture
def trace_counts():
    """A ``Counter`` of traces per jitted function name while the test runs.

    Read from ``jax.monitoring``, so production code needs no counters: a test compares
    ``trace_counts["posterior_mean"]`` before and after a call to check it reused the
    compiled code.
    """
    counts = collections.Counter()

    def listen(event, duration, **kwargs):
        if event == _TRACE_EVENT:
            counts[kwargs.get("fun_name")] += 1

    jax.monitoring.register_event_duration_secs_listener(listen)
    try:
        yield counts
    finally:
        jax.monitoring.unregister_event_duration_listener(listen)
