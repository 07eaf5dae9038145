"""Solver objects: `solver=CG(tol=...)`, validated once, searchable as `solver__<option>`."""

import inspect

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from skgpx import ScalableGPRegressor
from skgpx.gp import CG, RFF, Cholesky, Nystrom, available_solvers, make_inference
from skgpx.kernels import RBF

rng = np.random.default_rng(0)
X = rng.uniform(size=(24, 1))
y = np.sin(6 * X[:, 0]) + 0.05 * rng.standard_normal(24)


def test_constructor_is_sklearns_plus_four():
    names = list(inspect.signature(ScalableGPRegressor).parameters)
    assert names == ["kernel", "alpha", "optimizer", "n_restarts_optimizer", "normalize_y", "copy_X_train",
                     "n_targets", "random_state", "solver", "device", "dtype", "verbose"]


@pytest.mark.parametrize(
    "name, expected",
    [("cholesky", Cholesky()), ("cg", CG()), ("cg-dense", CG(operator="dense")),
     ("cg-matrix-free", CG(operator="matrix-free")), ("cg-time-groups", CG(time_dim="auto")), ("rff", RFF()),
     ("nystrom", Nystrom())],
)
def test_names_stand_for_default_objects(name, expected):
    assert name in available_solvers()
    inf = make_inference(name)
    assert inf == expected and inf.name == name


def test_options_validated_when_built():
    for build, arg in [(lambda: CG(tol=0.0), "tol"), (lambda: CG(variance_method="fast"), "variance_method"),
                       (lambda: Nystrom(n_components=0), "n_components"), (lambda: RFF(n_components=2.5), "n_components"),
                       (lambda: Cholesky(jitter="big"), "jitter"), (lambda: CG().replace(tol=-1.0), "tol")]:
        with pytest.raises(ValueError, match=f"`{arg}`"):
            build()
    with pytest.raises(ValueError, match=r"Invalid option\(s\) \['n_components'\] for solver CG"):
        CG().replace(n_components=10)
    with pytest.raises(TypeError, match="immutable"):
        CG().set_params(tol=1e-3)


def test_repr_shows_changed_options_only():
    assert repr(CG()) == "CG()"
    assert repr(CG(tol=1e-4, operator="dense")) == "CG(tol=0.0001, operator='dense')"
    assert "solver=CG(tol=0.0001)" in repr(ScalableGPRegressor(solver=CG(tol=1e-4)))


def test_nested_params_clone_and_set_params():
    est = ScalableGPRegressor(solver=CG(tol=1e-5))
    params = est.get_params(deep=True)
    assert params["solver__tol"] == 1e-5 and params["solver__operator"] == "auto"
    twin = clone(est)
    assert twin.solver is est.solver  # immutable: shared
    twin.set_params(solver__tol=1e-3, solver__max_iter=50)
    assert twin.solver == CG(tol=1e-3, max_iter=50) and est.solver == CG(tol=1e-5)
    with pytest.raises(ValueError, match="solver__tol` needs a solver object, but solver='cg'"):
        ScalableGPRegressor(solver="cg").set_params(solver__tol=1e-3)
    both = ScalableGPRegressor().set_params(solver=Nystrom(), solver__n_components=8)
    assert both.solver == Nystrom(n_components=8)


def test_grid_search_over_a_solver_option():
    base = ScalableGPRegressor(RBF(0.2), alpha=1e-2, optimizer=None, solver=Nystrom(n_components=4), random_state=0)
    search = GridSearchCV(base, {"solver__n_components": [2, 12]}, cv=3).fit(X, y)
    assert search.best_params_ == {"solver__n_components": 12}
    assert search.best_estimator_.solver_info_["n_features_used"] <= 12
    # The refit model used the searched object.
    assert search.best_estimator_.inference_ == Nystrom(n_components=12)


def test_object_and_name_give_the_same_fit():
    a = ScalableGPRegressor(RBF(0.2), alpha=1e-2, solver="cholesky").fit(X, y)
    b = ScalableGPRegressor(RBF(0.2), alpha=1e-2, solver=Cholesky()).fit(X, y)
    assert a.solver_ == b.solver_ == "cholesky"
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert "cholesky: Cholesky()" in b.summary()
