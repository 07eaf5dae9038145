"""Smoke test: every script in ``examples/`` runs in its tiny mode and saves its figure.

Each example honours ``SKGPX_EXAMPLES_QUICK=1`` (and ``--quick``) by shrinking its
problem so that all of them together take well under a minute, and writes
``examples/output/<script name>.png``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted(p for p in (ROOT / "examples").glob("*.py") if not p.name.startswith("_"))

pytest.importorskip("matplotlib")


def test_examples_are_found():
    names = {p.name for p in EXAMPLES}
    assert {"quickstart.py", "co2_composite_kernel.py", "ssh_map.py", "grid_search_pipeline.py", "magma_swimmers.py"} <= names


@pytest.mark.parametrize("script", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_quick(script):
    figure = ROOT / "examples" / "output" / f"{script.stem}.png"
    started = time.time()
    env = dict(os.environ, SKGPX_EXAMPLES_QUICK="1", MPLBACKEND="Agg", PYTHONWARNINGS="default")
    proc = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    assert figure.exists(), f"{script.name} did not write {figure}"
    assert figure.stat().st_mtime >= started - 1, f"{figure} was not rewritten by this run"
    assert figure.stat().st_size > 10_000, f"{figure} looks empty"
    assert proc.stdout.strip(), f"{script.name} printed no summary"
