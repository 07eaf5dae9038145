"""skgpx: scalable Gaussian processes for scikit-learn users, on JAX, Equinox and lineax.

Submodules and the estimators load on first use (``import skgpx`` costs next to
nothing; ``skgpx.ScalableGPRegressor`` imports scikit-learn, and JAX, Equinox and lineax
load when a compiled solver first runs: a small fit on the NumPy host path never imports them).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# name -> (module, attribute or None for the module itself)
_LAZY = {
    "datasets": (".datasets", None),
    "kernels": (".kernels", None),
    "optimizers": (".optimizers", None),
    "precision_scope": ("._config", "precision_scope"),
    "MultiTaskMagmaRegressor": (".estimators", "MultiTaskMagmaRegressor"),
    "ScalableGPRegressor": (".estimators", "ScalableGPRegressor"),
    # The solver objects of ``ScalableGPRegressor(solver=...)`` (skgpx.gp).
    "Cholesky": (".gp", "Cholesky"),
    "CG": (".gp", "CG"),
    "Nystrom": (".gp", "Nystrom"),
    "RFF": (".gp", "RFF"),
    "SKI": (".gp", "SKI"),
}

if TYPE_CHECKING:  # what the lazy names are, for type checkers and documentation tools
    from . import datasets as datasets, kernels as kernels, optimizers as optimizers
    from ._config import precision_scope as precision_scope
    from .estimators import MultiTaskMagmaRegressor as MultiTaskMagmaRegressor
    from .estimators import ScalableGPRegressor as ScalableGPRegressor
    from .gp import CG as CG, RFF as RFF, SKI as SKI, Cholesky as Cholesky, Nystrom as Nystrom


def __getattr__(name):
    try:
        module, attr = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'skgpx' has no attribute {name!r}") from None
    value = importlib.import_module(module, __name__)
    value = value if attr is None else getattr(value, attr)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
