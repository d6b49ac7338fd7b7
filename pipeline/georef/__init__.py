"""Georeferencing: vehicle pose from GNSS (+ IMU), per-point motion compensation, and
WGS84 transforms (geodetic, ECEF, local ENU).

- :mod:`pipeline.georef.frames`: numba transforms on arrays.
- :mod:`pipeline.georef.pose`: :class:`PoseEstimator` → :class:`PoseTrack` with a
  :class:`PoseStatus` for every time that has no trustworthy pose.
- :mod:`pipeline.georef.deskew`: :func:`georeference`, :func:`deskew`, :class:`Georeferencer`.
"""

from pipeline.georef._config import Extrinsics, GeorefConfig
from pipeline.georef.deskew import GeorefResult, Georeferencer, deskew, georeference
from pipeline.georef.frames import (
    ecef_to_enu,
    ecef_to_geodetic,
    enu_to_ecef,
    enu_to_geodetic,
    geodetic_to_ecef,
    geodetic_to_enu,
    rpy_matrix,
)
from pipeline.georef.pose import REASONS, PoseEstimator, PoseStatus, PoseTrack

__all__ = [
    "REASONS",
    "Extrinsics",
    "GeorefConfig",
    "GeorefResult",
    "Georeferencer",
    "PoseEstimator",
    "PoseStatus",
    "PoseTrack",
    "deskew",
    "ecef_to_enu",
    "ecef_to_geodetic",
    "enu_to_ecef",
    "enu_to_geodetic",
    "geodetic_to_ecef",
    "geodetic_to_enu",
    "georeference",
    "rpy_matrix",
]
