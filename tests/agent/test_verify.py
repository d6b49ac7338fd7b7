"""``verify``: every single-byte change is named; swaps, drops, reorders and replays too."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.keys import Ed25519Signer
from agent.provenance import GENESIS, ChunkSpec, build_chunk, build_dataset, build_flow
from agent.provenance._dataset import canonical_json
from agent.verify import UnreadableInput, verify_path
from tests.agent._chunk_sources import small_dataset


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("verify")
    store, d, signer = small_dataset(root / "store")
    store.close()
    # A private copy (the dataset's files are hard links into the store).
    copy = root / "copy"
    shutil.copytree(d, copy)
    return copy, signer


def _names(report) -> set[str]:
    return {f["file"] for f in report.failures}


def _flip_each(path: Path, d: Path, positions) -> None:
    original = path.read_bytes()
    rel = str(path.relative_to(d))
    try:
        for i in positions:
            data = bytearray(original)
            data[i] ^= 0xFF
            path.write_bytes(bytes(data))
            report = verify_path(d)
            assert not report.ok, f"flip of byte {i} of {rel} went unnoticed"
            assert rel in _names(report), f"flip of byte {i} of {rel}: failures {report.failures}"
    finally:
        path.write_bytes(original)


def test_clean_dataset_verifies(dataset):
    d, _ = dataset
    report = verify_path(d)
    assert report.ok, report.failures
    c = report.checked
    assert c["datasets"] == 1 and c["flows"] >= 3 and c["chunks"] >= 6 and c["streams"] == 3
    assert c["proofs"] == c["chunks"] and c["payloads"] == c["chunks"]


def test_every_byte_of_a_chunk_is_covered(dataset):
    d, _ = dataset
    chunk = min((d / "chunks").glob("*.cose"))
    _flip_each(chunk, d, range(chunk.stat().st_size))


def test_every_byte_of_a_flow_manifest_is_covered(dataset):
    d, _ = dataset
    flow = min((d / "flows").glob("*.cose"))
    _flip_each(flow, d, range(flow.stat().st_size))


def test_every_byte_of_the_dataset_manifest_is_covered(dataset):
    d, _ = dataset
    _flip_each(d / "manifest.cose", d, range((d / "manifest.cose").stat().st_size))


def test_payload_bytes_sampled(dataset):
    d, _ = dataset
    payload = max((d / "chunks").glob("*.bin"), key=lambda p: p.stat().st_size)
    n = payload.stat().st_size
    positions = sorted({0, 1, n // 2, n - 2, n - 1, *range(0, n, max(1, n // 64))})
    _flip_each(payload, d, positions)
    small = min((d / "chunks").glob("*.bin"), key=lambda p: p.stat().st_size)
    assert small.stat().st_size < 100
    _flip_each(small, d, range(small.stat().st_size))


def test_coverage_and_config_files_are_checked(dataset):
    d, _ = dataset
    cov = d / "coverage.geojson"
    _flip_each(cov, d, range(0, cov.stat().st_size, 7))


def test_swap_two_chunks(dataset, tmp_path):
    d, _ = dataset
    work = tmp_path / "d"
    shutil.copytree(d, work)
    a, b = sorted((work / "chunks").glob("*.cose"))[:2]
    ab, bb = a.read_bytes(), b.read_bytes()
    a.write_bytes(bb)
    b.write_bytes(ab)
    report = verify_path(work)
    names = _names(report)
    assert f"chunks/{a.name}" in names and f"chunks/{b.name}" in names
    assert any("modified or swapped" in f["reason"] for f in report.failures)


def test_drop_one_chunk(dataset, tmp_path):
    d, _ = dataset
    work = tmp_path / "d"
    shutil.copytree(d, work)
    from agent.provenance import parse_chunk

    # A chunk in the middle of its stream: seq 1 of the LiDAR stream.
    victim = next(p for p in (work / "chunks").glob("*.cose")
                  if parse_chunk(p.read_bytes())[1].seq == 1 and "lidar" in parse_chunk(p.read_bytes())[1].stream)
    victim.unlink()
    victim.with_suffix(".bin").unlink()
    report = verify_path(work)
    assert {"file": f"chunks/{victim.name}", "reason": "chunk listed in a Flow is missing (dropped)"} in report.failures
    # The hash chain names the gap that the missing chunk leaves.
    assert any("gap" in f["reason"] for f in report.failures)


def test_replayed_chunk_from_another_device(dataset, tmp_path):
    d, signer = dataset
    work = tmp_path / "d"
    shutil.copytree(d, work)
    intruder = Ed25519Signer(bytes([9]) * 32)
    c = build_chunk(intruder, ChunkSpec("lidar/vlp16", "velodyne-vlp16", 1, 2, b"x" * 10), 1, GENESIS)
    (work / "chunks" / f"{c.id}.cose").write_bytes(c.cose)
    (work / "chunks" / f"{c.id}.bin").write_bytes(c.payload)
    report = verify_path(work)
    fail = [f for f in report.failures if f["file"] == f"chunks/{c.id}.cose"]
    assert fail and "not listed in any Flow" in fail[0]["reason"] and "another device key" in fail[0]["reason"]
    # A whole dataset re-signed by another key passes on its own but not against the device's key.
    other = tmp_path / "other"
    st, od, _ = small_dataset(other / "store", signer=intruder)
    st.close()
    assert verify_path(od).ok
    pinned = verify_path(od, public_key=signer.public_key)
    assert not pinned.ok and any("another device key" in f["reason"] for f in pinned.failures)


def _honest_dataset(d: Path, signer: Ed25519Signer, order: list[int], drop: int | None = None,
                    foreign: int | None = None) -> list[str]:
    """A dataset written by a (buggy but honest) agent: chunks listed in ``order``, one dropped,
    or one replaced by a chunk another device signed (same stream, seq and chain link)."""
    chunks, prev = [], GENESIS
    for i in range(5):
        by = Ed25519Signer(bytes([9]) * 32) if i == foreign else signer
        c = build_chunk(by, ChunkSpec("s", "x", i, i + 1, bytes([i]) * 50), i, prev)
        prev = c.id_bytes
        chunks.append(c)
    (d / "chunks").mkdir(parents=True)
    (d / "flows").mkdir()
    listed = [chunks[i] for i in order if i != drop]
    for c in listed:
        (d / "chunks" / f"{c.id}.cose").write_bytes(c.cose)
        (d / "chunks" / f"{c.id}.bin").write_bytes(c.payload)
    flow = build_flow(signer, [c.id_bytes for c in listed], 0, GENESIS, 1, "0", "0" * 64)
    (d / "flows" / f"{flow.id}.cose").write_bytes(flow.cose)
    ds = build_dataset(signer, evm_address="0x0", session="t", reason="explicit", started_ns=0, ended_ns=5,
                       sealed_ns=6, flows=[(bytes.fromhex(flow.id), flow.manifest.root)],
                       headers=[c.header for c in listed], usage_terms={}, agent_version="0", config_hash="0" * 64)
    (d / "manifest.cose").write_bytes(ds.cose)
    (d / "coverage.geojson").write_bytes(canonical_json(ds.manifest["coverage"]))
    return [c.id for c in chunks]


def test_reordering_and_gaps_are_named(tmp_path):
    signer = Ed25519Signer(bytes(range(32)))
    _honest_dataset(tmp_path / "ok", signer, [0, 1, 2, 3, 4])
    assert verify_path(tmp_path / "ok").ok
    ids = _honest_dataset(tmp_path / "reordered", signer, [0, 2, 1, 3, 4])
    report = verify_path(tmp_path / "reordered")
    assert {"file": f"chunks/{ids[1]}.cose", "reason": "stream s: seq 1 listed after seq 2 (reordered)"} \
        in report.failures
    ids = _honest_dataset(tmp_path / "gap", signer, [0, 1, 2, 3, 4], drop=2)
    report = verify_path(tmp_path / "gap")
    assert report.failures == [{"file": f"chunks/{ids[3]}.cose",
                                "reason": "stream s: gap, seq 2 missing before seq 3"}]
    ids = _honest_dataset(tmp_path / "foreign", signer, [0, 1, 2, 3, 4], foreign=2)
    report = verify_path(tmp_path / "foreign")
    assert [f["file"] for f in report.failures] == [f"chunks/{ids[2]}.cose"]
    assert "another device key" in report.failures[0]["reason"]


def test_lone_chunk_and_flow_files(dataset):
    d, _ = dataset
    chunk = min((d / "chunks").glob("*.cose"))
    assert verify_path(chunk).ok
    flow = min((d / "flows").glob("*.cose"))
    r = verify_path(flow)
    assert r.ok and r.checked["chunks"] >= 1 and r.checked["proofs"] >= 1
    with pytest.raises(UnreadableInput):
        verify_path(d / "nope")


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "from agent.cli import main; main()", "verify", *args],
                          check=False, capture_output=True, text=True, env=dict(os.environ))


def test_cli_exit_codes_and_json(dataset, tmp_path):
    d, _ = dataset
    ok = _cli(str(d), "--json")
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["ok"] is True and doc["failures"] == [] and doc["checked"]["chunks"] >= 6
    work = tmp_path / "d"
    shutil.copytree(d, work)
    p = min((work / "chunks").glob("*.bin"))
    p.write_bytes(p.read_bytes()[:-1])
    bad = _cli(str(work), "--json")
    assert bad.returncode == 1
    doc = json.loads(bad.stdout)
    assert doc["ok"] is False and doc["failures"][0]["file"] == f"chunks/{p.name}"
    text = _cli(str(work))
    assert text.returncode == 1 and f"FAIL chunks/{p.name}: payload size" in text.stdout
    garbage = tmp_path / "x.cose"
    garbage.write_bytes(b"not cbor at all")
    assert _cli(str(garbage)).returncode == 2
    missing = _cli(str(tmp_path / "missing"))
    assert missing.returncode == 2 and missing.stderr.startswith("ERROR:")


def _encrypted(d: Path, tmp_path: Path, recipient_public: bytes, tamper_payload: bool = False) -> tuple[Path, str]:
    from agent.provenance import encrypt_flow, parse_flow

    fpath = min((d / "flows").glob("*.cose"))
    flow_cose = fpath.read_bytes()
    ids = [c.hex() for c in parse_flow(flow_cose)[1].chunk_ids]
    chunks = [((d / "chunks" / f"{c}.cose").read_bytes(), (d / "chunks" / f"{c}.bin").read_bytes()) for c in ids]
    if tamper_payload:  # signed and encrypted by someone holding the data, after a change
        chunks[0] = (chunks[0][0], chunks[0][1][:-1] + bytes([chunks[0][1][-1] ^ 1]))
    out = tmp_path / f"{fpath.stem}.enc"
    out.write_bytes(encrypt_flow(flow_cose, chunks, recipient_public))
    return out, ids[0]


def test_encrypted_flow_verified_with_the_recipient_key(dataset, tmp_path):
    import nacl.public

    d, signer = dataset
    recipient = nacl.public.PrivateKey.generate()
    enc, _first = _encrypted(d, tmp_path, bytes(recipient.public_key))
    report = verify_path(enc, signer.public_key, recipient_key=bytes(recipient))
    assert report.ok, report.failures
    assert report.checked["encrypted_flows"] == 1 and report.checked["flows"] == 1
    assert report.checked["chunks"] >= 2 and report.checked["proofs"] == report.checked["chunks"]
    # Without the key nothing inside can be checked: a failure, never a pass.
    closed = verify_path(enc)
    assert not closed.ok and "not opened" in closed.failures[0]["reason"]
    other = verify_path(enc, recipient_key=bytes(nacl.public.PrivateKey.generate()))
    assert "another recipient" in other.failures[0]["reason"]
    # Any byte of the envelope: malformed, or the AEAD refuses it.
    data = enc.read_bytes()
    for i in range(0, len(data), max(1, len(data) // 40)):
        flipped = bytearray(data)
        flipped[i] ^= 0xFF
        enc.write_bytes(bytes(flipped))
        r = verify_path(enc, recipient_key=bytes(recipient))
        assert not r.ok and r.failures[0]["file"] == enc.name, f"byte {i}: {r.failures}"
    enc.write_bytes(data)
    # A payload changed before encryption: named inside the envelope.
    (tmp_path / "t").mkdir()
    bad, cid = _encrypted(d, tmp_path / "t", bytes(recipient.public_key), tamper_payload=True)
    r = verify_path(bad, recipient_key=bytes(recipient))
    assert not r.ok and {f["file"] for f in r.failures} == {f"{bad.name}:chunks/{cid}.bin"}


def test_cli_recipient_key(dataset, tmp_path):
    import nacl.public

    d, _ = dataset
    recipient = nacl.public.PrivateKey.generate()
    enc, _ = _encrypted(d, tmp_path, bytes(recipient.public_key))
    keyfile = tmp_path / "recipient.key"
    keyfile.write_text(bytes(recipient).hex() + "\n")
    ok = _cli(str(enc), "--recipient-key", str(keyfile), "--json")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert json.loads(ok.stdout)["checked"]["encrypted_flows"] == 1
    closed = _cli(str(enc))
    assert closed.returncode == 1 and "not opened" in closed.stdout
    keyfile.write_text("secret-ish but not hex")
    bad = _cli(str(enc), "--recipient-key", str(keyfile))
    assert bad.returncode == 2 and "not an X25519 private key" in bad.stderr and "secret-ish" not in bad.stderr
