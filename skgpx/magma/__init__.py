"""Magma (Leroy et al., Machine Learning 2022): multi-task GPs with a common mean process.

The pure numerical core under :class:`skgpx.MultiTaskMagmaRegressor`:

* ``_layout``: long-format data -> union grid + padded, masked task blocks.
* ``_model``: the parameters ``Theta`` and the device data as Equinox modules.
* ``_estep``: the hyper-posterior of the mean process (E-step).
* ``_objectives``: the M-step objectives and the monitored ELBO.
* ``_optimize``: bounded L-BFGS on log-hyperparameters with compiled gradients.
* ``_em``: the EM loop and Magma's EM state object.
* ``_predict``: hyper-posterior at new inputs, new-task hyperparameters, task posteriors.
* ``_mixture``, ``_clust``, ``_clust_predict``: MagmaClust (Leroy et al., JMLR 2023), a
  mixture of mean processes trained by variational EM on the same EM state.
"""

from ._clust import (
    ClustParams as ClustParams,
    ClustPosterior as ClustPosterior,
    cluster as cluster,
    cluster_e_step as cluster_e_step,
    cluster_task_terms as cluster_task_terms,
    initial_memberships as initial_memberships,
    n_free_parameters as n_free_parameters,
    run_vem as run_vem,
)
from ._clust_predict import (
    mixture_moments as mixture_moments,
    new_task_cluster_lml as new_task_cluster_lml,
    new_task_mixture_objective_and_grad as new_task_mixture_objective_and_grad,
)
from ._em import EMOptions as EMOptions, EMResult as EMResult, MagmaEM as MagmaEM, iterate as iterate, run_em as run_em
from ._estep import HyperPosterior as HyperPosterior, e_step as e_step
from ._layout import TaskLayout as TaskLayout, build_layout as build_layout, pad_by_group as pad_by_group
from ._model import MagmaParams as MagmaParams, TaskData as TaskData, task_data_from_layout as task_data_from_layout
from ._model import canonical as canonical
from ._objectives import elbo as elbo, mean_process_term as mean_process_term, task_terms as task_terms
from ._optimize import OptimResult as OptimResult, minimize_lbfgsb as minimize_lbfgsb
from ._shard import place_task_data as place_task_data
from ._predict import (
    mean_process_at as mean_process_at,
    new_task_objective_and_grad as new_task_objective_and_grad,
    population_prior as population_prior,
    task_posteriors as task_posteriors,
)
