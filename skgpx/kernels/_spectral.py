"""Spectral densities and random Fourier features (Bochner's theorem).

A stationary kernel with ``k(0) = 1`` is the characteristic function of a
probability density ``p`` on frequencies, ``k(x - x') = E_p[cos(omega . (x - x'))]``
(Bochner; Rahimi & Recht 2007, eq. 2). Drawing ``m`` frequencies gives the feature map

    phi(x) = sqrt(c / m) [cos(omega_j . x), sin(omega_j . x)]_{j=1..m}        (2m columns)

with ``phi(x) . phi(x') = (c / m) sum_j cos(omega_j . (x - x'))``, an unbiased
estimate of ``c k(x - x')``. Paired sin/cos features are used rather than
``sqrt(2/r) cos(omega x + b)`` with random phases: they have lower variance
(Sutherland & Schneider 2015) and ``phi(x) . phi(x) = c`` exactly, so prior
variances are exact.

Spectral densities (normalised to probability densities, length scale ``l``,
one per feature for ARD, ``Sigma = diag(l)^-2``):

* RBF: ``omega ~ N(0, Sigma)``.
* Matérn ``nu``: multivariate Student-t with ``2 nu`` degrees of freedom and scale
  ``Sigma``, i.e. ``omega = z / sqrt(u / (2 nu)) / l`` with ``z ~ N(0, I_d)`` and ONE
  ``u ~ chi^2_{2 nu}`` shared by all coordinates of a frequency. Drawing the
  coordinates as independent 1-D Student-t variables would give the product of
  1-D Matérn kernels, a different (non-isotropic) kernel when ``d > 1``.

Kernel trees: ``Sum`` -> concatenated feature blocks; input wrappers (``ActiveDims``,
``Chordal``: a kernel of transformed inputs) -> the inner kernel's features of the
transformed inputs; ``Product`` with
``Constant`` -> amplitude; a product of stationary factors -> frequencies add
(the spectral measure of a product is the convolution of the factors' measures;
on disjoint ``ActiveDims`` this is the concatenated frequency vector);
``Exponentiation(k, p)`` -> ``p`` independent factors. ``White`` terms have zero
cross-covariance and carry no features (the low-rank model adds them to its
diagonal). Anything else raises a ``ValueError`` pointing to ``solver="nystrom"``.

Base frequencies (``z`` and ``u`` above) are drawn once from a key and divided by
the current length scale when features are formed, so features are
differentiable with respect to every hyperparameter.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._base import AbstractKernel
from ._composite import Sum

__all__ = [
    "spectral_density",
    "sample_base_frequencies",
    "RandomFourierFeatures",
    "draw_random_fourier_features",
    "rff_frequency_counts",
    "spectral_terms",
]

_NYSTROM_HINT = "use solver='nystrom', which needs only kernel evaluations"


# -- single stationary kernels (each knows its density: ``kernel.spectral_dof()``) --------------
def no_spectral_density(kernel):
    """The ``ValueError`` for a kernel without a spectral density implemented."""
    return ValueError(
        f"Random Fourier features need a spectral density; {kernel!r} has none implemented "
        f"(supported: RBF, Matern(nu in 0.5, 1.5, 2.5)). {_NYSTROM_HINT}."
    )


def sample_base_frequencies(kernel, n_dims: int, n_frequencies: int, key, dtype=None, batch_shape=()):
    """Length-scale-free frequencies ``batch_shape + (n_frequencies, n_dims)`` of ``kernel`` (RBF or Matérn).

    Divide by the length scale to get draws from the spectral density:
    ``omega = base / length_scale``. ``batch_shape`` draws independent sets at once
    (e.g. one per posterior sample path).
    """
    df = kernel.spectral_dof()
    dtype = dtype or jnp.result_type(float)
    extra = 0 if df is None else int(df)
    # One normal draw holds both z (n_dims columns) and, for Matérn, the 2 nu normals whose
    # squares sum to u ~ chi^2_{2 nu}: a single RNG call site (threefry is slow to compile).
    g = jax.random.normal(key, tuple(batch_shape) + (n_frequencies, n_dims + extra), dtype)
    z = g[..., :n_dims]
    if df is None:
        return z
    # One chi^2_{2 nu} scale per frequency shared by all coordinates (multivariate t). For
    # nu in {1/2, 3/2, 5/2} the degrees of freedom 2 nu are integers: a sum of 2 nu squared
    # standard normals is exact and far faster than `jax.random.gamma`'s rejection sampler.
    u = jnp.sum(g[..., n_dims:] ** 2, axis=-1, keepdims=True)
    return z / jnp.sqrt(u / df)


def spectral_density(kernel, omega):
    """Spectral density ``p(omega)`` of a unit-variance RBF / Matérn kernel (a probability density).

    ``omega`` has shape ``(..., d)``; ``k(tau) = integral p(omega) cos(omega . tau) d omega``.
    """
    df = kernel.spectral_dof()
    omega = jnp.asarray(omega)
    d = omega.shape[-1]
    ls = jnp.broadcast_to(jnp.asarray(kernel.length_scale, omega.dtype), (d,))
    q = jnp.sum((omega * ls) ** 2, axis=-1)  # omega^T Sigma^-1 omega
    log_det = jnp.sum(jnp.log(ls))  # -1/2 log|Sigma|
    if df is None:
        return jnp.exp(log_det - 0.5 * d * math.log(2 * math.pi) - 0.5 * q)
    # Multivariate Student-t density with df = 2 nu and scale Sigma.
    log_c = math.lgamma((df + d) / 2) - math.lgamma(df / 2) - 0.5 * d * math.log(df * math.pi)
    return jnp.exp(log_c + log_det - 0.5 * (df + d) * jnp.log1p(q / df))


# -- kernel trees -----------------------------------------------------------------------
class SpectralFactor(NamedTuple):
    kernel: AbstractKernel  # RBF or Matern
    inputs: tuple  # input maps applied to X before the factor, outermost first (see input_map)

    def transform(self, X):
        """The inputs the stationary factor sees: column selections and embeddings applied in order."""
        for op in self.inputs:
            X = X[..., list(op)] if isinstance(op, tuple) else op.embed(X)
        return X

    def n_dims(self, n_input_dims: int) -> int:
        return jax.eval_shape(self.transform, jax.ShapeDtypeStruct((1, n_input_dims), jnp.result_type(float))).shape[-1]


class SpectralTerm(NamedTuple):
    amplitude: object  # traced scalar (product of Constant factors)
    factors: tuple  # SpectralFactor, ...; empty for a constant term


def input_map(kernel):
    """``(inner, op)`` for a wrapper that only changes the inputs of ``inner`` (duck-typed), else ``None``.

    ``op`` is a tuple of column indices (active dimensions: ``dims`` / ``active_dims``)
    or the wrapper itself when it has an ``embed(X)`` method (e.g. ``Chordal``: a
    stationary kernel of embedded inputs has the features of that kernel at ``embed(X)``).
    """
    inner = getattr(kernel, "kernel", None)
    if not isinstance(inner, AbstractKernel):
        return None
    for name in ("dims", "active_dims"):
        dims = getattr(kernel, name, None)
        if dims is not None:
            return inner, tuple(int(i) for i in np.atleast_1d(np.asarray(dims)))
    if callable(getattr(kernel, "embed", None)):
        return inner, kernel
    return None


def no_spectral_factors(kernel, inside_product=False):
    """The ``ValueError`` for a kernel random Fourier features cannot represent (a kernel's
    ``_spectral_factors`` flattens it into ``(amplitude, [SpectralFactor], has_white)``)."""
    if inside_product:
        return ValueError(
            f"Random Fourier features cannot represent the product/power of a sum {kernel!r}; expand "
            f"the kernel into a sum of products, or {_NYSTROM_HINT}."
        )
    return ValueError(
        f"Random Fourier features are not available for {kernel!r} (no spectral density implemented; "
        f"supported: RBF, Matern(nu in 0.5, 1.5, 2.5), Constant, White, sums and products of these, "
        f"ActiveDims and Chordal of these). {_NYSTROM_HINT}."
    )


def spectral_terms(kernel, inputs=()) -> list[SpectralTerm]:
    """Split ``kernel`` into a sum of ``amplitude * prod(stationary factors)`` terms.

    ``White`` terms (zero cross-covariance) are dropped. Raises ``ValueError`` for
    kernels random Fourier features cannot represent.
    """
    if isinstance(kernel, Sum):
        return spectral_terms(kernel.k1, inputs) + spectral_terms(kernel.k2, inputs)
    wrapped = input_map(kernel)
    if wrapped is not None and isinstance(wrapped[0], Sum):
        inner, op = wrapped
        return spectral_terms(inner, inputs + (op,))
    amplitude, factors, white = kernel._spectral_factors(inputs)
    if white:
        return []
    return [SpectralTerm(amplitude, tuple(factors))]


class RandomFourierFeatures(eqx.Module):
    """Feature map ``phi(X)`` of shape ``(n, n_features)`` with ``phi phi^T ~ K`` (White parts excluded).

    Built by :func:`draw_random_fourier_features`. Holds the kernel (traced
    hyperparameters) and the fixed base frequencies, so ``phi`` is differentiable
    with respect to the kernel's leaves.
    """

    kernel: AbstractKernel
    base: tuple  # per term: tuple of (m_t, input dims of the factor) arrays, one per factor
    n_frequencies: tuple[int, ...] = eqx.field(static=True)

    @property
    def n_features(self) -> int:
        return sum(2 * m if m > 0 else 1 for m in self.n_frequencies)

    def _projections(self, X):
        """Per term: ``(sqrt(amplitude / m), omega . x)`` with ``omega . x`` of shape ``(n, m)``."""
        out = []
        for term, base, m in zip(spectral_terms(self.kernel), self.base, self.n_frequencies):
            amp = jnp.asarray(term.amplitude, X.dtype)
            if m == 0:  # constant term: one exact feature sqrt(c)
                out.append((jnp.sqrt(amp), None))
                continue
            # omega . x = sum over factors of t(x) . (base / length_scale), t the factor's input map:
            # frequencies of a product add (convolution of spectral measures).
            proj = jnp.zeros((X.shape[0], m), X.dtype)
            for factor, b in zip(term.factors, base):
                Xf = factor.transform(X)
                proj = proj + (Xf / jnp.asarray(factor.kernel.length_scale, X.dtype)) @ b.T.astype(X.dtype)
            out.append((jnp.sqrt(amp / m), proj))
        return out

    def __call__(self, X):
        X = jnp.asarray(X)
        blocks = []
        for scale, proj in self._projections(X):
            if proj is None:
                blocks.append(jnp.broadcast_to(scale, (X.shape[0], 1)))
            else:
                blocks.append(scale * jnp.concatenate([jnp.cos(proj), jnp.sin(proj)], axis=1))
        return jnp.concatenate(blocks, axis=1)

    def path(self, X, w):
        """``phi(X) @ w`` for one weight vector ``w`` ``(n_features,)`` without forming ``phi(X)``.

        The sin/cos evaluation and the weighted sum fuse into one loop (no ``(n, r)``
        temporaries), which makes sampling many prior paths memory-bound on the projections only.
        """
        X = jnp.asarray(X)
        total = jnp.zeros(X.shape[:1], X.dtype)
        i = 0
        for scale, proj in self._projections(X):
            if proj is None:
                total = total + scale * w[i]
                i += 1
                continue
            m = proj.shape[1]
            wc, ws = w[i : i + m], w[i + m : i + 2 * m]
            total = total + scale * jnp.sum(jnp.cos(proj) * wc + jnp.sin(proj) * ws, axis=1)
            i += 2 * m
        return total


def rff_frequency_counts(kernel, n_components: int) -> tuple[int, ...]:
    """Sin/cos frequency pairs per term of ``kernel`` (0 for a constant term) for ``n_components`` columns.

    Each constant-only term gets one exact column; the remaining columns are split
    equally between the stationary terms (``m = (n_components - n_const) // (2 T)``
    pairs each), independent of the current amplitudes so shapes stay static during
    hyperparameter optimisation.
    """
    terms = spectral_terms(kernel)
    if not terms:
        raise ValueError(
            f"kernel {kernel!r} has no part other than White noise: there is nothing for random "
            "features to approximate; use solver='cholesky'."
        )
    n_const = sum(1 for t in terms if not t.factors)
    n_spec = len(terms) - n_const
    m = (int(n_components) - n_const) // (2 * n_spec) if n_spec else 0
    if n_spec and m < 1:
        raise ValueError(
            f"n_components={n_components} is too small for a kernel with {n_spec} stationary terms; "
            f"use n_components >= {2 * n_spec + n_const}."
        )
    return tuple(m if t.factors else 0 for t in terms)


def draw_random_fourier_features(
    kernel, n_dims: int, n_components: int, key, batch_shape=()
) -> RandomFourierFeatures:
    """Draw the random Fourier feature map of ``kernel`` with at most ``n_components`` columns.

    Columns per term: see :func:`rff_frequency_counts`. With ``batch_shape`` every
    base-frequency array gets those leading dimensions (independent feature maps,
    e.g. one per sample path, to be used under ``vmap``).
    """
    terms = spectral_terms(kernel)
    sizes = rff_frequency_counts(kernel, n_components)
    n_factors = sum(len(t.factors) for t in terms)
    keys = jax.random.split(key, max(n_factors, 1))  # one key per stationary factor
    bases, i = [], 0
    for term, m in zip(terms, sizes):
        fb = []
        for factor in term.factors:
            nd = factor.n_dims(n_dims)
            fb.append(sample_base_frequencies(factor.kernel, nd, m, keys[i], batch_shape=batch_shape))
            i += 1
        bases.append(tuple(fb))
    return RandomFourierFeatures(kernel, tuple(bases), sizes)
