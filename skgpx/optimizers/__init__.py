"""Hyperparameter optimisers for ``ScalableGPRegressor(optimizer=...)``.

Each is a small immutable callable with scikit-learn's optimizer protocol,
``optimizer(obj_func, initial_theta, bounds) -> (theta_opt, func_min)``, where
``obj_func(theta, eval_gradient=True)`` returns the negative log marginal likelihood
and its gradient in the log hyperparameters. They exist for the cases scipy's
L-BFGS-B (``optimizer="fmin_l_bfgs_b"``, scikit-learn's default) handles badly:

- :class:`LBFGSB`: the same L-BFGS-B with a *hard* budget of objective evaluations
  (scipy's ``maxfun`` is only checked between iterations, so one line search can run
  past it), returning the best point evaluated. For objectives that cost minutes.
- :class:`Adam`: projected Adam for *stochastic* objectives (``solver="cg"``: SLQ
  log-determinant and Hutchinson gradient), where line searches stall on the noise;
  a fixed number of steps, as GPyTorch trains.
"""

from ._adam import Adam as Adam
from ._lbfgsb import LBFGSB as LBFGSB, lbfgsb as lbfgsb
