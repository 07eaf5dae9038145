"""scikit-learn's estimator checks on ScalableGPRegressor."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from skgpx import ScalableGPRegressor


@parametrize_with_checks([ScalableGPRegressor()])
def test_sklearn_compatible(estimator, check):
    check(estimator)
