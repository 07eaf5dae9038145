"""The public names of :mod:`skgpx.gp`, imported on first use of any of them (:mod:`skgpx._lazy`)."""

from ._abstract import AbstractInference as AbstractInference, AbstractPosterior as AbstractPosterior
from ._registry import (
    available_solvers as available_solvers,
    make_inference as make_inference,
    register_solver as register_solver,
)
from ._fit import PAD_MAX_ROWS as PAD_MAX_ROWS, TrainingData as TrainingData, bucket as bucket
from ._exact import Cholesky as Cholesky, ExactInference as ExactInference, ExactPosterior as ExactPosterior
from ._cg import (
    CG as CG,
    CGInference as CGInference,
    CGPosterior as CGPosterior,
    warn_if_not_converged as warn_if_not_converged,
)
from ._host import (
    HOST_SOLVER as HOST_SOLVER,
    HostPosterior as HostPosterior,
    host_condition as host_condition,
    host_log_marginal_likelihood as host_log_marginal_likelihood,
)
from ._lowrank import (
    LowRankPosterior as LowRankPosterior,
    Nystrom as Nystrom,
    NystromInference as NystromInference,
    RFF as RFF,
    RFFInference as RFFInference,
)
from ._auto import HOST_MAX_N as HOST_MAX_N, select_solver as select_solver
from ._pathwise import pathwise_sample as pathwise_sample
from ._ski import SKI as SKI, SKIInference as SKIInference
from ._ski_posterior import SKIPosterior as SKIPosterior
