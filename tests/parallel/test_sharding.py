"""One GP over several devices (device=[...]) and over several processes (jax.distributed).

JAX fixes its device count when it starts, so the checks run in fresh subprocesses: one with
4 host CPU devices (XLA_FLAGS=--xla_force_host_platform_device_count=4) for the dense GP's and
Magma's checks together, and two processes joined by jax.distributed on 127.0.0.1.
"""

import json
import os
import pathlib
import socket
import subprocess
import sys

import jax
import numpy as np
import pytest

import skgpx
from skgpx._mesh import describe_placement, resolve_placement

HERE = pathlib.Path(__file__).parent
ROOT = pathlib.Path(skgpx.__file__).resolve().parent.parent


def _env(n_devices):
    env = dict(os.environ)
    # keeps the suite's flags (tests/conftest.py) and adds the device count
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} --xla_force_host_platform_device_count={n_devices}".strip()
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["JAX_PLATFORMS"] = "cpu"
    return env


def _json_line(stdout):
    lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
    assert lines, stdout
    return json.loads(lines[-1])


@pytest.fixture(scope="module")
def four_devices():
    """The report of tests/parallel/_four_device_run.py: one process (one JAX start-up) for the
    dense GP's checks ("gp") and Magma's ("magma")."""
    proc = subprocess.run([sys.executable, str(HERE / "_four_device_run.py")], env=_env(4), capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return _json_line(proc.stdout)


def test_four_devices_equal_one_device(four_devices):
    report = four_devices["gp"]
    assert report["n_devices"] == 4
    r = report["dense"]
    assert r["operator"] == "ShardedKernelOperator", r
    assert "sharded over 4 devices" in r["kind"]
    # predictions, standard deviations, LML at the fit and at another theta, its gradient
    for key, diff in r["diff"].items():
        assert diff <= 1e-10 * max(1.0, r["scale"][key]), (key, diff)
    assert "mesh rows=4" in r["summary"]
    # Each device holds its share of the rows of the dense Gram: 90 rows padded to 92 = 4 x 23.
    assert r["shard_rows"] == [[0, 23], [1, 23], [2, 23], [3, 23]]
    assert r["shard_cols"] == [90]
    # Matrix-free: the product (block pairs dealt over the devices, one reduce-scatter) and the
    # tiled gradient pass of the LML equal the one-device versions.
    mf = report["matrix-free"]
    assert mf["operator"] == "ShardedKernelOperator"
    assert mf["mm"] <= 1e-12 and mf["grad"] <= 1e-12, mf
    assert (report["auto_kind_mesh"], report["auto_kind_one"]) == ("dense", "matrix-free")


def test_magma_four_devices_equal_one_device(four_devices):
    """MultiTaskMagmaRegressor on a mesh of 4 devices: the per-task work split by tasks (10 tasks
    padded to 12 = 4 x 3), the fit equal to the one-device fit."""
    report = four_devices["magma"]
    assert report["n_devices"] == 4
    # At fixed hyperparameters the E-step and the task M-step's per-task values and gradients
    # (all tasks, and a subset listed per device) are the one-device ones to round-off.
    for key, diff in report["fixed"].items():
        assert diff <= 1e-12, (key, diff)
    # The task arrays, and the per-task values and gradients, are split 3 tasks per device.
    shards = report["shards"]
    assert shards["M_pad"] == 12
    for key in ("data_X", "values", "grads"):
        assert shards[key] == [[0, 3], [1, 3], [2, 3], [3, 3]], (key, shards[key])
    for kind in ("shared", "distinct"):
        r = report[kind]
        assert "mesh rows=4" in r["device_"] and "mesh rows=4" in r["summary"]
        # Posterior and predictions to ~1e-10. The M-step's optima (hyperparameters, then the
        # ELBO) move with the order of the sums by about sqrt(eps) relative: a flat optimum.
        for key in ("mp_mean", "mp_std", "mean", "std", "post_mean"):
            assert r["diff"][key] <= 2e-9 * max(1.0, r["scale"][key]), (kind, key, r["diff"][key])
        for key in ("theta0", "theta_task", "elbo"):
            assert r["diff"][key] <= 1e-7 * max(1.0, r["scale"][key]), (kind, key, r["diff"][key])


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_jax_distributed():
    port = _free_port()
    procs = [
        subprocess.Popen([sys.executable, str(HERE / "_multiprocess_run.py"), str(port), "2", str(i)], env=_env(1),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    outs = []
    try:
        for p in procs:
            outs.append(p.communicate(timeout=600))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for p, (_, err) in zip(procs, outs):
        assert p.returncode == 0, err[-4000:]
    report = _json_line(outs[0][0])
    assert report["processes"] == 2 and report["devices"] == 2
    assert "2 processes" in report["device_"]
    for key in ("mean", "std", "lml"):
        np.testing.assert_allclose(report["many"][key], report["one"][key], rtol=1e-10, atol=1e-10)


def test_resolve_placement_in_process():
    dev = jax.devices()[0]
    assert resolve_placement([dev]) is dev
    assert resolve_placement(None) is dev
    assert describe_placement(dev) == "cpu:0"
    with pytest.raises(ValueError, match="jax.Device objects"):
        resolve_placement(["cpu", "cpu"])
    with pytest.raises(ValueError, match="lists a device twice"):
        resolve_placement([dev, dev])


@pytest.mark.parametrize("kind", ["device", "list", "mesh"])
def test_clone_with_devices_in_device(kind):
    """clone / get_params / repr of estimators whose `device` holds jax.Device objects or a Mesh
    (scikit-learn deep-copies parameters, and a jax.Device cannot be copied)."""
    from jax.sharding import Mesh
    from sklearn.base import clone

    dev = jax.devices()[0]
    device = {"device": dev, "list": [dev], "mesh": Mesh(np.array([dev], dtype=object), ("rows",))}[kind]
    for est in (skgpx.ScalableGPRegressor(device=device, n_restarts_optimizer=2),
                skgpx.MultiTaskMagmaRegressor(device=device, max_iter=3)):
        twin = clone(est)
        assert type(twin) is type(est) and twin is not est
        assert twin.get_params(deep=False).keys() == est.get_params(deep=False).keys()
        if kind == "list":
            assert twin.device == device and twin.device is not device  # a new list of the same devices
        else:
            assert twin.device is device
        assert {k: v for k, v in twin.get_params(deep=True).items() if k != "device"} == {
            k: v for k, v in est.get_params(deep=True).items() if k != "device"}
        assert "device=" in repr(twin)
        assert resolve_placement(twin.device) is dev
