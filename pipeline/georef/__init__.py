"""Georeferencing: vehicle pose from GNSS (+ IMU), per-point motion compensation, and
WGS84 transforms (geodetic, ECEF, local ENU).

- :mod:`pipeline.georef.frames`: numba transforms on arrays.
- :mod:`pipeline.georef.pose`: :class:`PoseEstimator` → :class:`PoseTrack` with a
  :class:`PoseStatus` for every time that has no trustworthy pose.
- :mod:`pipeline.georef._deskew`: :func:`georeference`, :func:`deskew`, :class:`Georeferencer`.
- :mod:`pipeline.georef._stage`: :func:`process_scan`, one scan through the filters,
  deskewed georeferencing and the voxel grid (what a runner calls per scan).

Names are imported on first use (``GeorefConfig`` loads without numba).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "Extrinsics": "pipeline.georef._config",
    "GeorefConfig": "pipeline.georef._config",
    "GeorefResult": "pipeline.georef._deskew",
    "ProcessedScan": "pipeline.georef._stage",
    "process_scan": "pipeline.georef._stage",
    "Georeferencer": "pipeline.georef._deskew",
    "deskew": "pipeline.georef._deskew",
    "georeference": "pipeline.georef._deskew",
    "ecef_to_enu": "pipeline.georef.frames",
    "ecef_to_geodetic": "pipeline.georef.frames",
    "enu_to_ecef": "pipeline.georef.frames",
    "enu_to_geodetic": "pipeline.georef.frames",
    "geodetic_to_ecef": "pipeline.georef.frames",
    "geodetic_to_enu": "pipeline.georef.frames",
    "rpy_matrix": "pipeline.georef.frames",
    "REASONS": "pipeline.georef.pose",
    "PoseEstimator": "pipeline.georef.pose",
    "PoseStatus": "pipeline.georef.pose",
    "PoseTrack": "pipeline.georef.pose",
}

__all__ = [
    "REASONS",
    "Extrinsics",
    "GeorefConfig",
    "GeorefResult",
    "Georeferencer",
    "PoseEstimator",
    "PoseStatus",
    "PoseTrack",
    "ProcessedScan",
    "deskew",
    "ecef_to_enu",
    "ecef_to_geodetic",
    "enu_to_ecef",
    "enu_to_geodetic",
    "geodetic_to_ecef",
    "geodetic_to_enu",
    "georeference",
    "process_scan",
    "rpy_matrix",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'pipeline.georef' has no attribute {name!r}")
