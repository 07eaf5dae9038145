"""Long-format multi-task data -> union grid + padded, masked task blocks.

Magma works on the union grid ``T`` of all distinct training inputs (MAGMA.md
A.1): task ``i`` observes ``t_i``, and ``P_i`` selects ``t_i`` out of ``T``. Here
``P_i`` is stored as an integer index array ``index[i]`` into ``T``; tasks of
different lengths are padded to the longest one and a boolean ``mask`` flags
real rows. Nothing is truncated or dropped.

With ``pad=True`` (the estimators) every shape is a size bucket
(:func:`skgpx.gp.bucket`, as the single GP pads its training set; the grid with finer
steps above 64 points): the task count, the
rows per task block and the union grid, so a new number of tasks, a longer task or a
slightly different grid (a cross-validation fold, one more task) reuses the compiled EM
programs. Padded tasks and rows are masked; padded grid points (``grid_mask`` False) are
observed by no task and carry an identity block in the mean-process prior, which leaves
every result on the real grid unchanged (:mod:`._estep`).

Building the layout is a sort + group-by, O(#rows log #rows) time and O(#rows)
memory plus the padded arrays (M x max_N) - never O(#tasks x #rows) (MAGMA.md
item 4).

Inputs are matched to the grid by exact floating-point equality of the float64
values, after optional rounding to ``decimals`` decimal places (``np.round``).
This is deliberately done once, on the host, in float64, so two equal inputs can
never be split by a dtype mismatch (MAGMA.md item 5 ii).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..gp import bucket

__all__ = ["TaskLayout", "build_layout", "pad_by_group", "chunk_size_for"]

# The union grid's bucket steps by at most 12.5% from this size on, not by powers of two
# up to 256 as the single GP's rows: every E- and mean-process M-step costs O(N^3) in it.
_GRID_POW2_MAX = 64

# Elements of one (chunk x n_max x n_max) block processed at once by vmap.
_CHUNK_BUDGET = 1 << 22


def chunk_size_for(n_tasks: int, n_max: int, budget: int = _CHUNK_BUDGET) -> int:
    """Number of tasks processed together so a chunk holds at most about ``budget`` matrix entries.

    The chunks are balanced (``ceil(n_tasks / n_chunks)`` each), so padding the task axis to
    a multiple of the chunk adds fewer than ``n_chunks`` empty tasks.
    """
    largest = int(max(1, min(n_tasks, budget // max(1, n_max * n_max))))
    n_chunks = -(-max(n_tasks, 1) // largest)
    return int(-(-max(n_tasks, 1) // n_chunks))


@dataclasses.dataclass(frozen=True)
class TaskLayout:
    """Padded task blocks on the union grid (host NumPy arrays).

    Attributes:
        grid: ``(N, d)`` union grid ``T`` (unique rows, lexicographically sorted), then
            ``N - n_grid`` padded points (copies of the first; ``pad=True``).
        grid_mask: ``(N,)`` True on real grid points, or ``None`` when none is padded.
        X: ``(M_pad, n_max, d)`` task inputs; padded rows are 0.
        y: ``(M_pad, n_max)`` task outputs; padded entries are 0.
        index: ``(M_pad, n_max)`` row of ``grid`` of each input (0 on padding).
        mask: ``(M_pad, n_max)`` True on real rows.
        counts: ``(M,)`` number of observations per task.
        task_ids: ``(M,)`` the distinct ``groups`` labels, in sorted order.
        row_task, row_pos: ``(n,)`` task number and padded position of every input row.
        n_tasks: number of real tasks ``M`` (``M_pad - M`` trailing tasks are fully masked).
        chunk: tasks per vmapped chunk (``M_pad`` is a multiple of it, times the number of
            shards the layout was built for).
        shared_inputs: every task observes the whole grid (then ``index[i] = arange(N)``).
    """

    grid: np.ndarray
    grid_mask: np.ndarray | None
    X: np.ndarray
    y: np.ndarray
    index: np.ndarray
    mask: np.ndarray
    counts: np.ndarray
    task_ids: np.ndarray
    row_task: np.ndarray
    row_pos: np.ndarray
    n_tasks: int
    chunk: int
    shared_inputs: bool

    @property
    def n_grid(self) -> int:
        """Real grid points (padding excluded)."""
        return self.grid.shape[0] if self.grid_mask is None else int(self.grid_mask.sum())

    @property
    def real_grid(self) -> np.ndarray:
        return self.grid[: self.n_grid]

    @property
    def n_max(self) -> int:
        """Rows per task block (padding included)."""
        return self.X.shape[1]


def round_inputs(X, decimals):
    """``X`` as float64, rounded to ``decimals`` places when ``decimals`` is not None."""
    X = np.asarray(X, dtype=np.float64)
    return X if decimals is None else np.round(X, decimals)


def pad_by_group(task_of_row: np.ndarray, n_tasks: int, order_key=None):
    """Positions of rows inside padded per-task blocks, by a stable sort (O(n log n)).

    Returns ``(order, pos, counts, n_max)``: ``order`` sorts rows by task (then by
    ``order_key``), ``pos[r]`` is the slot of row ``r`` inside its task's block.
    """
    keys = (task_of_row,) if order_key is None else (order_key, task_of_row)
    order = np.lexsort(keys)
    counts = np.bincount(task_of_row, minlength=n_tasks)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    sorted_task = task_of_row[order]
    pos = np.empty_like(task_of_row)
    pos[order] = np.arange(task_of_row.size) - starts[sorted_task]
    n_max = int(counts.max()) if counts.size else 0
    return order, pos, counts, n_max


def build_layout(
    X, y, groups, *, decimals=None, max_grid_size=None, chunk_budget=_CHUNK_BUDGET, n_shards: int = 1,
    pad: bool = False,
) -> TaskLayout:
    """Union grid and padded task blocks from long-format ``(X, y, groups)``.

    ``n_shards``: the task axis is padded to ``n_shards`` equal shares of whole chunks (one
    share per device of a mesh, :mod:`._shard`), the chunk sized for one share.

    Raises ``ValueError`` on duplicate (task, input) pairs (after rounding) and when
    the union grid exceeds ``max_grid_size``.
    """
    X = round_inputs(X, decimals)
    y = np.asarray(y, dtype=np.float64)
    groups = np.asarray(groups)
    n, d = X.shape
    grid, grid_index = np.unique(X, axis=0, return_inverse=True)
    grid_index = grid_index.reshape(-1)
    if max_grid_size is not None and grid.shape[0] > max_grid_size:
        raise ValueError(
            f"The union grid of training inputs has {grid.shape[0]} distinct points, more than "
            f"max_grid_size={max_grid_size}; the E-step costs O(N^3) in it. Round the inputs onto a "
            "coarser grid with `input_decimals=` (e.g. input_decimals=2), or raise `max_grid_size`."
        )
    task_ids, task = np.unique(groups, return_inverse=True)
    task = task.reshape(-1)
    M = task_ids.shape[0]

    pair = task.astype(np.int64) * grid.shape[0] + grid_index
    uniq, first, cnt = np.unique(pair, return_index=True, return_counts=True)
    if uniq.size != n:
        bad = first[cnt > 1][0]
        raise ValueError(
            f"Duplicate (task, input) pairs: task {task_ids[task[bad]]!r} has the input {X[bad].tolist()} "
            f"more than once (after rounding to input_decimals={decimals}). Average the repeated "
            "observations, or drop them, before calling fit."
        )

    order, pos, counts, n_max = pad_by_group(task, M, order_key=grid_index)
    shared = bool(np.all(counts == grid.shape[0]))
    share = -(-M // n_shards)
    grid_mask = None
    if pad:
        share = bucket(share)
        n_grid = bucket(grid.shape[0], pow2_max=_GRID_POW2_MAX)
        grid_mask = np.arange(n_grid) < grid.shape[0]
        grid = np.concatenate([grid, np.repeat(grid[:1], n_grid - grid.shape[0], axis=0)])
        # Shared inputs: task blocks are aligned with the grid (index[i] = arange(N)).
        n_max = n_grid if shared else bucket(n_max)
    chunk = chunk_size_for(share, n_max, chunk_budget)
    M_pad = n_shards * (-(-share // chunk) * chunk)
    Xp = np.zeros((M_pad, n_max, d))
    yp = np.zeros((M_pad, n_max))
    ip = np.zeros((M_pad, n_max), dtype=np.int32)
    mp = np.zeros((M_pad, n_max), dtype=bool)
    Xp[task, pos] = X
    yp[task, pos] = y
    ip[task, pos] = grid_index
    mp[task, pos] = True
    if shared and pad:
        ip[:] = np.arange(n_max, dtype=np.int32)
    return TaskLayout(
        grid=grid,
        grid_mask=grid_mask,
        X=Xp,
        y=yp,
        index=ip,
        mask=mp,
        counts=counts,
        task_ids=task_ids,
        row_task=task,
        row_pos=pos,
        n_tasks=M,
        chunk=chunk,
        shared_inputs=shared,
    )
