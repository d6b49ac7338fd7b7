"""Datasets: a drive session's Flows under one signed manifest.

Directory layout (what ``edge-agent verify DIR`` reads)::

    <dataset>/
      manifest.cose        COSE_Sign1 of the dataset manifest (below)
      coverage.geojson     the coverage, same as in the manifest (for map tools)
      config.json          the effective agent configuration (its hash is in every Flow)
                           (both JSON files in canonical form: sorted keys, no spaces)
      flows/<flow_id>.cose     every Flow of the session
      chunks/<chunk_id>.cose   every chunk of those Flows
      chunks/<chunk_id>.bin    their payloads (detached)

Manifest (deterministic CBOR)::

    v, device, key, evm_address, session (name), reason ("explicit" | "ignition_off" | "window"),
    started_ns, ended_ns, sealed_ns,
    flows        [[flow id, flow root], ...] in Flow order
    root         Merkle root over the flow roots (RFC 6962, leaf = SHA-256(0x00 || root))
    coverage     GeoJSON FeatureCollection: one Polygon per tile (union of its chunks' bboxes)
    statistics   {"chunks", "flows", "payload_bytes", "t": [min, max], "streams": {...}}
    usage_terms  from configuration (license, quota, ...)
    agent_version, config_hash

Dataset id = hex SHA-256 of manifest.cose.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import ProvenanceError
from agent.keys._keys import Signer
from agent.provenance import _cbor, _cose
from agent.provenance._chunk import ChunkHeader
from agent.provenance._merkle import merkle_root

DATASET_CTY = "application/vnd.edge-agent.dataset+cbor"
MANIFEST = "manifest.cose"
VERSION = 1
_KEYS = {"v", "device", "key", "evm_address", "session", "reason", "started_ns", "ended_ns", "sealed_ns", "flows",
         "root", "coverage", "statistics", "usage_terms", "agent_version", "config_hash"}


def plain(obj: Any) -> Any:
    """Decoded CBOR (frozendicts, tuples) as plain dicts and lists."""
    if isinstance(obj, Mapping):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(x) for x in obj]
    return obj


def canonical_json(obj: Any) -> bytes:
    """The exact bytes of coverage.geojson and config.json: sorted keys, no spaces
    (the form AgentConfig.digest() hashes)."""
    import json

    return json.dumps(plain(obj), sort_keys=True, separators=(",", ":")).encode()


def tile_bbox(tile: str) -> tuple[float, float, float, float] | None:
    """Bounds of a slippy-map tile id ``z/x/y`` (None for other tile schemes)."""
    import math

    parts = tile.split("/")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        return None
    z, x, y = (int(p) for p in parts)
    n = 2**z
    if x >= n or y >= n:
        return None

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return (x / n * 360.0 - 180.0, lat(y + 1), (x + 1) / n * 360.0 - 180.0, lat(y))


def coverage_geojson(headers: Iterable[ChunkHeader]) -> dict[str, Any]:
    """One Polygon feature per tile (chunks without a tile grouped by stream), from chunk
    bboxes, or from the tile's own bounds (``z/x/y``) for chunks without a bbox."""
    boxes: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for h in headers:
        box = h.bbox if h.bbox is not None else (tile_bbox(h.tile) if h.tile is not None else None)
        if box is None:
            continue
        name = h.tile if h.tile is not None else f"stream:{h.stream}"
        b = boxes.get(name)
        boxes[name] = list(box) if b is None else [min(b[0], box[0]), min(b[1], box[1]),
                                                    max(b[2], box[2]), max(b[3], box[3])]
        counts[name] = counts.get(name, 0) + 1
    features = []
    for name in sorted(boxes):
        x0, y0, x1, y1 = boxes[name]
        features.append({
            "type": "Feature",
            "properties": {"tile": name, "chunks": counts[name]},
            "geometry": {"type": "Polygon", "coordinates": [[[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]]},
        })
    out: dict[str, Any] = {"type": "FeatureCollection", "features": features}
    if boxes:
        allb = list(boxes.values())
        out["bbox"] = [min(b[0] for b in allb), min(b[1] for b in allb), max(b[2] for b in allb),
                       max(b[3] for b in allb)]
    return out


def statistics(headers: Iterable[ChunkHeader], flows: int) -> dict[str, Any]:
    streams: dict[str, dict[str, Any]] = {}
    total = n = 0
    t0 = t1 = None
    for h in headers:
        n += 1
        total += h.payload_size
        t0 = h.t_start_ns if t0 is None else min(t0, h.t_start_ns)
        t1 = h.t_end_ns if t1 is None else max(t1, h.t_end_ns)
        s = streams.setdefault(h.stream, {"sensor": h.sensor, "chunks": 0, "payload_bytes": 0, "first_seq": h.seq,
                                          "last_seq": h.seq, "counts": {}})
        s["chunks"] += 1
        s["payload_bytes"] += h.payload_size
        s["first_seq"] = min(s["first_seq"], h.seq)
        s["last_seq"] = max(s["last_seq"], h.seq)
        for k, v in h.counts.items():
            s["counts"][k] = s["counts"].get(k, 0) + v
    return {"chunks": n, "flows": flows, "payload_bytes": total, "t": [t0 or 0, t1 or 0], "streams": streams}


@dataclass(frozen=True)
class SignedDataset:
    cose: bytes
    manifest: dict[str, Any]

    @property
    def id(self) -> str:
        return hashlib.sha256(self.cose).hexdigest()


def build_dataset(signer: Signer, *, evm_address: str, session: str, reason: str, started_ns: int, ended_ns: int,
                  sealed_ns: int, flows: list[tuple[bytes, bytes]], headers: list[ChunkHeader],
                  usage_terms: dict[str, Any], agent_version: str, config_hash: str) -> SignedDataset:
    """Sign a dataset manifest over ``flows`` = [(flow id, flow root)] and their chunk headers."""
    if not flows:
        raise ProvenanceError("a dataset holds at least one Flow")
    m = {
        "v": VERSION, "device": signer.key_id, "key": signer.public_key, "evm_address": evm_address,
        "session": session, "reason": reason, "started_ns": started_ns, "ended_ns": ended_ns, "sealed_ns": sealed_ns,
        "flows": [[fid, root] for fid, root in flows], "root": merkle_root([root for _, root in flows]),
        "coverage": coverage_geojson(headers), "statistics": statistics(headers, len(flows)),
        "usage_terms": usage_terms, "agent_version": agent_version, "config_hash": config_hash,
    }
    return SignedDataset(_cose.sign1(signer, _cbor.dumps(m), DATASET_CTY), m)


def parse_dataset(cose: bytes) -> tuple[_cose.Sign1, dict[str, Any]]:
    msg = _cose.parse1(cose)
    if msg.content_type != DATASET_CTY:
        raise ProvenanceError(f"not a dataset manifest (content type {msg.content_type!r})")
    m = plain(_cbor.loads_strict(msg.payload))
    if not isinstance(m, Mapping) or set(m) != _KEYS or m["v"] != VERSION:
        raise ProvenanceError("malformed dataset manifest: fields missing or unexpected")
    try:
        ok = (isinstance(m["key"], bytes) and len(m["key"]) == 32 and isinstance(m["root"], bytes)
              and all(isinstance(f, (list, tuple)) and len(f) == 2 and all(isinstance(x, bytes) and len(x) == 32 for x in f)
                      for f in m["flows"]))
    except TypeError:
        ok = False
    if not ok:
        raise ProvenanceError("malformed dataset manifest: bad key, root or flow list")
    return msg, m
