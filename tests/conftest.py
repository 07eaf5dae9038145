"""Test configuration: float64 for the whole test session (the library itself never sets it)."""

import jax

jax.config.update("jax_enable_x64", True)
