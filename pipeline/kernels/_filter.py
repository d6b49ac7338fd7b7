"""Filters from configuration: invalid returns, range, crop box, the vehicle body, outliers."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pipeline.kernels._config import FilterConfig
from pipeline.kernels.crop import body_mask, box_mask, range_mask, valid_mask
from pipeline.kernels.outliers import statistical_outlier_mask


@dataclass
class FilterResult:
    """The keep-mask and how many points each stage removed (in order)."""

    keep: np.ndarray
    removed: dict[str, int] = field(default_factory=dict)


def filter_points(xyz: np.ndarray, cfg: FilterConfig, rotation: np.ndarray | None = None,
                  translation: np.ndarray | None = None) -> FilterResult:
    """Apply the filters of ``cfg`` to sensor-frame points ``(N, 3)``; ``rotation`` and
    ``translation`` (sensor → vehicle, default identity) place the boxes."""
    xyz = np.ascontiguousarray(xyz)
    rot = np.eye(3) if rotation is None else np.ascontiguousarray(rotation, dtype=np.float64)
    tr = np.zeros(3) if translation is None else np.ascontiguousarray(translation, dtype=np.float64)
    removed: dict[str, int] = {}
    keep = valid_mask(xyz, 1e-6)
    removed["invalid"] = int(len(keep) - keep.sum())

    def stage(name: str, mask: np.ndarray) -> None:
        nonlocal keep
        before = int(keep.sum())
        keep &= mask
        removed[name] = before - int(keep.sum())

    stage("range", range_mask(xyz, cfg.min_range_m, cfg.max_range_m))
    if cfg.crop_box is not None:  # vehicle-frame copy only for the crop (body_mask transforms per point)
        veh = np.ascontiguousarray(xyz.astype(np.float64) @ rot.T + tr)
        b = np.asarray(cfg.crop_box, dtype=np.float64)
        stage("crop", box_mask(veh, b[:3], b[3:], True))
    if cfg.body_box is not None:
        b = np.asarray(cfg.body_box, dtype=np.float64)
        stage("body", body_mask(xyz, rot, tr, b[:3], b[3:]))
    if cfg.outlier_enabled and keep.any():
        idx = np.flatnonzero(keep)
        inner = statistical_outlier_mask(xyz[idx], cfg.outlier_neighbors, cfg.outlier_std_ratio)
        mask = np.zeros(len(keep), dtype=bool)
        mask[idx[inner]] = True
        stage("outliers", mask)
    return FilterResult(keep, removed)
