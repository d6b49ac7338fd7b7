"""Typed bus messages and their compact binary encoding (STYLE.md habit 8).

Every message is one dataclass with ``encode() -> bytes`` and ``decode(buf)``; the bytes are
a fixed header followed by the record's own fields, all little endian:

    header  magic b"EB" | version u8 | type u8 | publisher u32 | seq u64
            | mono_ns i64 | utc_ns i64 | source (u8 length + UTF-8)
    body    per record, see each class

On the ZeroMQ bus a message travels as two frames: the topic (``MessageType`` name as ASCII,
e.g. ``b"GNSS_FIX"``, so SUB sockets filter by type) and the encoded body.

``seq`` and ``publisher`` are filled in by :class:`agent.bus.Publisher` (a sequence per
publisher and message type); subscribers count gaps in ``seq`` as drops. ``mono_ns`` is
``time.monotonic_ns()`` at capture and ``utc_ns`` is ``time.time_ns()`` (or the sensor's UTC)
at capture; both default to "now" when a message is built.

Unknown or absent float values are NaN; unknown integer times are :data:`NO_TIME`.
"""

from __future__ import annotations

import math
import struct
import time
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, Union

from agent.errors import BusError, MessageDecodeError

WIRE_MAGIC = b"EB"
WIRE_VERSION = 1
NO_TIME = -(2**63)  # an absent i64 time (e.g. a GNSS fix without a UTC time of day)

_HEADER = struct.Struct("<2sBBIQqqB")  # ... + source length; source bytes follow
HEADER_SIZE = _HEADER.size


class MessageType(IntEnum):
    """Kinds of bus message; the name is the ZeroMQ topic."""

    LIDAR_PACKET = 1
    NMEA_SENTENCE = 2
    GNSS_FIX = 3
    IMU_SAMPLE = 4
    CAMERA_FRAME = 5
    POWER_EVENT = 6
    TIME_SYNC = 7

    @property
    def topic(self) -> bytes:
        """The ZeroMQ topic frame for this type."""
        return self.name.encode("ascii")


class FixType(IntEnum):
    """GNSS fix quality; the values follow the NMEA GGA quality indicator."""

    NO_FIX = 0
    GPS = 1  # autonomous (SPS)
    DGPS = 2  # differential / SBAS
    PPS = 3
    RTK_FIXED = 4
    RTK_FLOAT = 5
    ESTIMATED = 6  # dead reckoning
    MANUAL = 7
    SIMULATED = 8


class PowerEventKind(IntEnum):
    """What a power event reports."""

    IGNITION_ON = 1
    IGNITION_OFF = 2
    VOLTAGE = 3  # a periodic supply voltage sample, ignition unchanged
    LOW_VOLTAGE = 4  # supply dropped below the MCU's threshold


def _now_mono() -> int:
    return time.monotonic_ns()


def _now_utc() -> int:
    return time.time_ns()


_TYPE_BY_CODE: dict[int, MessageType] = {int(t): t for t in MessageType}


class _Reader:
    """Cursor over a buffer that turns every short read into a MessageDecodeError."""

    __slots__ = ("buf", "pos", "msg_type")

    def __init__(self, buf: bytes | memoryview, pos: int, msg_type: int | None) -> None:
        self.buf = buf
        self.pos = pos
        self.msg_type = msg_type

    def fail(self, reason: str) -> MessageDecodeError:
        return MessageDecodeError(reason, self.msg_type)

    def unpack(self, st: struct.Struct, what: str) -> tuple:
        end = self.pos + st.size
        if end > len(self.buf):
            raise self.fail(f"truncated {what}: needs {st.size} bytes at offset {self.pos}, "
                            f"{len(self.buf) - self.pos} left")
        out = st.unpack_from(self.buf, self.pos)
        self.pos = end
        return out

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > len(self.buf):
            raise self.fail(f"truncated {what}: declares {n} bytes at offset {self.pos}, "
                            f"{len(self.buf) - self.pos} left")
        out = bytes(self.buf[self.pos:end])
        self.pos = end
        return out

    def text(self, n: int, what: str, errors: str = "strict") -> str:
        raw = self.take(n, what)
        try:
            return raw.decode("utf-8", errors)
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not UTF-8") from None

    def done(self) -> None:
        if self.pos != len(self.buf):
            raise self.fail(f"{len(self.buf) - self.pos} trailing bytes after the record")


@dataclass(kw_only=True)
class BusMessage:
    """Fields every message carries (the header)."""

    TYPE: ClassVar[MessageType]

    source: str = ""  # sensor/source id, e.g. "vlp16", "gnss0", "cam_front" (≤ 255 UTF-8 bytes)
    mono_ns: int = field(default_factory=_now_mono)  # time.monotonic_ns() at capture
    utc_ns: int = field(default_factory=_now_utc)  # UTC ns since the epoch at capture
    seq: int = 0  # per (publisher, type) sequence number, set by the Publisher
    publisher: int = 0  # id of the publishing socket (u32), set by the Publisher

    @property
    def topic(self) -> bytes:
        return self.TYPE.topic

    def _header(self) -> bytes:
        src = self.source.encode("utf-8")
        if len(src) > 255:
            raise ValueError(f"source id longer than 255 bytes: {self.source[:40]!r}...")
        return _HEADER.pack(WIRE_MAGIC, WIRE_VERSION, self.TYPE, self.publisher & 0xFFFFFFFF,
                            self.seq, self.mono_ns, self.utc_ns, len(src)) + src

    def _body(self) -> bytes:
        raise NotImplementedError

    def encode(self) -> bytes:
        """The message as bytes (header + body); raises BusError when a field does not fit
        its wire type (e.g. a port above 65535, a source id over 255 bytes)."""
        try:
            return self._header() + self._body()
        except (struct.error, ValueError, OverflowError, TypeError) as exc:
            raise BusError(f"cannot encode {self.TYPE.name}: {exc}") from exc

    @classmethod
    def _decode_body(cls, r: _Reader, head: dict) -> BusMessage:
        raise NotImplementedError

    @classmethod
    def decode(cls, buf: bytes | bytearray | memoryview) -> BusMessage:
        """Parse bytes made by :meth:`encode` of this class; raises MessageDecodeError."""
        msg = decode_message(buf)
        if not isinstance(msg, cls):
            raise MessageDecodeError(f"expected {cls.TYPE.name}, got {msg.TYPE.name}", int(msg.TYPE))
        return msg


def _read_header(buf: bytes | bytearray | memoryview) -> tuple[_Reader, MessageType, dict]:
    if not isinstance(buf, (bytes, bytearray, memoryview)):
        raise MessageDecodeError(f"expected bytes, got {type(buf).__name__}")
    r = _Reader(buf, 0, None)
    magic, version, mtype, publisher, seq, mono, utc, slen = r.unpack(_HEADER, "header")
    if magic != WIRE_MAGIC:
        raise r.fail(f"bad magic {bytes(magic)!r} (expected {WIRE_MAGIC!r})")
    if version != WIRE_VERSION:
        raise r.fail(f"unsupported wire version {version} (this build reads {WIRE_VERSION})")
    kind = _TYPE_BY_CODE.get(mtype)  # a dict lookup: much cheaper than MessageType(mtype)
    if kind is None:
        raise r.fail(f"unknown message type {mtype}")
    r.msg_type = mtype
    end = HEADER_SIZE + slen
    if end > len(buf):
        r.take(slen, "source id")  # raises the truncation error
    try:
        source = str(buf[HEADER_SIZE:end], "utf-8")
    except UnicodeDecodeError:
        raise r.fail("source id is not UTF-8") from None
    r.pos = end
    head = {"source": source, "mono_ns": mono, "utc_ns": utc, "seq": seq, "publisher": publisher}
    return r, kind, head


def peek_header(buf: bytes | bytearray | memoryview) -> tuple[MessageType, dict]:
    """The type and header fields of an encoded message without decoding its body
    (e.g. for a recorder that stores raw bodies)."""
    _, kind, head = _read_header(buf)
    return kind, head


def decode_message(buf: bytes | bytearray | memoryview) -> Message:
    """Decode any bus message; raises :class:`MessageDecodeError` on anything malformed."""
    r, kind, head = _read_header(buf)
    msg = MESSAGE_CLASSES[kind]._decode_body(r, head)
    r.done()
    return msg  # type: ignore[return-value]


# ---- records -------------------------------------------------------------------------------

_LIDAR = struct.Struct("<HI")


@dataclass(kw_only=True)
class LidarPacket(BusMessage):
    """One raw LiDAR UDP payload, bytes kept exactly. Body: port u16 | length u32 | data."""

    TYPE: ClassVar[MessageType] = MessageType.LIDAR_PACKET
    port: int
    data: bytes

    def _body(self) -> bytes:
        return _LIDAR.pack(self.port, len(self.data)) + self.data

    @classmethod
    def _decode_body(cls, r: _Reader, head: dict) -> LidarPacket:
        port, n = r.unpack(_LIDAR, "LiDAR packet fields")
        return cls(port=port, data=r.take(n, "LiDAR payload"), **head)


_U16 = struct.Struct("<H")
_U32 = struct.Struct("<I")


@dataclass(kw_only=True)
class NmeaSentence(BusMessage):
    """One NMEA 0183 line as received (no CR/LF). Body: length u16 | text (UTF-8; bytes
    that are not UTF-8 round-trip through ``surrogateescape``)."""

    TYPE: ClassVar[MessageType] = MessageType.NMEA_SENTENCE
    text: str

    def _body(self) -> bytes:
        raw = self.text.encode("utf-8", "surrogateescape")
        return _U16.pack(len(raw)) + raw

    @classmethod
    def _decode_body(cls, r: _Reader, head: dict) -> NmeaSentence:
        (n,) = r.unpack(_U16, "NMEA length")
        return cls(text=r.text(n, "NMEA text", "surrogateescape"), **head)


_GNSS = struct.Struct("<dddBfhfffqff")


def _nan(x: float | None) -> float:
    return math.nan if x is None else float(x)


@dataclass(kw_only=True)
class GnssFix(BusMessage):
    """A parsed position fix. Body: lat f64 | lon f64 | alt f64 | fix_type u8 | hdop f32 |
    num_sats i16 | speed f32 | course f32 | geoid_sep f32 | fix_utc_ns i64 | h_std f32 | v_std f32."""

    TYPE: ClassVar[MessageType] = MessageType.GNSS_FIX
    lat_deg: float  # WGS84 latitude, degrees, north positive (NaN without a fix)
    lon_deg: float  # WGS84 longitude, degrees, east positive
    alt_m: float = math.nan  # altitude above mean sea level (GGA), metres
    fix_type: FixType = FixType.NO_FIX
    hdop: float = math.nan
    num_sats: int = -1  # satellites used, -1 when unknown
    speed_mps: float = math.nan  # speed over ground, m/s
    course_deg: float = math.nan  # course over ground, degrees from true north
    geoid_sep_m: float = math.nan  # geoid separation (ellipsoid height = alt_m + geoid_sep_m)
    fix_utc_ns: int = NO_TIME  # receiver's UTC time of the fix, ns since the epoch
    h_std_m: float = math.nan  # horizontal position std dev (GST), metres
    v_std_m: float = math.nan  # vertical std dev (GST), metres

    def _body(self) -> bytes:
        return _GNSS.pack(self.lat_deg, self.lon_deg, self.alt_m, int(self.fix_type), self.hdop,
                          self.num_sats, self.speed_mps, self.course_deg, self.geoid_sep_m,
                          self.fix_utc_ns, self.h_std_m, self.v_std_m)

    @classmethod
    def _decode_body(cls, r: _Reader, head: dict) -> GnssFix:
        lat, lon, alt, ft, hdop, ns, spd, crs, gsep, futc, hs, vs = r.unpack(_GNSS, "GNSS fix")
        try:
            fix = FixType(ft)
        except ValueError:
            raise r.fail(f"unknown fix type {ft}") from None
        return cls(lat_deg=lat, lon_deg=lon, alt_m=alt, fix_type=fix, hdop=hdop, num_sats=ns,
                   speed_mps=spd, course_deg=crs, geoid_sep_m=gsep, fix_utc_ns=futc,
                   h_std_m=hs, v_std_m=vs, **head)

    @property
    def has_fix(self) -> bool:
        return self.fix_type != FixType.NO_FIX and not math.isnan(self.lat_deg)


_IMU = struct.Struct("<6df")


@dataclass(kw_only=True)
class ImuSample(BusMessage):
    """One IMU sample in the sensor frame. Body: gyro 3×f64 | accel 3×f64 | temp f32 (NaN = none)."""

    TYPE: ClassVar[MessageType] = MessageType.IMU_SAMPLE
    gyro: tuple[float, float, float]  # angular rate x, y, z, rad/s
    accel: tuple[float, float, float]  # linear acceleration x, y, z, m/s²
    temperature_c: float | None = None

    def _body(self) -> bytes:
        return _IMU.pack(*self.gyro, *self.accel, _nan(self.temperature_c))

    @classmethod
    def _decode_body(cls, r: _Reader, head: dict) -> ImuSample:
        gx, gy, gz, ax, ay, az, t = r.unpack(_IMU, "IMU sample")
        return cls(gyro=(gx, gy, gz), accel=(ax, ay, az),
                   temperature_c=None if math.isnan(t) else t, **head)


_CAM = struct.Struct("<HHIB")


@dataclass(kw_only=True)
class CameraFrame(BusMessage):
    """One camera image as JPEG. Body: width u16 | height u16 | frame_index u32 |
    camera_id (u8 length + UTF-8) | jpeg length u32 | jpeg bytes."""

    TYPE: ClassVar[MessageType] = MessageType.CAMERA_FRAME
    camera_id: str
    width: int
    height: int
    jpeg: bytes
    frame_index: int = 0  # position in the source's stream (video frame number, file index)

    def _body(self) -> bytes:
        cid = self.camera_id.encode("utf-8")
        if len(cid) > 255:
            raise ValueError("camera id longer than 255 bytes")
        return (_CAM.pack(self.width, self.height, self.frame_index & 0xFFFFFFFF, len(cid)) + cid
                + _U32.pack(len(self.jpeg)) + self.jpeg)

    @classmethod
    def _decode_body(cls, r: _Reader, head: dict) -> CameraFrame:
        w, h, idx, clen = r.unpack(_CAM, "camera frame fields")
        cid = r.text(clen, "camera id")
        (n,) = r.unpack(_U32, "JPEG length")
        return cls(camera_id=cid, width=w, height=h, frame_index=idx, jpeg=r.take(n, "JPEG"), **head)


_POWER = struct.Struct("<B?f")


@dataclass(kw_only=True)
class PowerEvent(BusMessage):
    """Ignition and supply state from the vehicle unit's MCU. Body: kind u8 | ignition bool |
    supply_v f32 (NaN when unknown)."""

    TYPE: ClassVar[MessageType] = MessageType.POWER_EVENT
    kind: PowerEventKind
    ignition: bool
    supply_v: float = math.nan

    def _body(self) -> bytes:
        return _POWER.pack(int(self.kind), self.ignition, self.supply_v)

    @classmethod
    def _decode_body(cls, r: _Reader, head: dict) -> PowerEvent:
        kind, ign, volts = r.unpack(_POWER, "power event")
        try:
            k = PowerEventKind(kind)
        except ValueError:
            raise r.fail(f"unknown power event kind {kind}") from None
        return cls(kind=k, ignition=ign, supply_v=volts, **head)


_SYNC = struct.Struct("<Qqdd")


@dataclass(kw_only=True)
class TimeSync(BusMessage):
    """A PPS edge as seen by the MCU: its tick counter at the edge and the UTC second the edge
    marks, with the clock fit's result. Body: mcu_tick u64 | pps_utc_ns i64 | tick_hz f64 |
    residual_ns f64."""

    TYPE: ClassVar[MessageType] = MessageType.TIME_SYNC
    mcu_tick: int  # MCU free-running counter value latched at the PPS edge
    pps_utc_ns: int  # UTC time of that edge, ns since the epoch
    tick_hz: float = math.nan  # fitted MCU counter frequency
    residual_ns: float = math.nan  # residual of this edge against the tick↔UTC fit

    def _body(self) -> bytes:
        return _SYNC.pack(self.mcu_tick, self.pps_utc_ns, self.tick_hz, self.residual_ns)

    @classmethod
    def _decode_body(cls, r: _Reader, head: dict) -> TimeSync:
        tick, utc, hz, res = r.unpack(_SYNC, "time sync")
        return cls(mcu_tick=tick, pps_utc_ns=utc, tick_hz=hz, residual_ns=res, **head)


Message = Union[LidarPacket, NmeaSentence, GnssFix, ImuSample, CameraFrame, PowerEvent, TimeSync]

MESSAGE_CLASSES: dict[MessageType, type[BusMessage]] = {
    cls.TYPE: cls
    for cls in (LidarPacket, NmeaSentence, GnssFix, ImuSample, CameraFrame, PowerEvent, TimeSync)
}

TOPICS: dict[bytes, MessageType] = {t.topic: t for t in MessageType}


def message_type_of_topic(topic: bytes) -> MessageType:
    """The message type a topic frame names; raises MessageDecodeError for unknown topics."""
    try:
        return TOPICS[bytes(topic)]
    except KeyError:
        raise MessageDecodeError(f"unknown topic {bytes(topic)[:40]!r}") from None


__all__ = [
    "BusMessage",
    "CameraFrame",
    "FixType",
    "GnssFix",
    "HEADER_SIZE",
    "ImuSample",
    "LidarPacket",
    "MESSAGE_CLASSES",
    "Message",
    "MessageType",
    "NO_TIME",
    "NmeaSentence",
    "PowerEvent",
    "PowerEventKind",
    "TOPICS",
    "TimeSync",
    "WIRE_VERSION",
    "decode_message",
    "message_type_of_topic",
    "peek_header",
]
