"""A guard against JAX builds that would silently corrupt skgpx's hyperparameter gradients.

Two toolchain bugs have hit skgpx:

* jaxlib 0.10.0 deadlocks on the CPU when two vmapped (batched) triangular solves run
  concurrently (each holds an intra-op pool thread waiting for its own sub-tasks);
  Magma's M-step hung forever. Fixed in later releases; refused here by version.
* From jaxlib 0.10.1, XLA's CPU backend contracts ``x * s - y * s`` into a fused
  multiply-add inside some fusions and not others, so ``a_i - a_i`` with ``a = X / ls``
  is exactly 0 in one fusion and ~1e-19 in the next. The double-``where`` safe square
  root that skgpx's kernels used took different branches in the forward and backward
  passes: wrong reverse-mode gradients under ``jit`` (``d/dlog c = 5.03`` for the true
  9.96), correct ones eagerly. The kernels now use a custom-JVP square root
  (:func:`skgpx.kernels.safe_sqrt`) that no such rewrite can split.

:func:`check_toolchain` runs once per device (cached) before the first fit: it refuses
jaxlib 0.10.0 on the CPU, and compiles the gradient of a small ARD Matérn-1.5 Gram
matrix (the pattern that was miscompiled) and compares it with its closed form, so a
future JAX that miscompiles the kernels raises a clear error instead of fitting wrong
hyperparameters.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["check_toolchain", "TESTED_JAX"]

# The JAX releases the test suite passed on (docs/faq.md); pyproject.toml pins the same.
TESTED_JAX = ">=0.9.2, !=0.10.*, !=0.11.*, <0.13"

_DEADLOCKING_JAXLIB = ("0.10.0",)
# jaxlib releases the whole suite passed on (tests/test_toolchain.py runs the same check):
# the first fit skips compiling the check there (one compilation of a cold process's first fit).
_VERIFIED_JAXLIB = ("0.9.2", "0.12.0.1")


def _closed_form(X, c, ls):
    """``d/dtheta sum(c * Matern15(X, X))`` in ``theta = log(c, ls)``, in NumPy."""
    u2 = ((X[:, None, :] - X[None, :, :]) / ls) ** 2
    s = np.sqrt(3.0 * u2.sum(-1))
    e = np.exp(-s)
    # dK/dlog c = K;  dK/dlog ls_j = 3 c exp(-s) u_j^2 (finite at s = 0).
    return np.concatenate([[np.sum(c * (1.0 + s) * e)], 3.0 * c * np.einsum("ij,ijk->k", e, u2)])


@functools.cache
def check_toolchain(device=None, _force: bool = False) -> None:
    """Raise ``RuntimeError`` when the installed JAX is known or seen to be unsafe on ``device``.

    ``device`` is a ``jax.Device`` (None: JAX's default). Cached: the compiled check
    runs once per device and process, except on the CPU with a jaxlib the test suite
    verified (``_VERIFIED_JAXLIB``), where it is skipped unless ``_force``.
    """
    import jaxlib

    from ._config import precision_scope
    from .kernels import Matern

    device = jax.devices()[0] if device is None else device
    versions = f"jax {jax.__version__} / jaxlib {jaxlib.__version__}"
    advice = (f"skgpx is tested with jax and jaxlib {TESTED_JAX}; install such a version, e.g. "
              "pip install 'jax>=0.12,<0.13' (Python >= 3.11) or 'jax==0.9.2'.")
    if device.platform == "cpu" and jaxlib.__version__ in _DEADLOCKING_JAXLIB:
        raise RuntimeError(f"{versions} deadlocks on the CPU on concurrent batched triangular solves. {advice}")
    if device.platform == "cpu" and jaxlib.__version__ in _VERIFIED_JAXLIB and not _force:
        return
    X = np.linspace(-1.0, 1.0, 12).reshape(6, 2) ** 3  # distinct rows, each at distance 0 from itself
    c, ls = 1.2, np.array([0.3, 0.5])
    with precision_scope(np.float64), jax.default_device(device):
        Xj = jnp.asarray(X)

        def total(theta):
            return jnp.exp(theta[0]) * jnp.sum(Matern(jnp.exp(theta[1:]), nu=1.5).gram(Xj))

        got = np.asarray(jax.jit(jax.grad(total))(jnp.asarray(np.log(np.r_[c, ls]))))
    want = _closed_form(X, c, ls)
    if not np.allclose(got, want, rtol=1e-8, atol=0.0):
        raise RuntimeError(
            f"{versions} compiles the gradient of an skgpx kernel wrongly on {device.platform}: "
            f"d/dtheta of a Matern Gram sum is {np.round(got, 6).tolist()} under jit, the closed form "
            f"{np.round(want, 6).tolist()}. Fitted hyperparameters would be wrong. {advice}"
        )
