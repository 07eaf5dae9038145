"""The host side of inference: training data placed once, padded to size buckets, and the
compiled programs every back-end shares (conditioning, the optimiser's objective).

One compiled program per public call: :func:`condition_program`, :func:`neg_lml_and_grad`
and :func:`neg_lml` are module-level ``eqx.filter_jit`` functions of ``(inference, kernel,
data, key)``. Hyperparameter values and data are traced leaves; only the kernel's and the
inference's structure (static fields, bounds), the dtype and the array shapes key the
compiled code. So every estimator, clone (``GridSearchCV``) and restart with the same
structure reuses one program.

Shapes key it too, so a back-end that accepts a row mask (``mask=`` in its ``condition``
and ``log_marginal_likelihood``) gets its training set padded to a size bucket
(:func:`bucket`, by :func:`padded_training_data` up to ``PAD_MAX_N`` rows): a
cross-validation fold or a nearby ``n`` runs the program already compiled. Padded rows hold
zeros in ``X``, ``Y`` and ``noise`` and ``False`` in ``mask``; the back-end makes them an
identity block (zero kernel rows and columns, unit diagonal) that changes no result, and
counts only the real rows (:func:`n_real`) in the likelihood's constant.

Back-ends that accept a mask: the exact Cholesky (below its LAPACK size on the CPU), CG
with the dense or the matrix-free operator (not under a device mesh: the sharded operator
runs unpadded), random Fourier features and Nyström. Their random draws (features,
landmarks, pivots, probes) are drawn per real row or independently of ``n``, so a padded
fit gives the unpadded one's numbers (tests/gp/test_padding.py). SKI and the host (NumPy)
path run unpadded.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["TrainingData", "bucket", "training_data", "padded_training_data", "n_real", "condition_program",
           "neg_lml_and_grad", "neg_lml", "PAD_MAX_ROWS", "PAD_MAX_N"]

# Up to _FINE_MAX rows sizes are padded to a multiple of 8 (a 32 x 32 solve is where
# OpenBLAS starts threads, which a 20-row problem should not pay for); up to _POW2_MAX
# to a power of two (a fit there costs little more than the dispatch of its programs,
# so one program serves every n in the bucket); above, to a multiple of 1/8 of the
# size's power of two.
_FINE_MAX = 64
_POW2_MAX = 256
# Test inputs are padded up to this many rows; past it the work dwarfs a compilation.
PAD_MAX_ROWS = 4096
# Training sets are padded up to this many rows; past it, compiling a program for a new n
# costs less than the padded rows would.
PAD_MAX_N = 4096


def bucket(n: int, pow2_max: int = _POW2_MAX) -> int:
    """The padded size of ``n`` rows: a multiple of 8 up to 64, a power of two up to
    ``pow2_max`` (256), then the next multiple of ``2**(floor(log2 n) - 3)`` (at most 12.5%
    more rows). A size whose cost grows as its cube on every iteration (Magma's union grid)
    passes ``pow2_max=64``: the 12.5% steps from 64 on."""
    n = int(n)
    if n <= _FINE_MAX:
        return max(8, -(-n // 8) * 8)
    if n <= pow2_max:
        return 1 << (n - 1).bit_length()
    step = 1 << ((n.bit_length() - 1) - 3)
    return -(-n // step) * step


class TrainingData(eqx.Module):
    """Training inputs ``(n, d)``, targets ``(n, t)``, per-row noise ``(n,)`` on the device;
    ``mask`` ``(n,)`` flags real rows (``None``: none padded)."""

    X: jax.Array
    Y: jax.Array
    noise: jax.Array
    mask: jax.Array | None

    @property
    def n_rows(self) -> int:
        """Rows held, padding included."""
        return self.X.shape[0]


def training_data(X, Y, noise, size: int | None = None, dtype=None) -> TrainingData:
    """Place ``X``, ``Y`` ``(n, t)`` and ``noise`` on JAX's default device, padded to ``size`` rows.

    ``size=None`` (or ``n``): no padding and ``mask=None``. Padding is done in NumPy, so a
    new ``n`` compiles nothing here.
    """
    X, Y, noise = (np.asarray(a, dtype=dtype) for a in (X, Y, noise))
    n = X.shape[0]
    mask = None
    if size is not None and size > n:
        extra = size - n
        X = np.concatenate([X, np.zeros((extra,) + X.shape[1:], X.dtype)])
        Y = np.concatenate([Y, np.zeros((extra,) + Y.shape[1:], Y.dtype)])
        noise = np.concatenate([noise, np.zeros(extra, noise.dtype)])
        mask = np.arange(size) < n
    put = jnp.asarray
    return TrainingData(put(X), put(Y), put(noise), None if mask is None else put(mask))


def padded_training_data(X, Y, noise, dtype=None, pad: bool = True) -> TrainingData:
    """:func:`training_data` padded to :func:`bucket` ``(n)`` when ``pad`` and ``n <= PAD_MAX_N``
    (the ``prepare`` of a back-end that accepts ``mask=``)."""
    n = len(X)
    return training_data(X, Y, noise, bucket(n) if pad and n <= PAD_MAX_N else None, dtype)


def n_real(Y, mask):
    """Rows of ``Y`` that are real: ``Y.shape[0]`` when ``mask`` is None, else ``sum(mask)`` (traced)."""
    return Y.shape[0] if mask is None else jnp.sum(mask)


def _masked(inference, data):
    # Padded data are passed with their mask; unpadded calls keep each back-end's signature.
    return {} if data.mask is None else {"mask": data.mask}


@eqx.filter_jit
def condition_program(inference, kernel, data: TrainingData, key):
    """``inference.condition`` on ``data``, compiled once per structure and shape."""
    return inference.condition(kernel, data.X, data.Y, data.noise, key, **_masked(inference, data))


def _neg_lml(theta, kernel, inference, data, key):
    value = inference.log_marginal_likelihood(kernel.with_theta(theta), data.X, data.Y, data.noise, key,
                                              **_masked(inference, data))
    return value


@eqx.filter_jit
def neg_lml_and_grad(theta, kernel, inference, data: TrainingData, key):
    """``(-lml, -grad)`` in the log hyperparameters; ``(inf, 0)`` where the value is not finite
    (a failed factorisation), as scikit-learn reports it."""
    value, grad = jax.value_and_grad(_neg_lml)(theta, kernel, inference, data, key)
    finite = jnp.isfinite(value)
    return jnp.where(finite, -value, jnp.inf), jnp.where(finite, -grad, 0.0)


@eqx.filter_jit
def neg_lml(theta, kernel, inference, data: TrainingData, key):
    """``-lml`` alone (``inf`` where not finite)."""
    value = _neg_lml(theta, kernel, inference, data, key)
    return jnp.where(jnp.isfinite(value), -value, jnp.inf)


def choose_rows(key, n: int, r: int, mask=None):
    """``r`` distinct row indices of ``n``, uniformly at random, real rows (``mask``) first.

    The rows with the ``r`` largest of ``n`` uniforms: JAX draws element ``i`` of a
    ``uniform(key, (n,))`` from ``(key, i)`` alone, so the real rows of a padded set get the
    draws of the unpadded one and the same rows are chosen (padded rows come last, only
    when ``r`` exceeds the real rows).
    """
    u = jax.random.uniform(key, (n,))
    if mask is not None:
        u = jnp.where(mask, u, -1.0)
    return jax.lax.top_k(u, r)[1]
