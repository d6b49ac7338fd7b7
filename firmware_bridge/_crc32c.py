"""CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), as used by iSCSI and SCTP.

A table-driven pure-Python implementation is always here (the reference and the fallback);
``crc32c`` uses the ``crc32c`` package (hardware SSE4.2/ARMv8 CRC where the CPU has it)
when it is installed. Check value: ``crc32c(b"123456789") == 0xE3069283``.
"""

from __future__ import annotations

from collections.abc import Callable

POLY_REFLECTED = 0x82F63B78
CHECK_VALUE = 0xE3069283  # CRC-32C of b"123456789"


def _make_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ POLY_REFLECTED if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


TABLE = _make_table()


def crc32c_py(data: bytes | bytearray | memoryview, crc: int = 0) -> int:
    """CRC-32C of ``data``, continuing from ``crc`` (0 to start); table-driven, one byte a step."""
    table = TABLE
    crc ^= 0xFFFFFFFF
    for b in bytes(data):
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _pick() -> tuple[Callable[..., int], str]:
    try:
        import crc32c as _ext  # type: ignore[import-not-found]
    except ImportError:
        return crc32c_py, "python-table"
    if _ext.crc32c(b"123456789") != CHECK_VALUE:  # never trust a build we have not checked
        return crc32c_py, "python-table"
    return _ext.crc32c, "crc32c-package"


crc32c, IMPLEMENTATION = _pick()

__all__ = ["CHECK_VALUE", "IMPLEMENTATION", "crc32c", "crc32c_py"]
