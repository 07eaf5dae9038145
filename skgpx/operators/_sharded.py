"""The noisy Gram matrix split by rows over the devices of a mesh.

:class:`ShardedKernelOperator` is what :func:`~skgpx.operators.kernel_operator` builds
when a mesh of more than one device is JAX's context mesh (``jax.set_mesh``; the
estimators set it for ``device=[...]`` or a ``Mesh``). Both layouts of the one-device
operators are kept, with one collective per product (``jax.shard_map``):

* ``"dense"``: each device holds its ``n_pad / p`` rows of ``K + diag(s)``
  (``n_pad``: ``n`` rounded up to a multiple of ``p``; padded rows are dropped from
  every product), so the matrix memory is split ``p`` ways. A product
  ``(K + diag(s)) @ V`` is a local GEMM of the row block with the whole ``V``; the
  result stays split by rows.
* ``"matrix-free"``: the square block pairs ``I <= J`` of
  :func:`~skgpx.operators.symmetric_tiled_mm` are dealt round-robin to the devices;
  each evaluates its blocks once (``n^2 / (2 p)`` kernel entries) into a partial
  ``(n, k)`` sum, and one reduce-scatter (``psum_scatter``) leaves every device the
  sum of its rows.

The solvers see an ``(n, k)`` result sharded by rows, so CG, Lanczos and the
Woodbury preconditioner run on sharded vectors (their dot products become one
all-reduce of ``k`` numbers each). Results equal the one-device operator's to
rounding (sums in another order).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec as P

from .._mesh import row_spec, varying
from ._common import auto_block_size, cross_diagonal, noise_diagonal, register_symmetric_psd, row_tiles
from ._kernel_operator import AbstractKernelOperator

__all__ = ["ShardedKernelOperator", "sharded_pair_vjp"]


def _pad_rows(A, n_pad, fill=None):
    pad = n_pad - A.shape[0]
    if not pad:
        return A
    extra = jnp.broadcast_to(A[:1], (pad,) + A.shape[1:]) if fill is None else jnp.full(
        (pad,) + A.shape[1:], fill, A.dtype)
    return jnp.concatenate([A, extra], axis=0)


def _whole(x):
    """Pin an array whole on every device, so that JAX's sharding propagation does not split it on
    its own (e.g. 2 ways over 4 devices, a layout that cannot leave a compiled function)."""
    return jax.lax.with_sharding_constraint(x, P())


def _round_robin_pairs(n, block_size, p):
    """Block size and the pairs ``I <= J`` dealt to ``p`` devices: ``(Bk, I, J, w)``, each of
    length ``p * ceil(pairs / p)``, device ``d`` taking pairs ``d, d + p, ...``; ``w`` is 0
    on the padding pairs."""
    Bk = auto_block_size(n) if block_size is None else int(min(block_size, n))
    I, J = np.triu_indices(math.ceil(n / Bk))  # the pairs of block_pairs, on the host
    npairs = int(I.shape[0])
    per = math.ceil(npairs / p)
    order = np.arange(per * p).reshape(per, p).T.reshape(-1)  # device-major: d, d + p, ...
    valid = order < npairs
    src = np.where(valid, order, 0)
    I, J = I[src], J[src]
    return Bk, jnp.asarray(I), jnp.asarray(J), jnp.asarray(valid.astype(np.float32))


class ShardedKernelOperator(AbstractKernelOperator):
    """``K(X, X) + diag(s)`` with rows split over a mesh (``layout``: dense or matrix-free)."""

    kernel: object
    X: jax.Array
    diag_noise: jax.Array
    matrix: jax.Array | None
    mesh: object = eqx.field(static=True)
    layout: str = eqx.field(static=True)
    tile_size: int | None = eqx.field(static=True)
    mask: None  # never padded (skgpx.gp.CG pads only without a mesh)

    def __init__(self, kernel, X, noise, mesh, layout: str = "dense", tile_size: int | None = None):
        """**Arguments:** ``kernel``, ``X`` ``(n, d)``, ``noise`` ``(n,)``, ``mesh`` (a ``Mesh`` or
        ``AbstractMesh`` of more than one device), ``layout`` (``"dense"`` or ``"matrix-free"``),
        ``tile_size`` (block side of the matrix-free layout; ``None``: automatic)."""
        if layout not in ("dense", "matrix-free"):
            raise ValueError(f"`layout` must be 'dense' or 'matrix-free', got {layout!r}.")
        self.kernel = kernel
        self.X = X
        self.diag_noise = _whole(noise_diagonal(kernel, X, noise))
        self.mesh = mesh
        self.layout = layout
        self.tile_size = tile_size
        self.mask = None
        self.matrix = self._dense_rows() if layout == "dense" else None

    @property
    def kind(self) -> str:
        return f"{self.layout} (sharded over {self.mesh.size} devices)"

    @property
    def n_devices(self) -> int:
        return int(self.mesh.size)

    def _n_pad(self) -> int:
        p = self.n_devices
        return p * math.ceil(self.X.shape[0] / p)

    def _dense_rows(self):
        n = self.X.shape[0]
        n_pad = self._n_pad()
        rows = n_pad // self.n_devices
        spec = row_spec(self.mesh)
        dyn, static = eqx.partition(self.kernel, eqx.is_array)

        def local(dyn, Xl, sl, X):
            K = eqx.combine(dyn, static).cross(Xl, X)
            first = jax.lax.axis_index(spec[0]) * rows
            on_diag = (first + jnp.arange(rows))[:, None] == jnp.arange(n)[None, :]
            return K + jnp.where(on_diag, sl[:, None], 0.0).astype(K.dtype)

        X, s = _whole(self.X), _whole(self.diag_noise)
        return jax.shard_map(local, mesh=self.mesh, in_specs=(P(), spec, spec, P()), out_specs=spec)(
            dyn, _pad_rows(X, n_pad), _pad_rows(s, n_pad, 0.0), X)

    def mm(self, V):
        n, k = V.shape
        spec = row_spec(self.mesh)
        if self.layout == "dense":
            out = jax.shard_map(lambda Kl, V: Kl @ V, mesh=self.mesh, in_specs=(spec, P()), out_specs=spec)(
                self.matrix, _whole(V))
            return self._rows(out[:n])
        if k == 1:  # as symmetric_tiled_mm: two columns lower to GEMMs
            return self.mm(jnp.pad(V, ((0, 0), (0, 1))))[:, :1]
        p = self.n_devices
        Bk, I, J, w = _round_robin_pairs(n, self.tile_size, p)
        Xb = row_tiles(_whole(self.X), Bk)
        Vb = row_tiles(_whole(V), Bk, fill=0.0)
        nb = Xb.shape[0]
        rows = p * math.ceil(nb * Bk / p)
        dyn, static = eqx.partition(self.kernel, eqx.is_array)

        @jax.checkpoint
        def pair(dyn, Xi, Xj, Vi, Vj):
            Kb = eqx.combine(dyn, static).cross(Xi, Xj)
            return Kb @ Vj, (Vi.T @ Kb).T

        def local(dyn, I, J, w, Xb, Vb):
            def step(out, ijw):
                i, j, wt = ijw
                to_i, to_j = pair(dyn, Xb[i], Xb[j], Vb[i], Vb[j])
                wt = wt.astype(V.dtype)
                out = out.at[i].add(wt * to_i)
                return out.at[j].add(jnp.where(i == j, 0.0, wt) * to_j), None

            out, _ = jax.lax.scan(step, varying(jnp.zeros_like(Vb), spec[0]), (I, J, w))
            flat = _pad_rows(out.reshape(-1, k), rows, 0.0)
            return jax.lax.psum_scatter(flat, spec[0], scatter_dimension=0, tiled=True)

        out = jax.shard_map(local, mesh=self.mesh, in_specs=(P(), spec, spec, spec, P(), P()), out_specs=spec)(
            dyn, I, J, w, Xb, Vb)
        return self._rows(out[:n] + _whole(self.diag_noise)[:, None] * _whole(V))

    def _rows(self, out):
        """The ``(n, k)`` product split by rows when ``p`` divides ``n`` (the solvers' vectors then
        stay split too), else whole on every device (JAX arrays split unevenly cannot leave a
        compiled function); either way the ``O(n^2)`` work was split."""
        even = out.shape[0] % self.n_devices == 0
        return jax.lax.with_sharding_constraint(out, row_spec(self.mesh) if even else P())

    def as_matrix(self):
        if self.matrix is not None:
            return self.matrix[: self.X.shape[0]]
        K = self.kernel.cross(self.X, self.X)
        return K.at[jnp.diag_indices(self.X.shape[0])].add(self.diag_noise)


def sharded_pair_vjp(kernel, X, V, Wt, mesh, block_size=None):
    """Gradient (kernel array leaves, ``X``) of ``sum(Wt * K(X, X) @ V)`` with the block pairs
    ``I <= J`` dealt round-robin over ``mesh`` and one all-reduce of the gradients.

    The same pairs and cotangents as the one-device rule in ``skgpx.gp`` (``C_IJ = Wt_I V_J^T +
    V_I Wt_J^T`` off the diagonal, ``Wt_I V_I^T`` on it). **Returns:** ``(g_dyn, g_X)``.
    """
    dyn, static = eqx.partition(kernel, eqx.is_inexact_array)
    n, d = X.shape
    spec = row_spec(mesh)
    Bk, I, J, w = _round_robin_pairs(n, block_size, int(mesh.size))
    Xb, Vb, Wb = row_tiles(_whole(X), Bk), row_tiles(_whole(V), Bk, fill=0.0), row_tiles(_whole(Wt), Bk, fill=0.0)

    def local(dyn, I, J, w, Xb, Vb, Wb):
        # Local copies: a VJP with respect to a replicated input would sum over the devices itself.
        dyn, Xb = varying((dyn, Xb), spec[0])

        def step(acc, ijw):
            i, j, wt = ijw
            g_dyn, g_X = acc
            wt = wt.astype(V.dtype)
            off = jnp.where(i == j, 0.0, wt)
            cot = wt * (Wb[i] @ Vb[j].T) + off * (Vb[i] @ Wb[j].T)
            _, vjp = jax.vjp(lambda dy, a, b: eqx.combine(dy, static).cross(a, b), dyn, Xb[i], Xb[j])
            gd, gXi, gXj = vjp(cot)
            g_dyn = jax.tree_util.tree_map(jnp.add, g_dyn, gd)
            return (g_dyn, g_X.at[i].add(gXi).at[j].add(gXj)), None

        zero = (jax.tree_util.tree_map(jnp.zeros_like, dyn), jnp.zeros_like(Xb))
        acc, _ = jax.lax.scan(step, varying(zero, spec[0]), (I, J, w))
        return jax.lax.psum(acc, spec[0])

    g_dyn, g_X = jax.shard_map(local, mesh=mesh, in_specs=(P(), spec, spec, spec, P(), P(), P()),
                               out_specs=P())(dyn, I, J, w, Xb, Vb, Wb)
    return g_dyn, g_X.reshape(-1, d)[:n]


# -- lineax dispatch (as the one-device operators) ---------------------------------------------


def _register():
    import lineax as lx

    cls = ShardedKernelOperator
    register_symmetric_psd(cls, lambda op: cross_diagonal(op.kernel, op.X) + op.diag_noise)
    lx.materialise.register(cls)(lambda operator: operator)


_register()
