"""The decoded scan and the protocol every LiDAR decoder implements."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from sensors.packets import Packet

# Return types (bit flags so a dual-return pair can say which it is).
RETURN_STRONGEST = 1
RETURN_LAST = 2
RETURN_SECOND = 4  # Ouster second return / Velodyne dual "other"

POINT_FIELDS = ("x", "y", "z", "intensity", "ring", "azimuth", "time", "return_type")


@dataclass
class Scan:
    """One full rotation (Velodyne: cut at the configured azimuth; Ouster: one frame id).

    Per-point arrays all have the same length. Sensor frame: x forward, y left, z up,
    metres. ``time`` is absolute (seconds since the epoch, packet time plus the model's
    firing offset); ``time - t_start`` is the per-point offset used for deskewing.
    """

    index: int
    x: np.ndarray  # float32
    y: np.ndarray  # float32
    z: np.ndarray  # float32
    intensity: np.ndarray  # float32 (Velodyne 0-255 reflectivity, Ouster reflectivity/signal)
    ring: np.ndarray  # uint16, 0 = lowest beam
    azimuth: np.ndarray  # float32 degrees, 0-360, the sensor's encoder angle
    time: np.ndarray  # float64 seconds
    return_type: np.ndarray  # uint8 flags (RETURN_*)
    t_start: float
    t_end: float
    sensor: str = ""
    model: str = ""
    packets: int = 0
    extras: dict[str, np.ndarray] = field(default_factory=dict)  # e.g. Ouster range image

    def __len__(self) -> int:
        return len(self.x)

    @property
    def xyz(self) -> np.ndarray:
        return np.stack([self.x, self.y, self.z], axis=1)

    def columns(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in POINT_FIELDS}


@dataclass
class DecoderStats:
    packets: int = 0  # data packets accepted
    bad_packets: int = 0  # wrong size, bad header, unknown model, out-of-range fields
    other_packets: int = 0  # position/IMU/telemetry packets
    scans: int = 0
    reasons: dict[str, int] = field(default_factory=dict)

    def bad(self, reason: str, n: int = 1) -> None:
        self.bad_packets += n
        self.reasons[reason] = self.reasons.get(reason, 0) + n


class LidarDecoder(Protocol):
    """Turns packets into scans. ``feed`` may be called many times (streaming); ``flush``
    returns the last, possibly partial, scan."""

    sensor: str
    model: str
    stats: DecoderStats

    def feed(self, packets: Iterable[Packet]) -> Iterator[Scan]: ...

    def flush(self) -> Iterator[Scan]: ...
