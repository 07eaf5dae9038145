"""The seam between the scikit-learn layer and the numerical GP back-ends.

An *inference method* (``AbstractInference``) turns a kernel, training inputs,
targets and the per-sample noise into a fitted *posterior* (``AbstractPosterior``)
and evaluates the log marginal likelihood. Each back-end (exact Cholesky,
preconditioned CG, random features / Nystrom with Woodbury) is one final
subclass pair. ``condition`` and ``log_marginal_likelihood`` are pure functions of their
arguments; the estimator calls the host entry points :meth:`AbstractInference.prepare`,
:meth:`~AbstractInference.fit` and :meth:`~AbstractInference.objective`, which run them
as one compiled program per call (:mod:`skgpx.gp._fit`). A back-end overrides those
entry points only to run differently on the host (the exact one calls LAPACK on the CPU
above the size where that wins).

Conventions shared by every back-end:

* ``X`` is ``(n, d)``, ``Y`` is ``(n, t)`` (already normalised by the estimator),
  ``noise`` is ``(n,)``: scikit-learn's ``alpha`` broadcast to one value per
  sample, added to the diagonal of ``kernel.gram(X)``.
* Prior terms use ``kernel.gram`` / ``kernel.diag`` on the test inputs and
  ``kernel.cross`` between test and training inputs, so a ``White`` term adds
  to predictive variances exactly as in scikit-learn.
* ``log_marginal_likelihood`` sums over the ``t`` target columns (as scikit-learn
  does) and is differentiable with ``jax.grad`` with respect to the floating
  leaves of ``kernel`` (stochastic back-ends return an unbiased gradient
  estimate through a surrogate, see their docs).
* ``key`` is a ``jax.random`` key; deterministic back-ends ignore it.
"""

from __future__ import annotations

import abc
import dataclasses

import equinox as eqx
import numpy as np

from ._fit import TrainingData, condition_program, neg_lml, neg_lml_and_grad, training_data

__all__ = ["AbstractInference", "AbstractPosterior"]


class AbstractPosterior(eqx.Module):
    """A fitted GP posterior over latent function values (targets normalised)."""

    @abc.abstractmethod
    def mean(self, Xs):
        """Posterior mean at ``Xs`` ``(m, d)``, shape ``(m, t)``."""

    @abc.abstractmethod
    def var(self, Xs):
        """Posterior variance at ``Xs``, shape ``(m,)`` (the same for every target)."""

    @abc.abstractmethod
    def cov(self, Xs):
        """Posterior covariance at ``Xs``, shape ``(m, m)``."""

    @abc.abstractmethod
    def solve_train(self, R):
        """``(K(X, X) + diag(noise))^{-1} R`` for ``R`` of shape ``(n, k)`` with the back-end's own solver.

        Used by pathwise (Matheron) sampling for the data-driven correction.
        """

    @property
    @abc.abstractmethod
    def log_marginal_likelihood_value(self):
        """Log marginal likelihood of the training data (scalar)."""

    def diagnostics(self) -> dict:
        """What the back-end did (jitter, iterations, residuals...), as host-side numbers."""
        return {}


class AbstractInference(eqx.Module):
    """A GP inference strategy (a *solver object*): its options are its fields (tolerances, ranks...).

    Solver objects are immutable and validate their options when built. They follow
    scikit-learn's parameter protocol far enough for the estimator's ``solver=`` to be
    searched like a nested estimator: ``get_params()`` lists the options, so
    ``GridSearchCV(est, {"solver__tol": [...]})`` and ``est.set_params(solver__tol=...)``
    work (the estimator swaps in ``solver.replace(tol=...)``); ``clone`` shares the object.
    """

    @property
    def name(self) -> str:
        """The solver's name as ``solver_`` reports it (a registered name where there is one)."""
        return type(self).__name__.lower()

    def get_params(self, deep=True) -> dict:
        """The options, by name (scikit-learn's protocol; ``deep`` is accepted and ignored)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}

    def replace(self, **options) -> "AbstractInference":
        """A copy with some options changed (validated like the constructor's)."""
        valid = self.get_params()
        unknown = sorted(set(options) - set(valid))
        if unknown:
            raise ValueError(
                f"Invalid option(s) {unknown} for solver {type(self).__name__}. Valid options are: {sorted(valid)}."
            )
        return dataclasses.replace(self, **options)

    def set_params(self, **options):
        raise TypeError(
            f"Solver objects are immutable: use `{type(self).__name__}(...).replace(**options)`, or "
            "`estimator.set_params(solver__<option>=...)`, which swaps in the replaced solver."
        )

    def __sklearn_clone__(self):
        return self  # immutable: a clone may share it

    def __repr__(self) -> str:
        # Only the options that differ from their defaults, as scikit-learn prints estimators.
        changed = []
        for f in dataclasses.fields(self):
            if not f.init or not f.repr:  # repr=False: set from the data by for_data
                continue
            value = getattr(self, f.name)
            if f.default is dataclasses.MISSING or not _same(value, f.default):
                changed.append(f"{f.name}={value!r}")
        return f"{type(self).__name__}({', '.join(changed)})"

    @abc.abstractmethod
    def condition(self, kernel, X, Y, noise, key) -> AbstractPosterior:
        """Condition the GP prior ``(kernel, noise)`` on ``(X, Y)``."""

    @abc.abstractmethod
    def log_marginal_likelihood(self, kernel, X, Y, noise, key):
        """``log p(Y | X, kernel, noise)`` summed over target columns (differentiable)."""

    def for_data(self, kernel, X, noise=None) -> "AbstractInference":
        """Host side, before anything is compiled: this solver with whatever it fixes from the
        data's values and noise (e.g. the grid of :class:`~skgpx.gp.SKI`); ``self`` by default."""
        return self

    # -- host entry points: what the estimator calls (compiled programs in skgpx.gp._fit) ----------
    def prepare(self, X, Y, noise, dtype=None) -> TrainingData:
        """Training data ``X`` ``(n, d)``, ``Y`` ``(n, t)``, ``noise`` ``(n,)`` (NumPy) placed on
        JAX's default device, as this back-end wants them (a back-end that accepts ``mask=``
        pads them to a size bucket: :func:`skgpx.gp._fit.training_data`)."""
        return training_data(X, Y, noise, dtype=dtype)

    def fit(self, kernel, data: TrainingData, key) -> AbstractPosterior:
        """The posterior of ``kernel`` given ``data`` (from :meth:`prepare`): :meth:`condition`,
        compiled once per structure and shape."""
        return condition_program(self, kernel, data, key)

    def objective(self, theta, kernel, data: TrainingData, key, gradient=True):
        """The optimiser's objective at log hyperparameters ``theta`` (NumPy): ``(-lml, -grad)``
        as ``(float64, float64 array)``, or ``(-lml, None)`` when ``gradient`` is False; ``inf``
        and a zero gradient where the value is not finite (as scikit-learn reports a failed
        factorisation). One compiled program per call."""
        th = np.asarray(theta, dtype=data.X.dtype)
        if not gradient:
            return np.float64(neg_lml(th, kernel, self, data, key)), None
        value, grad = neg_lml_and_grad(th, kernel, self, data, key)
        return np.float64(value), np.asarray(grad, dtype=np.float64)


def _same(a, b) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # arrays or objects without a boolean equality
        return a is b
