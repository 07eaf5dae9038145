"""scikit-learn estimators: the thin layer over the pure GP back-ends (each loads on first use)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

_LAZY = {"ScalableGPRegressor": "._gpr", "MultiTaskMagmaRegressor": "._magma", "CalibrationWarning": "._calibration"}

if TYPE_CHECKING:
    from ._gpr import ScalableGPRegressor as ScalableGPRegressor
    from ._magma import MultiTaskMagmaRegressor as MultiTaskMagmaRegressor
    from ._calibration import CalibrationWarning as CalibrationWarning


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'skgpx.estimators' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
