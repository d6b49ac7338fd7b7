"""Chunk verification: our ``verify_chunk`` (strict COSE_Sign1 parse, deterministic-encoding
check, Ed25519 verify of the Sig_structure, payload SHA-256 and size) against the bare
minimum (``hashlib.sha256`` of the payload plus one raw ``nacl`` verify of a header-sized
message), by chunk size; and a whole dataset directory through ``verify_path`` (chunks,
payloads, Flows, inclusion proofs, hash chains, dataset root) in chunks per second and MB/s.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from bench._harness import Row, measure, ratio_row
from bench._provenance_data import SIZES, payload, source_name

SUITE = "verify"


def run(input: str | None = None, meta: str | None = None) -> list[Row]:
    import nacl.signing

    from agent.keys import Ed25519Signer
    from agent.provenance import GENESIS, ChunkSpec, ProvenanceConfig, build_chunk, verify_chunk
    from agent.store import ChunkStore
    from agent.verify import verify_path

    signer = Ed25519Signer(bytes(range(32)))
    vk = nacl.signing.VerifyKey(signer.public_key)
    rows: list[Row] = []
    src = source_name(input)
    for label, size in SIZES:
        data = payload(size, input)
        chunk = build_chunk(signer, ChunkSpec("lidar/vlp16", "velodyne-vlp16", 1, 2, data, tile="t",
                                              bbox=(11.5, 48.1, 11.6, 48.2), counts={"packets": 1}), 0, GENESIS)
        msg = bytes(len(chunk.cose) - 64)
        sig = signer.sign(msg)

        def ours() -> object:
            assert not verify_chunk(chunk.cose, data, signer.public_key)
            return None

        def reference() -> object:
            return hashlib.sha256(data).digest(), vk.verify(msg, sig)

        t_ours, _ = measure(ours, min_seconds=0.3)
        t_ref, _ = measure(reference, min_seconds=0.3)
        mb = size / 1e6
        case = f"{label} ({src})"
        rows.append(ratio_row(SUITE, case, "chunks/s", "1/s", 1 / t_ours, 1 / t_ref, "hashlib+nacl raw"))
        rows.append(ratio_row(SUITE, case, "throughput", "MB/s", mb / t_ours, mb / t_ref, "hashlib+nacl raw"))

    # A dataset of 64 x 256 KiB chunks in 4 Flows, verified as a directory.
    tmp = Path(tempfile.mkdtemp(prefix="bench-verify-"))
    try:
        store = ChunkStore(tmp / "s", signer, ProvenanceConfig(flow={"max_chunks": 16}))
        data = payload(256 * 1024, input)
        n = 64
        for i in range(n):
            store.ingest(ChunkSpec("lidar/vlp16", "velodyne-vlp16", i, i + 1, data[i:] + data[:i]))
        store.seal_dataset(session="bench")
        d = store.dataset_dir("bench")
        store.close()

        def whole() -> object:
            report = verify_path(d)
            assert report.ok
            return report

        t, _ = measure(whole, min_seconds=0.5, min_repeats=2)
        case = f"dataset 64 x 256 KiB ({src})"
        rows.append(ratio_row(SUITE, case, "chunks/s", "1/s", n / t, None, None))
        rows.append(ratio_row(SUITE, case, "throughput", "MB/s", n * len(data) / 1e6 / t, None, None))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
