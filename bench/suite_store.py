"""Store ingestion: ``ChunkStore.ingest`` (sign, payload and COSE files written under temporary
names, fsynced, renamed, directory fsynced, one SQLite transaction in WAL with
synchronous=FULL) against a raw durable write of the same bytes (one file write + fsync and
one SQLite INSERT committed in the same WAL/FULL mode), by chunk size, in a temporary
directory on the same file system as the state directory would be (``TMPDIR``).
Each measured call ingests a batch of chunks; rows give chunks/s and MB/s.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from bench._harness import Row, measure, ratio_row
from bench._provenance_data import SIZES, payload, source_name

SUITE = "store"
BATCH = {16 * 1024: 40, 256 * 1024: 20, 1024 * 1024: 8, 4 * 1024 * 1024: 3}


def run(input: str | None = None, meta: str | None = None) -> list[Row]:
    from agent.keys import Ed25519Signer
    from agent.provenance import ChunkSpec, ProvenanceConfig
    from agent.store import ChunkStore, connect

    signer = Ed25519Signer(bytes(range(32)))
    rows: list[Row] = []
    src = source_name(input)
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        store = ChunkStore(tmp / "ours", signer, ProvenanceConfig(store={"budget_bytes": 1 << 40, "reserve_bytes": 0}))
        raw_dir = tmp / "raw"
        raw_dir.mkdir()
        conn = connect(raw_dir / "raw.db")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, size INTEGER)")
        counter = [0]
        for label, size in SIZES:
            data = payload(size, input)
            n = BATCH[size]

            def ours() -> None:
                for _ in range(n):
                    counter[0] += 1
                    store.ingest(ChunkSpec("lidar/vlp16", "velodyne-vlp16", counter[0], counter[0] + 1, data))

            def reference() -> None:
                for _ in range(n):
                    counter[0] += 1
                    name = raw_dir / f"{counter[0]}.bin"
                    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
                    try:
                        os.write(fd, data)
                        os.fsync(fd)
                    finally:
                        os.close(fd)
                    conn.execute("BEGIN IMMEDIATE")
                    conn.execute("INSERT INTO t (name, size) VALUES (?, ?)", (name.name, size))
                    conn.execute("COMMIT")

            t_ours, _ = measure(ours, min_seconds=0.5, min_repeats=2)
            t_ref, _ = measure(reference, min_seconds=0.5, min_repeats=2)
            case = f"{label} ({src})"
            rows.append(ratio_row(SUITE, case, "chunks/s", "1/s", n / t_ours, n / t_ref, "file+fsync, sqlite insert"))
            rows.append(ratio_row(SUITE, case, "throughput", "MB/s", n * size / 1e6 / t_ours,
                                  n * size / 1e6 / t_ref, "file+fsync, sqlite insert"))
            # Keep the disk use of the benchmark small.
            for p in raw_dir.glob("*.bin"):
                p.unlink()
        store.close()
        conn.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
