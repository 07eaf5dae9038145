"""Magma (Leroy et al., Machine Learning 2022): multi-task GPs with a common mean process.

The pure numerical core under :class:`skgpx.MultiTaskMagmaRegressor`:

* ``_layout``: long-format data -> union grid + padded, masked task blocks.
* ``_model``: the parameters ``Theta`` and the device data as Equinox modules.
* ``_estep``: the hyper-posterior of the mean process (E-step).
* ``_objectives``: the M-step objectives and the monitored ELBO.
* ``_optimize``: bounded L-BFGS on log-hyperparameters with compiled gradients.
* ``_em``: the EM loop.
* ``_predict``: hyper-posterior at new inputs, new-task hyperparameters, task posteriors.
"""

from ._em import EMResult as EMResult, run_em as run_em
from ._estep import HyperPosterior as HyperPosterior, e_step as e_step
from ._layout import TaskLayout as TaskLayout, build_layout as build_layout, pad_by_group as pad_by_group
from ._model import MagmaParams as MagmaParams, TaskData as TaskData, task_data_from_layout as task_data_from_layout
from ._model import canonical as canonical
from ._objectives import elbo as elbo, mean_process_term as mean_process_term, task_terms as task_terms
from ._optimize import OptimResult as OptimResult, minimize_lbfgsb as minimize_lbfgsb
from ._predict import (
    mean_process_at as mean_process_at,
    new_task_objective_and_grad as new_task_objective_and_grad,
    task_posteriors as task_posteriors,
)
