"""Deterministic CBOR (RFC 8949 section 4.2.1, core deterministic encoding).

cbor2's ``canonical=True`` sorts map keys length-first (the older RFC 7049 rule); RFC 8949
sorts by the bytewise order of the encoded keys. Scalars are encoded by cbor2 in its
canonical (shortest) form; maps and arrays are assembled here with definite lengths.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cbor2

from agent.errors import ProvenanceError


def _head(major: int, n: int) -> bytes:
    if n < 24:
        return bytes([(major << 5) | n])
    for info, size in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * size):
            return bytes([(major << 5) | info]) + n.to_bytes(size, "big")
    raise ProvenanceError("CBOR length too large")


def dumps(obj: Any) -> bytes:
    """Core deterministic encoding of ``obj`` (dict, list/tuple, int, bytes, str, float, bool, None)."""
    t = type(obj)  # exact-type fast paths first (headers are small: per-call overhead dominates)
    if t is bytes:
        return _head(2, len(obj)) + obj
    if t is str:
        b = obj.encode("utf-8")
        return _head(3, len(b)) + b
    if t is int and -(1 << 64) <= obj < (1 << 64):
        return _head(0, obj) if obj >= 0 else _head(1, -1 - obj)
    if t is dict:
        items = sorted((dumps(k), dumps(v)) for k, v in obj.items())
        return _head(5, len(items)) + b"".join(k + v for k, v in items)
    if t is list or t is tuple:
        return _head(4, len(obj)) + b"".join([dumps(x) for x in obj])
    if isinstance(obj, Mapping):
        items = sorted((dumps(k), dumps(v)) for k, v in obj.items())
        return _head(5, len(items)) + b"".join(k + v for k, v in items)
    if isinstance(obj, (list, tuple)):
        return _head(4, len(obj)) + b"".join(dumps(x) for x in obj)
    if isinstance(obj, cbor2.CBORTag):
        return _head(6, obj.tag) + dumps(obj.value)
    if isinstance(obj, (bool, int, float, str, bytes, type(None))):
        return cbor2.dumps(obj, canonical=True)
    raise ProvenanceError(f"cannot encode {type(obj).__name__} in a canonical header")


def loads_strict(data: bytes) -> Any:
    """Decode and require that ``data`` is exactly the deterministic encoding of its value."""
    try:
        obj = cbor2.loads(data)
    except Exception as exc:  # cbor2 raises several types on bad input
        raise ProvenanceError(f"not CBOR: {exc}") from None
    if dumps(obj) != data:
        raise ProvenanceError("CBOR is not in deterministic encoding (or has trailing bytes)")
    return obj
