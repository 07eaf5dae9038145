"""The public names of :mod:`skgpx.operators`, imported on first use of any of them (:mod:`skgpx._lazy`)."""

from ._common import (
    auto_block_size as auto_block_size,
    auto_tile_size as auto_tile_size,
    block_pairs as block_pairs,
    cross_diagonal as cross_diagonal,
    noise_diagonal as noise_diagonal,
    row_tiles as row_tiles,
    symmetric_tiled_mm as symmetric_tiled_mm,
    tiled_cross_mm as tiled_cross_mm,
)
from ._gram import noisy_gram as noisy_gram
from ._factory import (
    available_memory_bytes as available_memory_bytes,
    dense_fits as dense_fits,
    dense_memory_budget as dense_memory_budget,
    kernel_operator as kernel_operator,
    operator_kind as operator_kind,
)
from ._kernel_operator import (
    AbstractKernelOperator as AbstractKernelOperator,
    DenseKernelOperator as DenseKernelOperator,
    MatrixFreeKernelOperator as MatrixFreeKernelOperator,
)
from ._lowrank import (
    LowRankPlusDiagonal as LowRankPlusDiagonal,
    auto_batch_size as auto_batch_size,
    capacitance_pass as capacitance_pass,
    feature_gram as feature_gram,
    map_feature_rows as map_feature_rows,
)
from ._sharded import ShardedKernelOperator as ShardedKernelOperator, sharded_pair_vjp as sharded_pair_vjp
from ._grid import (
    AbstractGridOperator as AbstractGridOperator,
    Grid as Grid,
    auto_grid as auto_grid,
    lattice_of as lattice_of,
)
from ._toeplitz import ToeplitzOperator as ToeplitzOperator
from ._chordal_grid import ChordalGridOperator as ChordalGridOperator, chordal_structure as chordal_structure
from ._kronecker import (
    DenseGridOperator as DenseGridOperator,
    KroneckerOperator as KroneckerOperator,
    grid_operator as grid_operator,
)
from ._interpolation import (
    GridInterpolation as GridInterpolation,
    SKIOperator as SKIOperator,
    interpolation_weights as interpolation_weights,
    stencil_weights as stencil_weights,
)
from ._time_groups import (
    TimeGroupLayout as TimeGroupLayout,
    TimeGroupOperator as TimeGroupOperator,
    find_time_groups as find_time_groups,
    group_block_size as group_block_size,
    split_space_time as split_space_time,
    time_group_layout as time_group_layout,
    time_group_operator as time_group_operator,
    time_group_surrogate_grad as time_group_surrogate_grad,
)
from ._time_slices import (
    TimeSliceSKIOperator as TimeSliceSKIOperator,
    time_slice_operator as time_slice_operator,
    time_slices as time_slices,
)
