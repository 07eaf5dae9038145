"""Where an estimator's arrays live and its computations run: the ``device`` parameter."""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jax

__all__ = ["resolve_device", "describe_device", "default_device_is_cpu"]


def default_device_is_cpu() -> bool:
    """Whether JAX's default device (``device=None``) is a CPU, without importing JAX where that is certain.

    JAX is asked (and imported) when it is already imported (its configuration may have been
    changed), when ``JAX_PLATFORMS`` names a platform other than ``cpu``, or when an accelerator
    plugin is installed (a ``jax_plugins`` entry point or namespace package: jax-cuda*, jax-rocm*,
    jax-metal; or libtpu). Otherwise JAX can only run on the CPU.
    """
    if "jax" not in sys.modules:
        platforms = [p.strip() for p in os.environ.get("JAX_PLATFORMS", "").split(",") if p.strip()]
        if platforms:
            if all(p == "cpu" for p in platforms):
                return True
        elif not _accelerator_plugin_installed():
            return True
    return resolve_device(None).platform == "cpu"


@functools.lru_cache(maxsize=1)
def _accelerator_plugin_installed() -> bool:
    # Where JAX discovers its PJRT plugins (jax._src.xla_bridge.discover_pjrt_plugins) and libtpu.
    from importlib import metadata, util

    if util.find_spec("jax_plugins") is not None or util.find_spec("libtpu") is not None:
        return True
    return bool(metadata.entry_points(group="jax_plugins"))


def _gpus():
    import jax

    try:
        return jax.devices("gpu")
    except RuntimeError:  # no GPU backend installed or initialised
        return []


def resolve_device(device=None) -> jax.Device:
    """Turn an estimator's ``device`` parameter into a ``jax.Device``.

    ``None`` is JAX's default device, ``"cpu"`` the first CPU, ``"gpu"`` the first
    GPU (an error when JAX sees none), ``"auto"`` a GPU when there is one and the
    CPU otherwise; a ``jax.Device`` is used as is.
    """
    import jax

    if device is None:
        return jax.devices()[0]
    if isinstance(device, jax.Device):
        return device
    if isinstance(device, str):
        name = device.lower()
        if name == "cpu":
            return jax.devices("cpu")[0]
        if name in ("gpu", "cuda"):
            gpus = _gpus()
            if not gpus:
                raise ValueError(
                    f"device={device!r} was requested but JAX sees no GPU (jax.devices() = "
                    f"{jax.devices()}); install jax[cuda12] or use device='cpu'."
                )
            return gpus[0]
        if name == "auto":
            gpus = _gpus()
            return gpus[0] if gpus else jax.devices("cpu")[0]
    raise ValueError(
        f"`device` must be None, 'cpu', 'gpu', 'auto' or a jax.Device, got {device!r}."
    )


def describe_device(device: jax.Device) -> str:
    """A short human-readable name, e.g. ``'cpu:0'`` or ``'gpu:0 (NVIDIA H100)'``."""
    kind = getattr(device, "device_kind", "")
    name = f"{device.platform}:{device.id}"
    return f"{name} ({kind})" if kind and device.platform != "cpu" else name
