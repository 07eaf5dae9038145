"""The noisy Gram matrix ``K(X, X) + diag(noise)`` with a row-tiled reverse-mode rule.

Forward, :func:`noisy_gram` is ``kernel.gram(X) + diag(noise)``. Backward, the
cotangent ``W`` (``n x n``: for the exact GP, ``1/2 (alpha alpha^T - K^{-1})``) is
contracted with the derivative of every kernel entry. Autodiff of the vectorised
Gram does that in whole ``n x n`` passes, writing each intermediate (distances,
their square root, exponentials, products with ``W``) to memory before reducing
it. Here the contraction runs over tiles of ``_TILE_ROWS`` rows (``lax.scan``):
each tile's intermediates stay in cache, the kernel is evaluated once more per
tile (it is cheap next to memory traffic), and nothing ``n x n`` is stored for the
backward pass (about 4x faster than autodiff of the whole Gram: docs/performance.md).

Exactness: ``kernel.gram(X)`` equals ``kernel.cross(X, X)`` off the diagonal and
``kernel.diag(X)`` on it (the convention of every skgpx kernel; a ``White`` term is
diagonal only). The tiles contract ``cross`` rows against ``W`` with its diagonal
zeroed, and the diagonal is contracted once through ``diag(X) + noise``, so the
gradient is that of the Gram itself, in every input that is differentiated
(hyperparameters, ``X``, ``noise``).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = ["noisy_gram"]

# Rows per tile of the backward pass: a (50, n) block of float64 intermediates stays in
# cache at n in the thousands; 25 to 100 rows timed alike. Tiles never pad: the last,
# shorter tile is its own step.
_TILE_ROWS = 50


def _value(kernel, X, noise):
    return kernel.gram(X) + jnp.diag(noise)


@eqx.filter_custom_vjp
def noisy_gram(inputs):
    """``kernel.gram(X) + diag(noise)`` for ``inputs = (kernel, X, noise)``.

    Differentiable in the kernel's hyperparameters, ``X`` and ``noise`` with a
    row-tiled backward pass (see the module docstring); the value is the plain Gram.
    """
    return _value(*inputs)


@noisy_gram.def_fwd
def _fwd(perturbed, inputs):
    return _value(*inputs), None


@noisy_gram.def_bwd
def _bwd(residuals, W, perturbed, inputs):
    del residuals
    diff, static = eqx.partition(inputs, perturbed)
    n = inputs[1].shape[0]
    T = min(_TILE_ROWS, n)
    n_full = n // T

    def diagonal(d):
        kern, Xd, noise = eqx.combine(d, static)
        return kern.diag(Xd) + noise

    ct = jax.vjp(diagonal, diff)[1](jnp.diagonal(W))[0]

    def tile(d, start, rows):
        kern, Xd, _ = eqx.combine(d, static)
        return kern.cross(jax.lax.dynamic_slice_in_dim(Xd, start, rows), Xd)

    def contract(ct, start, rows):
        W_rows = jax.lax.dynamic_slice_in_dim(W, start, rows)
        # The diagonal entries were contracted above, through diag(X) + noise.
        cols = jnp.arange(n)[None, :]
        W_rows = jnp.where(cols == start + jnp.arange(rows)[:, None], 0.0, W_rows)
        g = jax.vjp(lambda d: tile(d, start, rows), diff)[1](W_rows)[0]
        return jax.tree.map(jnp.add, ct, g)

    def step(ct, i):
        return contract(ct, i * T, T), None

    ct, _ = jax.lax.scan(step, ct, jnp.arange(n_full))
    if n_full * T < n:
        ct = contract(ct, n_full * T, n - n_full * T)
    return ct
