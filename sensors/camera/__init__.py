"""Camera input through OpenCV: V4L2 devices, video files, RTSP, GStreamer pipelines and
image folders, with per-frame timestamps, rate limiting, JPEG encoding and reconnection.

Sources sit behind :class:`CameraSource` in :data:`CAMERA_SOURCES`;
:func:`open_camera_source` picks one from the spec, :func:`camera_source_from_config` from a
:class:`CameraSourceConfig`.
"""

from __future__ import annotations

from typing import Any

from sensors.camera._config import CameraSourceConfig
from sensors.camera._sources import (
    CAMERA_SOURCES,
    Backoff,
    CameraSource,
    CameraStats,
    ImageFolderSource,
    OpenCvCaptureSource,
    RawFrame,
    camera_source_kind,
    encode_jpeg,
    gstreamer_available,
    jetson_csi_pipeline,
    open_camera_source,
    timestamp_from_name,
    validate_gstreamer_pipeline,
)


def camera_source_from_config(cfg: CameraSourceConfig, **kwargs: Any) -> CameraSource:
    """Build the source a :class:`CameraSourceConfig` describes (STYLE.md habit 2)."""
    kind = camera_source_kind(cfg.source)
    kw: dict[str, Any] = {"camera_id": cfg.camera_id, "max_fps": cfg.max_fps, "jpeg_quality": cfg.jpeg_quality}
    if kind != "folder":
        kw["reconnect"] = cfg.reconnect
        kw["backoff"] = Backoff(cfg.backoff_initial_s, 2.0, cfg.backoff_max_s, cfg.backoff_max_attempts)
    kw.update(kwargs)
    return CAMERA_SOURCES[kind](cfg.source, **kw)


__all__ = [
    "CAMERA_SOURCES",
    "Backoff",
    "CameraSource",
    "CameraSourceConfig",
    "CameraStats",
    "ImageFolderSource",
    "OpenCvCaptureSource",
    "RawFrame",
    "camera_source_from_config",
    "camera_source_kind",
    "encode_jpeg",
    "gstreamer_available",
    "jetson_csi_pipeline",
    "open_camera_source",
    "timestamp_from_name",
    "validate_gstreamer_pipeline",
]
