"""BridgeCore on frames that lost pieces: whatever the chunking and whichever frames are
lost or surrounded by noise, the NMEA published is exactly the sentences that arrived whole."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from agent.bus import NmeaSentence
from firmware_bridge.bridge import BridgeCore
from firmware_bridge.link import FrameDecoder
from firmware_bridge.records import GnssBytes, ImuSample, encode_frame
from firmware_bridge.simulator import nmea_cycles
from tests._fixtures import fixture_file

_CACHE: dict[str, bytes] = {}


def _log_bytes() -> bytes:
    if "munich" not in _CACHE:
        _CACHE["munich"] = b"".join(data for _, data in nmea_cycles(fixture_file("gnss/munich_drive_2014.nmea"))[:8])
    return _CACHE["munich"]


@given(sizes=st.lists(st.integers(4, 120), min_size=1, max_size=20), lost=st.sets(st.integers(0, 120), max_size=12),
       noisy=st.sets(st.integers(0, 120), max_size=12), imu_every=st.integers(2, 9))
@settings(max_examples=80, deadline=None)
def test_published_nmea_is_exactly_what_arrived_whole(sizes, lost, noisy, imu_every) -> None:
    data = _log_bytes()
    wire = bytearray()
    arrived = bytearray()
    pos = seq = k = 0
    while pos < len(data):
        chunk = data[pos : pos + sizes[k % len(sizes)]]
        frame = encode_frame(GnssBytes(pos, chunk), seq, 1000 * seq)
        if k in lost:
            frame = frame[: len(frame) // 2]  # cut short: a CRC or COBS error
            arrived += b"\x00" * len(chunk)
        else:
            arrived += b"\x01" * len(chunk)
        wire += frame
        if k in noisy:
            wire += b"\x00noise\xff\x00"
        if k % imu_every == 0:  # other traffic in between, so losses are not all GNSS
            seq += 1
            wire += encode_frame(ImuSample((0.0, 0.0, 0.0), (0.0, 0.0, 9.75), 20.0), seq, 1000 * seq)
        pos += len(chunk)
        seq += 1
        k += 1
    dec = FrameDecoder()
    core = BridgeCore()
    got = []
    for i in range(0, len(wire), 512):
        for item in dec.feed(bytes(wire[i : i + 512])):
            got += [m.text for m in core.handle(item, 0) if isinstance(m, NmeaSentence)]
    expected, start = [], 0
    while (end := data.find(b"\n", start)) >= 0:
        if all(arrived[start : end + 1]):
            expected.append(data[start:end].strip(b"\r").decode())
        start = end + 1
    assert got == expected
    # Losses are counted from the offsets, except before the first and after the last chunk
    # that arrived (nothing around them tells of those).
    first, last = arrived.find(b"\x01"), arrived.rfind(b"\x01")
    inner = arrived[first : last + 1] if first >= 0 else b""
    assert core.stats.gnss_bytes_lost == inner.count(0)
