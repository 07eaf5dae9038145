"""Time groups: the Gram matrix of a space x time product kernel when time takes a few values.

For ``k(x, x') = k_s(x, x') k_t(t, t')`` (a product over ``ActiveDims`` factors, ``k_t`` reading
only the time column) and observations whose time column takes ``G`` distinct values
``t_1 < ... < t_G`` (days of satellite passes, say), the Gram matrix, rows sorted by group, is the
``G x G`` block matrix

    ``K_gh = w_gh K_s(X_g, X_h)``,   ``w_gh = k_t(t_g, t_h)``

(the seed's Exploit B). :class:`TimeGroupOperator` holds the spatial blocks apart from the ``G x G``
scalar temporal weights and combines them at product time:

* ``"dense"``: the spatial kernel ``K_s`` (rows sorted by group, ``n x n``) evaluated once and kept;
  the products use the weighted matrix ``w_{g(i) g(j)} K_s[i, j]`` formed from it by one elementwise
  pass, so each product is one plain GEMM (weighing per column group inside the product is
  slower: docs/performance.md, "Time groups"). Twice the memory of the plain dense operator;
  a new temporal kernel (:meth:`TimeGroupOperator.with_kernel` with changed temporal
  hyperparameters) reuses them and costs no kernel evaluation at all;
* ``"matrix-free"``: every group padded to whole square blocks (:func:`group_block_size`) of
  :func:`~skgpx.operators.symmetric_tiled_mm`, which evaluates the *spatial* kernel once per pair
  and multiplies each block by its scalar weight: no temporal kernel evaluation per pair.

Rows stay in the caller's order (a gather and a scatter per product, ``O(n k)``). The layout of the
groups (:func:`time_group_layout`) is computed inside the compiled program from ``X`` with the
static group sizes fixed on the host (:func:`find_time_groups`). Predictions at test points share the
spatial blocks' economy (Exploit A): :meth:`TimeGroupOperator.cross_mm` evaluates ``K_s(X*, X)`` once
per pair and weighs it by ``k_t(t*, t_g)`` per group. :func:`time_group_surrogate_grad` is the
CG back-end's gradient pass: temporal hyperparameters through the ``G x G`` weights (from the dense
blocks without any kernel evaluation), spatial ones through one pass over the block pairs, skipped
when they are not differentiated (fixed).
"""

from __future__ import annotations

import functools
import math
import operator as _op

import equinox as eqx
import jax
import jax.numpy as jnp
import lineax as lx
import numpy as np

from ..kernels import ActiveDims, Constant
from ._common import auto_block_size, block_pairs, noise_diagonal, register_symmetric_psd, row_tiles, symmetric_tiled_mm

__all__ = [
    "TimeGroupOperator", "TimeGroupLayout", "split_space_time", "find_time_groups", "group_block_size",
    "time_group_layout", "time_group_operator", "time_group_surrogate_grad",
]


# -- the kernel and the data (host side) ------------------------------------------------------


def _product_factors(kernel):
    from ..kernels._composite import Product

    if isinstance(kernel, Product):
        return _product_factors(kernel.k1) + _product_factors(kernel.k2)
    return [kernel]


def split_space_time(kernel, time_dim: int):
    """``(spatial, temporal)`` with ``kernel = spatial * temporal (+ White)`` off the diagonal.

    ``kernel`` (a top-level ``White`` term aside, which lives on the diagonal) must be a product
    whose factors are ``ActiveDims(..., dims=(time_dim,))`` (the temporal part, at least one) and
    ``Constant`` or ``ActiveDims`` factors not reading ``time_dim`` (the spatial part, at least
    one). ``ValueError`` otherwise. Works on traced kernels (structure only).
    """
    smooth, _ = kernel.split_white()
    factors = [] if smooth is None else _product_factors(smooth)
    temporal = [f for f in factors if isinstance(f, ActiveDims) and f.dims == (time_dim,)]
    spatial = [f for f in factors if not (isinstance(f, ActiveDims) and f.dims == (time_dim,))]
    bad = [f for f in spatial if not (isinstance(f, Constant) or (isinstance(f, ActiveDims) and time_dim not in f.dims))]
    if not temporal or not spatial or bad:
        raise ValueError(
            f"Time groups on column {time_dim} need a product kernel of ActiveDims factors: one or more over "
            f"dims=({time_dim},) (time) and the others (or Constant) over the other columns (space), plus "
            f"optionally a White term; got {kernel!r}. Write it e.g. as ActiveDims(Matern(...), dims=(0, 1)) * "
            f"ActiveDims(Matern(..., nu=0.5), dims=({time_dim},)), or drop `time_dim`."
        )
    return functools.reduce(_op.mul, spatial), functools.reduce(_op.mul, temporal)


def _time_columns(kernel) -> list[int]:
    smooth, _ = kernel.split_white()
    factors = [] if smooth is None else _product_factors(smooth)
    return sorted({f.dims[0] for f in factors if isinstance(f, ActiveDims) and len(f.dims) == 1})


def find_time_groups(kernel, X, time_dim="auto", max_groups: int = 64):
    """Host side: ``(time_dim, sizes)`` for data ``X`` ``(n, d)`` (NumPy), ``sizes`` the number of
    rows at each distinct time (ascending times), or ``None``.

    ``time_dim`` an int: that column, which the kernel must split on (:func:`split_space_time`) and
    which must take at most ``max_groups`` distinct values (``ValueError`` naming the fix
    otherwise). ``"auto"``: among the columns a single-column ``ActiveDims`` factor reads, the one
    with the fewest distinct values, if the kernel splits on it and it takes 2 to ``max_groups``
    values; ``None`` when no column qualifies.
    """
    X = np.asarray(X)

    def sizes(col):
        _, counts = np.unique(X[:, col], return_counts=True)
        return tuple(int(c) for c in counts)

    if time_dim == "auto":
        best = None
        for col in _time_columns(kernel):
            if col >= X.shape[1]:
                continue
            try:
                split_space_time(kernel, col)
            except ValueError:
                continue
            c = sizes(col)
            if 2 <= len(c) <= max_groups and (best is None or len(c) < len(best[1])):
                best = (col, c)
        return best
    if not (isinstance(time_dim, (int, np.integer)) and 0 <= time_dim < X.shape[1]):
        raise ValueError(f"`time_dim` must be 'auto', None or a column index in [0, {X.shape[1]}), got {time_dim!r}.")
    split_space_time(kernel, int(time_dim))
    c = sizes(int(time_dim))
    if len(c) > max_groups:
        raise ValueError(
            f"Column time_dim={time_dim} takes {len(c)} distinct values, more than max_time_groups={max_groups}: time "
            "groups pay off for a few groups (days). Raise `max_time_groups`, or drop `time_dim`."
        )
    return int(time_dim), c


def group_block_size(sizes, block_size: int | None = None) -> int:
    """Rows per square block of the matrix-free product: ``block_size``, or a quarter of the mean
    group (each group is padded to whole blocks, so at most one block of padding per group),
    between 128 and 1024 rows."""
    if block_size is not None:
        return int(max(1, min(block_size, max(sizes))))
    mean = sum(sizes) / len(sizes)
    return int(min(1024, max(128, math.ceil(mean / 4)), max(sizes)))


# -- the layout (traced) -------------------------------------------------------------------


class TimeGroupLayout(eqx.Module):
    """Rows of ``X`` in *slots* sorted by time group: group ``g`` holds the slots
    ``[start_g, start_g + slot_sizes[g])``, its real rows first. ``rows`` ``(S,)`` the row of each
    slot (padded slots: 0), ``valid`` ``(S,)`` real slots, ``times`` ``(G,)`` ascending."""

    rows: jax.Array
    valid: jax.Array
    times: jax.Array
    slot_sizes: tuple = eqx.field(static=True)

    @property
    def n_groups(self) -> int:
        return len(self.slot_sizes)

    @property
    def n_slots(self) -> int:
        return sum(self.slot_sizes)

    @property
    def starts(self) -> tuple:
        return tuple(int(a) for a in np.cumsum((0,) + self.slot_sizes[:-1]))

    @property
    def slot_group(self) -> np.ndarray:
        """Static ``(S,)``: the group of each slot."""
        return np.repeat(np.arange(self.n_groups), self.slot_sizes)

    def gather(self, V):
        """``V`` ``(n, k)`` -> ``(S, k)``, zero at padded slots."""
        return jnp.where(self.valid[:, None], V[self.rows], 0.0)

    def scatter(self, R, n: int):
        """``(S, k)`` -> ``(n, k)``: the inverse of :meth:`gather` (rows in no group: zero)."""
        R = jnp.where(self.valid[:, None], R, 0.0)
        return jnp.zeros((n, R.shape[-1]), R.dtype).at[self.rows].add(R)

    def time_points(self, X, time_dim: int):
        """``(G, d)`` points with the groups' times in column ``time_dim`` (zero elsewhere: only the
        temporal factor, which reads that column alone, is evaluated on them)."""
        return jnp.zeros((self.n_groups, X.shape[1]), X.dtype).at[:, time_dim].set(self.times.astype(X.dtype))


def time_group_layout(X, time_dim: int, sizes, block_size: int | None = None, mask=None) -> TimeGroupLayout:
    """The :class:`TimeGroupLayout` of ``X`` ``(n, d)`` (traced) for the static group ``sizes``
    (:func:`find_time_groups`); ``block_size`` None: no padding (slots = rows), else every group
    padded to whole blocks of that many rows. Rows with ``mask`` False (padding) join no group."""
    n = X.shape[0]
    G = len(sizes)
    slot_sizes = tuple(int(c) if block_size is None else block_size * math.ceil(c / block_size) for c in sizes)
    S = sum(slot_sizes)
    t = X[:, time_dim]
    real = jnp.ones(n, bool) if mask is None else mask
    t = jnp.where(real, t, t[jnp.argmax(real)])
    times = jnp.unique(t, size=G, fill_value=jnp.max(t))
    gid = jnp.where(real, jnp.searchsorted(times, t), G)
    order = jnp.argsort(gid, stable=True)
    counts = jnp.bincount(gid, length=G + 1)
    start = jnp.cumsum(counts) - counts
    sgid = gid[order]
    slot_start = jnp.asarray(np.cumsum((0,) + slot_sizes), jnp.int32)  # group G (padding rows): S, dropped
    slot = slot_start[sgid] + (jnp.arange(n) - start[sgid])
    slot = jnp.where(sgid < G, slot, S)
    rows = jnp.zeros(S, jnp.int32).at[slot].set(order.astype(jnp.int32), mode="drop")
    valid = jnp.zeros(S, bool).at[slot].set(True, mode="drop")
    return TimeGroupLayout(rows, valid, times, slot_sizes)


# -- the operator -----------------------------------------------------------------------------


class TimeGroupOperator(lx.AbstractLinearOperator):
    """``K(X, X) + diag(s)`` for a space x time product kernel on ``G`` time groups (module docstring).

    Symmetric positive definite, ``(n,) -> (n,)``, with :meth:`mm` for ``(n, k)`` blocks; an
    optional ``mask`` flags real rows of a padded ``X`` (padded rows: a unit diagonal block).
    """

    kernel: object
    X: jax.Array
    diag_noise: jax.Array
    mask: jax.Array | None
    layout: TimeGroupLayout
    weights: jax.Array  # (G, G) temporal kernel between the groups' times
    blocks: jax.Array | None  # (S, S) spatial kernel in slot order ("dense"); None ("matrix-free")
    weighted: jax.Array | None  # (S, S) the blocks times their temporal weights ("dense")
    time_dim: int = eqx.field(static=True)
    block_size: int = eqx.field(static=True)  # rows per square block of the matrix-free product

    @property
    def kind(self) -> str:
        return "time-groups-dense" if self.blocks is not None else "time-groups-matrix-free"

    @property
    def parts(self):
        """``(spatial, temporal)`` factors of the kernel (:func:`split_space_time`)."""
        return split_space_time(self.kernel, self.time_dim)

    def with_kernel(self, kernel):
        """The operator of ``kernel`` (same structure, new hyperparameters) on the same data,
        reusing the dense spatial blocks: only the temporal hyperparameters may differ (a changed
        spatial factor is not detected: rebuild with :func:`time_group_operator` then)."""
        _, temporal = split_space_time(kernel, self.time_dim)
        T = self.layout.time_points(self.X, self.time_dim)
        noise = self.diag_noise - noise_diagonal(self.kernel, self.X, 0.0)
        s = _masked_noise(noise_diagonal(kernel, self.X, noise), self.mask)
        W = temporal.cross(T, T)
        return TimeGroupOperator(kernel, self.X, s, self.mask, self.layout, W, self.blocks,
                                 _weighted(self.blocks, W, self.layout), self.time_dim, self.block_size)

    def _slot_X(self):
        return self.X[self.layout.rows]

    def mm(self, V):
        lay = self.layout
        Vs = lay.gather(V)
        W = self.weights.astype(V.dtype)
        sg = lay.slot_group
        if self.weighted is not None:
            R = self.weighted @ Vs
        else:
            tg = sg[::self.block_size]  # each block lies in one group
            spatial, _ = self.parts
            R = symmetric_tiled_mm(spatial, self._slot_X(), Vs, self.block_size, block_weights=W[tg][:, tg])
        return lay.scatter(R, V.shape[0]) + self.diag_noise[:, None] * V

    def mv(self, vector):
        return self.mm(vector[:, None])[:, 0]

    def cross_mm(self, Xs, V, tile_size: int | None = None, checkpoint: bool = False):
        """``K(Xs, X) @ V`` (``Xs`` ``(q, d)`` at any times, ``V`` ``(n, k)``) evaluating the spatial
        kernel once per pair: per tile of test rows, ``K_s(Xs_tile, X)`` weighed column group by
        column group by ``k_t(t*, t_g)``, then one GEMM (Exploit A). ``(q, k)``."""
        from ._common import auto_tile_size

        spatial, temporal = self.parts
        lay = self.layout
        Xl, Vs = self._slot_X(), lay.gather(V)
        Wst = temporal.cross(Xs, lay.time_points(self.X, self.time_dim))  # (q, G)
        q = Xs.shape[0]
        T = auto_tile_size(q, lay.n_slots) if tile_size is None else int(min(tile_size, q))
        sg = jnp.asarray(lay.slot_group)

        def block(Xt, Wt):
            return (spatial.cross(Xt, Xl) * Wt[:, sg]) @ Vs

        if checkpoint:
            block = jax.checkpoint(block)
        out = jax.lax.map(lambda a: block(*a), (row_tiles(Xs, T), row_tiles(Wst, T)))
        return out.reshape(-1, V.shape[1])[:q]

    def transpose(self):
        return self

    def in_structure(self):
        return jax.ShapeDtypeStruct((self.X.shape[0],), self.diag_noise.dtype)

    def out_structure(self):
        return self.in_structure()

    def as_matrix(self):
        # Explicit request only (tests, debugging): forms n x n.
        K = self.kernel.cross(self.X, self.X, self.mask, self.mask)
        return K.at[jnp.diag_indices(self.X.shape[0])].add(self.diag_noise)


def _masked_noise(s, mask):
    return s if mask is None else jnp.where(mask, s, 1.0)


def _weighted(blocks, W, layout):
    if blocks is None:
        return None
    sg = layout.slot_group
    return blocks * W.astype(blocks.dtype)[sg][:, sg]


def time_group_operator(kernel, X, noise, time_dim: int, sizes, kind: str = "dense", block_size: int | None = None,
                        mask=None) -> TimeGroupOperator:
    """:class:`TimeGroupOperator` of ``kernel`` on ``X`` ``(n, d)`` with per-row ``noise`` ``(n,)``.

    ``sizes`` (static): rows per time group, from :func:`find_time_groups` on the host. ``kind``:
    ``"dense"`` (the spatial kernel ``(n, n)`` in group order in memory) or ``"matrix-free"``;
    ``block_size``: rows per square block of the matrix-free product (:func:`group_block_size`;
    every group is padded to whole blocks).
    """
    if kind not in ("dense", "matrix-free"):
        raise ValueError(f"`kind` must be 'dense' or 'matrix-free', got {kind!r}.")
    spatial, temporal = split_space_time(kernel, time_dim)
    sizes = tuple(int(c) for c in sizes)
    Bk = group_block_size(sizes, block_size)
    layout = time_group_layout(X, time_dim, sizes, None if kind == "dense" else Bk, mask)
    T = layout.time_points(X, time_dim)
    W = temporal.cross(T, T)
    blocks = None
    if kind == "dense":
        Xl = X[layout.rows]
        blocks = spatial.cross(Xl, Xl)
    s = _masked_noise(noise_diagonal(kernel, X, noise), mask)
    return TimeGroupOperator(kernel, X, s, mask, layout, W, blocks, _weighted(blocks, W, layout), int(time_dim), Bk)


def _diagonal(op):
    lay = op.layout
    spatial, _ = op.parts
    d_s = jax.vmap(lambda x: spatial.cross(x[None], x[None])[0, 0])(op._slot_X())
    sg = lay.slot_group
    d = d_s * jnp.diagonal(op.weights)[sg]
    return lay.scatter(d[:, None], op.X.shape[0])[:, 0] + op.diag_noise


register_symmetric_psd(TimeGroupOperator, _diagonal)


@lx.materialise.register(TimeGroupOperator)
def _(operator):
    import warnings

    n = operator.X.shape[0]
    warnings.warn(
        f"Materialising a TimeGroupOperator forms its {n} x {n} Gram matrix. Solve it with `skgpx.solvers.pcg` "
        "(or lineax.CG) to keep its block structure.",
        UserWarning,
        stacklevel=2,
    )
    return lx.MatrixLinearOperator(operator.as_matrix(), lx.positive_semidefinite_tag)


@lx.tridiagonal.register(TimeGroupOperator)
def _(operator):
    d = _diagonal(operator)
    X = operator.X
    off = jax.vmap(lambda a, b: operator.kernel.cross(a[None], b[None])[0, 0])(X[:-1], X[1:])
    if operator.mask is not None:
        off = jnp.where(operator.mask[:-1] & operator.mask[1:], off, 0.0)
    return d, off, off


# -- the gradient pass of the CG surrogate ------------------------------------------------------


def time_group_surrogate_grad(kernel, op: TimeGroupOperator, V, Wt):
    """Zero, with the gradient (kernel hyperparameters) of ``sum(Wt * K V)``, ``K`` the kernel part
    of ``op`` at ``kernel`` (``op`` may hold stop-gradient hyperparameters: its layout and dense
    blocks are used, not its kernel). ``V``, ``Wt`` ``(n, k)`` are constants.

    With ``S = sum_gh w_gh Wt_g^T K_s(X_g, X_h) V_h``: the temporal hyperparameters are reached
    through ``w = k_t(t_g, t_h)`` with cotangent ``M_gh = Wt_g^T K_s,gh V_h`` (from the dense
    blocks: no kernel evaluation); the spatial ones by one pass over the square block pairs
    ``I <= J`` (as :func:`~skgpx.operators.symmetric_tiled_mm`: each block linearised and pulled
    back once with cotangent ``w_{g(I) g(J)} C_IJ``), which also yields ``M``. That pass runs only
    when a spatial hyperparameter is differentiated. Not differentiable in ``X``.
    """
    spatial, temporal = split_space_time(kernel, op.time_dim)
    lay = op.layout
    T = lay.time_points(op.X, op.time_dim)
    W = temporal.cross(T, T)
    return _surrogate((spatial, W), op.X, lay, lay.gather(V), lay.gather(Wt), jax.lax.stop_gradient(op.blocks),
                      op.block_size)


@eqx.filter_custom_vjp
def _surrogate(vjp_arg, X, lay, Vs, Ws, blocks, block_size):
    return jnp.zeros((), Vs.dtype)


@_surrogate.def_fwd
def _surrogate_fwd(perturbed, vjp_arg, X, lay, Vs, Ws, blocks, block_size):
    return jnp.zeros((), Vs.dtype), None


@_surrogate.def_bwd
def _surrogate_bwd(residuals, ct, perturbed, vjp_arg, X, lay, Vs, Ws, blocks, block_size):
    spatial, W = vjp_arg
    p_spatial, _ = perturbed
    Ws = ct * Ws
    need_spatial = any(jax.tree_util.tree_leaves(p_spatial))
    g_spatial = eqx.filter(spatial, lambda _: False)  # all None: no cotangent
    if blocks is not None and not need_spatial:
        # M[g, :] = segment sums over the column groups of (Ws_g^T K_s(X_g, X)) * V
        sg = jnp.asarray(lay.slot_group)
        rows = [jax.ops.segment_sum(jnp.sum((Ws[a:a + c].T @ blocks[a:a + c]).T * Vs, axis=1), sg, lay.n_groups)
                for a, c in zip(lay.starts, lay.slot_sizes)]
        return g_spatial, jnp.stack(rows)
    M, g_dyn = _pair_pass(spatial, W, X, lay, Vs, Ws, block_size, need_spatial)
    if need_spatial:
        g_spatial = jax.tree_util.tree_map(lambda p, g: g if p else None, p_spatial, g_dyn,
                                           is_leaf=lambda x: x is None)
    return g_spatial, M


def _pair_pass(spatial, W, X, lay, Vs, Ws, block_size, with_vjp):
    """One ``lax.scan`` over the square block pairs ``I <= J`` of the slots, every group padded to
    whole blocks: ``M`` ``(G, G)`` (upper triangle: ``sum K_s,IJ : C_IJ`` per group pair) and, with
    ``with_vjp``, the spatial kernel's cotangent (``None`` leaves for non-arrays)."""
    G, k = lay.n_groups, Vs.shape[1]
    Bk = int(block_size)
    if any(c % Bk for c in lay.slot_sizes):  # dense layout (unpadded groups): re-slot into whole blocks
        padded = tuple(Bk * math.ceil(c / Bk) for c in lay.slot_sizes)
        dst = np.concatenate([np.arange(c) + a for a, c in zip(np.cumsum((0,) + padded[:-1]), lay.slot_sizes)])
        S = sum(padded)
        rows = jnp.zeros(S, jnp.int32).at[dst].set(lay.rows)
        Vs = jnp.zeros((S, k), Vs.dtype).at[dst].set(Vs)
        Ws = jnp.zeros((S, k), Ws.dtype).at[dst].set(Ws)
        sizes = padded
    else:
        rows, sizes = lay.rows, lay.slot_sizes
    nb = sum(sizes) // Bk
    Xb = X[rows].reshape(nb, Bk, -1)
    Vb, Wb = Vs.reshape(nb, Bk, k), Ws.reshape(nb, Bk, k)
    _, I, J = block_pairs(nb * Bk, Bk)
    tg = jnp.asarray(np.repeat(np.arange(G), np.asarray(sizes) // Bk))
    dyn, static = eqx.partition(spatial, eqx.is_inexact_array)
    dt = Vs.dtype

    def step(acc, ij):
        i, j = ij
        M, g_dyn = acc
        off = jnp.where(i == j, 0.0, 1.0).astype(dt)
        cot = Wb[i] @ Vb[j].T + off * (Vb[i] @ Wb[j].T)
        gi, gj = tg[i], tg[j]
        if with_vjp:
            Kb, vjp = jax.vjp(lambda dy: eqx.combine(dy, static).cross(Xb[i], Xb[j]), dyn)
            (gd,) = vjp(W[gi, gj].astype(dt) * cot)
            g_dyn = jax.tree_util.tree_map(jnp.add, g_dyn, gd)
        else:
            Kb = spatial.cross(Xb[i], Xb[j])
        return (M.at[gi, gj].add(jnp.sum(Kb * cot)), g_dyn), None

    zero = (jnp.zeros((G, G), dt), jax.tree_util.tree_map(jnp.zeros_like, dyn) if with_vjp else None)
    (M, g_dyn), _ = jax.lax.scan(step, zero, (I, J))
    return M, g_dyn
