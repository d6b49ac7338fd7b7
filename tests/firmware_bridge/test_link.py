"""The frame decoder: any chunking gives the same frames; corruption costs only the frames
it touches, is counted, and never yields a frame that was not sent."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge.errors import FrameCRCError, FrameError
from firmware_bridge.link import FrameDecoder
from firmware_bridge.records import (
    MAX_ENCODED,
    Boot,
    Frame,
    GnssBytes,
    ImuSample,
    Pps,
    ResetReason,
    encode_frame,
)


def _frames(n: int, seed: int = 1) -> list[tuple[object, int, int]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        kind = i % 3
        if kind == 0:
            rec = GnssBytes(i * 100, bytes(rng.randrange(256) for _ in range(rng.randint(1, 80))))
        elif kind == 1:
            rec = ImuSample((i * 0.5, -1.0, 2.0), (0.0, 0.25, 9.75), 30.0)
        else:
            rec = Pps(1_000_000 * i, i)
        out.append((rec, i & 0xFFFF, 1000 * i))
    return out


def _wires(frames) -> list[bytes]:
    return [encode_frame(r, s, t) for r, s, t in frames]


def _decode(data: bytes, chunk: int = 97) -> tuple[list[Frame], list[FrameError], FrameDecoder]:
    dec = FrameDecoder()
    items = []
    for i in range(0, len(data), chunk):
        items += dec.feed(data[i : i + chunk])
    return ([x for x in items if isinstance(x, Frame)], [x for x in items if isinstance(x, FrameError)], dec)


def _key(f: Frame) -> tuple:
    return (f.record, f.seq, f.tick)


@given(st.lists(st.integers(1, 500), min_size=1, max_size=40))
@settings(max_examples=60, deadline=None)
def test_any_chunking_gives_the_same_frames(cuts: list[int]) -> None:
    frames = _frames(30)
    data = b"".join(_wires(frames))
    dec = FrameDecoder()
    got, pos, i = [], 0, 0
    while pos < len(data):
        n = cuts[i % len(cuts)]
        got += dec.feed(data[pos : pos + n])
        pos += n
        i += 1
    assert [_key(f) for f in got] == [(r, s, t) for r, s, t in frames]
    assert dec.stats.frames_ok == 30 and dec.stats.crc_errors == dec.stats.decode_errors == 0
    assert dec.stats.bytes_in == len(data) and dec.stats.bytes_discarded == 0


def _flip(w: bytes, rng: random.Random) -> bytes:
    if len(w) < 3:
        return w
    i = rng.randrange(1, len(w) - 1)
    return w[:i] + bytes([w[i] ^ (1 << rng.randrange(8))]) + w[i + 1 :]


def _drop(w: bytes, rng: random.Random) -> bytes:
    if len(w) < 3:
        return w
    i = rng.randrange(1, len(w) - 1)
    return w[:i] + w[i + 1 :]


def _truncate(w: bytes, rng: random.Random) -> bytes:
    if len(w) < 4:
        return w[:1]
    return w[: rng.randrange(2, len(w) - 1)]


def _garbage(w: bytes, rng: random.Random) -> bytes:
    return w + bytes(rng.randrange(256) for _ in range(rng.randint(1, 40)))


@pytest.mark.parametrize("fault", [_flip, _drop, _truncate])
def test_one_damaged_frame_is_lost_and_counted_and_the_next_decodes(fault) -> None:
    rng = random.Random(7)
    frames = _frames(20)
    wires = _wires(frames)
    wires[10] = fault(wires[10], rng)
    got, errors, dec = _decode(b"".join(wires))
    expected = [(r, s, t) for i, (r, s, t) in enumerate(frames) if i != 10]
    assert [_key(f) for f in got] == expected  # frame 11 decodes: resynchronised within one frame
    assert len(errors) >= 1 and dec.stats.crc_errors + dec.stats.decode_errors == len(errors)
    assert dec.stats.resyncs == 1
    assert dec.stats.bytes_discarded > 0
    assert dec.stats.seq_gaps == 1 and dec.stats.frames_missing == 1


def test_bit_flip_is_a_crc_error_with_both_values() -> None:
    frames = _frames(3)
    wires = _wires(frames)
    w = bytearray(wires[1])
    w[len(w) // 2] ^= 0x01 if w[len(w) // 2] not in (0x01,) else 0x02  # stays non-zero: CRC, not COBS
    wires[1] = bytes(w)
    got, errors, dec = _decode(b"".join(wires))
    assert len(got) == 2
    assert any(isinstance(e, FrameCRCError) and e.expected != e.actual for e in errors) or dec.stats.decode_errors == 1


def test_garbage_between_frames_loses_no_frame() -> None:
    rng = random.Random(3)
    frames = _frames(20)
    wires = [_garbage(w, rng) if i % 4 == 0 else w for i, w in enumerate(_wires(frames))]
    got, errors, dec = _decode(b"".join(wires))
    assert [_key(f) for f in got] == [(r, s, t) for r, s, t in frames]
    assert dec.stats.frames_missing == 0 and dec.stats.bytes_discarded > 0 and errors


def test_mcu_reset_mid_frame() -> None:
    frames = _frames(10)
    wires = _wires(frames)
    # The MCU dies halfway through frame 5, boots (a lone 0x00, then BOOT with seq 0) and goes on.
    boot = encode_frame(Boot((1, 0, 0), ResetReason.WATCHDOG), 0, 0)
    after = _frames(4, seed=9)
    data = b"".join(wires[:5]) + wires[5][: len(wires[5]) // 2] + b"\x00" + boot + b"".join(
        encode_frame(r, s + 1, t) for r, s, t in after)
    got, errors, dec = _decode(data, chunk=31)
    keys = [_key(f) for f in got]
    assert keys[:5] == [(r, s, t) for r, s, t in frames[:5]]
    assert isinstance(got[5].record, Boot)
    assert keys[6:] == [(r, s + 1, t) for r, s, t in after]
    assert len(errors) == 1 and dec.stats.resyncs == 1
    assert dec.stats.mcu_boots == 1 and dec.stats.seq_gaps == 0  # the boot restarts numbering


def test_joining_mid_frame_is_not_an_error() -> None:
    wires = _wires(_frames(5))
    data = b"".join(wires)[7:]
    got, errors, dec = _decode(data)
    assert len(got) == 4 and not errors
    assert dec.stats.crc_errors == dec.stats.decode_errors == 0 and dec.stats.bytes_discarded > 0


def test_runaway_bytes_without_delimiter_are_discarded() -> None:
    wires = _wires(_frames(4))
    noise = bytes(random.Random(5).randrange(1, 256) for _ in range(3 * MAX_ENCODED))
    got, _, dec = _decode(wires[0] + wires[1] + noise + wires[2] + wires[3], chunk=256)
    assert len(got) == 4  # wire 2's opening delimiter ends the noise: nothing sent is lost
    assert dec.stats.decode_errors >= 1 and dec.stats.bytes_discarded >= 3 * MAX_ENCODED
    assert len(dec._tail) <= MAX_ENCODED  # memory stays bounded


FAULTS = [_flip, _drop, _truncate, _garbage]


@given(st.lists(st.tuples(st.integers(0, 59), st.integers(0, 3)), max_size=15), st.integers(0, 2**32 - 1),
       st.integers(1, 300))
@settings(max_examples=300, deadline=None)
def test_random_corruption_never_yields_a_frame_that_was_not_sent(hits, seed, chunk) -> None:
    rng = random.Random(seed)
    frames = _frames(60, seed=seed % 1000)
    original = _wires(frames)
    wires = list(original)
    for idx, f in hits:
        wires[idx] = FAULTS[f](wires[idx], rng)
    # A frame survives exactly when its delimited bytes are still there unchanged (garbage
    # after it, or flips that cancel, leave it whole); the next frame's own opening 0x00
    # (faults never touch a wire's first byte) protects it and can stand in for its closing one.
    last = len(frames) - 1
    whole = [i for i in range(len(frames)) if original[i] in wires[i] + (b"\x00" if i < last else b"")]
    got, _, dec = _decode(b"".join(wires), chunk=chunk)
    sent = [(r, s, t) for r, s, t in frames]
    assert [_key(f) for f in got] == [sent[i] for i in whole]
    assert dec.stats.frames_ok == len(got)
    if any(w.strip(b"\x00") for i, w in enumerate(wires) if i not in whole and i < last):
        # A damaged frame that left any bytes on the wire is counted as an error (one cut
        # down to its delimiter leaves nothing to count: the sequence gap tells of it; the
        # last frame's bytes, with no delimiter after them, wait for one and are not judged).
        assert dec.stats.crc_errors + dec.stats.decode_errors >= 1
    if whole:  # the sequence numbers tell of every loss between the first and last frame decoded
        lost_between = sum(1 for i in range(whole[0], whole[-1]) if i not in whole)
        assert dec.stats.frames_missing == lost_between
