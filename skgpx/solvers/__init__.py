"""Linear-algebra solvers used by the GP back-ends (dense Cholesky, PCG, Woodbury, SLQ, LOVE).

The names load on first use (``import skgpx.solvers`` imports nothing; see :mod:`skgpx._lazy`).
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_package

__getattr__, __dir__ = lazy_package(__name__)

if TYPE_CHECKING:  # the public names, for type checkers and documentation tools
    from ._api import *  # noqa: F403
