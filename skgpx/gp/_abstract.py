"""The seam between the scikit-learn layer and the numerical GP back-ends.

An *inference method* (``AbstractInference``) turns a kernel, training inputs,
targets and the per-sample noise into a fitted *posterior* (``AbstractPosterior``)
and evaluates the log marginal likelihood. Each back-end (exact Cholesky,
preconditioned CG, random features / Nystrom with Woodbury) is one final
subclass pair. Everything here is a pure function of its arguments, so the
estimator can ``eqx.filter_jit`` it once and reuse the compiled code.

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

import equinox as eqx

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
    """A GP inference strategy: its own options are fields (tolerances, ranks...)."""

    @abc.abstractmethod
    def condition(self, kernel, X, Y, noise, key) -> AbstractPosterior:
        """Condition the GP prior ``(kernel, noise)`` on ``(X, Y)``."""

    @abc.abstractmethod
    def log_marginal_likelihood(self, kernel, X, Y, noise, key):
        """``log p(Y | X, kernel, noise)`` summed over target columns (differentiable)."""

    def prepare(self, kernel, X) -> "AbstractInference":
        """Host side, before anything is compiled: this inference with whatever it fixes from
        the data's values (e.g. the grid of :class:`~skgpx.gp.SKIInference`); ``self`` by default."""
        return self

    def first_attempt(self) -> "AbstractInference | None":
        """A cheaper variant for optimiser evaluations to try first, or ``None``.

        The optimiser's objective evaluates it and falls back to ``self`` only when
        the value is not finite; both must give the same answer whenever the first
        succeeds (e.g. a factorisation without the jitter-retry machinery).
        """
        return None

    def host_condition(self, X):
        """``None``, or a function ``(kernel, X, Y, noise) -> posterior`` (``None`` on failure)
        that ``fit`` calls instead of the compiled :meth:`condition` for data ``X`` where it
        is cheaper (the exact path on the CPU: :mod:`skgpx.gp._exact_lapack`)."""
        return None

    def host_lml_and_grad(self, X):
        """``None``, or a function ``(theta, kernel, X, Y, noise, gradient=True) -> (lml,
        grad)`` (NumPy values, NaN lml on failure; ``grad`` is ``None`` when ``gradient`` is
        False) that the optimiser's objective calls instead of compiled autodiff of
        :meth:`log_marginal_likelihood` (or the compiled value alone) for data ``X`` where
        it is cheaper (the exact path on the CPU: :mod:`skgpx.gp._exact_lapack`)."""
        return None
