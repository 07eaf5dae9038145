"""Run by tests/parallel/test_sharding.py in one subprocess with 4 host CPU devices (XLA_FLAGS
set by the parent: JAX fixes its device count at start-up): the dense GP's checks and Magma's,
one process for both. Prints one JSON line {"gp": ..., "magma": ...}."""

import json

import _magma_sharded_run  # the script's folder is on sys.path
import _sharded_run

if __name__ == "__main__":
    print(json.dumps({"gp": _sharded_run.report(90), "magma": _magma_sharded_run.report()}))
