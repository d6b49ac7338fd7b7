"""Our COSE_Sign1 chunks read and verified by an independent implementation (pycose), and a
pycose-signed message read and verified by ours: the envelope is RFC 9052, not a look-alike."""

from __future__ import annotations

import hashlib

import cbor2
import pytest

from agent.keys import Ed25519Signer
from agent.provenance import ChunkSpec, _cose, build_chunk
from agent.provenance._chunk import CHUNK_CTY, GENESIS

pycose = pytest.importorskip("pycose")
from pycose.algorithms import EdDSA
from pycose.headers import KID, Algorithm, ContentType
from pycose.keys import OKPKey
from pycose.keys.curves import Ed25519
from pycose.messages import Sign1Message

SIGNER = Ed25519Signer(bytes(range(32)))


def _decode(cose: bytes) -> Sign1Message:
    """pycose's own ``Sign1Message.decode`` fails under cbor2 6 (arrays decode as tuples, which
    pycose 1.1 refuses, maps as immutable mappings), so hand it a list and a dict; the header decoding, the
    Sig_structure and the signature check are pycose's."""
    obj = cbor2.loads(cose)
    assert isinstance(obj, cbor2.CBORTag) and obj.tag == Sign1Message.cbor_tag
    protected, unprotected, payload, signature = obj.value
    return Sign1Message.from_cose_obj([protected, dict(unprotected), payload, signature], True)


def _chunk() -> bytes:
    spec = ChunkSpec("gnss/nmea", "nmea-0183", 1, 2, b"$GPRMC,1*00\r\n", codec="nmea-lines",
                     tile="14/8716/5685", bbox=(11.5, 48.1, 11.6, 48.2), counts={"lines": 1})
    return build_chunk(SIGNER, spec, 0, GENESIS).cose


def test_pycose_decodes_and_verifies_our_chunk() -> None:
    cose = _chunk()
    msg = _decode(cose)
    assert msg.phdr[Algorithm] is EdDSA or msg.phdr[Algorithm] == EdDSA
    assert msg.phdr[KID] == SIGNER.key_id.encode()
    assert msg.phdr[ContentType] == CHUNK_CTY
    assert cbor2.loads(msg.payload)["payload"]["sha256"] == hashlib.sha256(b"$GPRMC,1*00\r\n").digest()
    msg.key = OKPKey(crv=Ed25519, x=SIGNER.public_key)
    assert msg.verify_signature()


def test_pycose_rejects_a_flipped_signature_and_a_wrong_key() -> None:
    cose = bytearray(_chunk())
    cose[-1] ^= 1
    msg = _decode(bytes(cose))
    msg.key = OKPKey(crv=Ed25519, x=SIGNER.public_key)
    assert not msg.verify_signature()
    msg = _decode(_chunk())
    msg.key = OKPKey(crv=Ed25519, x=Ed25519Signer(bytes(32)).public_key)
    assert not msg.verify_signature()


def test_we_verify_a_pycose_signed_message() -> None:
    key = OKPKey(crv=Ed25519, x=SIGNER.public_key, d=bytes(range(32)))
    msg = Sign1Message(phdr={Algorithm: EdDSA, ContentType: CHUNK_CTY, KID: SIGNER.key_id.encode()},
                       payload=b"\xa0")
    msg.key = key
    encoded = msg.encode(tag=True)
    parsed = _cose.parse1(encoded)  # strict: pycose's encoding is deterministic CBOR too
    assert parsed.kid == SIGNER.key_id and parsed.content_type == CHUNK_CTY
    assert _cose.verify1(parsed, SIGNER.public_key)
