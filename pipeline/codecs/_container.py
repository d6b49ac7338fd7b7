"""The framing every encoded blob shares: a fixed header with magic, version, codec, counts and
the CRC32 of header and payload, then length-prefixed sections.

Header (24 bytes, little-endian)::

    magic "EAC\\x01" | version u8 | codec id u8 | flags u16 | count u32 | aux u32 |
    payload length u32 | CRC32 u32 (of the 20 header bytes before it, then the payload)

Decoding checks the magic, version, codec, the exact length and the CRC before any kernel sees a
byte, so truncation or a flipped bit is reported as :class:`CodecError` up front; the kernels
are bounds-checked anyway (a payload can be crafted with a matching CRC).
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

from pipeline.errors import CodecError, CodecIntegrityError

MAGIC = b"EAC\x01"
VERSION = 2  # 2: the quantized codec's ring order codes points per ring, not a ring per point
_HEAD = struct.Struct("<4sBBHIII")
_CRC = struct.Struct("<I")
HEADER_BYTES = _HEAD.size + _CRC.size  # 24

CODEC_IDS = {"quantized": 1, "rangeimage": 2}
CODEC_NAMES = {v: k for k, v in CODEC_IDS.items()}


@dataclass(frozen=True)
class Header:
    codec: str
    flags: int
    count: int
    aux: int
    payload_len: int


def pack(codec: str, flags: int, count: int, aux: int, payload: bytes | bytearray | memoryview) -> bytes:
    """Header + payload."""
    head = _HEAD.pack(MAGIC, VERSION, CODEC_IDS[codec], flags, count, aux, len(payload))
    crc = zlib.crc32(payload, zlib.crc32(head))
    return b"".join((head, _CRC.pack(crc), payload))


def peek(blob: bytes | bytearray | memoryview) -> Header:
    """The header of ``blob`` (checks magic, version and length, not the CRC)."""
    mv = memoryview(blob)
    if len(mv) < HEADER_BYTES:
        raise CodecError(f"encoded data too short: {len(mv)} bytes, a header alone is {HEADER_BYTES}")
    magic, version, cid, flags, count, aux, plen = _HEAD.unpack_from(mv, 0)
    if magic != MAGIC:
        raise CodecError(f"not an edge-agent codec blob (magic {bytes(magic)!r}, expected {MAGIC!r})")
    name = CODEC_NAMES.get(cid, "")
    if version != VERSION:
        raise CodecError(f"codec format version {version} is not supported (this build reads {VERSION})", name)
    if not name:
        raise CodecError(f"unknown codec id {cid}")
    have = len(mv) - HEADER_BYTES
    if have != plen:
        what = "truncated" if have < plen else "has trailing bytes"
        raise CodecError(f"{name}: encoded data {what}: header says {plen} payload bytes, found {have}", name)
    return Header(name, flags, count, aux, plen)


def unpack(blob: bytes | bytearray | memoryview, codec: str) -> tuple[Header, memoryview]:
    """Check everything in the header and the CRC; returns the header and the payload."""
    head = peek(blob)
    if head.codec != codec:
        raise CodecError(f"this is a {head.codec} blob, not {codec}", codec)
    mv = memoryview(blob)
    (expected,) = _CRC.unpack_from(mv, _HEAD.size)
    actual = zlib.crc32(mv[HEADER_BYTES:], zlib.crc32(mv[: _HEAD.size]))
    if actual != expected:
        raise CodecIntegrityError(codec, expected, actual)
    return head, mv[HEADER_BYTES:]


class Sections:
    """Length-prefixed (u32) sections, read with bounds checks."""

    def __init__(self, data: memoryview, codec: str) -> None:
        self.data = data
        self.pos = 0
        self.codec = codec

    def take(self, what: str) -> memoryview:
        if self.pos + 4 > len(self.data):
            raise CodecError(f"{self.codec}: payload ends before section {what!r}", self.codec)
        (n,) = _CRC.unpack_from(self.data, self.pos)
        self.pos += 4
        if self.pos + n > len(self.data):
            raise CodecError(f"{self.codec}: section {what!r} runs past the payload", self.codec)
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def end(self) -> None:
        if self.pos != len(self.data):
            raise CodecError(f"{self.codec}: {len(self.data) - self.pos} unread bytes after the last section",
                             self.codec)


def sections(*parts: bytes | bytearray | memoryview) -> bytes:
    """Concatenate parts, each with its u32 length."""
    out = []
    for p in parts:
        out.append(_CRC.pack(len(p)))
        out.append(bytes(p))
    return b"".join(out)


def zpack(data: bytes | bytearray | memoryview, level: int = 3) -> bytes:
    """zstd-compress a side section."""
    import zstandard

    return zstandard.ZstdCompressor(level=level).compress(bytes(data))


def zunpack(data: bytes | bytearray | memoryview, limit: int, codec: str, what: str) -> bytes:
    """Decompress a side section of at most ``limit`` bytes, or raise :class:`CodecError`."""
    import io

    import zstandard

    # a streaming read bounds the output: decompress() would trust the frame's own content
    # size and allocate it, whatever a corrupt header says
    try:
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bytes(data))) as reader:
            out = reader.read(limit + 1)
            if len(out) <= limit and len(data) and reader.read(1):
                out += b"?"
    except zstandard.ZstdError as err:
        raise CodecError(f"{codec}: {what} section does not decompress ({err})", codec) from None
    if len(out) > limit:
        raise CodecError(f"{codec}: {what} section decompresses past its {limit}-byte bound", codec)
    return out
