"""Linear-algebra solvers used by the GP back-ends (dense Cholesky, PCG, Woodbury, SLQ, LOVE)."""

from ._cholesky import (
    CholeskyResult as CholeskyResult,
    cho_solve as cho_solve,
    cholesky_quad_logdet as cholesky_quad_logdet,
    jittered_cholesky as jittered_cholesky,
    solve_lower as solve_lower,
)
