"""Pure GP inference: posteriors and marginal likelihoods for each solver back-end."""

from ._abstract import AbstractInference as AbstractInference, AbstractPosterior as AbstractPosterior
from ._registry import (
    available_solvers as available_solvers,
    make_inference as make_inference,
    register_solver as register_solver,
)
from ._exact import ExactInference as ExactInference, ExactPosterior as ExactPosterior
from ._cg import CGInference as CGInference, CGPosterior as CGPosterior, warn_if_not_converged as warn_if_not_converged
from ._lowrank import (
    LowRankPosterior as LowRankPosterior,
    NystromInference as NystromInference,
    RFFInference as RFFInference,
)
from ._auto import select_solver as select_solver
from ._pathwise import pathwise_sample as pathwise_sample
