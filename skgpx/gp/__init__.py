"""Pure GP inference: posteriors and marginal likelihoods for each solver back-end.

The inference classes are the *solver objects* the estimator's ``solver=`` takes:
``Cholesky(jitter=...)``, ``CG(tol=..., preconditioner_rank=...)``, ``RFF(n_components=...)``,
``Nystrom(n_components=...)``. A solver name (``"cg-dense"``) stands for a default object.

The names load on first use (``import skgpx.gp`` imports nothing; see :mod:`skgpx._lazy`).
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_package

__getattr__, __dir__ = lazy_package(__name__)

if TYPE_CHECKING:  # the public names, for type checkers and documentation tools
    from ._api import *  # noqa: F403
