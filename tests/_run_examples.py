"""Run by tests/test_examples.py in one subprocess: every example script given, each in a
forked child (a fresh JAX: no backend exists before the fork) of a process that imported the
libraries the examples share once. Prints one JSON line {script: {rc, stdout, stderr, started}}.

Usage: python _run_examples.py TIMEOUT SCRIPT...
"""

import json
import os
import runpy
import signal
import sys
import tempfile
import time

import matplotlib

matplotlib.use("Agg")
import jax  # noqa: E402,F401
import matplotlib.pyplot  # noqa: E402,F401
import sklearn.gaussian_process  # noqa: E402,F401
import skgpx  # noqa: E402,F401
import skgpx.estimators  # noqa: E402,F401
import skgpx.gp  # noqa: E402,F401
import skgpx.kernels  # noqa: E402,F401
from jax._src import xla_bridge  # noqa: E402

# A forked JAX backend would share the parent's threads: the imports must not start one.
assert not xla_bridge._backends, "the example runner started a JAX backend before forking"


def run_child(script, out, err):
    os.dup2(out.fileno(), 1)
    os.dup2(err.fileno(), 2)
    sys.argv = [script]
    sys.path[0] = os.path.dirname(script)  # as `python script.py` has it
    code = 0
    try:
        runpy.run_path(script, run_name="__main__")
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def run(script, timeout):
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.time()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            run_child(script, out, err)
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                rc = os.waitstatus_to_exitcode(status)
                break
            if time.time() - started > timeout:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                rc = f"killed after {timeout} s"
                break
            time.sleep(0.05)
        out.seek(0)
        err.seek(0)
        return {"rc": rc, "stdout": out.read(), "stderr": err.read(), "started": started}


if __name__ == "__main__":
    timeout = float(sys.argv[1])
    print(json.dumps({script: run(script, timeout) for script in sys.argv[2:]}))
