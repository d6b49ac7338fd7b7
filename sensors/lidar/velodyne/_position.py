"""Velodyne position packets (UDP 8308, 512 bytes): the GNSS time sync the sensor forwards.

Layout (VLP-16 / VLP-32C / HDL-32E / VLS-128 manuals, "Position packet"): bytes 0-197
unused (HDL-32E: gyro/temperature/accel at 14-37, ignored here), 198-201 the sensor's
timestamp in microseconds past the hour (uint32 LE), 202 the PPS status (0 absent,
1 synchronizing, 2 locked, 3 error), 203-205 reserved/thermal status, 206-277 the last NMEA
sentence (``$GPRMC`` or ``$GPGGA``, ASCII, NUL-padded), the rest unused. Old HDL-32E
firmware has no PPS byte; it is reported as it is.
"""

from __future__ import annotations

from dataclasses import dataclass

POSITION_PACKET_SIZE = 512
_TS_OFFSET = 198
_PPS_OFFSET = 202
_NMEA_OFFSET = 206
_NMEA_END = 206 + 128  # generous: some firmware writes longer sentences

PPS_STATUS = {0: "absent", 1: "synchronizing", 2: "locked", 3: "error"}


@dataclass(frozen=True)
class PositionInfo:
    """What one position packet says.

    ``timestamp`` is the packet's receive/capture time (seconds since the epoch, when the
    caller knows it, else 0.0); ``device_us_past_hour`` is the sensor's own clock.
    ``nmea`` is the sentence as sent (without CR/LF), empty when the sensor has none.
    """

    device_us_past_hour: int
    pps_status: int
    nmea: str
    timestamp: float = 0.0

    @property
    def pps(self) -> str:
        """PPS status as a word: absent, synchronizing, locked, error (or unknown)."""
        return PPS_STATUS.get(self.pps_status, "unknown")

    @property
    def device_seconds_past_hour(self) -> float:
        return self.device_us_past_hour * 1e-6


def parse_position_packet(data: bytes, timestamp: float = 0.0) -> PositionInfo | None:
    """Parse a 512-byte position packet; ``None`` when it is not one (wrong size, or a
    timestamp beyond an hour, or a sentence that is not printable ASCII starting with ``$``)."""
    if len(data) != POSITION_PACKET_SIZE:
        return None
    us = int.from_bytes(data[_TS_OFFSET:_TS_OFFSET + 4], "little")
    if us >= 3_600_000_000:
        return None
    pps = data[_PPS_OFFSET]
    raw = bytes(data[_NMEA_OFFSET:_NMEA_END])
    raw = raw.split(b"\x00", 1)[0].rstrip(b"\r\n ")
    if raw:
        # one sentence: the first line, printable ASCII starting with '$'
        raw = raw.split(b"\r", 1)[0].split(b"\n", 1)[0]
        if not raw.startswith(b"$") or not raw.isascii():
            return None
        text = raw.decode("ascii")
        if not text.isprintable():
            return None
        return PositionInfo(us, pps, text, timestamp)
    return PositionInfo(us, pps, "", timestamp)
