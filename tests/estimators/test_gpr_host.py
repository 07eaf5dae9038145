"""The NumPy host path: scikit-learn kernels without an skgpx translation give scikit-learn's numbers.

Three kinds of kernel skgpx cannot translate, each against scikit-learn's
``GaussianProcessRegressor`` to 1e-10: a kernel on strings (the R-convolution kernel of
scikit-learn's gallery example "Gaussian processes on discrete data structures", written
here), a subclass of a scikit-learn kernel with its own ``__call__``, and a vector-input
kernel written from scratch (inside a sum with a translatable ``WhiteKernel``).
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.base import clone
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import (
    RBF,
    ConstantKernel,
    GenericKernelMixin,
    Hyperparameter,
    Kernel,
    StationaryKernelMixin,
    WhiteKernel,
)

from skgpx import ScalableGPRegressor
from skgpx.gp import Cholesky

RTOL = 1e-10


class LetterConvolution(GenericKernelMixin, Kernel):
    """R-convolution kernel on strings: sum over letter pairs of 1 (equal) or `similarity`."""

    def __init__(self, similarity=0.5, similarity_bounds=(1e-5, 1.0)):
        self.similarity = similarity
        self.similarity_bounds = similarity_bounds

    @property
    def hyperparameter_similarity(self):
        return Hyperparameter("similarity", "numeric", self.similarity_bounds)

    def _pairs(self, X, Y):
        # (number of equal letter pairs, number of different ones) for every (x, y).
        equal = np.array([[sum(a == b for a in x for b in y) for y in Y] for x in X], dtype=float)
        total = np.array([[len(x) * len(y) for y in Y] for x in X], dtype=float)
        return equal, total - equal

    def __call__(self, X, Y=None, eval_gradient=False):
        equal, different = self._pairs(X, X if Y is None else Y)
        K = equal + self.similarity * different
        if eval_gradient:
            # d K / d log(similarity)
            return K, (self.similarity * different)[:, :, None]
        return K

    def diag(self, X):
        return np.diag(self(X))

    def is_stationary(self):
        return False


class Laplace(RBF):
    """exp(-|x - y|_1 / l): a subclass of scikit-learn's RBF with its own ``__call__``."""

    def __call__(self, X, Y=None, eval_gradient=False):
        X = np.atleast_2d(X)
        Z = X if Y is None else np.atleast_2d(Y)
        D = np.abs(X[:, None, :] - Z[None, :, :]).sum(-1) / self.length_scale
        K = np.exp(-D)
        if eval_gradient:
            return K, (K * D)[:, :, None]  # d K / d log(l)
        return K


class SubRBF(RBF):
    """A subclass that changes nothing: no translation (only exact scikit-learn types translate)."""


class Cosine(StationaryKernelMixin, Kernel):
    """cos(2 pi |x - y|_2 / p): a vector-input kernel written from scratch (PD in 1-D)."""

    def __init__(self, period=1.0, period_bounds=(1e-2, 1e2)):
        self.period = period
        self.period_bounds = period_bounds

    @property
    def hyperparameter_period(self):
        return Hyperparameter("period", "numeric", self.period_bounds)

    def __call__(self, X, Y=None, eval_gradient=False):
        Z = X if Y is None else Y
        r = np.sqrt(((X[:, None, :] - Z[None, :, :]) ** 2).sum(-1))
        K = np.cos(2 * np.pi * r / self.period)
        if eval_gradient:
            return K, (np.sin(2 * np.pi * r / self.period) * 2 * np.pi * r / self.period)[:, :, None]
        return K

    def diag(self, X):
        return np.ones(len(X))


def _string_data(n=14, seed=5):
    # Random DNA strings of 2-6 letters; the target is their length plus noise.
    rng = np.random.RandomState(seed)
    S = np.array(["".join(rng.choice(list("ACGT"), rng.randint(2, 7))) for _ in range(n)])
    return S, np.array([len(s) for s in S]) + 0.3 * rng.randn(n)


STRINGS, STRING_Y = _string_data()


def _vector_data(n=14, d=2, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.uniform(0, 3, size=(n, d))
    y = np.sin(2 * X).sum(1) + 0.2 * rng.randn(n)
    return X, y


CASES = {
    "strings": (lambda: LetterConvolution() + WhiteKernel(0.1), lambda: (STRINGS[:10], STRING_Y[:10], STRINGS[10:])),
    "subclass": (
        lambda: ConstantKernel(1.0) * Laplace(length_scale=1.0) + WhiteKernel(0.1),
        lambda: (*_vector_data(), _vector_data(5, seed=1)[0]),
    ),
    "vector": (
        lambda: Cosine(period=2.5) + WhiteKernel(0.1),
        lambda: (*_vector_data(d=1), _vector_data(5, d=1, seed=1)[0]),
    ),
}


def _pair(case, **params):
    make_kernel, make_data = CASES[case]
    X, y, Xs = make_data()
    sk = GaussianProcessRegressor(kernel=make_kernel(), **params).fit(X, y)
    gx = ScalableGPRegressor(kernel=make_kernel(), **params).fit(X, y)
    return sk, gx, X, y, Xs


@pytest.mark.parametrize("case", sorted(CASES))
def test_fit_and_predict_match_sklearn(case):
    sk, gx, X, y, Xs = _pair(case, n_restarts_optimizer=2, random_state=0, normalize_y=True)
    assert gx.solver_ == "host-numpy" and "host-numpy" in gx.summary()
    assert len(gx.optimizer_runs_) == 3  # the same restarts as scikit-learn (same random_state)
    assert_allclose(gx.kernel_.theta, sk.kernel_.theta, rtol=1e-7, atol=1e-9)
    # Condition both on exactly the same hyperparameters, then compare to rounding.
    sk = GaussianProcessRegressor(kernel=gx.kernel_, optimizer=None, normalize_y=True).fit(X, y)
    gx = ScalableGPRegressor(kernel=gx.kernel_, optimizer=None, normalize_y=True).fit(X, y)
    for Z in (Xs, X):
        m_sk, s_sk = sk.predict(Z, return_std=True)
        m_gx, s_gx = gx.predict(Z, return_std=True)
        assert_allclose(m_gx, m_sk, rtol=RTOL, atol=RTOL)
        assert_allclose(s_gx, s_sk, rtol=RTOL, atol=RTOL)
        assert_allclose(gx.predict(Z, return_cov=True)[1], sk.predict(Z, return_cov=True)[1], rtol=RTOL, atol=RTOL)
    assert_allclose(gx.L_, sk.L_, rtol=RTOL, atol=RTOL)
    assert_allclose(gx.alpha_, sk.alpha_, rtol=RTOL, atol=RTOL)
    assert_allclose(gx.log_marginal_likelihood_value_, sk.log_marginal_likelihood_value_, rtol=RTOL)
    assert_allclose(gx.score(X, y), sk.score(X, y), rtol=RTOL)
    assert_allclose(gx.sample_y(Xs, 4, random_state=3), sk.sample_y(Xs, 4, random_state=3), rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("case", sorted(CASES))
def test_log_marginal_likelihood_and_gradient_match_sklearn(case):
    sk, gx, *_ = _pair(case, optimizer=None)
    theta = sk.kernel_.theta + 0.3
    for clone_kernel in (True, False):
        lml_sk, grad_sk = sk.log_marginal_likelihood(theta, eval_gradient=True, clone_kernel=clone_kernel)
        lml_gx, grad_gx = gx.log_marginal_likelihood(theta, eval_gradient=True, clone_kernel=clone_kernel)
        assert type(lml_gx) is np.float64
        assert_allclose(lml_gx, lml_sk, rtol=RTOL)
        assert_allclose(grad_gx, grad_sk, rtol=1e-8, atol=1e-10)
        assert_allclose(gx.log_marginal_likelihood(theta), sk.log_marginal_likelihood(theta), rtol=RTOL)
    assert_allclose(gx.kernel_.theta, theta)  # clone_kernel=False set kernel_'s theta, as scikit-learn


def test_prior_and_multi_output_match_sklearn():
    kernel = ConstantKernel(2.0) * LetterConvolution()
    for est in (GaussianProcessRegressor(kernel=kernel), ScalableGPRegressor(kernel=kernel)):
        m, s = est.predict(STRINGS[:4], return_std=True)
        assert_allclose(s, np.sqrt(kernel.diag(STRINGS[:4])), rtol=RTOL)
        assert_allclose(m, 0.0)
    Y = np.c_[STRING_Y[:6], -2 * STRING_Y[:6] + 1]
    sk = GaussianProcessRegressor(kernel=kernel, alpha=1e-3, normalize_y=True, optimizer=None).fit(STRINGS[:6], Y)
    gx = ScalableGPRegressor(kernel=kernel, alpha=1e-3, normalize_y=True, optimizer=None).fit(STRINGS[:6], Y)
    for a, b in zip(gx.predict(STRINGS[6:], return_cov=True), sk.predict(STRINGS[6:], return_cov=True)):
        assert_allclose(a, b, rtol=RTOL, atol=RTOL)
    lml_sk, g_sk = sk.log_marginal_likelihood(kernel.theta - 0.2, eval_gradient=True)
    lml_gx, g_gx = gx.log_marginal_likelihood(kernel.theta - 0.2, eval_gradient=True)
    assert_allclose([lml_gx, *g_gx], [lml_sk, *g_sk], rtol=1e-9)


def test_callable_optimizer_gets_float64_values():
    seen = []

    def optimizer(obj_func, initial_theta, bounds):
        value, grad = obj_func(initial_theta, eval_gradient=True)
        seen.append((type(value), type(obj_func(initial_theta, eval_gradient=False)), grad.dtype))
        return initial_theta, value

    X, y = _vector_data(d=1)
    for kernel in (Cosine() + WhiteKernel(0.1), RBF() + WhiteKernel(0.1)):  # host path, then JAX path
        gp = ScalableGPRegressor(kernel=kernel, optimizer=optimizer).fit(X, y)
        assert type(gp.log_marginal_likelihood_value_) is np.float64
        assert type(gp.log_marginal_likelihood(gp.kernel_.theta)) is np.float64
    assert seen == [(np.float64, np.float64, np.dtype(np.float64))] * 2


def test_other_solvers_are_refused_with_the_fix():
    X, y = _vector_data(d=1)
    for solver in ("cg", "rff"):
        with pytest.raises(ValueError, match=r"`solver='%s'`.*solver='auto' or solver='cholesky'" % solver):
            ScalableGPRegressor(kernel=Cosine(), solver=solver).fit(X, y)
    gp = ScalableGPRegressor(kernel=Cosine() + WhiteKernel(0.1), solver="cholesky").fit(X, y)
    with pytest.raises(ValueError, match="method='exact'"):
        gp.sample_y(X, method="pathwise")


def test_jitter_policy_and_pickling():
    X = np.repeat(np.linspace(0, 1, 4)[:, None], 2, axis=0)  # duplicated inputs, no noise: singular
    y = np.repeat(np.arange(4.0), 2)
    kernel = SubRBF(length_scale=1.0, length_scale_bounds="fixed")
    with pytest.raises(np.linalg.LinAlgError, match="not returning a positive definite matrix"):
        ScalableGPRegressor(kernel=kernel, alpha=0.0, solver=Cholesky(jitter=0.0)).fit(X, y)
    with pytest.warns(UserWarning, match="added jitter"):
        gp = ScalableGPRegressor(kernel=kernel, alpha=0.0).fit(X, y)
    # The jitter the compiled exact path picks for the same matrix (RBF translates).
    with pytest.warns(UserWarning, match="added jitter"):
        ref = ScalableGPRegressor(kernel=RBF(1.0, "fixed"), alpha=0.0, solver="cholesky").fit(X, y)
    assert gp.solver_ == "host-numpy" and ref.solver_ == "cholesky"
    assert gp.jitter_ > 0 and gp.jitter_ == pytest.approx(ref.jitter_, rel=1e-12)
    assert_allclose(gp.predict(X[:3]), ref.predict(X[:3]), rtol=1e-9, atol=1e-12)
    back = pickle.loads(pickle.dumps(gp))
    assert_allclose(back.predict(X[:3], return_std=True), gp.predict(X[:3], return_std=True), rtol=0)
    assert type(clone(gp)).__name__ == "ScalableGPRegressor"


def test_gallery_discrete_structures_regression():
    # scikit-learn's gallery example "Gaussian processes on discrete data structures",
    # regression part, with only the estimator swapped: the bars of its figure agree.
    X = np.array(["AGCT", "AGC", "AACT", "TAA", "AAA", "GAACA"])
    y = np.array([1.0, 1.0, 2.0, 2.0, 3.0, 3.0])
    train = [0, 1, 3, 4]
    sk = GaussianProcessRegressor(LetterConvolution()).fit(X[train], y[train])
    gx = ScalableGPRegressor(LetterConvolution()).fit(X[train], y[train])
    assert_allclose(gx.predict(X), sk.predict(X), rtol=1e-9)
    # K is ill-conditioned (cond ~3e11) and the likelihood flat: the optimum agrees to 1e-6
    # with NumPy/SciPy of Python 3.11, 1.5e-6 with those of Python 3.12.
    assert_allclose(gx.log_marginal_likelihood_value_, sk.log_marginal_likelihood_value_, rtol=1e-5)


def test_summary_and_errors_name_the_untranslated_part():
    X, y = STRINGS[:10], STRING_Y[:10]
    gp = ScalableGPRegressor(LetterConvolution() + WhiteKernel(0.1), optimizer=None).fit(list(X), y)
    assert "host-numpy" in gp.summary() and "LetterConvolution has no skgpx translation" in gp.summary()
    with pytest.raises(ValueError, match=r"`solver='nystrom'` needs an skgpx kernel, but the kernel LetterConvolution"):
        ScalableGPRegressor(2.0 * LetterConvolution(), solver="nystrom").fit(list(X), y)


def test_auto_runs_small_sklearn_problems_on_the_host_and_agrees_with_the_compiled_path():
    from skgpx.gp import HOST_MAX_N, select_solver
    from skgpx.kernels import RBF as XRBF

    assert select_solver(HOST_MAX_N - 1, 2, host=True) == "host-numpy"
    assert select_solver(HOST_MAX_N, 2, host=True) == "cholesky"
    assert select_solver(20, 2, host=False) == "cholesky"
    rng = np.random.RandomState(3)
    X = rng.uniform(0, 5, (25, 2))
    y = np.sin(X[:, 0]) * np.cos(0.5 * X[:, 1]) + 0.05 * rng.randn(25)
    Xs = rng.uniform(0, 5, (7, 2))
    kernel = ConstantKernel(1.0) * RBF([1.0, 1.0]) + WhiteKernel(0.1)
    host = ScalableGPRegressor(kernel).fit(X, y)  # solver="auto"
    assert host.solver_ == "host-numpy" and "n=25 < 512" in host.summary()
    assert host.kernel_skgpx_ is not None  # the fitted kernel's translation, as on the compiled path
    compiled = ScalableGPRegressor(kernel, solver="cholesky").fit(X, y)
    assert compiled.solver_ == "cholesky"
    assert_allclose(host.kernel_.theta, compiled.kernel_.theta, rtol=1e-5, atol=1e-6)
    for a, b in zip(host.predict(Xs, return_std=True), compiled.predict(Xs, return_std=True)):
        assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    theta = compiled.kernel_.theta
    for a, b in zip(host.log_marginal_likelihood(theta, eval_gradient=True),
                    compiled.log_marginal_likelihood(theta, eval_gradient=True)):
        assert_allclose(a, b, rtol=1e-9, atol=1e-9)
    # The compiled path whenever the host one cannot serve the request.
    assert ScalableGPRegressor(XRBF(1.0)).fit(X, y).solver_ == "cholesky"  # skgpx kernel
    assert ScalableGPRegressor(kernel, dtype="float32").fit(X, y).solver_ == "cholesky"


_NO_JAX_WORKFLOW = """
import pickle, sys
import numpy as np
from sklearn.base import clone
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel
from sklearn.utils.validation import check_is_fitted
from skgpx import ScalableGPRegressor

rng = np.random.RandomState(0)
X = rng.uniform(0, 5, (30, 2))
y = np.sin(X[:, 0]) + 0.1 * rng.randn(30)
gp = ScalableGPRegressor(ConstantKernel() * RBF([1.0, 1.0]) + WhiteKernel(0.1)).fit(X, y)
gp.predict(X[:5], return_std=True), gp.predict(X[:5], return_cov=True)
gp.log_marginal_likelihood(gp.kernel_.theta, eval_gradient=True)
gp.sample_y(X[:5], 2)
check_is_fitted(gp)
clone(gp).get_params()
pickle.loads(pickle.dumps(gp)).predict(X[:2])
gp.summary()
loaded = sorted(m for m in ("jax", "jaxlib", "equinox", "lineax") if m in sys.modules)
assert gp.solver_ == "host-numpy" and not loaded, (gp.solver_, loaded)
assert gp.kernel_skgpx_ is not None and "jax" in sys.modules  # built on first access, with JAX
print("OK")
"""


def test_host_workflow_imports_no_jax():
    # A fresh interpreter; JAX_PLATFORMS=cpu so that an accelerator plugin does not change the path.
    root = str(Path(__file__).resolve().parents[2])
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", _NO_JAX_WORKFLOW], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("OK"), proc.stderr[-2000:]
