"""Posterior samples by pathwise conditioning (Matheron's rule).

For a GP prior draw ``f~`` and noise draw ``e ~ N(0, diag(noise))``,

    f*(Xs) = f~(Xs) + K(Xs, X) (K(X, X) + diag(noise))^{-1} (Y - f~(X) - e)

is an exact draw from the posterior at ``Xs`` (Wilson et al. 2020, Eq. 3). The
solve is the back-end's own ``posterior.solve_train`` (Cholesky, CG or Woodbury),
done once for all samples as one multi-column right-hand side, and the
cross-covariance product runs over row tiles of ``Xs``, so memory stays
``O(tile * n)``: sampling ``m`` points costs ``O(m)`` per sample instead of an
``m x m`` factorisation.

Prior draws:

* exact / CG posteriors: random Fourier features of the White-free kernel
  (:mod:`skgpx.kernels._spectral`), with an INDEPENDENT draw of frequencies for
  every sample. Because ``f*`` is linear in the prior covariance, averaging over
  the frequency draws makes the sample mean and covariance unbiased for the
  exact posterior whatever ``n_prior_features`` is; the feature count only
  affects higher moments (each sample is Gaussian given its frequencies).
  Kernels without a spectral density raise ``ValueError`` (use ``method="exact"``).
* low-rank posteriors (``solver="rff"`` / ``"nystrom"``): the model's own prior
  ``phi(x) . w``, ``w ~ N(0, I)``, plus its diagonal-only part, so samples follow
  exactly the approximate posterior that ``predict`` reports.

What a sample contains: by default (``include_white=True``) the latent ``f`` plus
the kernel's own ``White`` term (drawn independently at every point of ``Xs``), i.e.
covariance ``posterior.cov(Xs)``, the same quantity scikit-learn's ``sample_y``
draws ("y as the kernel models it"); with ``include_white=False`` the latent ``f``
alone. The observation noise ``noise`` (scikit-learn's ``alpha``) is never added to
the samples; it enters only through the data correction. Targets are on the
normalised scale.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from ..kernels import RandomFourierFeatures, draw_random_fourier_features, rff_frequency_counts
from ..operators import tiled_cross_mm
from ._lowrank import LowRankPosterior

__all__ = ["pathwise_sample"]

# Entries of one (paths, rows, features) block of prior features: 2^22 float64 = 32 MiB.
_BLOCK_ELEMENTS = 2**22


def _rff_prior_paths(kernel, X, Xs, n_paths, n_features, key):
    """Independent RFF prior paths at ``X`` and ``Xs``: ``(n, P)`` and ``(m, P)``, fresh frequencies per path."""
    d = X.shape[1]
    try:
        sizes = rff_frequency_counts(kernel, n_features)
    except ValueError as err:
        raise ValueError(
            f"Pathwise sampling draws prior paths from random Fourier features, which this kernel does not "
            f"have ({err}). Use sample_y(method='exact') for moderate numbers of points, or fit with "
            "solver='nystrom', whose pathwise samples use its own features."
        ) from None
    kb, kw = jax.random.split(key)
    # Independent base frequencies for every path, drawn in one batched call per factor.
    template = draw_random_fourier_features(kernel, d, n_features, kb, batch_shape=(n_paths,))
    bases = template.base
    W = jax.random.normal(kw, (n_paths, template.n_features), X.dtype)

    def path_values(base, w, rows):
        return RandomFourierFeatures(kernel, base, sizes).path(rows, w)

    # Tiles of (c paths) x (b rows): one tile holds c * b * n_features feature values.
    nf = template.n_features
    c = int(max(1, min(n_paths, _BLOCK_ELEMENTS // (nf * 256))))
    n_chunks = -(-n_paths // c)
    pad_p = n_chunks * c - n_paths
    if pad_p:
        bases = jax.tree_util.tree_map(lambda a: jnp.concatenate([a, a[:pad_p]]), bases)
        W = jnp.concatenate([W, W[:pad_p]])
    bases = jax.tree_util.tree_map(lambda a: a.reshape((n_chunks, c) + a.shape[1:]), bases)
    Wc = W.reshape(n_chunks, c, nf)

    def evaluate(Z):
        rows = Z.shape[0]
        b = int(max(1, min(rows, _BLOCK_ELEMENTS // (nf * c))))
        nb = -(-rows // b)
        pad = nb * b - rows
        Zp = jnp.concatenate([Z, jnp.broadcast_to(Z[:1], (pad, d))]) if pad else Z
        blocks = Zp.reshape(nb, b, d)

        def chunk(args):
            bc, wc = args
            out = jax.lax.map(lambda Zb: jax.vmap(path_values, in_axes=(0, 0, None))(bc, wc, Zb), blocks)
            return out.transpose(1, 0, 2).reshape(c, nb * b)  # (c, rows)

        vals = jax.lax.map(chunk, (bases, Wc))  # (n_chunks, c, rows)
        return vals.reshape(n_chunks * c, nb * b)[:n_paths, :rows].T

    return evaluate(X), evaluate(Xs)


def pathwise_sample(
    inference, posterior, kernel, X, Y, noise, Xs, n_samples: int, key, *, n_prior_features: int = 1024,
    tile_size: int | None = None, include_white: bool = True,
):
    """Posterior samples at ``Xs`` by Matheron's rule, shape ``(n_samples, m, t)``.

    **Arguments:**

    - `inference`, `posterior`: the fitted back-end (``posterior.solve_train`` is the solver).
    - `kernel`, `X` ``(n, d)``, `Y` ``(n, t)`` (normalised), `noise` ``(n,)``: the training problem.
    - `Xs` ``(m, d)``: where to sample; `n_samples`: samples per target column; `key`: a JAX key.
    - `n_prior_features`: random features per prior path (exact / CG posteriors only).
    - `tile_size`: rows of ``Xs`` per cross-covariance tile (default: about 4M entries per tile).
    - `include_white`: ``True`` (default, scikit-learn's ``sample_y``): samples of ``f`` plus the
      kernel's ``White`` term; ``False``: samples of the latent ``f`` alone (covariance
      ``posterior.cov(Xs)`` minus the White variance on its diagonal).

    **Returns:** samples of ``f(Xs)`` plus (``include_white``) the kernel's ``White`` term
    (covariance ``posterior.cov(Xs)``), never the observation noise ``noise``. See the module docstring.
    """
    del inference  # the posterior carries the solver
    if hasattr(posterior, "pathwise"):  # a back-end with its own prior draws (SKI: on its grid)
        return posterior.pathwise(jnp.asarray(Y), jnp.asarray(Xs), int(n_samples), key, bool(include_white))
    X, Y, Xs, noise = jnp.asarray(X), jnp.asarray(Y), jnp.asarray(Xs), jnp.asarray(noise)
    return _pathwise_jit(
        posterior, kernel, X, Y, noise, Xs, int(n_samples), key, int(n_prior_features), tile_size, bool(include_white)
    )


@eqx.filter_jit
def _pathwise_jit(posterior, kernel, X, Y, noise, Xs, n_samples, key, n_prior_features, tile_size, include_white):
    n, t = Y.shape
    m = Xs.shape[0]
    P = n_samples * t
    k_prior, k_eps, k_white = jax.random.split(key, 3)

    if isinstance(posterior, LowRankPosterior):
        op = posterior.operator
        W = jax.random.normal(k_prior, (op.n_features, P), X.dtype)
        f_X = op.matmul_features(W)[:n]  # a padded fit's real rows come first
        f_S = posterior._rows(Xs, lambda Pb, _: Pb @ W)
        diag_X = op.diagonal[:n]  # noise + White + (Nyström) residual
        diag_S = posterior.independent_diagonal(Xs)  # White + (Nyström) residual
        if not include_white:  # the Nyström residual is part of the latent approximate prior
            diag_S = diag_S - kernel.white_diagonal(Xs)
        cross_mm = posterior.cross_matmul
    else:
        f_X, f_S = _rff_prior_paths(kernel, X, Xs, P, n_prior_features, k_prior)
        diag_X = noise + kernel.white_diagonal(X)
        diag_S = kernel.white_diagonal(Xs) if include_white else jnp.zeros(Xs.shape[:1], X.dtype)

        def cross_mm(Z, B):
            return tiled_cross_mm(kernel, Z, X, B, tile_size)

    # Prior draw of the noisy targets at X: f~(X) + White + noise (one N(0, diag) draw).
    eps = jnp.sqrt(diag_X)[:, None] * jax.random.normal(k_eps, (n, P), X.dtype)
    Yrep = jnp.broadcast_to(Y[:, None, :], (n, n_samples, t)).reshape(n, P)
    beta = posterior.solve_train(Yrep - f_X - eps)  # (n, P), one multi-RHS solve
    white_S = jnp.sqrt(diag_S)[:, None] * jax.random.normal(k_white, (m, P), X.dtype)
    samples = f_S + white_S + cross_mm(Xs, beta)  # (m, P)
    return jnp.transpose(samples.reshape(m, n_samples, t), (1, 0, 2))
