"""Flows: batching limits, the chain of roots, inclusion proofs, encryption for a recipient."""

from __future__ import annotations

import time

import nacl.public
import pytest

from agent.config import load_config
from agent.errors import ProvenanceError
from agent.keys import Ed25519Signer
from agent.provenance import (
    GENESIS,
    ChunkSpec,
    ProvenanceConfig,
    build_flow,
    decrypt_flow,
    encrypt_flow,
    merkle_root,
    parse_flow,
    verify_inclusion,
)
from agent.store import ChunkStore, State
from tests._fixtures import fixture_file
from tests.agent._chunk_sources import NMEA, nmea_chunks

SIGNER = Ed25519Signer(bytes(range(32)))


def _store(tmp_path, **flow) -> ChunkStore:
    cfg = load_config()
    return ChunkStore(tmp_path / "s", SIGNER, ProvenanceConfig(flow=flow), config_hash=cfg.digest())


def _spec(i: int, size: int = 100, stream: str = "s") -> ChunkSpec:
    return ChunkSpec(stream, "test", i, i + 1, bytes([i % 256]) * size)


def test_flows_cut_by_chunk_count_and_chain_roots(tmp_path):
    st = _store(tmp_path, max_chunks=5)
    specs = list(nmea_chunks(fixture_file(NMEA), 100))
    for spec in specs:
        st.ingest(spec)
    flows = st.cut_flows()
    assert [len(f.manifest.chunk_ids) for f in flows] == [5] * (len(specs) // 5)
    assert flows[0].manifest.prev_root == GENESIS and flows[0].manifest.seq == 0
    for a, b in zip(flows, flows[1:]):
        assert b.manifest.prev_root == a.manifest.root and b.manifest.seq == a.manifest.seq + 1
    m = flows[0].manifest
    assert m.config_hash == load_config().digest() and m.agent_version
    assert m.root == merkle_root(list(m.chunk_ids))
    # The remainder waits for more data (no limit reached) unless forced.
    rest = len(specs) % 5
    assert st.cut_flow() is None if rest else True
    if rest:
        assert len(st.cut_flow(force=True).manifest.chunk_ids) == rest
    for cid, _stream, _seq, state in st.iter_chunks():
        assert state == State.IN_FLOW
        fid, index, proof, root = st.flow_of_chunk(cid)
        size = len(parse_flow(st.flow_path(fid).read_bytes())[1].chunk_ids)
        assert verify_inclusion(bytes.fromhex(cid), index, size, proof, root)


def test_flows_cut_by_bytes(tmp_path):
    st = _store(tmp_path, max_bytes=1000, max_chunks=1000)
    for i in range(25):
        st.ingest(_spec(i, 300))
    flows = st.cut_flows()
    # 300-byte chunks: 3 fit in 1000 bytes; the 4th would exceed the limit.
    assert [len(f.manifest.chunk_ids) for f in flows] == [3] * 8
    assert st.cut_flow() is None  # one pending chunk, under every limit


def test_flows_cut_by_age(tmp_path):
    st = _store(tmp_path, max_age_s=0.2)
    st.ingest(_spec(0))
    assert st.cut_flow() is None
    time.sleep(0.25)
    flow = st.cut_flow()
    assert flow is not None and len(flow.manifest.chunk_ids) == 1


def test_proof_of_unknown_chunk_raises():
    f = build_flow(SIGNER, [bytes(32)], 0, GENESIS, 1, "0", "c")
    with pytest.raises(ProvenanceError, match="not in Flow"):
        f.manifest.proof(bytes([1]) * 32)


def test_encrypted_flow_round_trip_and_tamper(tmp_path):
    st = _store(tmp_path, max_chunks=3)
    for i in range(3):
        st.ingest(_spec(i, 1000))
    flow = st.cut_flow()
    chunks = [st.read_chunk(c.hex()) for c in flow.manifest.chunk_ids]
    recipient = nacl.public.PrivateKey.generate()
    blob = encrypt_flow(flow.cose, chunks, bytes(recipient.public_key))
    assert flow.cose not in blob and chunks[0][1] not in blob
    cose, opened = decrypt_flow(blob, bytes(recipient))
    assert cose == flow.cose and opened == chunks
    with pytest.raises(ProvenanceError, match="cannot open"):
        decrypt_flow(blob, bytes(nacl.public.PrivateKey.generate()))
    tampered = bytearray(blob)
    tampered[-5] ^= 1
    with pytest.raises(ProvenanceError, match="cannot open"):
        decrypt_flow(bytes(tampered), bytes(recipient))
    # The device's own Ed25519 key converts to an X25519 recipient key.
    blob2 = encrypt_flow(flow.cose, chunks, SIGNER.x25519_public())
    assert decrypt_flow(blob2, SIGNER.x25519_private())[0] == flow.cose
