"""Test configuration: float64 for the whole test session (the library itself never sets it)."""

import os

# The suite compiles thousands of small programs and runs few large ones: XLA's CPU
# backend without LLVM optimisation compiles them about a third faster (results agree with
# the optimised build to rounding; benchmarks run with the default). Set before JAX starts.
os.environ["XLA_FLAGS"] = " ".join(
    filter(None, [os.environ.get("XLA_FLAGS"), "--xla_backend_optimization_level=0"])
)

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)


import collections  # noqa: E402
import gc  # noqa: E402
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


# Every compiled XLA CPU program holds ~15 memory mappings until JAX drops it, and Linux
# allows 65 530 per process (vm.max_map_count): one test worker running half the suite
# compiles more than that and XLA segfaults in its next compilation. Dropping JAX's
# caches between test files when the count is high keeps the worker below it.
_MAP_LIMIT = 25_000


def _mapping_count() -> int:
    try:
        with open("/proc/self/maps", "rb") as f:
            return sum(1 for _ in f)
    except OSError:  # not Linux: no such limit to stay under
        return 0


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    yield
    if _mapping_count() > _MAP_LIMIT:
        jax.clear_caches()
        gc.collect()
