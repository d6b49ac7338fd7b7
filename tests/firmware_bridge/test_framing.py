"""COBS and CRC-32C: test vectors, the reference implementations, round trips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_bridge import _cobs
from firmware_bridge._crc32c import CHECK_VALUE, IMPLEMENTATION, crc32c, crc32c_py


def test_crc32c_check_value_both_implementations() -> None:
    assert crc32c_py(b"123456789") == 0xE3069283 == CHECK_VALUE
    assert crc32c(b"123456789") == 0xE3069283
    assert IMPLEMENTATION in ("crc32c-package", "python-table")


def test_crc32c_known_vectors() -> None:
    # RFC 3720 appendix B.4: 32 bytes of zeros, of 0xFF, and ascending 0..31.
    assert crc32c_py(bytes(32)) == 0x8A9136AA
    assert crc32c_py(b"\xff" * 32) == 0x62A8AB43
    assert crc32c_py(bytes(range(32))) == 0x46DD794E
    assert crc32c_py(b"") == 0


@given(st.binary(max_size=2048), st.integers(0, 2048))
@settings(max_examples=200, deadline=None)
def test_crc32c_python_matches_package_and_continues(data: bytes, cut: int) -> None:
    cut = min(cut, len(data))
    assert crc32c_py(data) == crc32c(data)
    assert crc32c_py(data[cut:], crc32c_py(data[:cut])) == crc32c_py(data)


@given(st.binary(max_size=3000))
@settings(max_examples=300, deadline=None)
def test_cobs_round_trip_and_no_zero(data: bytes) -> None:
    enc = _cobs.encode(data)
    assert 0 not in enc
    assert len(enc) <= len(data) + len(data) // 254 + 1
    assert _cobs.decode(enc) == data


@given(st.lists(st.sampled_from([b"\x00", b"\x01", b"\xff", b"a" * 253, b"b" * 254, b"c" * 255]), max_size=12))
@settings(max_examples=200, deadline=None)
def test_cobs_block_boundaries_match_reference(parts: list[bytes]) -> None:
    from cobs import cobs as ref

    data = b"".join(parts)
    assert _cobs.encode(data) == ref.encode(data)
    assert _cobs.decode(ref.encode(data)) == data


@pytest.mark.parametrize(("bad", "why"), [
    (b"", "empty"),
    (b"\x05ab", "runs past the end"),
    (b"\x03a\x00", "zero byte at offset 2"),
    (b"\x00", "zero byte at offset 0"),
])
def test_cobs_decode_rejects(bad: bytes, why: str) -> None:
    with pytest.raises(_cobs.COBSError, match=why):
        _cobs.decode(bad)
