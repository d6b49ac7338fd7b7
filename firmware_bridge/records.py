"""Wire records of the firmware bridge protocol (see PROTOCOL.md).

A frame on the wire is ``0x00 ‖ COBS(header ‖ payload ‖ CRC-32C) ‖ 0x00``. :class:`FrameHeader`
is the fixed 14-byte header; each message type has one dataclass with ``read`` (payload bytes →
record, validating length and enum values) and ``write`` (record → payload bytes).
:func:`encode_frame` and :func:`decode_frame` put the two together. Nothing here touches a
serial port: records are bytes in, bytes out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from enum import IntEnum
from typing import ClassVar, Self

from firmware_bridge import _cobs
from firmware_bridge._crc32c import crc32c
from firmware_bridge.errors import FrameCRCError, FrameDecodeError

PROTOCOL_VERSION = 1
TICK_HZ = 1_000_000  # MCU tick: microseconds since MCU boot, 64-bit (extended in firmware)
MAX_PAYLOAD = 1024
HEADER = struct.Struct("<BBHHQ")  # version, type, seq, length, tick
CRC = struct.Struct("<I")
MIN_FRAME = HEADER.size + CRC.size
# Longest COBS encoding of a maximal frame: one code byte per 254 bytes, plus one.
MAX_ENCODED = MIN_FRAME + MAX_PAYLOAD + (MIN_FRAME + MAX_PAYLOAD) // 254 + 1
DELIMITER = b"\x00"


class MsgType(IntEnum):
    """Message types. Below 0x80: MCU to host; 0x80 and above: host to MCU."""

    GNSS_BYTES = 0x01
    IMU = 0x02
    PPS = 0x03
    POWER = 0x04
    HEARTBEAT = 0x05
    ACK = 0x06
    BOOT = 0x07
    CAMERA_TRIGGERED = 0x08
    CMD_LED = 0x81
    CMD_CAMERA_TRIGGER = 0x82


class PowerReason(IntEnum):
    """Why the MCU sent a power record."""

    STATUS = 0  # periodic report
    IGNITION_ON = 1
    IGNITION_OFF = 2
    UNDERVOLTAGE = 3


class ResetReason(IntEnum):
    """Why the MCU (re)started, as its reset-cause register says."""

    POWER_ON = 0
    PIN = 1
    WATCHDOG = 2
    BROWNOUT = 3
    SOFTWARE = 4
    UNKNOWN = 255


class AckStatus(IntEnum):
    """Answer to a host command: OK, or why it was refused (a NACK)."""

    OK = 0
    UNKNOWN_COMMAND = 1
    BAD_ARGUMENT = 2
    BUSY = 3


class LedMode(IntEnum):
    OFF = 0
    ON = 1
    BLINK = 2


def _enum(kind: type[IntEnum], value: int, what: str) -> IntEnum:
    try:
        return kind(value)
    except ValueError:
        raise FrameDecodeError(f"{what}: unknown value {value}") from None


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """Fixed header: ``<BBHHQ`` version, type, sequence (per direction, wraps at 2^16),
    payload length, MCU tick (µs since boot) when the frame's content was captured."""

    type: int
    seq: int
    length: int
    tick: int
    version: int = PROTOCOL_VERSION

    SIZE: ClassVar[int] = HEADER.size

    @classmethod
    def read(cls, data: bytes | memoryview) -> Self:
        if len(data) < HEADER.size:
            raise FrameDecodeError(f"header needs {HEADER.size} bytes", len(data))
        version, type_, seq, length, tick = HEADER.unpack_from(data)
        return cls(type=type_, seq=seq, length=length, tick=tick, version=version)

    def write(self) -> bytes:
        return HEADER.pack(self.version, self.type, self.seq, self.length, self.tick)


class Record:
    """Base of the message records: ``TYPE``, ``read(payload)``, ``write() -> payload``."""

    TYPE: ClassVar[MsgType]
    __slots__ = ()

    @classmethod
    def read(cls, data: bytes | memoryview) -> Self:  # pragma: no cover - overridden
        raise NotImplementedError

    def write(self) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError


def _unpack(fmt: struct.Struct, data: bytes | memoryview, name: str) -> tuple:
    if len(data) != fmt.size:
        raise FrameDecodeError(f"{name} payload must be {fmt.size} bytes, got {len(data)}", len(data))
    return fmt.unpack(data)


_GNSS = struct.Struct("<I")
MAX_GNSS_CHUNK = MAX_PAYLOAD - _GNSS.size


@dataclass(frozen=True, slots=True)
class GnssBytes(Record):
    """A chunk of raw bytes from the GNSS receiver's UART, in order. ``offset`` counts the UART
    bytes received since boot before this chunk (mod 2^32), so the host knows whether bytes
    between two chunks went missing. The header tick is when the chunk's last byte arrived.
    Chunks cut sentences anywhere."""

    offset: int
    data: bytes

    TYPE: ClassVar[MsgType] = MsgType.GNSS_BYTES

    @classmethod
    def read(cls, data: bytes | memoryview) -> Self:
        if not 1 <= len(data) - _GNSS.size <= MAX_GNSS_CHUNK:
            raise FrameDecodeError(f"GNSS chunk must be offset + 1..{MAX_GNSS_CHUNK} bytes", len(data))
        (offset,) = _GNSS.unpack_from(data)
        return cls(offset, bytes(data[_GNSS.size :]))

    def write(self) -> bytes:
        if not 1 <= len(self.data) <= MAX_GNSS_CHUNK:
            raise ValueError(f"GNSS chunk must be 1..{MAX_GNSS_CHUNK} bytes, got {len(self.data)}")
        return _GNSS.pack(self.offset & 0xFFFFFFFF) + bytes(self.data)


_IMU = struct.Struct("<7f")


@dataclass(frozen=True, slots=True)
class ImuSample(Record):
    """One IMU sample (float32): gyro rad/s, accel m/s² (x, y, z in the IMU frame), die
    temperature °C. The header tick is the sample instant (data-ready interrupt)."""

    gyro: tuple[float, float, float]
    accel: tuple[float, float, float]
    temperature: float

    TYPE: ClassVar[MsgType] = MsgType.IMU

    @classmethod
    def read(cls, data: bytes | memoryview) -> Self:
        gx, gy, gz, ax, ay, az, t = _unpack(_IMU, data, "IMU")
        return cls((gx, gy, gz), (ax, ay, az), t)

    def write(self) -> bytes:
        return _IMU.pack(*self.gyro, *self.accel, self.temperature)


_PPS = struct.Struct("<QI")


@dataclass(frozen=True, slots=True)
class Pps(Record):
    """A PPS rising edge: ``edge_tick`` from the timer's input capture (the header tick is
    only when the record was sent), ``count`` edges since boot."""

    edge_tick: int
    count: int

    TYPE: ClassVar[MsgType] = MsgType.PPS

    @classmethod
    def read(cls, data: bytes | memoryview) -> Self:
        return cls(*_unpack(_PPS, data, "PPS"))

    def write(self) -> bytes:
        return _PPS.pack(self.edge_tick, self.count)


_POWER = struct.Struct("<BBH")


@dataclass(frozen=True, slots=True)
class Power(Record):
    """Ignition line state and supply voltage (mV); sent on a change and periodically."""

    ignition: bool
    reason: PowerReason
    supply_mv: int

    TYPE: ClassVar[MsgType] = MsgType.POWER

    @classmethod
    def read(cls, data: bytes | memoryview) -> Self:
        ign, reason, mv = _unpack(_POWER, data, "power")
        if ign not in (0, 1):
            raise FrameDecodeError(f"power: ignition must be 0 or 1, got {ign}", len(data))
        return cls(bool(ign), _enum(PowerReason, reason, "power reason"), mv)  # type: ignore[arg-type]

    def write(self) -> bytes:
        return _POWER.pack(int(self.ignition), int(self.reason), self.supply_mv)


_HEARTBEAT = struct.Struct("<IBBBxIIII")


@dataclass(frozen=True, slots=True)
class Heartbeat(Record):
    """Once a second: uptime, firmware version and the MCU's own counters."""

    uptime_ms: int
    fw_version: tuple[int, int, int]
    frames_sent: int
    host_frames_ok: int
    host_crc_errors: int
    uart_overruns: int

    TYPE: ClassVar[MsgType] = MsgType.HEARTBEAT

    @classmethod
    def read(cls, data: bytes | memoryview) -> Self:
        up, ma, mi, pa, sent, ok, crc, ovr = _unpack(_HEARTBEAT, data, "heartbeat")
        return cls(up, (ma, mi, pa), sent, ok, crc, ovr)

    def write(self) -> bytes:
        return _HEARTBEAT.pack(self.uptime_ms, *self.fw_version, self.frames_sent, self.host_frames_ok,
                               self.host_crc_errors, self.uart_overruns)


_ACK = struct.Struct("<HBB")


@dataclass(frozen=True, slots=True)
class Ack(Record):
    """Answer to the host command with sequence ``acked_seq``: ``status`` OK is an ACK,
    anything else a NACK with its reason."""

    acked_seq: int
    acked_type: int
    status: AckStatus

    TYPE: ClassVar[MsgType] = MsgType.ACK

    @classmethod
    def read(cls, data: bytes | memoryview) -> Self:
        seq, typ, status = _unpack(_ACK, data, "ack")
        return cls(seq, typ, _enum(AckStatus, status, "ack status"))  # type: ignore[arg-type]

    def write(self) -> bytes:
        return _ACK.pack(self.acked_seq, self.acked_type, int(self.status))


_BOOT = struct.Struct("<BBBB")


@dataclass(frozen=True, slots=True)
class Boot(Record):
    """First record after an MCU (re)start: ticks and sequence numbers restart at 0."""

    fw_version: tuple[int, int, int]
    reset_reason: ResetReason

    TYPE: ClassVar[MsgType] = MsgType.BOOT

    @classmethod
    def read(cls, data: bytes | memoryview) -> Self:
        ma, mi, pa, reason = _unpack(_BOOT, data, "boot")
        return cls((ma, mi, pa), _enum(ResetReason, reason, "reset reason"))  # type: ignore[arg-type]

    def write(self) -> bytes:
        return _BOOT.pack(*self.fw_version, int(self.reset_reason))


_TRIGGERED = struct.Struct("<B3xIQ")


@dataclass(frozen=True, slots=True)
class CameraTriggered(Record):
    """A camera trigger pulse went out: camera id, pulses so far, tick of the rising edge."""

    camera: int
    count: int
    edge_tick: int

    TYPE: ClassVar[MsgType] = MsgType.CAMERA_TRIGGERED

    @classmethod
    def read(cls, data: bytes | memoryview) -> Self:
        return cls(*_unpack(_TRIGGERED, data, "camera triggered"))

    def write(self) -> bytes:
        return _TRIGGERED.pack(self.camera, self.count, self.edge_tick)


_LED = struct.Struct("<BBH")


@dataclass(frozen=True, slots=True)
class LedCommand(Record):
    """Host → MCU: set status LED ``led`` off, on, or blinking with ``period_ms``."""

    led: int
    mode: LedMode
    period_ms: int = 0

    TYPE: ClassVar[MsgType] = MsgType.CMD_LED

    @classmethod
    def read(cls, data: bytes | memoryview) -> Self:
        led, mode, period = _unpack(_LED, data, "LED command")
        return cls(led, _enum(LedMode, mode, "LED mode"), period)  # type: ignore[arg-type]

    def write(self) -> bytes:
        return _LED.pack(self.led, int(self.mode), self.period_ms)


_TRIGGER = struct.Struct("<BxH")


@dataclass(frozen=True, slots=True)
class CameraTriggerCommand(Record):
    """Host → MCU: pulse the trigger line of camera ``camera`` for ``pulse_us``."""

    camera: int
    pulse_us: int = 100

    TYPE: ClassVar[MsgType] = MsgType.CMD_CAMERA_TRIGGER

    @classmethod
    def read(cls, data: bytes | memoryview) -> Self:
        return cls(*_unpack(_TRIGGER, data, "camera trigger command"))

    def write(self) -> bytes:
        return _TRIGGER.pack(self.camera, self.pulse_us)


RECORDS: dict[MsgType, type[Record]] = {
    cls.TYPE: cls
    for cls in (GnssBytes, ImuSample, Pps, Power, Heartbeat, Ack, Boot, CameraTriggered, LedCommand,
                CameraTriggerCommand)
}
_BY_VALUE: dict[int, type[Record]] = {int(k): v for k, v in RECORDS.items()}


@dataclass(frozen=True, slots=True)
class Frame:
    """A decoded frame: its header and its record."""

    header: FrameHeader
    record: Record
    wire_size: int = field(default=0, compare=False)

    @property
    def seq(self) -> int:
        return self.header.seq

    @property
    def tick(self) -> int:
        return self.header.tick


def frame_body(record: Record, seq: int, tick: int) -> bytes:
    """Header ‖ payload ‖ CRC-32C (little-endian) of a record: the bytes COBS encodes."""
    payload = record.write()
    if len(payload) > MAX_PAYLOAD:
        raise ValueError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = HEADER.pack(PROTOCOL_VERSION, int(record.TYPE), seq & 0xFFFF, len(payload), tick) + payload
    return body + CRC.pack(crc32c(body))


def encode_frame(record: Record, seq: int, tick: int) -> bytes:
    """The wire bytes of one frame, delimiters included: ``00 ‖ COBS(body) ‖ 00``."""
    return DELIMITER + _cobs.encode(frame_body(record, seq, tick)) + DELIMITER


def decode_body(body: bytes) -> Frame:
    """Check and parse an unstuffed frame body; raise FrameCRCError or FrameDecodeError."""
    n = len(body)
    if n < MIN_FRAME:
        raise FrameDecodeError(f"truncated frame: {n} bytes, need at least {MIN_FRAME}", n)
    (expected,) = CRC.unpack_from(body, n - CRC.size)
    actual = crc32c(body[: n - CRC.size])
    if expected != actual:
        raise FrameCRCError(expected, actual, n)
    version, type_, seq, length, tick = HEADER.unpack_from(body)
    if version != PROTOCOL_VERSION:
        raise FrameDecodeError(f"protocol version {version}, expected {PROTOCOL_VERSION}", n)
    if length != n - MIN_FRAME:
        raise FrameDecodeError(f"header length {length} but payload has {n - MIN_FRAME} bytes", n)
    cls = _BY_VALUE.get(type_)
    if cls is None:
        raise FrameDecodeError(f"unknown message type 0x{type_:02X}", n)
    record = cls.read(memoryview(body)[HEADER.size : n - CRC.size])
    return Frame(FrameHeader(type_, seq, length, tick, version), record, n)


def decode_frame(encoded: bytes) -> Frame:
    """Decode one COBS-encoded frame (between delimiters, without them)."""
    if len(encoded) > MAX_ENCODED:
        raise FrameDecodeError(f"frame longer than {MAX_ENCODED} encoded bytes", len(encoded))
    try:
        body = _cobs.decode(encoded)
    except _cobs.COBSError as err:
        raise FrameDecodeError(f"bad COBS: {err}", len(encoded)) from None
    return decode_body(body)


__all__ = [
    "DELIMITER",
    "MAX_ENCODED",
    "MAX_GNSS_CHUNK",
    "MAX_PAYLOAD",
    "PROTOCOL_VERSION",
    "RECORDS",
    "TICK_HZ",
    "Ack",
    "AckStatus",
    "Boot",
    "CameraTriggerCommand",
    "CameraTriggered",
    "Frame",
    "FrameHeader",
    "GnssBytes",
    "Heartbeat",
    "ImuSample",
    "LedCommand",
    "LedMode",
    "MsgType",
    "Power",
    "PowerReason",
    "Pps",
    "Record",
    "ResetReason",
    "decode_body",
    "decode_frame",
    "encode_frame",
    "frame_body",
]
