"""One decoded scan through the point stages: filters (sensor/vehicle frame), georeferencing
with per-point deskew, voxel grid in the local ENU frame. The runner feeds navigation to the
:class:`Georeferencer` and calls :func:`process_scan` per scan; nothing here does I/O."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.georef._deskew import Georeferencer
from pipeline.georef.frames import enu_to_ecef
from pipeline.kernels._config import FilterConfig


@dataclass
class ProcessedScan:
    """Georeferenced points of one scan.

    ``enu`` (M, 3) float64 around ``origin`` (lat, lon, h) and ``ecef`` (M, 3); per point
    ``intensity`` (float32) and ``time`` (float64, UTC s; the mean time of a voxel's points
    when downsampled) and ``count`` (points merged in each voxel, 1 without a grid).
    ``removed`` counts points dropped per stage, ``no_pose`` those without a pose."""

    enu: np.ndarray
    ecef: np.ndarray
    intensity: np.ndarray
    time: np.ndarray
    count: np.ndarray
    origin: tuple[float, float, float]
    removed: dict[str, int] = field(default_factory=dict)
    no_pose: int = 0

    def __len__(self) -> int:
        return len(self.enu)


def process_scan(scan, geo: Georeferencer, filters: FilterConfig | None = None, *,  # type: ignore[no-untyped-def]
                 strict: bool = False) -> ProcessedScan:
    """Filter, georeference (deskewed per ``geo.cfg.deskew``) and voxelize one scan.
    Points without a pose are dropped and counted (``strict=True`` raises NoPoseError)."""
    from pipeline.kernels._filter import filter_points
    from pipeline.kernels.voxel import voxel_downsample

    filters = filters or FilterConfig()
    xyz = np.ascontiguousarray(scan.xyz)
    fr = filter_points(xyz, filters, geo.rotation, geo.translation)
    idx = np.flatnonzero(fr.keep)
    res = geo.process(_Subset(xyz[idx], scan.time[idx]), strict=strict)
    origin = geo.origin if geo.origin is not None else (0.0, 0.0, 0.0)
    ok = res.valid
    enu = res.enu(origin)[ok]
    intensity = np.asarray(scan.intensity, dtype=np.float32)[idx][ok]
    times = np.asarray(scan.time, dtype=np.float64)[idx][ok]
    removed = dict(fr.removed)
    no_pose = int((~ok).sum())
    if filters.voxel_m > 0 and len(enu):
        attrs = np.stack([intensity.astype(np.float64), times - times[0]], axis=1)
        cent, means, counts, _ = voxel_downsample(enu, filters.voxel_m, attrs)
        removed["voxel"] = len(enu) - len(cent)
        enu, intensity, times = cent, means[:, 0].astype(np.float32), means[:, 1] + times[0]
    else:
        counts = np.ones(len(enu), dtype=np.int64)
    ecef = enu_to_ecef(np.ascontiguousarray(enu), *origin) if len(enu) else np.zeros((0, 3))
    return ProcessedScan(enu, ecef, intensity, times, counts, origin, removed, no_pose)


@dataclass
class _Subset:
    """The fields :meth:`Georeferencer.process` reads, for a filtered subset of a scan."""

    xyz: np.ndarray
    time: np.ndarray
