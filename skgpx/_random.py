"""Explicit randomness: an estimator's ``random_state`` becomes a NumPy RNG and one JAX key.

The NumPy ``RandomState`` (scikit-learn's ``check_random_state``) drives everything
scikit-learn would draw with it (optimizer restarts, ``sample_y(method="exact")``);
a JAX key is derived from it *once* and split for every JAX-side draw, so no key is
ever reused and there is no hidden default ``PRNGKey(0)``.
"""

from __future__ import annotations

import jax
import numpy as np
from sklearn.utils import check_random_state

__all__ = ["check_random_state", "key_from_rng", "key_from_random_state", "KeyStream"]


def key_from_rng(rng: np.random.RandomState):
    """A ``jax.random`` key seeded by one draw from ``rng`` (advances ``rng``)."""
    seed = int(rng.randint(0, 2**31 - 1))
    return jax.random.key(seed)


class KeyStream:
    """Hands out a fresh JAX key on every :meth:`next` call (split from one root key)."""

    def __init__(self, random_state=None):
        self.rng = check_random_state(random_state)
        self._key = key_from_rng(self.rng)

    def next(self):
        self._key, sub = jax.random.split(self._key)
        return sub


def key_from_random_state(rng: np.random.RandomState, stream: int = 0):
    """A JAX key derived from ``rng``'s current state *without advancing* ``rng``.

    The estimator uses its ``RandomState`` for exactly the draws scikit-learn makes
    (restart points), so those stay identical to scikit-learn's; JAX-side keys come
    from a copy of the state, folded with ``stream`` to separate their uses.
    """
    copy = np.random.RandomState()
    copy.set_state(rng.get_state())
    return jax.random.fold_in(key_from_rng(copy), stream)
