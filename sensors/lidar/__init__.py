"""LiDAR decoders: Velodyne (VLP-16, VLP-32C, HDL-32E, VLS-128, HDL-64E) and Ouster.

Decoders sit behind :class:`LidarDecoder` in :data:`LIDAR_DECODERS`; :func:`make_decoder`
picks one (Ouster when sensor metadata is given, Velodyne otherwise).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sensors.lidar._scan import (
    POINT_FIELDS,
    RETURN_LAST,
    RETURN_SECOND,
    RETURN_STRONGEST,
    DecoderStats,
    LidarDecoder,
    Scan,
)


def _velodyne(**kwargs: Any) -> LidarDecoder:
    from sensors.lidar.velodyne import VelodyneDecoder

    return VelodyneDecoder(**kwargs)


def _ouster(**kwargs: Any) -> LidarDecoder:
    from sensors.lidar.ouster import OusterDecoder

    return OusterDecoder(**kwargs)


LIDAR_DECODERS: dict[str, Callable[..., LidarDecoder]] = {"velodyne": _velodyne, "ouster": _ouster}


def make_decoder(sensor: str | None = None, meta: str | None = None, **kwargs: Any) -> LidarDecoder:
    """A decoder for ``sensor`` (``velodyne`` or ``ouster``); with ``meta`` it is Ouster."""
    if sensor is None:
        sensor = "ouster" if meta else "velodyne"
    if sensor == "ouster":
        kwargs["meta"] = meta
    return LIDAR_DECODERS[sensor](**kwargs)


__all__ = [
    "LIDAR_DECODERS",
    "POINT_FIELDS",
    "RETURN_LAST",
    "RETURN_SECOND",
    "RETURN_STRONGEST",
    "DecoderStats",
    "LidarDecoder",
    "Scan",
    "make_decoder",
]
