"""The chunk: a COSE_Sign1 over a canonical CBOR header, the payload detached beside it.

Header (a CBOR map, text keys, RFC 8949 deterministic encoding)::

    v        1
    device   device id ("edge-" + 16 hex)          key     Ed25519 public key (32 bytes)
    stream   stream name                            sensor  sensor name / model
    t        [start_ns, end_ns] UTC nanoseconds
    tile     tile id (text) or null                 bbox    [min_lon, min_lat, max_lon, max_lat] or null
    counts   {name: int}  (packets, points, lines, ...)
    codec    {"name": text, "params": map}
    payload  {"sha256": 32 bytes, "size": int}
    seq      sequence number in the stream (0, 1, 2, ...)
    prev     SHA-256 of the previous chunk's COSE bytes in the stream (genesis: 32 zero bytes)

chunk id = hex SHA-256 of the COSE_Sign1 bytes. On disk: ``<id>.cose`` (the COSE_Sign1) and
``<id>.bin`` (the payload); or, attached, ``<id>.chunk`` = the CBOR sequence (RFC 8742)
COSE_Sign1 followed by the payload as one byte string.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from agent.errors import ProvenanceError
from agent.keys._keys import Signer, device_id_for
from agent.provenance import _cbor, _cose

CHUNK_CTY = "application/vnd.edge-agent.chunk+cbor"
GENESIS = bytes(32)
VERSION = 1


@dataclass(frozen=True)
class ChunkSpec:
    """What a producer hands in to become a chunk (before sequencing and signing)."""

    stream: str
    sensor: str
    t_start_ns: int
    t_end_ns: int
    payload: bytes
    codec: str = "raw"
    codec_params: dict[str, Any] = field(default_factory=dict)
    tile: str | None = None
    bbox: tuple[float, float, float, float] | None = None
    counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ChunkHeader:
    device: str
    key: bytes
    stream: str
    sensor: str
    t_start_ns: int
    t_end_ns: int
    tile: str | None
    bbox: tuple[float, float, float, float] | None
    counts: dict[str, int]
    codec: str
    codec_params: dict[str, Any]
    payload_sha256: bytes
    payload_size: int
    seq: int
    prev: bytes

    def to_map(self) -> dict[str, Any]:
        return {
            "v": VERSION,
            "device": self.device,
            "key": self.key,
            "stream": self.stream,
            "sensor": self.sensor,
            "t": [self.t_start_ns, self.t_end_ns],
            "tile": self.tile,
            "bbox": list(self.bbox) if self.bbox is not None else None,
            "counts": dict(self.counts),
            "codec": {"name": self.codec, "params": dict(self.codec_params)},
            "payload": {"sha256": self.payload_sha256, "size": self.payload_size},
            "seq": self.seq,
            "prev": self.prev,
        }

    def encode(self) -> bytes:
        return _cbor.dumps(self.to_map())

    @classmethod
    def from_map(cls, m: Any) -> ChunkHeader:
        try:
            if not isinstance(m, Mapping) or m.get("v") != VERSION:
                raise ValueError("not a version 1 chunk header")
            expected = {"v", "device", "key", "stream", "sensor", "t", "tile", "bbox", "counts", "codec",
                        "payload", "seq", "prev"}
            if set(m) != expected:
                raise ValueError(f"fields {sorted(set(m) ^ expected)} unexpected or missing")
            t0, t1 = m["t"]
            bbox = m["bbox"]
            if bbox is not None:
                bbox = tuple(float(x) for x in bbox)
                if len(bbox) != 4:
                    raise ValueError("bbox has 4 numbers")
            h = cls(
                device=_typed(m["device"], str), key=_typed(m["key"], bytes), stream=_typed(m["stream"], str),
                sensor=_typed(m["sensor"], str), t_start_ns=_typed(t0, int), t_end_ns=_typed(t1, int),
                tile=m["tile"] if m["tile"] is None else _typed(m["tile"], str), bbox=bbox,
                counts=dict(_typed(m["counts"], Mapping)), codec=_typed(m["codec"]["name"], str),
                codec_params=dict(_typed(m["codec"]["params"], Mapping)),
                payload_sha256=_typed(m["payload"]["sha256"], bytes), payload_size=_typed(m["payload"]["size"], int),
                seq=_typed(m["seq"], int), prev=_typed(m["prev"], bytes),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProvenanceError(f"malformed chunk header: {exc}") from None
        if len(h.key) != 32 or len(h.prev) != 32 or len(h.payload_sha256) != 32 or h.seq < 0:
            raise ProvenanceError("malformed chunk header: bad key, prev or sha256 length, or negative seq")
        return h


def _typed(value: Any, kind: type) -> Any:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{value!r} is not {kind.__name__}")
    return value


@dataclass(frozen=True)
class SignedChunk:
    """A chunk as stored: COSE bytes, its parsed header, and the payload when at hand."""

    cose: bytes
    header: ChunkHeader
    payload: bytes | None = None

    @property
    def id_bytes(self) -> bytes:
        return hashlib.sha256(self.cose).digest()

    @property
    def id(self) -> str:
        return hashlib.sha256(self.cose).hexdigest()

    def attached(self) -> bytes:
        """The attached form: CBOR sequence of the COSE_Sign1 and the payload byte string."""
        if self.payload is None:
            raise ProvenanceError("payload not at hand")
        return self.cose + _cbor.dumps(self.payload)


def check_spec(spec: ChunkSpec) -> None:
    if spec.t_end_ns < spec.t_start_ns:
        raise ProvenanceError(f"chunk time range ends before it starts ({spec.t_start_ns} > {spec.t_end_ns})")
    if spec.bbox is not None and (len(spec.bbox) != 4 or not all(math.isfinite(x) for x in spec.bbox)):
        raise ProvenanceError("bbox must be 4 finite numbers [min_lon, min_lat, max_lon, max_lat]")
    if not spec.stream or not spec.sensor:
        raise ProvenanceError("stream and sensor must be named")


def build_chunk(signer: Signer, spec: ChunkSpec, seq: int, prev: bytes) -> SignedChunk:
    """Sequence, hash and sign one chunk."""
    check_spec(spec)
    if len(prev) != 32:
        raise ProvenanceError("prev must be a 32-byte SHA-256")
    header = ChunkHeader(
        device=signer.key_id, key=signer.public_key, stream=spec.stream, sensor=spec.sensor,
        t_start_ns=int(spec.t_start_ns), t_end_ns=int(spec.t_end_ns), tile=spec.tile,
        bbox=tuple(float(x) for x in spec.bbox) if spec.bbox is not None else None,  # type: ignore[arg-type]
        counts={str(k): int(v) for k, v in spec.counts.items()}, codec=spec.codec,
        codec_params=dict(spec.codec_params), payload_sha256=hashlib.sha256(spec.payload).digest(),
        payload_size=len(spec.payload), seq=seq, prev=prev,
    )
    cose = _cose.sign1(signer, header.encode(), CHUNK_CTY)
    return SignedChunk(cose, header, spec.payload)


def parse_chunk(cose: bytes) -> tuple[_cose.Sign1, ChunkHeader]:
    """Parse (not verify) a chunk's COSE bytes."""
    msg = _cose.parse1(cose)
    if msg.content_type != CHUNK_CTY:
        raise ProvenanceError(f"not a chunk (content type {msg.content_type!r})")
    header = ChunkHeader.from_map(_cbor.loads_strict(msg.payload))
    return msg, header


def split_attached(data: bytes) -> tuple[bytes, bytes]:
    """Split an attached chunk file into (COSE bytes, payload)."""
    import io

    import cbor2

    buf = io.BytesIO(data)
    try:
        dec = cbor2.CBORDecoder(buf)
        dec.decode()
        cut = buf.tell()
        payload = dec.decode()
    except Exception as exc:
        raise ProvenanceError(f"not an attached chunk: {exc}") from None
    if not isinstance(payload, bytes) or buf.tell() != len(data) or data[cut:] != _cbor.dumps(payload):
        raise ProvenanceError("not an attached chunk: trailing data or payload not one byte string")
    return data[:cut], payload


def verify_chunk(cose: bytes, payload: bytes | None, public_key: bytes | None = None) -> list[str]:
    """Check one chunk on its own: structure, signature (by ``public_key`` when given,
    else by the key in its header, which must match its kid), payload hash and size.
    Returns the reasons it fails (empty when it holds)."""
    try:
        msg, header = parse_chunk(cose)
    except ProvenanceError as exc:
        return [str(exc)]
    reasons = []
    if device_id_for(header.key) != header.device or msg.kid != header.device:
        reasons.append(f"kid {msg.kid!r} / device {header.device!r} do not match the header key")
    if public_key is not None and header.key != public_key:
        reasons.append(f"signed by another device key ({device_id_for(header.key)}, expected {device_id_for(public_key)})")
    if not _cose.verify1(msg, header.key):  # the key it claims; a foreign key is named above
        reasons.append("bad signature")
    if payload is None:
        reasons.append("payload missing")
    else:
        if len(payload) != header.payload_size:
            reasons.append(f"payload size {len(payload)} != {header.payload_size} in the header")
        if hashlib.sha256(payload).digest() != header.payload_sha256:
            reasons.append("payload SHA-256 does not match the header")
    return reasons
