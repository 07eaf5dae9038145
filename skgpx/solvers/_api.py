"""The public names of :mod:`skgpx.solvers`, imported on first use of any of them (:mod:`skgpx._lazy`)."""

from ._block_jacobi import (
    BlockJacobiPreconditioner as BlockJacobiPreconditioner,
    block_jacobi as block_jacobi,
    local_blocks as local_blocks,
)
from ._cholesky import (
    CholeskyResult as CholeskyResult,
    check_jitter_policy as check_jitter_policy,
    cho_inverse as cho_inverse,
    cho_solve as cho_solve,
    cholesky_quad_logdet as cholesky_quad_logdet,
    gaussian_log_likelihood as gaussian_log_likelihood,
    jitter_schedule as jitter_schedule,
    jittered_cholesky as jittered_cholesky,
    solve_lower as solve_lower,
)
from ._love import (
    LoveCache as LoveCache,
    lanczos_checked as lanczos_checked,
    love_cache as love_cache,
    tridiagonal_solve as tridiagonal_solve,
)
from ._pcg import PCGResult as PCGResult, pcg as pcg
from ._pivoted_cholesky import (
    PivotedCholeskyPreconditioner as PivotedCholeskyPreconditioner,
    pivot_column as pivot_column,
    pivoted_cholesky as pivoted_cholesky,
    rp_cholesky as rp_cholesky,
    sample_pivots as sample_pivots,
)
from ._slq import cg_tridiagonal as cg_tridiagonal, slq_logdet as slq_logdet, slq_quadratures as slq_quadratures
from ._woodbury import (
    Woodbury as Woodbury,
    WoodburyFactor as WoodburyFactor,
    capacitance_cholesky as capacitance_cholesky,
    gaussian_lml as gaussian_lml,
    gaussian_lml_value as gaussian_lml_value,
    lemma_logdet as lemma_logdet,
    woodbury_apply as woodbury_apply,
    woodbury_inv_quad as woodbury_inv_quad,
    woodbury_factor as woodbury_factor,
    woodbury_quad_logdet as woodbury_quad_logdet,
    woodbury_solve as woodbury_solve,
)
