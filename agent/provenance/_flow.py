"""Flows: signed manifests of chunk ids with an RFC 6962 Merkle root, and their optional
encryption for one recipient.

Manifest (COSE_Sign1 payload, deterministic CBOR)::

    v, device, key, seq (Flow number on this device), created_ns,
    chunks      [chunk id (32 bytes), ...] in ingestion order
    root        Merkle root over the chunk ids (leaf = SHA-256(0x00 || id))
    prev_root   the previous Flow's root (genesis: 32 zero bytes)
    agent_version, config_hash (AgentConfig.digest())

Flow id = hex SHA-256 of the COSE bytes; on disk ``<flow_id>.cose``.

Encrypted Flow (``<flow_id>.enc``, a CBOR map): ``{"v": 1, "flow": flow id (the AEAD's
associated data), "recipient": X25519 public key, "sealed_key": SealedBox(flow key),
"nonce": 24 bytes, "ciphertext": XChaCha20-Poly1305(CBOR [flow COSE, [[chunk COSE, payload], ...]])}``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cbor2
import nacl.bindings
import nacl.exceptions
import nacl.public
import nacl.utils

from agent.errors import ProvenanceError
from agent.keys._keys import Signer
from agent.provenance import _cbor, _cose
from agent.provenance._merkle import inclusion_proof, merkle_root

FLOW_CTY = "application/vnd.edge-agent.flow+cbor"
VERSION = 1


@dataclass(frozen=True)
class FlowManifest:
    device: str
    key: bytes
    seq: int
    created_ns: int
    chunk_ids: tuple[bytes, ...]
    root: bytes
    prev_root: bytes
    agent_version: str
    config_hash: str

    def to_map(self) -> dict[str, Any]:
        return {
            "v": VERSION, "device": self.device, "key": self.key, "seq": self.seq, "created_ns": self.created_ns,
            "chunks": list(self.chunk_ids), "root": self.root, "prev_root": self.prev_root,
            "agent_version": self.agent_version, "config_hash": self.config_hash,
        }

    @classmethod
    def from_map(cls, m: Any) -> FlowManifest:
        keys = {"v", "device", "key", "seq", "created_ns", "chunks", "root", "prev_root", "agent_version", "config_hash"}
        if not isinstance(m, Mapping) or set(m) != keys or m["v"] != VERSION:
            raise ProvenanceError("malformed Flow manifest: fields missing or unexpected")
        try:
            f = cls(str(m["device"]), bytes(m["key"]), int(m["seq"]), int(m["created_ns"]),
                    tuple(bytes(x) for x in m["chunks"]), bytes(m["root"]), bytes(m["prev_root"]),
                    str(m["agent_version"]), str(m["config_hash"]))
        except (TypeError, ValueError) as exc:
            raise ProvenanceError(f"malformed Flow manifest: {exc}") from None
        if any(len(x) != 32 for x in f.chunk_ids) or len(f.root) != 32 or len(f.prev_root) != 32:
            raise ProvenanceError("malformed Flow manifest: ids and roots are 32 bytes")
        return f

    def proof(self, chunk_id: bytes | str) -> tuple[int, list[bytes]]:
        """(index, audit path) of a chunk in this Flow's tree."""
        cid = bytes.fromhex(chunk_id) if isinstance(chunk_id, str) else chunk_id
        try:
            index = self.chunk_ids.index(cid)
        except ValueError:
            raise ProvenanceError(f"chunk {cid.hex()} is not in Flow {self.seq}") from None
        return index, inclusion_proof(index, self.chunk_ids)


@dataclass(frozen=True)
class SignedFlow:
    cose: bytes
    manifest: FlowManifest

    @property
    def id(self) -> str:
        return hashlib.sha256(self.cose).hexdigest()


def build_flow(signer: Signer, chunk_ids: list[bytes], seq: int, prev_root: bytes, created_ns: int,
               agent_version: str, config_hash: str) -> SignedFlow:
    """Sign a Flow over ``chunk_ids`` (32-byte ids, in order)."""
    if not chunk_ids:
        raise ProvenanceError("a Flow holds at least one chunk")
    m = FlowManifest(signer.key_id, signer.public_key, seq, created_ns, tuple(chunk_ids), merkle_root(chunk_ids),
                     prev_root, agent_version, config_hash)
    return SignedFlow(_cose.sign1(signer, _cbor.dumps(m.to_map()), FLOW_CTY), m)


def parse_flow(cose: bytes) -> tuple[_cose.Sign1, FlowManifest]:
    msg = _cose.parse1(cose)
    if msg.content_type != FLOW_CTY:
        raise ProvenanceError(f"not a Flow (content type {msg.content_type!r})")
    return msg, FlowManifest.from_map(_cbor.loads_strict(msg.payload))


def encrypt_flow(flow_cose: bytes, chunks: list[tuple[bytes, bytes]], recipient_x25519: bytes) -> bytes:
    """Encrypt a Flow and its chunks (COSE, payload) for one recipient's X25519 public key."""
    key = nacl.utils.random(32)
    nonce = nacl.utils.random(24)
    flow_id = hashlib.sha256(flow_cose).digest()
    plain = _cbor.dumps([flow_cose, [[c, p] for c, p in chunks]])
    ct = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_encrypt(plain, flow_id, nonce, key)
    sealed = nacl.public.SealedBox(nacl.public.PublicKey(recipient_x25519)).encrypt(key)
    return _cbor.dumps({"v": VERSION, "flow": flow_id, "recipient": recipient_x25519, "sealed_key": bytes(sealed),
                        "nonce": nonce, "ciphertext": ct})


def decrypt_flow(data: bytes, recipient_private: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """Open an encrypted Flow with the recipient's X25519 private key: (flow COSE, [(chunk COSE, payload)])."""
    try:
        env = cbor2.loads(data)
        key = nacl.public.SealedBox(nacl.public.PrivateKey(recipient_private)).decrypt(env["sealed_key"])
        plain = nacl.bindings.crypto_aead_xchacha20poly1305_ietf_decrypt(env["ciphertext"], env["flow"],
                                                                          env["nonce"], key)
    except (nacl.exceptions.CryptoError, KeyError, TypeError, ValueError, cbor2.CBORDecodeError):
        raise ProvenanceError("cannot open the encrypted Flow (wrong recipient key or tampered data)") from None
    flow_cose, chunks = cbor2.loads(plain)
    if hashlib.sha256(flow_cose).digest() != env["flow"]:
        raise ProvenanceError("encrypted Flow: the Flow inside does not match its id")
    return flow_cose, [(c, p) for c, p in chunks]
