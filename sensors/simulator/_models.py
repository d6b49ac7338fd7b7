"""Velodyne sensor models the simulator emits: laser tables, firing timing, packet constants.

Laser tables are Velodyne's published calibrations (the same numbers the ROS driver and
velodyne_decoder ship). ``rot_deg`` follows the ROS convention: the beam points at the
block's (time-interpolated) azimuth minus ``rot_deg``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RECORDS_PER_BLOCK = 32
BLOCKS_PER_PACKET = 12
DATA_PACKET_SIZE = 1206
POSITION_PACKET_SIZE = 512
BLOCK_FLAG = 0xEEFF  # bytes FF EE on the wire (little-endian uint16)
RETURN_STRONGEST = 0x37
DATA_PORT = 2368
POSITION_PORT = 8308


@dataclass(frozen=True)
class LidarModel:
    """One Velodyne model as the simulator needs it."""

    name: str
    product_id: int
    elevation_deg: tuple[float, ...]  # per laser id
    rot_deg: tuple[float, ...]  # per laser id (azimuth correction)
    distance_resolution_m: float
    block_us: float  # duration of one data block
    record_laser: tuple[int, ...]  # laser id of each of the 32 records of a block
    record_offset_us: tuple[float, ...]  # firing time of each record after the block start
    max_range_m: float
    z_offset_mm: tuple[float, ...] = ()  # per laser id: height of the beam's origin (0 if empty)
    min_range_m: float = 0.5

    @property
    def lasers(self) -> int:
        return len(self.elevation_deg)

    @property
    def packet_us(self) -> float:
        return self.block_us * BLOCKS_PER_PACKET

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(elevation rad, rot rad, laser id, firing offset s, beam origin z m) per record of a block."""
        laser = np.asarray(self.record_laser, dtype=np.int64)
        elev = np.radians(np.asarray(self.elevation_deg))[laser]
        rot = np.radians(np.asarray(self.rot_deg))[laser]
        offs = np.asarray(self.record_offset_us) * 1e-6
        z = np.asarray(self.z_offset_mm or (0.0,) * self.lasers) * 1e-3
        return elev, rot, laser, offs, z[laser]


# Beam origins sit above or below the sensor frame's origin: the VLP-16 manual's "vertical
# correction" table; for the VLP-32C and HDL-32E the values velodyne_decoder applies (the
# HDL-32E's follow -28.95 mm * tan(elevation)). Decoders add them to z.
_VLP16_Z = (11.2, -0.7, 9.7, -2.2, 8.1, -3.7, 6.6, -5.1, 5.1, -6.6, 3.7, -8.1, 2.2, -9.7, 0.7, -11.2)
_VLP32C_Z = (
    19.77,
    0.74,
    1.23,
    11.87,
    8.48,
    0.0,
    0.49,
    6.6,
    5.4,
    -0.25,
    0.25,
    4.57,
    3.96,
    -0.99,
    -0.49,
    2.96,
    3.46,
    -1.23,
    -0.74,
    2.72,
    2.47,
    -2.47,
    -1.73,
    1.98,
    2.22,
    -5.21,
    -3.46,
    1.73,
    1.48,
    -11.36,
    -7.73,
    0.99,
)
_VLP16_ELEV = (-15.0, 1.0, -13.0, 3.0, -11.0, 5.0, -9.0, 7.0, -7.0, 9.0, -5.0, 11.0, -3.0, 13.0, -1.0, 15.0)
_HDL32_ELEV = (
    -30.67,
    -9.33,
    -29.33,
    -8.0,
    -28.0,
    -6.67,
    -26.67,
    -5.33,
    -25.33,
    -4.0,
    -24.0,
    -2.67,
    -22.67,
    -1.33,
    -21.33,
    0.0,
    -20.0,
    1.33,
    -18.67,
    2.67,
    -17.33,
    4.0,
    -16.0,
    5.33,
    -14.67,
    6.67,
    -13.33,
    8.0,
    -12.0,
    9.33,
    -10.67,
    10.67,
)
_VLP32C_ELEV = (
    -25.0,
    -1.0,
    -1.667,
    -15.639,
    -11.31,
    0.0,
    -0.667,
    -8.843,
    -7.254,
    0.333,
    -0.333,
    -6.148,
    -5.333,
    1.333,
    0.667,
    -4.0,
    -4.667,
    1.667,
    1.0,
    -3.667,
    -3.333,
    3.333,
    2.333,
    -2.667,
    -3.0,
    7.0,
    4.667,
    -2.333,
    -2.0,
    15.0,
    10.333,
    -1.333,
)
_VLP32C_ROT = (
    -1.4,
    4.2,
    -1.4,
    1.4,
    -1.4,
    1.4,
    -4.2,
    1.4,
    -1.4,
    4.2,
    -1.4,
    1.4,
    -4.2,
    1.4,
    -4.2,
    1.4,
    -1.4,
    4.2,
    -1.4,
    4.2,
    -4.2,
    1.4,
    -1.4,
    1.4,
    -1.4,
    1.4,
    -1.4,
    4.2,
    -4.2,
    1.4,
    -1.4,
    1.4,
)

MODELS: dict[str, LidarModel] = {
    # Two firing sequences of 16 lasers per block, 2.304 µs apart, 55.296 µs per sequence.
    "vlp16": LidarModel(
        name="VLP-16",
        product_id=0x22,
        elevation_deg=_VLP16_ELEV,
        rot_deg=(0.0,) * 16,
        distance_resolution_m=0.002,
        block_us=110.592,
        record_laser=tuple(i % 16 for i in range(32)),
        record_offset_us=tuple((i // 16) * 55.296 + (i % 16) * 2.304 for i in range(32)),
        max_range_m=100.0,
        z_offset_mm=_VLP16_Z,
    ),
    # Lasers fire in pairs every 2.304 µs, one sequence (55.296 µs) per block.
    "vlp32c": LidarModel(
        name="VLP-32C",
        product_id=0x28,
        elevation_deg=_VLP32C_ELEV,
        rot_deg=_VLP32C_ROT,
        distance_resolution_m=0.004,
        block_us=55.296,
        record_laser=tuple(range(32)),
        record_offset_us=tuple((i // 2) * 2.304 for i in range(32)),
        max_range_m=200.0,
        z_offset_mm=_VLP32C_Z,
    ),
    # One laser every 1.152 µs, 46.08 µs per block.
    "hdl32e": LidarModel(
        name="HDL-32E",
        product_id=0x21,
        elevation_deg=_HDL32_ELEV,
        rot_deg=(0.0,) * 32,
        distance_resolution_m=0.002,
        block_us=46.08,
        record_laser=tuple(range(32)),
        record_offset_us=tuple(i * 1.152 for i in range(32)),
        max_range_m=100.0,
        z_offset_mm=tuple(-28.95 * float(np.tan(np.radians(e))) for e in _HDL32_ELEV),
    ),
}


def get_model(name: str) -> LidarModel:
    """The model for ``vlp16``, ``vlp32c`` or ``hdl32e`` (case and dashes ignored)."""
    key = name.lower().replace("-", "").replace("_", "")
    try:
        return MODELS[key]
    except KeyError:
        from sensors.errors import SensorError

        raise SensorError(f"unknown simulated LiDAR {name!r}; choose one of {', '.join(MODELS)}") from None
