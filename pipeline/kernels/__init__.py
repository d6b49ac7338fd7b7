"""Point-cloud kernels: plain numba functions on arrays (no I/O, no config).

- :mod:`pipeline.kernels.crop`: invalid returns, range/box crops, the vehicle's body.
- :mod:`pipeline.kernels.outliers`: statistical outlier removal (Open3D semantics).
- :mod:`pipeline.kernels.voxel`: voxel-grid downsampling with centroids (Open3D semantics).
- :mod:`pipeline.kernels.morton`: 63-bit Morton keys and a radix argsort.

:class:`FilterConfig` (in ``_config``, importable without numba) and :func:`filter_points`
apply the filters from configuration. Names are imported on first use, so loading the
configuration does not load numba.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "FilterConfig": "pipeline.kernels._config",
    "FilterResult": "pipeline.kernels._filter",
    "filter_points": "pipeline.kernels._filter",
    "body_mask": "pipeline.kernels.crop",
    "box_mask": "pipeline.kernels.crop",
    "range_mask": "pipeline.kernels.crop",
    "valid_mask": "pipeline.kernels.crop",
    "decode_morton": "pipeline.kernels.morton",
    "encode_morton": "pipeline.kernels.morton",
    "morton_keys": "pipeline.kernels.morton",
    "morton_sort": "pipeline.kernels.morton",
    "radix_argsort": "pipeline.kernels.morton",
    "knn_mean_distance": "pipeline.kernels.outliers",
    "statistical_outlier_mask": "pipeline.kernels.outliers",
    "voxel_downsample": "pipeline.kernels.voxel",
}

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


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'pipeline.kernels' has no attribute {name!r}")
