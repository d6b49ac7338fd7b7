"""COSE_Sign1 (RFC 9052 section 4.2) built with deterministic CBOR.

    COSE_Sign1 = #6.18([protected: bstr .cbor header_map, unprotected: {}, payload: bstr, signature: bstr])
    Sig_structure = ["Signature1", protected, external_aad = h'', payload]

The protected header holds ``alg`` (label 1) and ``kid`` (label 4, the device id as bytes)
and ``content type`` (label 3, a text media type naming what the payload is). The
unprotected header is always empty, and the whole structure must be in deterministic
encoding, so that every byte of the envelope is covered by the signature or the structure
check (a verifier re-encodes and compares).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cbor2

from agent.errors import ProvenanceError
from agent.keys._keys import ED25519_ALG, Signer, verify_ed25519
from agent.provenance import _cbor

COSE_SIGN1_TAG = 18
H_ALG = 1
H_CTY = 3
H_KID = 4


@dataclass(frozen=True)
class Sign1:
    """A parsed COSE_Sign1."""

    protected: bytes
    alg: int
    kid: str
    content_type: str
    payload: bytes
    signature: bytes

    def to_be_signed(self) -> bytes:
        return _cbor.dumps(["Signature1", self.protected, b"", self.payload])


def sign1(signer: Signer, payload: bytes, content_type: str) -> bytes:
    """Sign ``payload`` (already-encoded bytes) and return the COSE_Sign1 bytes."""
    protected = _cbor.dumps({H_ALG: signer.alg, H_CTY: content_type, H_KID: signer.key_id.encode()})
    tbs = _cbor.dumps(["Signature1", protected, b"", payload])
    signature = signer.sign(tbs)
    return _cbor.dumps(cbor2.CBORTag(COSE_SIGN1_TAG, [protected, {}, payload, signature]))


def parse1(data: bytes) -> Sign1:
    """Parse a COSE_Sign1 strictly (tag 18, deterministic encoding, empty unprotected map)."""
    obj = _cbor.loads_strict(data)
    if not isinstance(obj, cbor2.CBORTag) or obj.tag != COSE_SIGN1_TAG:
        raise ProvenanceError("not a COSE_Sign1 (tag 18)")
    v = obj.value
    if not (isinstance(v, (list, tuple)) and len(v) == 4 and isinstance(v[0], bytes) and isinstance(v[1], Mapping) and len(v[1]) == 0
            and isinstance(v[2], bytes) and isinstance(v[3], bytes)):
        raise ProvenanceError("malformed COSE_Sign1 structure")
    prot = _cbor.loads_strict(v[0])
    if not isinstance(prot, Mapping) or set(prot) != {H_ALG, H_CTY, H_KID}:
        raise ProvenanceError("protected header must hold exactly alg, content type and kid")
    alg, cty, kid = prot[H_ALG], prot[H_CTY], prot[H_KID]
    if not isinstance(alg, int) or not isinstance(cty, str) or not isinstance(kid, bytes):
        raise ProvenanceError("malformed protected header")
    return Sign1(v[0], alg, kid.decode("utf-8", "replace"), cty, v[2], v[3])


def verify1(msg: Sign1, public_key: bytes) -> bool:
    """Check the signature of a parsed COSE_Sign1 with an Ed25519 public key."""
    if msg.alg != ED25519_ALG:
        raise ProvenanceError(f"unsupported COSE alg {msg.alg} (only EdDSA = -8)")
    return verify_ed25519(public_key, msg.to_be_signed(), msg.signature)
