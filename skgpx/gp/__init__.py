"""Pure GP inference: posteriors and marginal likelihoods for each solver back-end."""

from ._abstract import AbstractInference as AbstractInference, AbstractPosterior as AbstractPosterior
from ._registry import (
    available_solvers as available_solvers,
    make_inference as make_inference,
    register_solver as register_solver,
)
from ._exact import ExactInference as ExactInference, ExactPosterior as ExactPosterior
from ._cg import CGInference as CGInference, CGPosterior as CGPosterior, warn_if_not_converged as warn_if_not_converged
from ._host import (
    HOST_SOLVER as HOST_SOLVER,
    HostPosterior as HostPosterior,
    host_condition as host_condition,
    host_log_marginal_likelihood as host_log_marginal_likelihood,
)
from ._lowrank import (
    LowRankPosterior as LowRankPosterior,
    NystromInference as NystromInference,
    RFFInference as RFFInference,
)
