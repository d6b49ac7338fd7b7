"""Point-cloud kernels: plain numba functions on arrays (no I/O, no config).

- :mod:`pipeline.kernels.crop`: invalid returns, range/box crops, the vehicle's body.
- :mod:`pipeline.kernels.outliers`: statistical outlier removal (Open3D semantics).
- :mod:`pipeline.kernels.voxel`: voxel-grid downsampling with centroids (Open3D semantics).
- :mod:`pipeline.kernels.morton`: 63-bit Morton keys and a radix argsort.

:class:`FilterConfig` and :func:`filter_points` apply the filters from configuration.
"""

from pipeline.kernels._filter import FilterConfig, FilterResult, filter_points
from pipeline.kernels.crop import body_mask, box_mask, range_mask, valid_mask
from pipeline.kernels.morton import decode_morton, encode_morton, morton_keys, morton_sort, radix_argsort
from pipeline.kernels.outliers import knn_mean_distance, statistical_outlier_mask
from pipeline.kernels.voxel import voxel_downsample

__all__ = [
    "FilterConfig",
    "FilterResult",
    "body_mask",
    "box_mask",
    "decode_morton",
    "encode_morton",
    "filter_points",
    "knn_mean_distance",
    "morton_keys",
    "morton_sort",
    "radix_argsort",
    "range_mask",
    "statistical_outlier_mask",
    "valid_mask",
    "voxel_downsample",
]
