"""Round trips of every bus record and rejection of malformed bytes."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.bus.messages import (
    HEADER_SIZE,
    MESSAGE_CLASSES,
    NO_TIME,
    CameraFrame,
    FixType,
    GnssFix,
    ImuSample,
    LidarPacket,
    MessageType,
    NmeaSentence,
    PowerEvent,
    PowerEventKind,
    TimeSync,
    decode_message,
    message_type_of_topic,
    peek_header,
)
from agent.errors import AgentError, BusError, MessageDecodeError

HEAD = dict(source="src-Ω", mono_ns=123_456_789, utc_ns=1_700_000_000_123_456_789, seq=42, publisher=0xDEADBEEF)

SAMPLES = [
    LidarPacket(port=2368, data=bytes(range(256)) * 4 + b"\xff\xee" * 91, **HEAD),
    LidarPacket(port=8308, data=b"", **HEAD),
    NmeaSentence(text="$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47", **HEAD),
    NmeaSentence(text="bad \udcff byte", **HEAD),  # a non-UTF-8 byte kept through surrogateescape
    GnssFix(lat_deg=48.1173, lon_deg=-11.516666, alt_m=545.4, fix_type=FixType.RTK_FIXED, hdop=0.5,
            num_sats=12, speed_mps=12.25, course_deg=84.5, geoid_sep_m=46.875,
            fix_utc_ns=1_700_000_000_500_000_000, h_std_m=0.015625, v_std_m=0.03125, **HEAD),
    GnssFix(lat_deg=math.nan, lon_deg=math.nan, **HEAD),
    ImuSample(gyro=(0.01, -0.02, 3.0), accel=(0.1, 9.81, -1e-3), temperature_c=36.5, **HEAD),
    ImuSample(gyro=(0.0, 0.0, 0.0), accel=(0.0, 0.0, 9.80665), **HEAD),
    CameraFrame(camera_id="front", width=1920, height=1080, jpeg=b"\xff\xd8" + b"\x00" * 100_000 + b"\xff\xd9",
                frame_index=7, **HEAD),
    PowerEvent(kind=PowerEventKind.IGNITION_ON, ignition=True, supply_v=12.5, **HEAD),
    PowerEvent(kind=PowerEventKind.IGNITION_OFF, ignition=False, **HEAD),
    TimeSync(mcu_tick=2**63 + 5, pps_utc_ns=1_700_000_001_000_000_000, tick_hz=168e6, residual_ns=-12.5, **HEAD),
]


def _same(a: object, b: object) -> bool:
    """Dataclass equality where NaN equals NaN."""
    for k, v in vars(a).items():
        w = vars(b)[k]
        if isinstance(v, float) and math.isnan(v):
            if not (isinstance(w, float) and math.isnan(w)):
                return False
        elif v != w:
            return False
    return type(a) is type(b)


def test_every_type_has_a_record_and_a_sample() -> None:
    assert set(MESSAGE_CLASSES) == set(MessageType)
    assert {type(m).TYPE for m in SAMPLES} == set(MessageType)


@pytest.mark.parametrize("msg", SAMPLES, ids=lambda m: type(m).__name__)
def test_round_trip(msg: object) -> None:
    buf = msg.encode()  # type: ignore[attr-defined]
    back = decode_message(buf)
    assert _same(msg, back), (msg, back)
    assert type(msg).decode(buf) == back or _same(type(msg).decode(buf), back)  # type: ignore[attr-defined]
    assert back.encode() == buf  # the encoding is canonical
    kind, head = peek_header(buf)
    assert kind is type(msg).TYPE and head == HEAD  # type: ignore[attr-defined]
    assert message_type_of_topic(msg.topic) is kind  # type: ignore[attr-defined]


def test_lidar_bytes_kept_exactly_and_header_is_small() -> None:
    data = bytes((i * 7) & 0xFF for i in range(1206))
    buf = LidarPacket(port=2368, data=data, source="vlp16").encode()
    assert buf.endswith(data)
    assert len(buf) == HEADER_SIZE + len("vlp16") + 6 + 1206


def test_defaults_stamp_now() -> None:
    import time

    before = time.time_ns()
    m = NmeaSentence(text="$GPZDA")
    assert before <= m.utc_ns <= time.time_ns()
    assert m.mono_ns > 0 and m.seq == 0


def test_decode_as_wrong_class_is_rejected() -> None:
    buf = SAMPLES[0].encode()
    with pytest.raises(MessageDecodeError, match="expected GNSS_FIX, got LIDAR_PACKET"):
        GnssFix.decode(buf)


@pytest.mark.parametrize(
    ("buf", "match"),
    [
        (b"", "truncated header"),
        (b"XX" + bytes(40), "bad magic"),
        (b"EB\x09" + bytes(40), "unsupported wire version 9"),
        (b"EB\x01\x63" + bytes(40), "unknown message type 99"),
        (SAMPLES[0].encode()[:-1], "truncated LiDAR payload"),
        (SAMPLES[0].encode() + b"\x00", "1 trailing bytes"),
        (SAMPLES[4].encode()[:-3], "truncated GNSS fix"),
        (SAMPLES[8].encode()[:60], "truncated"),
    ],
)
def test_garbage_is_rejected_clearly(buf: bytes, match: str) -> None:
    with pytest.raises(MessageDecodeError, match=match) as info:
        decode_message(buf)
    assert isinstance(info.value, BusError) and isinstance(info.value, AgentError)


def test_bad_enum_values_and_source_rejected() -> None:
    fix = bytearray(SAMPLES[4].encode())
    body_at = HEADER_SIZE + len(HEAD["source"].encode())
    fix[body_at + 24] = 77  # fix_type byte after lat, lon, alt
    with pytest.raises(MessageDecodeError, match="unknown fix type 77"):
        decode_message(bytes(fix))
    pw = bytearray(SAMPLES[9].encode())
    pw[body_at] = 0
    with pytest.raises(MessageDecodeError, match="unknown power event kind 0"):
        decode_message(bytes(pw))
    raw = bytearray(SAMPLES[2].encode())
    raw[HEADER_SIZE] = 0xFF  # first byte of the source id: not UTF-8
    with pytest.raises(MessageDecodeError, match="source id is not UTF-8"):
        decode_message(bytes(raw))
    with pytest.raises(MessageDecodeError, match="expected bytes"):
        decode_message("text")  # type: ignore[arg-type]
    with pytest.raises(MessageDecodeError, match="unknown topic"):
        message_type_of_topic(b"NOPE")


def test_unencodable_fields_raise_bus_error() -> None:
    with pytest.raises(BusError, match="cannot encode LIDAR_PACKET"):
        LidarPacket(port=70000, data=b"").encode()
    with pytest.raises(BusError, match="source id longer than 255"):
        NmeaSentence(text="x", source="s" * 300).encode()


def test_no_time_sentinel_round_trips() -> None:
    m = GnssFix(lat_deg=1.0, lon_deg=2.0)
    assert decode_message(m.encode()).fix_utc_ns == NO_TIME  # type: ignore[union-attr]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_decode_error(buf: bytes) -> None:
    try:
        decode_message(buf)
    except MessageDecodeError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 200), st.binary(min_size=1, max_size=4))
def test_corrupted_valid_messages_only_raise_decode_error(pos: int, junk: bytes) -> None:
    for msg in SAMPLES[:8]:
        buf = bytearray(msg.encode())
        p = pos % len(buf)
        buf[p : p + len(junk)] = junk
        try:
            decode_message(bytes(buf))
        except MessageDecodeError:
            pass


@given(st.floats(allow_nan=False, allow_infinity=False, width=64), st.floats(width=64),
       st.integers(-(2**63), 2**63 - 1), st.integers(0, 2**64 - 1))
def test_gnss_and_header_property_round_trip(lat: float, lon: float, utc: int, seq: int) -> None:
    m = GnssFix(lat_deg=lat, lon_deg=lon, utc_ns=utc, seq=seq, mono_ns=0)
    back = decode_message(m.encode())
    assert _same(m, back)


def test_struct_layout_is_stable() -> None:
    # the header layout is a wire contract: changing it needs a WIRE_VERSION bump
    assert HEADER_SIZE == struct.calcsize("<2sBBIQqqB") == 33
