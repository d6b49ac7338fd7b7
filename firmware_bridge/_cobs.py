"""Consistent Overhead Byte Stuffing (Cheshire and Baker, 1999).

``encode`` turns any bytes into bytes free of 0x00 (overhead at most 1 byte per 254 plus 1),
so 0x00 can delimit frames on the wire. Both directions work block by block with slicing
(``bytes.find``/``split``), not byte by byte, which keeps them fast in pure Python.
"""

from __future__ import annotations


class COBSError(ValueError):
    """Input is not a valid COBS encoding."""


def encode(data: bytes | bytearray | memoryview) -> bytes:
    """COBS-encode ``data``; the result contains no 0x00 byte (the delimiter is not added)."""
    out = bytearray()
    parts = bytes(data).split(b"\x00")
    last = len(parts) - 1
    for k, part in enumerate(parts):
        # Each zero-free run becomes blocks of at most 254 bytes; a full block carries code
        # 0xFF, which implies no zero after it.
        while len(part) >= 254:
            out.append(0xFF)
            out += part[:254]
            part = part[254:]
            if not part and k == last:
                return bytes(out)  # canonical: no empty block after a final full one
        out.append(len(part) + 1)
        out += part
    return bytes(out)


def decode(data: bytes | bytearray | memoryview) -> bytes:
    """Decode one COBS block sequence (without the delimiter); raise :class:`COBSError` if invalid."""
    src = bytes(data)
    n = len(src)
    if n == 0:
        raise COBSError("empty input")
    if 0 in src:  # one C-speed scan instead of a check per block
        raise COBSError(f"zero byte at offset {src.index(0)}")
    # Blocks are the runs between the zeros the encoding removed, except that a full block
    # (code 0xFF) continues into the next one: collect runs, join them with zeros.
    runs: list[bytes] = []
    continued = False
    i = 0
    while i < n:
        code = src[i]
        end = i + code
        if end > n:
            raise COBSError(f"block at offset {i} runs past the end ({code - 1} bytes wanted, {n - i - 1} left)")
        if continued:
            runs[-1] += src[i + 1 : end]
        else:
            runs.append(src[i + 1 : end])
        continued = code == 0xFF
        i = end
    return b"\x00".join(runs)


__all__ = ["COBSError", "decode", "encode"]
