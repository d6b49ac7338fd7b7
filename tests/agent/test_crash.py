"""Crash safety, tested: SIGKILL the ingesting process at random moments, restart it, and
check that what it reported committed survived and that it resumed without gap or duplicate."""

from __future__ import annotations

import os
import random
import select
import signal
import subprocess
import sys
import threading
import time

from agent.keys import Ed25519Signer
from agent.provenance import GENESIS, ProvenanceConfig, parse_chunk, verify_chunk
from agent.store import ChunkStore
from agent.verify import verify_path
from tests._fixtures import ROOT, fixture_file
from tests.agent._chunk_sources import PCAP, pcap_chunks

SIGNER = Ed25519Signer(bytes(range(32)))
STREAM = "lidar/vlp16"
KILLS = 60
CONFIG = ProvenanceConfig(flow={"max_chunks": 5})


def _open(root) -> ChunkStore:
    return ChunkStore(root, SIGNER, CONFIG, config_hash="c" * 64)


def _ingest(root, specs, wfd: int) -> None:
    """The writing process: resume after the stream head, report each commit, cut Flows."""
    store = _open(root)
    rec = store.recovered
    os.write(wfd, f"R {rec['tmp_removed']} {rec['orphan_chunk_files']} {rec['orphan_flow_files']}\n".encode())
    head = store.stream_head(STREAM)
    for spec in specs:
        if head.seq >= 0 and spec.t_end_ns <= head.t_end_ns:
            continue  # committed before the last crash
        chunk = store.ingest(spec)
        os.write(wfd, f"C {chunk.id} {chunk.header.seq}\n".encode())
        flow = store.cut_flow()
        if flow is not None:
            os.write(wfd, f"F {flow.id}\n".encode())
    os.write(wfd, b"DONE\n")
    store.close()


def _specs() -> list:
    return list(pcap_chunks(fixture_file(PCAP), window_s=0.01, rounds=120))


def child_main(root: str, wfd: int) -> None:
    """Entry point of a writer started as a fresh interpreter."""
    _ingest(root, _specs(), wfd)


def _start(root, specs, w: int) -> tuple[int, bool]:
    """A writer process: forked when this process has a single thread (fast, and safe),
    else a fresh interpreter (forking a multi-threaded process can inherit held locks).
    Returns (pid, forked)."""
    if threading.active_count() == 1:
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                _ingest(root, specs, w)
            except BaseException:  # noqa: BLE001  (a forked child must _exit, never return into pytest)
                code = 1
            os._exit(code)
        return pid, True
    code = f"from tests.agent.test_crash import child_main; child_main({str(root)!r}, {w})"
    proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(w,), cwd=str(ROOT))
    return proc.pid, False


def _run(root, specs, kill_at: tuple[int, float] | None) -> tuple[list[str], bool]:
    """Start a writer; with ``kill_at = (n, delay)`` SIGKILL it ``delay`` seconds after it has
    reported ``n`` commits (``n = 0``: after its start when forked, so the kill may land in its
    recovery; after it reports its store open when it is a fresh interpreter, which takes a
    while to import). Counting commits, not wall time, bounds the progress of each run
    whatever the machine's speed, so the writer cannot finish before every kill is done.
    Returns (report lines, finished)."""
    r, w = os.pipe()
    pid, forked = _start(root, specs, w)
    os.close(w)
    buf = b""
    n, delay = kill_at if kill_at is not None else (-1, 0.0)
    deadline = time.monotonic() + delay if kill_at is not None and n == 0 and forked else None
    killed = False
    while True:
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([r], [], [], timeout)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            killed = True
            break
        data = os.read(r, 65536)
        if not data:
            break
        buf += data
        if deadline is None and kill_at is not None:
            lines = buf.split(b"\n")[:-1]
            if (n == 0 and lines) or sum(line.startswith(b"C ") for line in lines) >= n > 0:
                deadline = time.monotonic() + delay
    # Whatever the child wrote before dying is still in the pipe.
    while data := os.read(r, 65536):
        buf += data
    os.close(r)
    _, status = os.waitpid(pid, 0)
    lines = buf.decode().split("\n")
    complete = lines[:-1]  # a torn last line was never fully reported
    finished = "DONE" in complete
    assert killed or os.WEXITSTATUS(status) == 0, f"writer failed (status {status})"
    return complete, finished


def test_sigkill_during_ingestion(tmp_path):
    specs = _specs()
    root = tmp_path / "store"
    rng = random.Random(1234)
    reported: dict[str, int] = {}
    reported_flows: set[str] = set()
    recovered = [0, 0, 0]  # temporary files, chunk files without a commit, Flow files without a commit
    kills = 0
    t0 = time.monotonic()
    finished = False
    while kills < KILLS and not finished:
        # 0-15 commits (about 30 ms of work here), then up to 5 ms more: a commit takes a few
        # ms, so the kill lands anywhere in a write, an fsync, a rename or a Flow cut.
        lines, finished = _run(root, specs, (rng.randint(0, 15), rng.uniform(0.0, 0.005)))
        kills += not finished
        for line in lines:
            if line.startswith("C "):
                _, cid, seq = line.split()
                assert cid not in reported, "a chunk reported committed twice"
                reported[cid] = int(seq)
            elif line.startswith("F "):
                reported_flows.add(line.split()[1])
            elif line.startswith("R "):
                recovered = [a + int(b) for a, b in zip(recovered, line.split()[1:])]
    if not finished:
        lines, finished = _run(root, specs, None)  # the last restart runs to the end
        for line in lines:
            if line.startswith("C "):
                reported[line.split()[1]] = int(line.split()[2])
            elif line.startswith("F "):
                reported_flows.add(line.split()[1])
    elapsed = time.monotonic() - t0
    print(f"{kills} SIGKILLs, {len(reported)} chunks reported committed, {elapsed:.1f} s; recovery removed "
          f"{recovered[0]} temporary files, {recovered[1]} uncommitted chunk files, {recovered[2]} uncommitted Flows")
    assert kills == KILLS and finished

    store = _open(root)
    rows = list(store.iter_chunks(STREAM))
    # Resumed exactly where it stopped: one chunk per spec, sequence 0..n-1, same data in order.
    assert [seq for _, _, seq, _ in rows] == list(range(len(specs)))
    # Every chunk reported committed is there (some committed ones were killed before their report).
    assert set(reported) <= {cid for cid, *_ in rows}
    prev = GENESIS
    for (cid, _, seq, _), spec in zip(rows, specs):
        cose, payload = store.read_chunk(cid)
        assert verify_chunk(cose, payload, SIGNER.public_key) == []
        header = parse_chunk(cose)[1]
        assert header.prev == prev and header.seq == seq and payload == spec.payload
        prev = bytes.fromhex(cid)
    # Every reported Flow exists, and every chunk is in exactly one Flow once all are cut.
    assert all(store.flow_path(f).exists() for f in reported_flows)
    store.cut_flows(force=True)
    listed = [c for p in store.flows_dir.glob("*.cose") for c in verify_flow_ids(p)]
    assert sorted(listed) == sorted(cid for cid, *_ in rows)
    leftovers = [p for p in root.rglob("*") if ".tmp-" in p.name]
    assert leftovers == []
    report = verify_path(root)
    assert report.ok, report.failures[:5]
    store.close()


def verify_flow_ids(path) -> list[str]:
    from agent.provenance import parse_flow

    return [c.hex() for c in parse_flow(path.read_bytes())[1].chunk_ids]
