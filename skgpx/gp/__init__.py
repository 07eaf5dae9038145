"""Pure GP inference: posteriors and marginal likelihoods for each solver back-end."""

from ._abstract import AbstractInference as AbstractInference, AbstractPosterior as AbstractPosterior
from ._registry import (
    available_solvers as available_solvers,
    make_inference as make_inference,
    register_solver as register_solver,
)
from ._fit import PAD_MAX_ROWS as PAD_MAX_ROWS, TrainingData as TrainingData, bucket as bucket
from ._exact import ExactInference as ExactInference, ExactPosterior as ExactPosterior
from ._cg import CGInference as CGInference, CGPosterior as CGPosterior, warn_if_not_converged as warn_if_not_converged
from ._lowrank import (
    LowRankPosterior as LowRankPosterior,
    NystromInference as NystromInference,
    RFFInference as RFFInference,
)
