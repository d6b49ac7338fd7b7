"""Every record round-trips through write/read and through a whole frame; bad payloads fail
with FrameDecodeError, bad CRCs with FrameCRCError carrying both values."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import _cobs
from firmware_bridge.errors import FrameCRCError, FrameDecodeError
from firmware_bridge.records import (
    MAX_GNSS_CHUNK,
    PROTOCOL_VERSION,
    RECORDS,
    Ack,
    AckStatus,
    Boot,
    CameraTriggerCommand,
    CameraTriggered,
    FrameHeader,
    GnssBytes,
    Heartbeat,
    ImuSample,
    LedCommand,
    LedMode,
    MsgType,
    Power,
    PowerReason,
    Pps,
    ResetReason,
    decode_body,
    decode_frame,
    encode_frame,
    frame_body,
)

u8, u16, u32, u64 = (st.integers(0, 2**b - 1) for b in (8, 16, 32, 64))
f32 = st.floats(width=32, allow_nan=False)
vec3 = st.tuples(f32, f32, f32)
version = st.tuples(u8, u8, u8)

STRATEGIES = {
    MsgType.GNSS_BYTES: st.builds(GnssBytes, u32, st.binary(min_size=1, max_size=MAX_GNSS_CHUNK)),
    MsgType.IMU: st.builds(ImuSample, vec3, vec3, f32),
    MsgType.PPS: st.builds(Pps, u64, u32),
    MsgType.POWER: st.builds(Power, st.booleans(), st.sampled_from(PowerReason), u16),
    MsgType.HEARTBEAT: st.builds(Heartbeat, u32, version, u32, u32, u32, u32),
    MsgType.ACK: st.builds(Ack, u16, u8, st.sampled_from(AckStatus)),
    MsgType.BOOT: st.builds(Boot, version, st.sampled_from(ResetReason)),
    MsgType.CAMERA_TRIGGERED: st.builds(CameraTriggered, u8, u32, u64),
    MsgType.CMD_LED: st.builds(LedCommand, u8, st.sampled_from(LedMode), u16),
    MsgType.CMD_CAMERA_TRIGGER: st.builds(CameraTriggerCommand, u8, u16),
}

EXAMPLES = [
    GnssBytes(4_000_000_000, b"$GPRMC,124022.00,A,4810.8509,N,01133.9095,E,008.5,171.1,010409,002.0,E,A*3B\r\n"),
    ImuSample((0.125, -0.25, 0.5), (0.25, 0.5, 9.75), 36.5),
    Pps(123_456_789_012, 42),
    Power(True, PowerReason.IGNITION_ON, 12_600),
    Heartbeat(60_000, (1, 4, 2), 1000, 3, 1, 0),
    Ack(7, int(MsgType.CMD_LED), AckStatus.BAD_ARGUMENT),
    Boot((1, 4, 2), ResetReason.WATCHDOG),
    CameraTriggered(2, 17, 999_999),
    LedCommand(1, LedMode.BLINK, 500),
    CameraTriggerCommand(0, 150),
]


def test_every_type_has_a_record_strategy_and_example() -> None:
    assert set(RECORDS) == set(MsgType) == set(STRATEGIES) == {type(r).TYPE for r in EXAMPLES}


@pytest.mark.parametrize("record", EXAMPLES, ids=lambda r: type(r).__name__)
def test_record_round_trip_example(record) -> None:
    payload = record.write()
    assert type(record).read(payload) == record
    wire = encode_frame(record, seq=65535, tick=2**40 + 5)
    assert wire[0] == 0 and wire[-1] == 0 and 0 not in wire[1:-1]
    frame = decode_frame(wire[1:-1])
    assert frame.record == record
    assert frame.header == FrameHeader(type=int(record.TYPE), seq=65535, length=len(payload), tick=2**40 + 5)


@pytest.mark.parametrize("kind", list(MsgType), ids=lambda k: k.name)
@settings(max_examples=60, deadline=None)
@given(data=st.data(), seq=u16, tick=u64)
def test_record_round_trip_property(kind: MsgType, data, seq: int, tick: int) -> None:
    record = data.draw(STRATEGIES[kind])
    assert type(record).read(record.write()) == record
    frame = decode_frame(encode_frame(record, seq, tick)[1:-1])
    assert (frame.record, frame.seq, frame.tick) == (record, seq, tick)


@given(u8, u8, u16, u16, u64)
def test_header_round_trip(ver: int, typ: int, seq: int, length: int, tick: int) -> None:
    h = FrameHeader(type=typ, seq=seq, length=length, tick=tick, version=ver)
    assert FrameHeader.read(h.write()) == h
    assert len(h.write()) == FrameHeader.SIZE == 14


def test_crc_error_carries_expected_and_actual() -> None:
    body = bytearray(frame_body(Pps(1000, 1), 3, 1000))
    body[5] ^= 0x10
    with pytest.raises(FrameCRCError, match="CRC-32C mismatch") as info:
        decode_body(bytes(body))
    assert info.value.expected != info.value.actual
    assert info.value.expected == struct.unpack_from("<I", body, len(body) - 4)[0]


def _reframe(body: bytes) -> bytes:
    """COBS of a body whose CRC we recompute after tampering with it (to reach later checks)."""
    from firmware_bridge._crc32c import crc32c

    inner = body[:-4]
    return _cobs.encode(inner + struct.pack("<I", crc32c(inner)))


@pytest.mark.parametrize(("tamper", "why"), [
    (lambda b: bytes([2]) + b[1:], "protocol version 2"),
    (lambda b: b[:1] + bytes([0x7E]) + b[2:], "unknown message type 0x7E"),
    (lambda b: b[:4] + struct.pack("<H", 99) + b[6:], "header length 99"),
    (lambda b: b[:17] + b"\x05" + b[18:], "ack status: unknown value 5"),
])
def test_decode_errors_name_the_cause(tamper, why: str) -> None:
    body = frame_body(Ack(1, 0x81, AckStatus.OK), 1, 1)
    body = body[:-4]
    wire = _reframe(tamper(body) + b"\0\0\0\0")
    with pytest.raises(FrameDecodeError, match=why):
        decode_frame(wire)


def test_wrong_payload_size_and_truncation() -> None:
    with pytest.raises(FrameDecodeError, match="PPS payload must be 12 bytes"):
        Pps.read(b"\x00" * 11)
    with pytest.raises(FrameDecodeError, match="truncated frame"):
        decode_frame(_cobs.encode(b"\x01\x02\x03"))
    with pytest.raises(FrameDecodeError, match="bad COBS"):
        decode_frame(b"\x09abc")
    with pytest.raises(FrameDecodeError, match="power: ignition must be 0 or 1"):
        Power.read(b"\x02\x00\x00\x00")
    with pytest.raises(ValueError, match="GNSS chunk"):
        GnssBytes(0, b"").write()
    assert PROTOCOL_VERSION == 1
