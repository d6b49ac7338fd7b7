"""Chunk format: deterministic CBOR, COSE_Sign1 per RFC 9052, RFC 6962 Merkle vectors."""

from __future__ import annotations

import hashlib

import cbor2
import pytest

from agent.errors import ProvenanceError
from agent.keys import Ed25519Signer, verify_ed25519
from agent.provenance import (
    GENESIS,
    ChunkSpec,
    build_chunk,
    canonical_cbor,
    inclusion_proof,
    leaf_hash,
    merkle_root,
    node_hash,
    parse_chunk,
    split_attached,
    verify_chunk,
    verify_inclusion,
)
from agent.provenance._merkle import all_inclusion_proofs
from tests._fixtures import fixture_file
from tests.agent._chunk_sources import NMEA, PCAP, nmea_chunks, pcap_chunks

SIGNER = Ed25519Signer(bytes(range(32)))


def test_core_deterministic_key_order_is_bytewise():
    # RFC 8949 4.2.1: keys sorted by their encoded bytes (not length-first as RFC 7049 / cbor2 canonical).
    obj = {"a": 0, 24: 0, -1: 0}
    assert canonical_cbor(obj).hex() == "a3" + "181800" + "2000" + "616100"
    assert cbor2.dumps(obj, canonical=True) != canonical_cbor(obj)
    assert canonical_cbor(1.5) == bytes.fromhex("f93e00")  # shortest float form
    assert canonical_cbor({"b": [1, b"x"], "a": None}) == canonical_cbor({"a": None, "b": [1, b"x"]})


def test_cose_sign1_structure_per_rfc9052():
    spec = ChunkSpec("gnss/nmea", "nmea-0183", 1, 2, b"$GPRMC...", codec="nmea-lines", tile="14/8716/5685",
                     bbox=(11.5, 48.1, 11.6, 48.2), counts={"lines": 1})
    chunk = build_chunk(SIGNER, spec, 0, GENESIS)
    obj = cbor2.loads(chunk.cose)
    assert isinstance(obj, cbor2.CBORTag) and obj.tag == 18
    protected, unprotected, payload, signature = obj.value
    assert dict(unprotected) == {}
    prot = cbor2.loads(protected)
    assert prot[1] == -8 and prot[4] == SIGNER.key_id.encode()
    sig_structure = cbor2.dumps(["Signature1", protected, b"", payload])
    assert verify_ed25519(SIGNER.public_key, sig_structure, signature)
    header = cbor2.loads(payload)
    assert header["seq"] == 0 and header["prev"] == GENESIS and header["stream"] == "gnss/nmea"
    assert header["payload"]["sha256"] == hashlib.sha256(spec.payload).digest()
    assert header["codec"] == {"name": "nmea-lines", "params": {}}
    assert chunk.id == hashlib.sha256(chunk.cose).hexdigest()
    assert canonical_cbor(cbor2.loads(payload)) == payload  # header is deterministic


def test_real_payloads_chain_and_verify():
    chunks = []
    prev, seq = GENESIS, 0
    for spec in list(pcap_chunks(fixture_file(PCAP), 0.02)) + list(nmea_chunks(fixture_file(NMEA), 500)):
        if chunks and spec.stream != chunks[-1].header.stream:
            prev, seq = GENESIS, 0
        c = build_chunk(SIGNER, spec, seq, prev)
        assert verify_chunk(c.cose, spec.payload) == []
        assert verify_chunk(c.cose, spec.payload, SIGNER.public_key) == []
        chunks.append(c)
        prev, seq = c.id_bytes, seq + 1
    lidar = [c for c in chunks if c.header.stream == "lidar/vlp16"]
    assert sum(c.header.counts["packets"] for c in lidar) == 100  # every packet of the capture
    gnss = [c for c in chunks if c.header.stream == "gnss/nmea"]
    assert all(c.header.bbox is not None and 11 < c.header.bbox[0] < 12 for c in gnss)
    for a, b in zip(gnss, gnss[1:]):
        assert b.header.prev == a.id_bytes and b.header.seq == a.header.seq + 1


def test_verify_chunk_names_each_problem():
    spec = ChunkSpec("s", "x", 0, 1, b"payload")
    c = build_chunk(SIGNER, spec, 3, bytes(32))
    assert verify_chunk(c.cose, b"payloaD") == ["payload SHA-256 does not match the header"]
    assert "payload size" in verify_chunk(c.cose, b"payload!")[0]
    other = Ed25519Signer(bytes([7]) * 32)
    assert any("another device key" in r for r in verify_chunk(c.cose, b"payload", other.public_key))
    forged = bytearray(c.cose)
    forged[-1] ^= 1
    assert verify_chunk(bytes(forged), b"payload") == ["bad signature"]
    with pytest.raises(ProvenanceError, match="ends before"):
        build_chunk(SIGNER, ChunkSpec("s", "x", 5, 1, b""), 0, GENESIS)


def test_strict_parsing_rejects_non_canonical_envelopes():
    c = build_chunk(SIGNER, ChunkSpec("s", "x", 0, 1, b"p"), 0, GENESIS)
    tag, (prot, _u, payload, sig) = 18, cbor2.loads(c.cose).value
    with_unprotected = cbor2.dumps(cbor2.CBORTag(tag, [prot, {"x": 1}, payload, sig]))
    with pytest.raises(ProvenanceError):
        parse_chunk(with_unprotected)
    with pytest.raises(ProvenanceError):
        parse_chunk(c.cose + b"\x00")


def test_attached_form_round_trip():
    c = build_chunk(SIGNER, ChunkSpec("s", "x", 0, 1, b"\x00" * 100), 0, GENESIS)
    cose, payload = split_attached(c.attached())
    assert cose == c.cose and payload == c.payload


# RFC 6962 reference tree (certificate-transparency test vectors): leaves and roots of sizes 1..8.
LEAVES = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                      "606162636465666768696a6b6c6d6e6f")]
ROOTS = ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
         "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
         "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
         "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
         "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
         "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
         "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
         "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"]
INCLUSION = [  # (0-based leaf, tree size, audit path)
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]


def test_merkle_roots_match_rfc6962_vectors():
    assert merkle_root([]).hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    for n in range(1, 9):
        assert merkle_root(LEAVES[:n]).hex() == ROOTS[n - 1], n


def test_merkle_hand_computed_non_power_of_two():
    h = [leaf_hash(x) for x in LEAVES]
    # n = 3: split at 2 -> node(node(h0, h1), h2); n = 5: node(MTH(0..3), h4); n = 7: node(MTH(0..3), node(node(h4,h5), h6))
    assert merkle_root(LEAVES[:3]) == node_hash(node_hash(h[0], h[1]), h[2])
    four = node_hash(node_hash(h[0], h[1]), node_hash(h[2], h[3]))
    assert merkle_root(LEAVES[:5]) == node_hash(four, h[4])
    assert merkle_root(LEAVES[:7]) == node_hash(four, node_hash(node_hash(h[4], h[5]), h[6]))
    assert h[0] == hashlib.sha256(b"\x00").digest()


def test_inclusion_proofs_match_vectors_and_verify():
    for index, size, path in INCLUSION:
        proof = inclusion_proof(index, LEAVES[:size])
        assert [p.hex() for p in proof] == path, (index, size)
        root = bytes.fromhex(ROOTS[size - 1])
        assert verify_inclusion(LEAVES[index], index, size, proof, root)
        assert not verify_inclusion(LEAVES[index] + b"x", index, size, proof, root)
        assert not verify_inclusion(LEAVES[index], index ^ 1, size, proof, root)
        if proof:
            assert not verify_inclusion(LEAVES[index], index, size, proof[:-1], root)


def test_every_proof_of_every_small_tree():
    for n in range(1, 34):
        leaves = [bytes([i, n]) for i in range(n)]
        root, proofs = all_inclusion_proofs(leaves)
        assert root == merkle_root(leaves)
        for i in range(n):
            assert proofs[i] == inclusion_proof(i, leaves)
            assert verify_inclusion(leaves[i], i, n, proofs[i], root)
            if n > 1:
                assert not verify_inclusion(leaves[i], (i + 1) % n, n, proofs[i], root)


def test_coverage_from_bboxes_and_tiles():
    from agent.provenance import coverage_geojson

    with_bbox = build_chunk(SIGNER, ChunkSpec("g", "x", 0, 1, b"", tile="14/8716/5685",
                                              bbox=(11.55, 48.14, 11.56, 48.15)), 0, GENESIS).header
    tile_only = build_chunk(SIGNER, ChunkSpec("l", "x", 0, 1, b"", tile="14/8717/5685"), 0, GENESIS).header
    neither = build_chunk(SIGNER, ChunkSpec("l", "x", 1, 2, b""), 1, GENESIS).header
    cov = coverage_geojson([with_bbox, tile_only, neither])
    assert [f["properties"]["tile"] for f in cov["features"]] == ["14/8716/5685", "14/8717/5685"]
    ring = cov["features"][1]["geometry"]["coordinates"][0]
    # Tile 14/8717/5685 spans 360/2^14 degrees of longitude, starting at 8717/2^14*360-180.
    assert ring[0][0] == pytest.approx(8717 / 2**14 * 360 - 180) and ring[1][0] - ring[0][0] == pytest.approx(360 / 2**14)
    assert 48.1 < ring[0][1] < ring[2][1] < 48.2
    assert cov["bbox"][0] == pytest.approx(8717 / 2**14 * 360 - 180) and cov["bbox"][2] == 11.56
