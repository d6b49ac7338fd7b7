"""Ouster UDP packet layouts (firmware user manual, "Sensor Data"; same tables as ouster-sdk).

A lidar packet is ``packet header + columns_per_packet * column + packet footer``; a column is
``column header + pixels_per_column * channel block + column footer``:

============  ==============  ==============  =============  ===============
profile       packet header   column header   column footer  packet footer
============  ==============  ==============  =============  ===============
LEGACY        0               16              4 (status)     0
all others    32              12              0              32 (CRC64 last)
============  ==============  ==============  =============  ===============

Non-legacy packet header: packet_type u16 @0 (1 = lidar), frame_id u16 @2, init_id u24 @4,
prod_sn u40 @7. Column header: timestamp u64 ns @0, measurement_id u16 @8, status u16 @10
(bit 0 = valid). LEGACY column: timestamp u64 @0, measurement_id u16 @8, frame_id u16 @10,
encoder u32 @12, status u32 at the column's end (bit 0 = valid; sensors send 0xFFFFFFFF). All
little-endian.

Each channel field is described as ``(byte offset, bytes, mask, right shift, left shift)``:
``value = ((le_read(offset, bytes) & mask) >> right) << left``; low-bandwidth profiles store
range in units of 8 mm, so their left shift of 3 gives millimetres, as ouster-sdk does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Channel fields, in the order of the decoder's field planes.
RANGE, REFLECTIVITY, SIGNAL, NEAR_IR, RANGE2, REFLECTIVITY2, SIGNAL2 = range(7)
FIELD_NAMES = ("range", "reflectivity", "signal", "nir", "range2", "reflectivity2", "signal2")
N_FIELDS = len(FIELD_NAMES)

PACKET_TYPE_LIDAR = 1

_Field = tuple[int, int, int, int, int]


@dataclass(frozen=True)
class LidarProfile:
    """One ``udp_profile_lidar``: sizes and where each channel field sits in a pixel."""

    name: str
    channel_bytes: int
    fields: dict[int, _Field]
    legacy: bool = False

    @property
    def dual(self) -> bool:
        return RANGE2 in self.fields

    @property
    def packet_header_bytes(self) -> int:
        return 0 if self.legacy else 32

    @property
    def column_header_bytes(self) -> int:
        return 16 if self.legacy else 12

    @property
    def column_footer_bytes(self) -> int:
        return 4 if self.legacy else 0

    @property
    def packet_footer_bytes(self) -> int:
        return 0 if self.legacy else 32

    def column_bytes(self, pixels_per_column: int) -> int:
        return self.column_header_bytes + pixels_per_column * self.channel_bytes + self.column_footer_bytes

    def packet_bytes(self, pixels_per_column: int, columns_per_packet: int) -> int:
        return (self.packet_header_bytes + columns_per_packet * self.column_bytes(pixels_per_column)
                + self.packet_footer_bytes)

    def field_table(self) -> np.ndarray:
        """(N_FIELDS, 5) int64 for the kernels; absent fields have offset -1."""
        table = np.full((N_FIELDS, 5), -1, dtype=np.int64)
        for k, spec in self.fields.items():
            table[k] = spec
        return table

    def present(self) -> list[int]:
        return sorted(self.fields)


_M19 = 0x7FFFF
LIDAR_PROFILES: dict[str, LidarProfile] = {
    p.name: p
    for p in (
        LidarProfile("LEGACY", 12, {
            RANGE: (0, 4, 0xFFFFF, 0, 0),
            REFLECTIVITY: (4, 2, 0xFFFF, 0, 0),
            SIGNAL: (6, 2, 0xFFFF, 0, 0),
            NEAR_IR: (8, 2, 0xFFFF, 0, 0),
        }, legacy=True),
        LidarProfile("RNG19_RFL8_SIG16_NIR16", 12, {
            RANGE: (0, 4, _M19, 0, 0),
            REFLECTIVITY: (4, 1, 0xFF, 0, 0),
            SIGNAL: (6, 2, 0xFFFF, 0, 0),
            NEAR_IR: (8, 2, 0xFFFF, 0, 0),
        }),
        LidarProfile("RNG19_RFL8_SIG16_NIR16_DUAL", 16, {
            RANGE: (0, 4, _M19, 0, 0),
            REFLECTIVITY: (3, 1, 0xFF, 0, 0),
            RANGE2: (4, 4, _M19, 0, 0),
            REFLECTIVITY2: (7, 1, 0xFF, 0, 0),
            SIGNAL: (8, 2, 0xFFFF, 0, 0),
            SIGNAL2: (10, 2, 0xFFFF, 0, 0),
            NEAR_IR: (12, 2, 0xFFFF, 0, 0),
        }),
        LidarProfile("RNG15_RFL8_NIR8", 4, {
            RANGE: (0, 2, 0x7FFF, 0, 3),
            REFLECTIVITY: (2, 1, 0xFF, 0, 0),
            NEAR_IR: (3, 1, 0xFF, 0, 4),
        }),
        LidarProfile("RNG15_RFL8_NIR8_DUAL", 8, {
            RANGE: (0, 2, 0x7FFF, 0, 3),
            REFLECTIVITY: (2, 1, 0xFF, 0, 0),
            NEAR_IR: (3, 1, 0xFF, 0, 4),
            RANGE2: (4, 2, 0x7FFF, 0, 3),
            REFLECTIVITY2: (6, 1, 0xFF, 0, 0),
        }),
        LidarProfile("FIVE_WORD_PIXEL", 20, {
            RANGE: (0, 4, _M19, 0, 0),
            REFLECTIVITY: (3, 1, 0xFF, 0, 0),
            RANGE2: (4, 4, _M19, 0, 0),
            REFLECTIVITY2: (7, 1, 0xFF, 0, 0),
            SIGNAL: (8, 2, 0xFFFF, 0, 0),
            SIGNAL2: (10, 2, 0xFFFF, 0, 0),
            NEAR_IR: (12, 2, 0xFFFF, 0, 0),
        }),
    )
}

IMU_PACKET_BYTES = 48
# ACCEL32_GYRO32_NMEA packets are recognised in metadata but not decoded (counted as other).
IMU_PROFILES = ("LEGACY", "ACCEL32_GYRO32_NMEA")
