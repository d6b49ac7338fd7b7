"""Corrupt or truncated encoded data: always a CodecError, never a crash, a hang or garbage."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.codecs import codec_of
from pipeline.codecs._container import HEADER_BYTES, VERSION, pack
from pipeline.codecs.quantized import QuantizedCodec
from pipeline.codecs.rangeimage import RangeImageCodec, velodyne_layout
from pipeline.errors import CodecError, CodecIntegrityError
from sensors.packets import Packet


def _small_cloud_blob() -> tuple[QuantizedCodec, bytes]:
    rng = np.random.default_rng(5)
    n = 40
    ang = np.linspace(0, 2 * np.pi, n, endpoint=False)
    xyz = np.stack([10 * np.cos(ang), 10 * np.sin(ang), rng.normal(0, 0.1, n)], axis=1)
    codec = QuantizedCodec(step=0.01)
    attrs = {"ring": np.arange(n) % 4, "intensity": rng.integers(0, 255, n).astype(np.float32)}
    return codec, codec.encode(xyz, attrs)


def _small_packet_blob() -> tuple[RangeImageCodec, bytes]:
    rng = np.random.default_rng(6)
    pk = bytearray(rng.integers(0, 256, 1206, dtype=np.uint8).tobytes())
    for b in range(12):
        pk[b * 100 : b * 100 + 2] = b"\xff\xee"
        pk[b * 100 + 2 : b * 100 + 4] = struct.pack("<H", 100 + 20 * b)
    codec = RangeImageCodec()
    return codec, codec.encode([Packet(1.0, 2368, bytes(pk)), Packet(2.0, 8308, b"pos")], velodyne_layout("VLP-16"))


CASES = {"quantized": _small_cloud_blob, "rangeimage": _small_packet_blob}


@pytest.mark.parametrize("name", sorted(CASES))
def test_truncation_at_every_byte(name):
    codec, blob = CASES[name]()
    codec.decode(blob)  # the intact blob decodes
    for cut in range(len(blob)):
        with pytest.raises(CodecError):
            codec.decode(blob[:cut])


@pytest.mark.parametrize("name", sorted(CASES))
def test_flipping_any_single_bit_is_caught(name):
    codec, blob = CASES[name]()
    for pos in range(len(blob)):
        bad = bytearray(blob)
        bad[pos] ^= 1 << (pos % 8)
        with pytest.raises(CodecError):
            codec.decode(bytes(bad))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(CASES)), st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)),
                                                 min_size=1, max_size=8))
def test_random_byte_flips(name, flips):
    codec, blob = CASES[name]()
    bad = bytearray(blob)
    for pos, x in flips:
        bad[pos % len(bad)] ^= x
    if bytes(bad) == blob:  # the flips cancelled out
        codec.decode(bytes(bad))
        return
    with pytest.raises(CodecError):
        codec.decode(bytes(bad))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(CASES)), st.integers(0, 2**32 - 1), st.integers(1, 8))
def test_corrupt_payload_with_a_valid_crc(name, seed, nflips):
    """Flips behind a recomputed CRC reach the section parser and the kernels: they must still
    end in CodecError (or, rarely, decode to something), never crash or hang."""
    codec, blob = CASES[name]()
    rng = np.random.default_rng(seed)
    payload = bytearray(blob[HEADER_BYTES:])
    for _ in range(nflips):
        payload[rng.integers(0, len(payload))] ^= int(rng.integers(1, 256))
    cid, flags, count, aux = blob[5], *struct.unpack_from("<HII", blob, 6)
    forged = pack(codec.name, flags, count, aux, bytes(payload))
    assert forged[4:6] == bytes([VERSION, cid])
    try:
        codec.decode(forged)
    except CodecError:
        pass


def test_messages_say_what_is_wrong():
    codec, blob = _small_cloud_blob()
    with pytest.raises(CodecError, match="too short"):
        codec.decode(blob[:10])
    with pytest.raises(CodecError, match="not an edge-agent codec blob"):
        codec.decode(b"XXXX" + blob[4:])
    with pytest.raises(CodecError, match="truncated: header says"):
        codec.decode(blob[:-1])
    with pytest.raises(CodecError, match="trailing bytes"):
        codec.decode(blob + b"\0")
    with pytest.raises(CodecError, match="version 9"):
        codec.decode(blob[:4] + b"\x09" + blob[5:])
    bad = bytearray(blob)
    bad[-1] ^= 0xFF
    with pytest.raises(CodecIntegrityError, match="CRC32 mismatch") as info:
        codec.decode(bytes(bad))
    assert info.value.expected != info.value.actual
    _, other = _small_packet_blob()
    with pytest.raises(CodecError, match="rangeimage blob, not quantized"):
        codec.decode(other)
    assert codec_of(other) == "rangeimage"
    assert zlib.crc32(blob[HEADER_BYTES:]) != 0
