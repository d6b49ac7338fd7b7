"""Georeferencing and motion compensation of LiDAR points.

:func:`georeference` puts sensor-frame points into ECEF with the vehicle pose at each
point's own time (``deskew=True``: the sweep's motion is removed) or with one pose for the
whole sweep (``deskew=False``, for comparison). :func:`deskew` gives the points in the
sensor frame as seen from the sensor's pose at one reference time. Points without a pose
come back as NaN with a :class:`PoseStatus` (``strict=True`` raises :class:`NoPoseError`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.georef._config import GeorefConfig
from pipeline.georef.frames import ecef_to_enu, ecef_to_geodetic
from pipeline.georef.pose import PoseEstimator, PoseTrack, georef_kernel, raise_for_status


@dataclass
class GeorefResult:
    """ECEF points ``(N, 3)`` float64 (NaN without a pose) and their pose status (0 = OK)."""

    ecef: np.ndarray
    status: np.ndarray

    @property
    def valid(self) -> np.ndarray:
        return self.status == 0

    def enu(self, origin: tuple[float, float, float]) -> np.ndarray:
        """East/north/up (m) around ``origin`` (lat, lon degrees, ellipsoidal height m)."""
        return ecef_to_enu(np.ascontiguousarray(self.ecef), *map(float, origin))

    def geodetic(self) -> np.ndarray:
        """``(N, 3)`` WGS84 latitude, longitude (degrees), ellipsoidal height (m)."""
        return ecef_to_geodetic(np.ascontiguousarray(self.ecef))


def georeference(xyz: np.ndarray, times: np.ndarray, track: PoseTrack, rotation: np.ndarray,
                 translation: np.ndarray, *, deskew: bool = True, t_ref: float | None = None,
                 strict: bool = False) -> GeorefResult:
    """Sensor-frame points ``(N, 3)`` with UTC ``times`` (s) → ECEF.

    ``rotation``/``translation``: sensor → vehicle extrinsics. With ``deskew=False`` every
    point uses the pose at ``t_ref`` (default: the middle of the time span)."""
    xyz = np.ascontiguousarray(xyz)
    times = np.ascontiguousarray(times, dtype=np.float64)
    if len(times) != len(xyz):
        raise ValueError(f"{len(xyz)} points but {len(times)} times")
    if not deskew:
        if t_ref is None:
            t_ref = 0.5 * (float(times.min()) + float(times.max())) if len(times) else 0.0
        times = np.full(len(xyz), t_ref)
    ecef, status = georef_kernel(xyz, times, np.ascontiguousarray(rotation, dtype=np.float64),
                                 np.ascontiguousarray(translation, dtype=np.float64), track.t, track.ref_ecef,
                                 track.vel_ecef, track.lat, track.lon, track.good, track.yaw_t, track.yaw,
                                 track.max_gap_s, track.max_extrapolation_s)
    if strict:
        raise_for_status(status, times)
    return GeorefResult(ecef, status)


def deskew(xyz: np.ndarray, times: np.ndarray, track: PoseTrack, rotation: np.ndarray, translation: np.ndarray,
           t_ref: float, *, strict: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Motion-compensated points in the sensor frame at ``t_ref``: each point is placed
    with the pose at its own time, then seen from the sensor's pose at ``t_ref``.
    Returns ``(xyz (N, 3) float64, status (N,))``; NaN where there is no pose."""
    res = georeference(xyz, times, track, rotation, translation, deskew=True, strict=strict)
    origin, rot, st = track.vehicle_to_ecef(np.array([t_ref]))
    if st[0] != 0:
        if strict:
            raise_for_status(st, np.array([t_ref]))
        return np.full((len(xyz), 3), np.nan), np.full(len(xyz), st[0], dtype=np.uint8)
    # ECEF → vehicle at t_ref → sensor
    veh = (res.ecef - origin[0]) @ rot[0]  # rot maps vehicle → ECEF; rows of its transpose
    sensor = (veh - np.asarray(translation)) @ np.asarray(rotation)
    return sensor, res.status


class Georeferencer:
    """Georeferencing from configuration: feed fixes/IMU with :meth:`add`, then
    :meth:`process` decoded scans (``sensors.lidar.Scan``)."""

    def __init__(self, cfg: GeorefConfig | None = None) -> None:
        self.cfg = cfg or GeorefConfig()
        self.estimator = PoseEstimator.from_config(self.cfg)
        self.rotation = self.cfg.lidar.rotation()
        self.translation = self.cfg.lidar.translation()
        self._track: PoseTrack | None = None
        self.origin: tuple[float, float, float] | None = self.cfg.origin

    def add(self, msg) -> None:  # type: ignore[no-untyped-def]
        """A bus message (GnssFix, ImuSample; others are ignored)."""
        self.estimator.add(msg)
        self._track = None

    def prune(self, before: float) -> int:
        """Forget navigation data older than ``before`` (see :meth:`PoseEstimator.prune`)."""
        self._track = None
        return self.estimator.prune(before)

    @property
    def track(self) -> PoseTrack:
        if self._track is None:
            self._track = self.estimator.track()
            if self.origin is None and self._track.good.any():
                i = int(np.flatnonzero(self._track.good)[0])  # first good fix's reference point
                geo = ecef_to_geodetic(self._track.ref_ecef[i:i + 1])
                self.origin = (float(geo[0, 0]), float(geo[0, 1]), float(geo[0, 2]))
        return self._track

    def process(self, scan, *, strict: bool = False) -> GeorefResult:  # type: ignore[no-untyped-def]
        """ECEF points of a decoded scan (x y z in the sensor frame, absolute ``time``)."""
        return georeference(scan.xyz, scan.time, self.track, self.rotation, self.translation,
                            deskew=self.cfg.deskew, strict=strict)
