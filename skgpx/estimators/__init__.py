"""scikit-learn estimators: the thin layer over the pure GP back-ends."""

from ._gpr import ScalableGPRegressor as ScalableGPRegressor
from ._magma import MultiTaskMagmaRegressor as MultiTaskMagmaRegressor
from ._calibration import CalibrationWarning as CalibrationWarning
