"""Where an estimator's arrays live and its computations run: the ``device`` parameter."""

from __future__ import annotations

import jax

__all__ = ["resolve_device", "describe_device"]


def _gpus():
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
