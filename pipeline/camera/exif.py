"""GPS position and time as EXIF, so keyframes place themselves in mapping tools (JOSM,
Mapillary, QGIS's geotagged photos, exiftool).

Written with ``piexif`` (APP1 segment): 0th IFD Make/Model/Software/DateTime/ImageDescription,
Exif IFD DateTimeOriginal + SubSecTimeOriginal + OffsetTimeOriginal ("+00:00": the agent's
clocks are UTC), GPS IFD version 2.3 with latitude/longitude as degrees, minutes and seconds
(seconds to 1e-4 arc-second, about 3 mm), altitude above mean sea level to the millimetre with
its sign in GPSAltitudeRef, GPSTimeStamp to the millisecond and GPSDateStamp (UTC), course as
GPSTrack and GPSImgDirection (course plus the camera's yaw on the vehicle), speed in km/h,
HDOP as GPSDOP, datum WGS-84. Unknown values (NaN) are left out rather than written as zero.
"""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime
from typing import Any

from pipeline.camera.keyframes import Position
from pipeline.errors import CameraProcessingError

_AS_UNITS = 10_000  # seconds of arc in 1e-4 units


def _piexif() -> Any:
    try:
        import piexif
    except ImportError:
        raise CameraProcessingError("piexif is not installed: pip install piexif") from None
    return piexif


def to_dms(value_deg: float) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """|value| as EXIF rationals (degrees, minutes, seconds to 1e-4 arc-second), rounding
    carried so seconds never read 60."""
    total = round(abs(value_deg) * 3600 * _AS_UNITS)
    deg, rem = divmod(total, 3600 * _AS_UNITS)
    minutes, sec = divmod(rem, 60 * _AS_UNITS)
    return (deg, 1), (minutes, 1), (sec, _AS_UNITS)


def from_dms(dms: Any, ref: str | bytes) -> float:
    """Degrees from EXIF (degrees, minutes, seconds) rationals or floats and their N/S/E/W ref."""

    def f(v: Any) -> float:
        return v[0] / v[1] if isinstance(v, tuple) else float(v)

    d = f(dms[0]) + f(dms[1]) / 60 + f(dms[2]) / 3600
    r = ref.decode() if isinstance(ref, bytes) else ref
    return -d if r.strip("\x00") in ("S", "W") else d


def _rational(value: float, denominator: int) -> tuple[int, int]:
    return round(value * denominator), denominator


def build_exif(
    position: Position,
    *,
    utc_ns: int | None = None,
    make: str = "edge-agent",
    model: str = "",
    description: str = "",
    camera_yaw_deg: float = 0.0,
) -> bytes:
    """EXIF bytes (``b"Exif\\0\\0"`` + TIFF) for a photo taken at ``position``, at ``utc_ns``
    (default: the position's time). ``camera_yaw_deg`` is the camera's heading on the vehicle
    (0 forward, 90 right, 180 back), added to the course for GPSImgDirection."""
    piexif = _piexif()
    if math.isnan(position.lat_deg) or math.isnan(position.lon_deg):
        raise CameraProcessingError("no position to write into EXIF")
    t_ns = position.utc_ns if utc_ns is None else utc_ns
    dt = datetime.fromtimestamp(t_ns // 1_000_000_000, tz=UTC)
    ms = (t_ns % 1_000_000_000) // 1_000_000
    stamp = dt.strftime("%Y:%m:%d %H:%M:%S")
    g = piexif.GPSIFD
    gps: dict[int, Any] = {
        g.GPSVersionID: (2, 3, 0, 0),
        g.GPSLatitudeRef: b"N" if position.lat_deg >= 0 else b"S",
        g.GPSLatitude: to_dms(position.lat_deg),
        g.GPSLongitudeRef: b"E" if position.lon_deg >= 0 else b"W",
        g.GPSLongitude: to_dms(position.lon_deg),
        g.GPSTimeStamp: ((dt.hour, 1), (dt.minute, 1), (dt.second * 1000 + ms, 1000)),
        g.GPSDateStamp: dt.strftime("%Y:%m:%d").encode(),
        g.GPSMapDatum: b"WGS-84",
        g.GPSMeasureMode: b"2" if math.isnan(position.alt_m) else b"3",
    }
    if not math.isnan(position.alt_m):
        gps[g.GPSAltitudeRef] = 0 if position.alt_m >= 0 else 1
        gps[g.GPSAltitude] = _rational(abs(position.alt_m), 1000)
    if not math.isnan(position.course_deg):
        gps[g.GPSTrackRef] = b"T"
        gps[g.GPSTrack] = _rational(position.course_deg % 360.0, 100)
        gps[g.GPSImgDirectionRef] = b"T"
        gps[g.GPSImgDirection] = _rational((position.course_deg + camera_yaw_deg) % 360.0, 100)
    if not math.isnan(position.speed_mps):
        gps[g.GPSSpeedRef] = b"K"
        gps[g.GPSSpeed] = _rational(max(0.0, position.speed_mps) * 3.6, 100)
    if not math.isnan(position.hdop):
        gps[g.GPSDOP] = _rational(position.hdop, 100)
    zeroth: dict[int, Any] = {
        piexif.ImageIFD.Make: make.encode(),
        piexif.ImageIFD.Software: b"edge-agent",
        piexif.ImageIFD.DateTime: stamp.encode(),
    }
    if model:
        zeroth[piexif.ImageIFD.Model] = model.encode()
    if description:
        zeroth[piexif.ImageIFD.ImageDescription] = description.encode()
    exif = {
        piexif.ExifIFD.DateTimeOriginal: stamp.encode(),
        piexif.ExifIFD.SubSecTimeOriginal: f"{ms:03d}".encode(),
        piexif.ExifIFD.OffsetTimeOriginal: b"+00:00",
    }
    try:
        return bytes(piexif.dump({"0th": zeroth, "Exif": exif, "GPS": gps, "1st": {}, "thumbnail": None}))
    except (ValueError, TypeError, KeyError) as exc:
        raise CameraProcessingError(f"cannot build EXIF: {exc}") from exc


def insert_exif(jpeg: bytes, exif: bytes) -> bytes:
    """``jpeg`` with its EXIF APP1 segment replaced by (or given) ``exif``."""
    piexif = _piexif()
    # piexif takes anything that is not JPEG/WebP bytes for a file name: check here
    if not isinstance(jpeg, bytes | bytearray) or jpeg[:3] != b"\xff\xd8\xff":
        raise CameraProcessingError("cannot insert EXIF: not JPEG bytes")
    out = io.BytesIO()
    try:
        piexif.insert(exif, jpeg, out)
    except (ValueError, piexif.InvalidImageDataError) as exc:
        raise CameraProcessingError(f"cannot insert EXIF: {exc}") from exc
    return out.getvalue()
