"""NMEA 0183 sentences for simulated fixes: GGA and RMC with valid checksums."""

from __future__ import annotations

import math
from datetime import datetime, timezone

KNOTS_PER_MPS = 1.0 / 0.514444


def checksum(body: str) -> str:
    """XOR of the characters between ``$`` and ``*`` as two hex digits."""
    c = 0
    for ch in body.encode("ascii"):
        c ^= ch
    return f"{c:02X}"


def sentence(body: str) -> str:
    """``$body*CS`` (no line ending)."""
    return f"${body}*{checksum(body)}"


def _lat(lat: float) -> tuple[str, str]:
    a = abs(lat)
    d = int(a)
    m = (a - d) * 60.0
    if round(m, 6) >= 60.0:
        d, m = d + 1, 0.0
    return f"{d:02d}{m:09.6f}", "N" if lat >= 0 else "S"


def _lon(lon: float) -> tuple[str, str]:
    a = abs(lon)
    d = int(a)
    m = (a - d) * 60.0
    if round(m, 6) >= 60.0:
        d, m = d + 1, 0.0
    return f"{d:03d}{m:09.6f}", "E" if lon >= 0 else "W"


def _hms(t: float) -> str:
    dt = datetime.fromtimestamp(round(t, 2), tz=timezone.utc)
    return f"{dt:%H%M%S}.{dt.microsecond // 10000:02d}"


def gga(
    t: float,
    lat: float,
    lon: float,
    alt_msl: float,
    geoid_sep: float,
    quality: int = 4,
    sats: int = 14,
    hdop: float = 0.7,
    talker: str = "GN",
) -> str:
    """A GGA sentence (fix data) at UTC ``t`` (seconds since the epoch)."""
    la, ns = _lat(lat)
    lo, ew = _lon(lon)
    body = (
        f"{talker}GGA,{_hms(t)},{la},{ns},{lo},{ew},{quality},{sats:02d},{hdop:.1f},"
        f"{alt_msl:.3f},M,{geoid_sep:.1f},M,,"
    )
    return sentence(body)


def rmc(
    t: float, lat: float, lon: float, speed_mps: float, course_deg: float, talker: str = "GN", mode: str = "D"
) -> str:
    """An RMC sentence (recommended minimum) at UTC ``t`` with speed and true course."""
    la, ns = _lat(lat)
    lo, ew = _lon(lon)
    dt = datetime.fromtimestamp(round(t, 2), tz=timezone.utc)
    course = math.fmod(course_deg + 360.0, 360.0)
    body = (
        f"{talker}RMC,{_hms(t)},A,{la},{ns},{lo},{ew},{speed_mps * KNOTS_PER_MPS:.3f},"
        f"{course:.2f},{dt:%d%m%y},,,{mode}"
    )
    return sentence(body)
