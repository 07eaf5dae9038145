"""Linear operators (lineax) for GP covariance matrices: dense, matrix-free tiled, low-rank, grid-structured.

The names load on first use (``import skgpx.operators`` imports nothing; see :mod:`skgpx._lazy`).
"""

from typing import TYPE_CHECKING

from .._lazy import lazy_package

__getattr__, __dir__ = lazy_package(__name__)

if TYPE_CHECKING:  # the public names, for type checkers and documentation tools
    from ._api import *  # noqa: F403
