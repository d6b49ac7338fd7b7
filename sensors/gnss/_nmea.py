"""NMEA 0183 parser: one line in, one typed record out (or :class:`NmeaError` with a reason).

Sentences: GGA, RMC, GSA, GST, VTG, GSV, GNS, ZDA, GLL and TXT from the talkers GP (GPS),
GN (multi-constellation), GL (GLONASS), GA (Galileo), GB and BD (BeiDou). Proprietary sentences
(``$P`` + a three-letter maker code, e.g. ``$PGRME``, ``$PUBX``) are passed through as
:class:`Proprietary` with their fields unparsed. The checksum is verified; a sentence without
one is rejected unless ``require_checksum=False``.

The parser is pure (no I/O); :func:`try_parse` never raises for ``str``/``bytes`` input.
"""

from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass
from typing import Union

from agent.bus.messages import FixType
from sensors.errors import NmeaError

TALKERS = frozenset({"GP", "GN", "GL", "GA", "GB", "BD"})
MAX_LINE = 512  # NMEA says 82 characters; high-precision receivers exceed it, junk exceeds this

_NUM = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)\Z")
_INT = re.compile(r"[+-]?\d+\Z")
_HEX2 = re.compile(r"[0-9A-Fa-f]{2}\Z")

# GNS / RMC / GLL / VTG mode indicator → fix type (best first when several constellations)
MODE_FIX = {
    "N": FixType.NO_FIX, "A": FixType.GPS, "D": FixType.DGPS, "P": FixType.PPS,
    "R": FixType.RTK_FIXED, "F": FixType.RTK_FLOAT, "E": FixType.ESTIMATED,
    "M": FixType.MANUAL, "S": FixType.SIMULATED,
}
# how good a fix is, to pick the best of several GNS mode characters
FIX_RANK = {FixType.NO_FIX: 0, FixType.SIMULATED: 1, FixType.MANUAL: 1, FixType.ESTIMATED: 2,
            FixType.GPS: 3, FixType.DGPS: 4, FixType.PPS: 5, FixType.RTK_FLOAT: 6, FixType.RTK_FIXED: 7}
KNOT_MPS = 1852.0 / 3600.0


# ---- field helpers ----------------------------------------------------------------------

def _float(v: str, name: str, s: str) -> float | None:
    if v == "":
        return None
    if not _NUM.match(v):
        raise NmeaError(f"bad {name} {v[:20]!r}", s)
    return float(v)


def _int(v: str, name: str, s: str) -> int | None:
    if v == "":
        return None
    if not _INT.match(v):
        # some receivers write integers with a fraction ("08.0"); accept exact ones
        if _NUM.match(v) and float(v).is_integer():
            return int(float(v))
        raise NmeaError(f"bad {name} {v[:20]!r}", s)
    return int(v)


def _tod(v: str, s: str) -> int | None:
    """hhmmss[.sss] → nanoseconds since midnight."""
    if v == "":
        return None
    if len(v) < 6 or not v[:6].isdigit() or not _NUM.match(v):
        raise NmeaError(f"bad UTC time {v[:20]!r}", s)
    hh, mm = int(v[0:2]), int(v[2:4])
    sec = float(v[4:])
    if hh > 23 or mm > 59 or sec >= 61.0:
        raise NmeaError(f"UTC time out of range {v!r}", s)
    return (hh * 3600 + mm * 60) * 1_000_000_000 + round(sec * 1e9)


def _latlon(v: str, hemi: str, is_lat: bool, s: str) -> float | None:
    name = "latitude" if is_lat else "longitude"
    if v == "" and hemi == "":
        return None
    if v == "" or hemi == "":
        raise NmeaError(f"{name} without {'value' if v == '' else 'hemisphere'}", s)
    deg_digits = 2 if is_lat else 3
    if not _NUM.match(v) or v[0] in "+-" or "." in v[:deg_digits] or len(v.split(".")[0]) != deg_digits + 2:
        raise NmeaError(f"bad {name} {v[:20]!r}", s)
    deg = int(v[:deg_digits])
    minutes = float(v[deg_digits:])
    if minutes >= 60.0:
        raise NmeaError(f"{name} minutes {minutes} out of range", s)
    value = deg + minutes / 60.0
    if value > (90.0 if is_lat else 180.0):
        raise NmeaError(f"{name} {value:.6f} out of range", s)
    good = "NS" if is_lat else "EW"
    if hemi not in good:
        raise NmeaError(f"bad {name} hemisphere {hemi[:5]!r}", s)
    return -value if hemi in "SW" else value


def _date(v: str, s: str) -> _dt.date | None:
    if v == "":
        return None
    if len(v) != 6 or not v.isdigit():
        raise NmeaError(f"bad date {v[:20]!r}", s)
    dd, mm, yy = int(v[0:2]), int(v[2:4]), int(v[4:6])
    try:
        return _dt.date(1900 + yy if yy >= 80 else 2000 + yy, mm, dd)
    except ValueError:
        raise NmeaError(f"date out of range {v!r}", s) from None


def _need(fields: list[str], n: int, s: str, kind: str) -> None:
    if len(fields) < n:
        raise NmeaError(f"{kind} needs at least {n} fields, has {len(fields)}", s)


def _mode(v: str, s: str) -> str | None:
    if v == "":
        return None
    if v not in MODE_FIX:
        raise NmeaError(f"bad mode indicator {v[:5]!r}", s)
    return v


# ---- records --------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Gga:
    """Fix data: position, quality, satellites, HDOP, altitude."""

    talker: str
    tod_ns: int | None  # UTC time of day, ns since midnight
    lat: float | None
    lon: float | None
    quality: int  # 0..8, see FixType
    num_sats: int | None
    hdop: float | None
    alt_m: float | None
    geoid_sep_m: float | None
    dgps_age_s: float | None
    dgps_station: str
    raw: str

    @property
    def fix_type(self) -> FixType:
        return FixType(self.quality)


@dataclass(frozen=True, slots=True)
class Rmc:
    """Recommended minimum: position, speed, course, date, validity."""

    talker: str
    tod_ns: int | None
    valid: bool  # status A (valid) or V (warning)
    lat: float | None
    lon: float | None
    speed_knots: float | None
    course_deg: float | None
    date: _dt.date | None
    mag_var_deg: float | None
    mode: str | None  # NMEA 2.3 mode indicator
    raw: str

    @property
    def fix_type(self) -> FixType:
        if self.mode is not None:
            return MODE_FIX[self.mode] if self.valid else FixType.NO_FIX
        return FixType.GPS if self.valid else FixType.NO_FIX


@dataclass(frozen=True, slots=True)
class Gsa:
    """DOP and active satellites."""

    talker: str
    selection: str  # A automatic, M manual
    fix_mode: int  # 1 no fix, 2 2D, 3 3D
    prns: tuple[int, ...]
    pdop: float | None
    hdop: float | None
    vdop: float | None
    system_id: int | None  # NMEA 4.1
    raw: str


@dataclass(frozen=True, slots=True)
class Gst:
    """Pseudorange error statistics (position standard deviations)."""

    talker: str
    tod_ns: int | None
    rms: float | None
    major_m: float | None
    minor_m: float | None
    orient_deg: float | None
    lat_std_m: float | None
    lon_std_m: float | None
    alt_std_m: float | None
    raw: str


@dataclass(frozen=True, slots=True)
class Vtg:
    """Course and speed over ground."""

    talker: str
    course_true_deg: float | None
    course_mag_deg: float | None
    speed_knots: float | None
    speed_kmh: float | None
    mode: str | None
    raw: str


@dataclass(frozen=True, slots=True)
class SatInView:
    prn: int
    elevation_deg: int | None
    azimuth_deg: int | None
    snr_db: int | None


@dataclass(frozen=True, slots=True)
class Gsv:
    """Satellites in view (one of ``num_msgs`` messages)."""

    talker: str
    num_msgs: int
    msg_num: int
    sats_in_view: int
    sats: tuple[SatInView, ...]
    signal_id: str | None  # NMEA 4.1
    raw: str


@dataclass(frozen=True, slots=True)
class Gns:
    """Multi-constellation fix data with one mode character per constellation."""

    talker: str
    tod_ns: int | None
    lat: float | None
    lon: float | None
    mode: str  # e.g. "AAN", "RR", "FN"
    num_sats: int | None
    hdop: float | None
    alt_m: float | None
    geoid_sep_m: float | None
    dgps_age_s: float | None
    dgps_station: str
    nav_status: str | None
    raw: str

    @property
    def fix_type(self) -> FixType:
        best = FixType.NO_FIX
        for ch in self.mode:
            ft = MODE_FIX[ch]
            if FIX_RANK[ft] > FIX_RANK[best]:
                best = ft
        return best


@dataclass(frozen=True, slots=True)
class Zda:
    """UTC date and time."""

    talker: str
    tod_ns: int | None
    date: _dt.date | None
    tz_hours: int | None
    tz_minutes: int | None
    raw: str


@dataclass(frozen=True, slots=True)
class Gll:
    """Geographic position, latitude/longitude."""

    talker: str
    lat: float | None
    lon: float | None
    tod_ns: int | None
    valid: bool
    mode: str | None
    raw: str


@dataclass(frozen=True, slots=True)
class Txt:
    """Text transmission (receiver messages)."""

    talker: str
    total: int | None
    number: int | None
    ident: int | None
    text: str
    raw: str


@dataclass(frozen=True, slots=True)
class Proprietary:
    """A ``$P...`` sentence, passed through: maker code and raw fields."""

    manufacturer: str  # e.g. "GRM", "UBX"
    sentence_id: str  # rest of the address field, e.g. "E" for $PGRME ("" for $PUBX)
    fields: tuple[str, ...]
    raw: str


NmeaRecord = Union[Gga, Rmc, Gsa, Gst, Vtg, Gsv, Gns, Zda, Gll, Txt, Proprietary]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line that is not a sentence this parser accepts, with the reason."""

    raw: str
    reason: str


# ---- sentence parsers -----------------------------------------------------------------------

def _gga(t: str, f: list[str], s: str) -> Gga:
    _need(f, 14, s, "GGA")
    q = _int(f[5], "fix quality", s)
    if q is None:
        q = 0
    if not 0 <= q <= 8:
        raise NmeaError(f"GGA fix quality {q} out of range 0..8", s)
    return Gga(t, _tod(f[0], s), _latlon(f[1], f[2], True, s), _latlon(f[3], f[4], False, s), q,
               _int(f[6], "satellite count", s), _float(f[7], "HDOP", s), _float(f[8], "altitude", s),
               _float(f[10], "geoid separation", s), _float(f[12], "DGPS age", s), f[13], s)


def _rmc(t: str, f: list[str], s: str) -> Rmc:
    _need(f, 11, s, "RMC")
    if f[1] not in ("A", "V"):
        raise NmeaError(f"bad RMC status {f[1][:5]!r}", s)
    var = _float(f[9], "magnetic variation", s)
    if var is not None and len(f) > 10 and f[10] == "W":
        var = -var
    mode = _mode(f[11], s) if len(f) > 11 else None
    return Rmc(t, _tod(f[0], s), f[1] == "A", _latlon(f[2], f[3], True, s), _latlon(f[4], f[5], False, s),
               _float(f[6], "speed", s), _float(f[7], "course", s), _date(f[8], s), var, mode, s)


def _gsa(t: str, f: list[str], s: str) -> Gsa:
    _need(f, 17, s, "GSA")
    mode = _int(f[1], "fix mode", s)
    if mode not in (1, 2, 3):
        raise NmeaError(f"GSA fix mode {f[1][:5]!r} is not 1, 2 or 3", s)
    prns = tuple(p for p in (_int(x, "PRN", s) for x in f[2:14]) if p is not None)
    sysid = _int(f[17], "system id", s) if len(f) > 17 else None
    return Gsa(t, f[0], mode, prns, _float(f[14], "PDOP", s), _float(f[15], "HDOP", s),
               _float(f[16], "VDOP", s), sysid, s)


def _gst(t: str, f: list[str], s: str) -> Gst:
    _need(f, 8, s, "GST")
    v = [_float(x, "GST statistic", s) for x in f[1:8]]
    return Gst(t, _tod(f[0], s), *v, s)  # type: ignore[arg-type]


def _vtg(t: str, f: list[str], s: str) -> Vtg:
    if len(f) >= 8 and f[1] == "T":  # NMEA 2.x: course,T,course,M,knots,N,kmh,K[,mode]
        mode = _mode(f[8], s) if len(f) > 8 else None
        return Vtg(t, _float(f[0], "course", s), _float(f[2], "course", s), _float(f[4], "speed", s),
                   _float(f[6], "speed", s), mode, s)
    if len(f) == 4:  # old NMEA 1.x form without unit letters
        return Vtg(t, _float(f[0], "course", s), _float(f[1], "course", s), _float(f[2], "speed", s),
                   _float(f[3], "speed", s), None, s)
    raise NmeaError(f"VTG has {len(f)} fields (expected 4, 8 or 9)", s)


def _gsv(t: str, f: list[str], s: str) -> Gsv:
    _need(f, 3, s, "GSV")
    total, num, inview = (_int(x, "GSV count", s) for x in f[:3])
    if total is None or num is None or inview is None or not 1 <= num <= total:
        raise NmeaError("GSV message counts missing or inconsistent", s)
    rest = f[3:]
    signal = None
    if len(rest) % 4 == 1:
        signal = rest.pop()
    if len(rest) % 4:
        raise NmeaError(f"GSV satellite blocks incomplete ({len(rest)} fields)", s)
    sats = []
    for i in range(0, len(rest), 4):
        prn = _int(rest[i], "PRN", s)
        if prn is None:
            continue  # an empty padding block
        sats.append(SatInView(prn, _int(rest[i + 1], "elevation", s), _int(rest[i + 2], "azimuth", s),
                              _int(rest[i + 3], "SNR", s)))
    return Gsv(t, total, num, inview, tuple(sats), signal, s)


def _gns(t: str, f: list[str], s: str) -> Gns:
    _need(f, 12, s, "GNS")
    mode = f[5]
    if not mode or any(ch not in MODE_FIX for ch in mode):
        raise NmeaError(f"bad GNS mode {mode[:8]!r}", s)
    nav = f[12] if len(f) > 12 and f[12] else None
    return Gns(t, _tod(f[0], s), _latlon(f[1], f[2], True, s), _latlon(f[3], f[4], False, s), mode,
               _int(f[6], "satellite count", s), _float(f[7], "HDOP", s), _float(f[8], "altitude", s),
               _float(f[9], "geoid separation", s), _float(f[10], "DGPS age", s), f[11], nav, s)


def _zda(t: str, f: list[str], s: str) -> Zda:
    _need(f, 6, s, "ZDA")
    d, m, y = (_int(x, "date", s) for x in f[1:4])
    date = None
    if d is not None and m is not None and y is not None:
        try:
            date = _dt.date(y, m, d)
        except ValueError:
            raise NmeaError(f"ZDA date out of range {f[1:4]}", s) from None
    elif (d, m, y) != (None, None, None):
        raise NmeaError("ZDA date partly empty", s)
    return Zda(t, _tod(f[0], s), date, _int(f[4], "zone hours", s), _int(f[5], "zone minutes", s), s)


def _gll(t: str, f: list[str], s: str) -> Gll:
    _need(f, 6, s, "GLL")
    if f[5] not in ("A", "V"):
        raise NmeaError(f"bad GLL status {f[5][:5]!r}", s)
    mode = _mode(f[6], s) if len(f) > 6 else None
    return Gll(t, _latlon(f[0], f[1], True, s), _latlon(f[2], f[3], False, s), _tod(f[4], s),
               f[5] == "A", mode, s)


def _txt(t: str, f: list[str], s: str) -> Txt:
    _need(f, 4, s, "TXT")
    return Txt(t, _int(f[0], "TXT total", s), _int(f[1], "TXT number", s), _int(f[2], "TXT id", s),
               ",".join(f[3:]), s)


PARSERS = {"GGA": _gga, "RMC": _rmc, "GSA": _gsa, "GST": _gst, "VTG": _vtg, "GSV": _gsv,
           "GNS": _gns, "ZDA": _zda, "GLL": _gll, "TXT": _txt}


def checksum(body: str) -> int:
    """XOR of the characters between ``$`` and ``*``."""
    c = 0
    for ch in body.encode("ascii"):
        c ^= ch
    return c


def with_checksum(body: str) -> str:
    """``$`` + body + ``*HH``: build a valid sentence (tests, simulators)."""
    return f"${body}*{checksum(body):02X}"


def parse_sentence(line: str | bytes, *, require_checksum: bool = True) -> NmeaRecord:
    """Parse one NMEA line (CR/LF and surrounding blanks ignored) into a record; raises
    :class:`NmeaError` with the reason when it is not valid."""
    if isinstance(line, (bytes, bytearray, memoryview)):
        try:
            line = bytes(line).decode("ascii")
        except UnicodeDecodeError:
            raise NmeaError("not ASCII", bytes(line)[:90].decode("ascii", "replace")) from None
    if not isinstance(line, str):
        raise NmeaError(f"expected str or bytes, got {type(line).__name__}")
    s = line.strip()
    if not s:
        raise NmeaError("empty line")
    if len(s) > MAX_LINE:
        raise NmeaError(f"longer than {MAX_LINE} characters", s)
    if not s.isascii() or not s.isprintable():
        raise NmeaError("not printable ASCII", s)
    if s[0] != "$":
        if s[0] == "!":
            raise NmeaError("encapsulated sentence (AIS '!') is not supported", s)
        raise NmeaError("does not start with '$'", s)
    star = s.rfind("*")
    if star >= 0:
        body, cs = s[1:star], s[star + 1:]
        if not _HEX2.match(cs):
            raise NmeaError(f"bad checksum field {cs[:8]!r}", s)
        want = checksum(body)
        if int(cs, 16) != want:
            raise NmeaError(f"checksum mismatch: sentence says {cs.upper()}, computed {want:02X}", s)
    else:
        if require_checksum:
            raise NmeaError("no checksum", s)
        body = s[1:]
    if "*" in body or "$" in body:
        raise NmeaError("stray '*' or '$' inside the sentence", s)
    fields = body.split(",")
    addr = fields[0]
    if not addr or not addr.isalnum() or not addr.isupper() and not addr.isdigit():
        raise NmeaError(f"bad address field {addr[:10]!r}", s)
    if addr[0] == "P":
        if len(addr) < 4:
            raise NmeaError(f"proprietary address {addr!r} too short", s)
        return Proprietary(addr[1:4], addr[4:], tuple(fields[1:]), s)
    if len(addr) != 5:
        raise NmeaError(f"address field {addr[:10]!r} is not talker + 3-letter type", s)
    talker, kind = addr[:2], addr[2:]
    if talker not in TALKERS:
        raise NmeaError(f"unsupported talker {talker!r}", s)
    parser = PARSERS.get(kind)
    if parser is None:
        raise NmeaError(f"unsupported sentence type {kind!r}", s)
    return parser(talker, fields[1:], s)


def try_parse(line: str | bytes, *, require_checksum: bool = True) -> NmeaRecord | Rejected:
    """Like :func:`parse_sentence` but returns :class:`Rejected` instead of raising."""
    try:
        return parse_sentence(line, require_checksum=require_checksum)
    except NmeaError as err:
        raw = line if isinstance(line, str) else bytes(line).decode("ascii", "replace")
        return Rejected(raw.strip(), err.reason)
