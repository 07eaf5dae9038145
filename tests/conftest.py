"""Test configuration: float64 for the whole test session (the library itself never sets it)."""

import jax

jax.config.update("jax_enable_x64", True)


import collections  # noqa: E402
import contextlib  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402

import pytest  # noqa: E402

_TRACED = re.compile(r"Finished tracing \+ transforming (\S+) for pjit")


class _TraceLog(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.counts = collections.Counter()

    def emit(self, record):
        match = _TRACED.match(record.getMessage())
        if match:
            self.counts[match.group(1)] += 1


@contextlib.contextmanager
def _count_traces():
    # JAX logs every trace of a jitted function when compiles are logged: the test-side
    # counter (production modules hold no counters).
    handler, logger = _TraceLog(), logging.getLogger("jax")
    logger.addHandler(handler)
    try:
        with jax.log_compiles(True):
            yield handler.counts
    finally:
        logger.removeHandler(handler)


@pytest.fixture
def count_traces():
    """``with count_traces() as counts:`` -> ``counts[name]``: traces of jitted ``name`` inside the block."""
    return _count_traces
