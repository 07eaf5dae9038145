"""The kernel contract: a small immutable Equinox module whose maths is written once.

A kernel subclass declares its hyperparameters in the class variable
``hyperparameters`` (names of array fields, alphabetical, as scikit-learn orders
them); each has a static ``<name>_bounds`` field holding ``(low, high)`` or the
string ``"fixed"``. The numerical entry points are

* ``pairwise(x1, x2)`` - one covariance value between two feature vectors. This is
  the only method a user-defined kernel must write; everything else then works
  (through a double ``vmap``, slower than a hand-vectorised path).
* ``_cross(X1, X2)``, ``_gram(X)``, ``_diag(X)`` - the unpadded vectorised paths
  that built-in kernels override (matmul or direct squared distances, no per-pair
  ``vmap`` with a NaN guard).

The public methods :meth:`gram`, :meth:`cross`, :meth:`diag` and ``__call__`` add
padding masks on top: padded rows are replaced by a finite value before the maths
and masked after, so padded blocks come out as identity (Gram) or zero (cross)
and gradients stay finite.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["AbstractKernel", "resolve_mask", "hyperparameter_field", "bounds_field"]


def _as_array(x):
    """Hyperparameter converter: keep JAX arrays (and tracers), make the rest float64 NumPy."""
    if isinstance(x, jax.Array):
        return x
    return np.asarray(x, dtype=np.float64)


def _as_bounds(b):
    """Bounds converter: ``"fixed"`` or a hashable tuple ``(lo, hi)`` / ``((lo, hi), ...)``."""
    if isinstance(b, str):
        if b != "fixed":
            raise ValueError(f"bounds must be a (low, high) pair or 'fixed', got {b!r}")
        return b
    arr = np.asarray(b, dtype=np.float64)
    if arr.shape == (2,):
        lo, hi = float(arr[0]), float(arr[1])
        if not (0 < lo <= hi):
            raise ValueError(f"bounds must satisfy 0 < low <= high, got {b!r}")
        return (lo, hi)
    if arr.ndim == 2 and arr.shape[1] == 2:
        if np.any(arr[:, 0] <= 0) or np.any(arr[:, 0] > arr[:, 1]):
            raise ValueError(f"bounds must satisfy 0 < low <= high, got {b!r}")
        return tuple((float(lo), float(hi)) for lo, hi in arr)
    raise ValueError(f"bounds must be (low, high), an (n, 2) array, or 'fixed'; got {b!r}")


def hyperparameter_field(**kwargs):
    """A traced hyperparameter field (converted to a float64 array)."""
    return eqx.field(converter=_as_array, **kwargs)


def bounds_field(default=(1e-5, 1e5)):
    """A static bounds field: ``(low, high)`` in natural units, or ``"fixed"``."""
    return eqx.field(static=True, converter=_as_bounds, default=default)


def resolve_mask(X, mask):
    """Turn ``mask`` (None, a boolean array, or ``"nan"``) into ``(X_filled, mask)``.

    ``"nan"`` marks as padded every row that holds a NaN. Padded rows are replaced
    by zeros so the kernel maths (and its gradient) stays finite.
    """
    if mask is None:
        return X, None
    if isinstance(mask, str):
        if mask != "nan":
            raise ValueError(f"mask must be None, a boolean array or 'nan', got {mask!r}")
        mask = ~jnp.any(jnp.isnan(X), axis=-1)
    mask = jnp.asarray(mask, dtype=bool)
    if mask.shape != X.shape[:1]:
        raise ValueError(f"mask must have shape {X.shape[:1]} (one flag per row), got {mask.shape}")
    return jnp.where(mask[:, None], X, jnp.zeros((), X.dtype)), mask


def _check_2d(X, name):
    if X.ndim != 2:
        raise ValueError(
            f"`{name}` must be a 2-D array of shape (n_samples, n_features), got shape {X.shape}. "
            "For a batch of inputs wrap the kernel in `skgpx.kernels.Batched`."
        )


class AbstractKernel(eqx.Module):
    """Base class of every skgpx kernel. See the module docstring for the contract."""

    hyperparameters: ClassVar[tuple[str, ...]] = ()
    # The scikit-learn kernel with the same formula and hyperparameter names (its class name in
    # sklearn.gaussian_process.kernels), or None. Only the class that sets it converts, not a
    # subclass, which may change the formula.
    sklearn_name: ClassVar[str | None] = None
    _sklearn_hint: ClassVar[str] = ""

    # -- the maths ---------------------------------------------------------------
    def pairwise(self, x1, x2):
        """Covariance between two feature vectors of shape ``(n_features,)``."""
        raise NotImplementedError(
            f"{type(self).__name__} must implement `pairwise(self, x1, x2)` (or override "
            "`_cross`, `_gram` and `_diag`)."
        )

    def _cross(self, X1, X2):
        return jax.vmap(lambda a: jax.vmap(lambda b: self.pairwise(a, b))(X2))(X1)

    def _gram(self, X):
        return self._cross(X, X)

    def _diag(self, X):
        return jax.vmap(lambda a: self.pairwise(a, a))(X)

    # -- public, padding-aware entry points -----------------------------------------
    def gram(self, X, mask=None):
        """Covariance matrix ``K(X, X)`` of shape ``(n, n)``.

        ``mask`` (bool ``(n,)`` or ``"nan"``) flags valid rows; padded rows/columns
        come out as identity rows/columns.
        """
        X = jnp.asarray(X)
        _check_2d(X, "X")
        X, mask = resolve_mask(X, mask)
        K = self._gram(X)
        if mask is None:
            return K
        K = jnp.where(mask[:, None] & mask[None, :], K, 0.0)
        # The padded diagonal's ones scattered in place: adding a diag(...) matrix puts an
        # iota comparison and a select on every entry.
        i = jnp.arange(X.shape[0])
        return K.at[i, i].add(jnp.where(mask, 0.0, 1.0).astype(K.dtype))

    def cross(self, X1, X2, mask1=None, mask2=None):
        """Cross-covariance ``K(X1, X2)`` of shape ``(n1, n2)``; padded rows/columns are zero."""
        X1, X2 = jnp.asarray(X1), jnp.asarray(X2)
        _check_2d(X1, "X1")
        _check_2d(X2, "X2")
        X1, mask1 = resolve_mask(X1, mask1)
        X2, mask2 = resolve_mask(X2, mask2)
        K = self._cross(X1, X2)
        if mask1 is not None:
            K = jnp.where(mask1[:, None], K, 0.0)
        if mask2 is not None:
            K = jnp.where(mask2[None, :], K, 0.0)
        return K

    def diag(self, X, mask=None):
        """Diagonal of ``gram(X)`` without forming it (``1`` on padded rows)."""
        X = jnp.asarray(X)
        _check_2d(X, "X")
        X, mask = resolve_mask(X, mask)
        d = self._diag(X)
        return d if mask is None else jnp.where(mask, d, 1.0)

    def __call__(self, X1, X2=None):
        """scikit-learn style: ``k(X)`` is the Gram matrix, ``k(X, Y)`` the cross-covariance."""
        return self.gram(X1) if X2 is None else self.cross(X1, X2)

    # -- the white (diagonal-only) part ------------------------------------------------
    def without_white(self):
        """This kernel with every ``White`` noise level set to zero: the part a feature map
        or a low-rank factor represents. Same structure, so ``theta`` keeps its layout."""
        return jax.tree_util.tree_map(
            lambda k: k.without_white() if isinstance(k, AbstractKernel) else k,
            self,
            is_leaf=lambda k: k is not self and isinstance(k, AbstractKernel),
        )

    @property
    def has_white(self) -> bool:
        """Whether a ``White`` term appears anywhere in this kernel."""
        from ._basic import White

        leaves = jax.tree_util.tree_leaves(self, is_leaf=lambda k: isinstance(k, White))
        return any(isinstance(k, White) for k in leaves)

    def white_diagonal(self, X):
        """Diagonal of the white part of ``gram(X)``: ``diag(X) - without_white().diag(X)``."""
        return self.diag(X) - self.without_white().diag(X)

    def split_white(self):
        """``(smooth, noise)`` with ``self = smooth + White(noise)`` at the top-level sum.

        ``smooth`` is None for white noise alone; ``noise`` is ``0.0`` (a Python float) when
        the top-level sum has no ``White`` term.
        """
        return self, 0.0

    # -- composition ---------------------------------------------------------------
    def __add__(self, other):
        from ._composite import Sum, as_kernel

        return Sum(self, as_kernel(other))

    def __radd__(self, other):
        from ._composite import Sum, as_kernel

        return Sum(as_kernel(other), self)

    def __mul__(self, other):
        from ._composite import Product, as_kernel

        return Product(self, as_kernel(other))

    def __rmul__(self, other):
        from ._composite import Product, as_kernel

        return Product(as_kernel(other), self)

    def __pow__(self, exponent):
        from ._composite import Exponentiation

        return Exponentiation(self, exponent)

    # -- hyperparameters -------------------------------------------------------------
    @property
    def theta(self):
        """Free hyperparameters, log-transformed and flattened (scikit-learn's ``theta``)."""
        from ._params import get_theta

        return get_theta(self)

    @property
    def bounds(self):
        """Log-space bounds of :attr:`theta`, shape ``(n_free, 2)``."""
        from ._params import get_bounds

        return get_bounds(self)

    def with_theta(self, theta):
        """A copy with the free hyperparameters set from a log-space vector."""
        from ._params import set_theta

        return set_theta(self, theta)

    def parameters(self):
        """Nested parameter dict with scikit-learn style ``a__b`` keys (values and bounds)."""
        from ._params import kernel_parameters

        return kernel_parameters(self)

    def replace(self, **params):
        """A copy with parameters replaced; nested names use ``k1__length_scale`` syntax."""
        from ._params import replace_parameters

        return replace_parameters(self, **params)

    # -- spectral densities (random Fourier features, skgpx.kernels._spectral) ----------------
    def spectral_dof(self):
        """Student-t degrees of freedom of the spectral density, ``None`` for a Gaussian one;
        ``ValueError`` when the kernel has none implemented (only RBF and Matérn have)."""
        from ._spectral import no_spectral_density

        raise no_spectral_density(self)

    def _spectral_factors(self, inputs):
        """This kernel as a product: ``(amplitude, [SpectralFactor], has_white)``. The default
        serves input wrappers (``ActiveDims``, ``Chordal``) and refuses every other kernel."""
        from ._spectral import input_map, no_spectral_factors

        wrapped = input_map(self)
        if wrapped is None:
            raise no_spectral_factors(self)
        inner, op = wrapped
        return inner._spectral_factors(inputs + (op,))

    # -- scikit-learn ------------------------------------------------------------------
    def to_sklearn(self):
        """The scikit-learn kernel with the same formula and hyperparameter names (so the same
        ``theta`` and ``bounds``); ``ValueError`` when there is none."""
        if type(self).__dict__.get("sklearn_name") is None:
            raise ValueError(
                f"skgpx kernel {type(self).__name__} has no exact scikit-learn equivalent (same formula and same "
                f"hyperparameter names), so to_sklearn cannot convert it.{self._sklearn_hint} Kernels that convert: "
                "RBF, Matern, RationalQuadratic, ExpSineSquared, DotProduct, Constant, White, and "
                "Sum/Product/Exponentiation of these."
            )
        from sklearn.gaussian_process import kernels as skk

        params = {}
        for name in self.hyperparameters:
            params[name] = _sk_value(getattr(self, name))
            params[name + "_bounds"] = _sk_bounds(getattr(self, name + "_bounds"))
        return getattr(skk, self.sklearn_name)(**params, **self._sklearn_static())

    def _sklearn_static(self):
        """Static constructor arguments of the scikit-learn kernel besides the hyperparameters."""
        return {}

    # -- display -----------------------------------------------------------------
    def __repr__(self):
        parts = []
        for name in self.hyperparameters:
            parts.append(f"{name}={_fmt(getattr(self, name))}")
        for name, value in self._repr_extra():
            parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    def _repr_extra(self):
        return ()


def _sk_value(x):
    arr = np.asarray(x, dtype=np.float64)
    return float(arr) if arr.ndim == 0 else arr.copy()


def _sk_bounds(b):
    if isinstance(b, str):
        return b
    arr = np.asarray(b, dtype=np.float64)
    return (float(arr[0]), float(arr[1])) if arr.shape == (2,) else arr


def _fmt(value):
    try:
        arr = np.asarray(value)
    except Exception:  # a tracer
        return "<traced>"
    if arr.ndim == 0:
        return f"{float(arr):.3g}"
    return "[" + ", ".join(f"{v:.3g}" for v in arr.ravel()) + "]"
