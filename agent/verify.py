"""Verification of chunks, Flows and datasets (``edge-agent verify PATH``).

What is checked, each failure named by file and reason:

- chunk: strict COSE_Sign1 structure, EdDSA signature (by the dataset's device key, or the
  key in its header for a lone chunk, or ``public_key``), kid = device id of that key,
  file name = SHA-256 of its bytes, payload size and SHA-256;
- Flow: signature, file name = its id, Merkle root recomputed from its chunk ids, an
  inclusion proof of every chunk checked against the root, each chunk present, the chain
  of Flows (``prev_root`` = previous Flow's root, consecutive seq);
- per stream: sequence numbers and hash chain (``prev`` = id of the previous chunk):
  gaps, duplicates, broken links and reordering are named;
- dataset: manifest signature, dataset root over the Flow roots, Flow ids and roots as
  listed, coverage.geojson and config.json as recorded, files nothing lists (a chunk from
  another device dropped in, say);
- encrypted Flow (``<flow_id>.enc``): the envelope's structure and its name; with the
  recipient's X25519 private key, the AEAD (XChaCha20-Poly1305, the Flow id as associated
  data) and then everything inside as for a Flow with its chunks (failures named
  ``<file>.enc:chunks/<id>.cose`` etc.). Without that key its contents cannot be checked:
  that is a failure, not a pass.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import tempfile
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import AgentError, ProvenanceError
from agent.keys._keys import device_id_for
from agent.provenance import _cose
from agent.provenance._chunk import CHUNK_CTY, GENESIS, ChunkHeader, parse_chunk, split_attached, verify_chunk
from agent.provenance._dataset import DATASET_CTY, MANIFEST, canonical_json, parse_dataset
from agent.provenance._flow import FLOW_CTY, FlowManifest, decrypt_flow, parse_flow
from agent.provenance._merkle import all_inclusion_proofs, merkle_root, verify_inclusion


class UnreadableInput(AgentError):
    """The path is missing, unreadable, or not a chunk, Flow or dataset at all (exit 2)."""

    exit_code = 2


@dataclass
class Report:
    """Outcome of a verification: ``ok`` when nothing failed."""

    checked: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    failures: list[dict[str, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    def fail(self, file: Path | str, reason: str) -> None:
        self.failures.append({"file": str(file), "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": dict(self.checked), "failures": self.failures}


@dataclass
class _Chunk:
    id: str
    file: Path
    header: ChunkHeader | None
    flow_pos: tuple[int, int] | None = None  # (flow index, position) where listed


class _Verifier:
    def __init__(self, report: Report, base: Path) -> None:
        self.r = report
        self.base = base

    def name(self, p: Path) -> str:
        try:
            return str(p.relative_to(self.base))
        except ValueError:
            return str(p)

    # -------------------------------------------------------------- chunk
    def chunk(self, cid: str, chunks_dir: Path, key: bytes | None) -> _Chunk:
        cose_p, att_p = chunks_dir / f"{cid}.cose", chunks_dir / f"{cid}.chunk"
        if att_p.exists() and not cose_p.exists():
            return self.chunk_file(att_p, key, expect_id=cid)
        if not cose_p.exists():
            self.r.fail(self.name(cose_p), "chunk listed in a Flow is missing (dropped)")
            return _Chunk(cid, cose_p, None)
        return self.chunk_file(cose_p, key, expect_id=cid)

    def chunk_file(self, path: Path, key: bytes | None, expect_id: str | None = None) -> _Chunk:
        self.r.checked["chunks"] += 1
        data = path.read_bytes()
        payload: bytes | None
        payload_file = path
        if path.suffix == ".chunk":
            try:
                cose, payload = split_attached(data)
            except ProvenanceError as exc:
                self.r.fail(self.name(path), str(exc))
                return _Chunk(path.stem, path, None)
        else:
            cose = data
            payload_file = path.with_suffix(".bin")
            payload = payload_file.read_bytes() if payload_file.exists() else None
        cid = hashlib.sha256(cose).hexdigest()
        if expect_id is not None and cid != expect_id:
            self.r.fail(self.name(path), f"content hash {cid[:16]}... does not match its id {expect_id[:16]}... "
                                         "(modified or swapped)")
        elif expect_id is None and _looks_like_id(path.stem) and path.stem != cid:
            self.r.fail(self.name(path), "file name is not the SHA-256 of its content (modified or renamed)")
        try:
            _msg, header = parse_chunk(cose)
        except ProvenanceError as exc:
            self.r.fail(self.name(path), str(exc))
            return _Chunk(expect_id or cid, path, None)
        if payload is not None:
            self.r.checked["payloads"] += 1
        self.r.checked["signatures"] += 1
        for reason in verify_chunk(cose, payload, key):
            if reason.startswith("payload") and payload is not None and path.suffix != ".chunk":
                self.r.fail(self.name(payload_file), reason)
            elif reason == "payload missing":
                self.r.fail(self.name(payload_file), "payload file missing")
            else:
                self.r.fail(self.name(path), reason)
        return _Chunk(expect_id or cid, path, header)

    # -------------------------------------------------------------- flows
    def flow_file(self, path: Path, key: bytes | None, expect_id: str | None = None
                  ) -> tuple[FlowManifest | None, bytes | None]:
        """Parse and check one Flow file on its own: (manifest or None, the key it is signed with)."""
        self.r.checked["flows"] += 1
        data = path.read_bytes()
        fid = hashlib.sha256(data).hexdigest()
        if expect_id is not None and fid != expect_id:
            self.r.fail(self.name(path), "Flow content does not match its id in the dataset manifest")
        elif expect_id is None and _looks_like_id(path.stem) and path.stem != fid:
            self.r.fail(self.name(path), "file name is not the SHA-256 of its content (modified or renamed)")
        try:
            msg, m = parse_flow(data)
        except ProvenanceError as exc:
            self.r.fail(self.name(path), str(exc))
            return None, key
        use = key if key is not None else m.key
        self.r.checked["signatures"] += 1
        if m.key != use:
            self.r.fail(self.name(path), f"signed by another device key ({device_id_for(m.key)})")
        elif device_id_for(m.key) != m.device or msg.kid != m.device:
            self.r.fail(self.name(path), "kid / device do not match the signing key")
        elif not _cose.verify1(msg, use):
            self.r.fail(self.name(path), "bad signature")
        root, proofs = all_inclusion_proofs(m.chunk_ids)
        if root != m.root:
            self.r.fail(self.name(path), "Merkle root does not match the chunk ids")
        else:
            n = len(m.chunk_ids)
            for i, cid in enumerate(m.chunk_ids):
                self.r.checked["proofs"] += 1
                if not verify_inclusion(cid, i, n, proofs[i], m.root):
                    self.r.fail(self.name(path), f"inclusion proof of chunk {cid.hex()} fails")
        if len(set(m.chunk_ids)) != len(m.chunk_ids):
            self.r.fail(self.name(path), "a chunk id is listed twice")
        return m, use

    def flows_and_chunks(self, flows: list[tuple[Path, FlowManifest]], chunks_dir: Path, key: bytes | None,
                         all_chunk_files: bool) -> None:
        """Chunks of these Flows, the Flow chain, per-stream hash chains and unlisted chunk files."""
        seen: dict[str, _Chunk] = {}
        prev: FlowManifest | None = None
        for fi, (fpath, m) in enumerate(flows):
            if prev is not None:
                if m.seq != prev.seq + 1:
                    self.r.fail(self.name(fpath), f"Flow seq {m.seq} follows Flow seq {prev.seq} (gap or reorder)")
                if m.prev_root != prev.root:
                    self.r.fail(self.name(fpath), "prev_root is not the previous Flow's root (Flow chain broken)")
            elif m.seq == 0 and m.prev_root != GENESIS:
                self.r.fail(self.name(fpath), "first Flow of the device does not start from the genesis root")
            prev = m
            for pos, cb in enumerate(m.chunk_ids):
                cid = cb.hex()
                if cid in seen:
                    self.r.fail(self.name(fpath), f"chunk {cid} is listed in two Flows")
                    continue
                c = self.chunk(cid, chunks_dir, key)
                c.flow_pos = (fi, pos)
                seen[cid] = c
        self.chains(list(seen.values()))
        if all_chunk_files and chunks_dir.is_dir():
            for p in sorted(chunks_dir.iterdir()):
                stem = p.name.split(".", 1)[0]
                if stem in seen or p.suffix not in (".cose", ".chunk", ".bin"):
                    if p.suffix not in (".cose", ".chunk", ".bin"):
                        self.r.fail(self.name(p), "unexpected file in chunks/")
                    continue
                if p.suffix == ".bin":
                    if not (chunks_dir / f"{stem}.cose").exists():
                        self.r.fail(self.name(p), "payload of no listed chunk")
                    continue
                c = self.chunk_file(p, None)
                who = ""
                if c.header is not None and key is not None and c.header.key != key:
                    who = f"; signed by another device key ({device_id_for(c.header.key)}): replayed or foreign"
                self.r.fail(self.name(p), "chunk not listed in any Flow" + who)

    def chains(self, chunks: list[_Chunk]) -> None:
        by_stream: dict[str, list[_Chunk]] = defaultdict(list)
        for c in chunks:
            if c.header is not None:
                by_stream[c.header.stream].append(c)
        for stream, cs in sorted(by_stream.items()):
            self.r.checked["streams"] += 1
            in_seq = sorted(cs, key=lambda c: (c.header.seq, c.flow_pos))  # type: ignore[union-attr]
            first = in_seq[0]
            if first.header.seq == 0 and first.header.prev != GENESIS:  # type: ignore[union-attr]
                self.r.fail(self.name(first.file), f"stream {stream}: seq 0 does not start from the genesis hash")
            for a, b in itertools.pairwise(in_seq):
                ha, hb = a.header, b.header
                assert ha is not None and hb is not None
                if hb.seq == ha.seq:
                    self.r.fail(self.name(b.file), f"stream {stream}: seq {hb.seq} appears twice")
                elif hb.seq != ha.seq + 1:
                    missing = f"{ha.seq + 1}" if hb.seq == ha.seq + 2 else f"{ha.seq + 1}..{hb.seq - 1}"
                    self.r.fail(self.name(b.file), f"stream {stream}: gap, seq {missing} missing before seq {hb.seq}")
                elif hb.prev != bytes.fromhex(a.id):
                    self.r.fail(self.name(b.file), f"stream {stream}: seq {hb.seq} does not link to seq {ha.seq} "
                                                   "(hash chain broken)")
            order = [c for c in cs if c.flow_pos is not None]
            order.sort(key=lambda c: c.flow_pos)  # type: ignore[arg-type, return-value]
            for a, b in itertools.pairwise(order):
                if b.header.seq < a.header.seq:  # type: ignore[union-attr]
                    self.r.fail(self.name(b.file), f"stream {stream}: seq {b.header.seq} listed after seq "  # type: ignore[union-attr]
                                                   f"{a.header.seq} (reordered)")  # type: ignore[union-attr]

    # -------------------------------------------------------------- encrypted Flow
    def encrypted_flow(self, path: Path, data: bytes, key: bytes | None, recipient: bytes | None) -> None:
        """An encrypted Flow: envelope and name, then (with the recipient's key) its contents."""
        self.r.checked["encrypted_flows"] += 1
        name = self.name(path)
        env = _envelope(data)
        if env is None:
            self.r.fail(name, "malformed encrypted Flow envelope")
            return
        fid = env["flow"].hex()
        if _looks_like_id(path.stem) and path.stem != fid:
            self.r.fail(name, "file name is not the id of the Flow inside (modified or renamed)")
        if recipient is None:
            self.r.fail(name, "encrypted Flow not opened: its contents cannot be verified without the "
                              "recipient's X25519 private key (--recipient-key)")
            return
        import nacl.public

        if bytes(nacl.public.PrivateKey(recipient).public_key) != env["recipient"]:
            self.r.fail(name, f"encrypted for another recipient (X25519 public key {env['recipient'].hex()})")
            return
        try:
            flow_cose, chunks = decrypt_flow(data, recipient)
        except ProvenanceError as exc:
            self.r.fail(name, str(exc))
            return
        # The opened Flow and chunks are checked as files, exactly like a plain Flow's.
        start = len(self.r.failures)
        with tempfile.TemporaryDirectory(prefix="verify-enc-") as td:
            root = Path(td)
            (root / "flows").mkdir()
            (root / "chunks").mkdir()
            fpath = root / "flows" / f"{fid}.cose"
            fpath.write_bytes(flow_cose)
            for cose, payload in chunks:
                cid = hashlib.sha256(cose).hexdigest()
                (root / "chunks" / f"{cid}.cose").write_bytes(cose)
                (root / "chunks" / f"{cid}.bin").write_bytes(payload)
            inner = _Verifier(self.r, root)
            m, use = inner.flow_file(fpath, key, expect_id=fid)
            if m is not None:
                inner.flows_and_chunks([(fpath, m)], root / "chunks", use, all_chunk_files=True)
        for f in self.r.failures[start:]:
            f["file"] = f"{name}:{f['file']}"

    # -------------------------------------------------------------- dataset
    def dataset(self, d: Path, key: bytes | None) -> None:
        self.r.checked["datasets"] += 1
        mpath = d / MANIFEST
        manifest: dict[str, Any] | None = None
        try:
            msg, manifest = parse_dataset(mpath.read_bytes())
        except ProvenanceError as exc:
            self.r.fail(self.name(mpath), str(exc))
        if manifest is not None:
            mkey = manifest["key"]
            self.r.checked["signatures"] += 1
            if key is not None and mkey != key:
                self.r.fail(self.name(mpath), f"signed by another device key ({device_id_for(mkey)})")
            elif device_id_for(mkey) != manifest["device"] or msg.kid != manifest["device"]:
                self.r.fail(self.name(mpath), "kid / device do not match the signing key")
            elif not _cose.verify1(msg, mkey):
                self.r.fail(self.name(mpath), "bad signature")
            key = key if key is not None else mkey
            listed = [(bytes(f[0]).hex(), bytes(f[1])) for f in manifest["flows"]]
            if merkle_root([root for _, root in listed]) != manifest["root"]:
                self.r.fail(self.name(mpath), "dataset root does not match the Flow roots")
            self.r.checked["dataset_roots"] += 1
            cov = d / "coverage.geojson"
            if not cov.exists() or cov.read_bytes() != canonical_json(manifest["coverage"]):
                self.r.fail(self.name(cov), "coverage differs from the manifest's (or is missing)")
        else:
            listed = [(p.stem, None) for p in sorted((d / "flows").glob("*.cose"))]
        flows: list[tuple[Path, FlowManifest]] = []
        config_hashes = set()
        for fid, root in listed:
            fpath = d / "flows" / f"{fid}.cose"
            if not fpath.exists():
                self.r.fail(self.name(fpath), "Flow listed in the manifest is missing")
                continue
            m, key = self.flow_file(fpath, key, expect_id=fid if manifest is not None else None)
            if m is None:
                continue
            if root is not None and m.root != root:
                self.r.fail(self.name(fpath), "Flow root differs from the one in the dataset manifest")
            config_hashes.add(m.config_hash)
            flows.append((fpath, m))
        if manifest is not None:
            known = {fid for fid, _ in listed}
            for p in sorted((d / "flows").glob("*")):
                if p.stem not in known:
                    self.r.fail(self.name(p), "Flow file not listed in the dataset manifest")
            if manifest["config_hash"] not in config_hashes and flows:
                self.r.fail(self.name(mpath), "config hash differs from its Flows'")
        cfg = d / "config.json"
        if cfg.exists():
            try:
                doc = json.loads(cfg.read_bytes())
                if cfg.read_bytes() != canonical_json(doc):
                    raise ValueError("not canonical")
                if hashlib.sha256(canonical_json(doc)).hexdigest() not in config_hashes:
                    raise ValueError("hash not in the Flows' config hashes")
            except ValueError as exc:
                self.r.fail(self.name(cfg), f"config.json does not match the recorded config hash ({exc})")
        self.flows_and_chunks(flows, d / "chunks", key, all_chunk_files=True)


_ENVELOPE = {"v": int, "flow": bytes, "recipient": bytes, "sealed_key": bytes, "nonce": bytes, "ciphertext": bytes}


def _envelope(data: bytes) -> dict[str, Any] | None:
    """The encrypted Flow envelope when its structure is exactly right, else None."""
    import cbor2

    try:
        env = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError):
        return None
    if not isinstance(env, Mapping) or set(env) != set(_ENVELOPE) or env["v"] != 1:
        return None
    if not all(isinstance(env[k], t) for k, t in _ENVELOPE.items()):
        return None
    if len(env["flow"]) != 32 or len(env["recipient"]) != 32 or len(env["nonce"]) != 24:
        return None
    return dict(env)


def _looks_like_id(stem: str) -> bool:
    return len(stem) == 64 and all(c in "0123456789abcdef" for c in stem)


def _content_type(data: bytes) -> str:
    try:
        return _cose.parse1(data).content_type
    except ProvenanceError as exc:
        raise UnreadableInput(f"not a COSE_Sign1 chunk, Flow or dataset manifest: {exc}") from None


def verify_path(path: str | Path, public_key: bytes | None = None, recipient_key: bytes | None = None) -> Report:
    """Verify a chunk file (``.cose`` with ``.bin`` beside, or attached ``.chunk``), a Flow
    file, an encrypted Flow (``.enc``; opened with ``recipient_key``, the recipient's X25519
    private key), a dataset directory (or its manifest.cose), or a store directory (flows/ +
    chunks/). Raises :class:`UnreadableInput` when the path cannot be read or is none of these."""
    p = Path(path)
    report = Report()
    try:
        if p.is_dir():
            v = _Verifier(report, p)
            if (p / MANIFEST).exists():
                v.dataset(p, public_key)
            elif (p / "flows").is_dir() or (p / "chunks").is_dir():
                flows = []
                key = public_key
                for fp in sorted((p / "flows").glob("*.cose")):
                    m, key = v.flow_file(fp, key)
                    if m is not None:
                        flows.append((fp, m))
                flows.sort(key=lambda x: x[1].seq)
                v.flows_and_chunks(flows, p / "chunks", key, all_chunk_files=True)
            else:
                raise UnreadableInput(f"{p}: a directory without {MANIFEST}, flows/ or chunks/")
            return report
        if not p.exists():
            raise UnreadableInput(f"{p}: no such file or directory")
        data = p.read_bytes()
        v = _Verifier(report, p.parent)
        if p.suffix == ".chunk":
            v.chunk_file(p, public_key)
            return report
        if p.suffix == ".enc":
            v.encrypted_flow(p, data, public_key, recipient_key)
            return report
        cty = _content_type(data)
        if cty == CHUNK_CTY:
            v.chunk_file(p, public_key)
        elif cty == FLOW_CTY:
            m, key = v.flow_file(p, public_key)
            chunks_dir = p.parent.parent / "chunks" if (p.parent.parent / "chunks").is_dir() else p.parent
            if m is not None and any(chunks_dir.glob("*.cose")):
                v.base = p.parent.parent
                v.flows_and_chunks([(p, m)], chunks_dir, key, all_chunk_files=False)
        elif cty == DATASET_CTY:
            v.base = p.parent
            v.dataset(p.parent, public_key)
        else:
            raise UnreadableInput(f"{p}: unknown content type {cty!r}")
    except OSError as exc:
        raise UnreadableInput(f"{p}: cannot read: {exc.strerror or exc}") from None
    return report
