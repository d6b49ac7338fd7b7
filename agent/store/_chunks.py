"""The chunk store: sequences and signs chunks, batches them into Flows, seals datasets,
tracks their states and keeps the disk budget.

Layout of a store directory (``<state_dir>/store``)::

    store.db                 SQLite (WAL, synchronous=FULL): chunks, flows, datasets,
                             stream_heads, store_events, store_counters (+ the outbox table)
    chunks/<id>.cose         chunk COSE_Sign1          chunks/<id>.bin    its payload
    chunks/<id>.chunk        attached form (when ``attach_payload``)
    flows/<flow_id>.cose     signed Flows
    datasets/<session>/      sealed datasets (layout: :mod:`agent.provenance._dataset`),
                             chunk and Flow files hard-linked from chunks/ and flows/

Every step writes its files first (temporary name, fsync, rename, directory fsync) and
then commits its state in one SQLite transaction. Recovery at open removes temporary
files and files no committed row refers to (a chunk file whose commit never happened, a
Flow file whose chunks were not yet marked): such chunks stay ``chunked`` and go into the
next Flow, exactly once. A dataset seal records its intent first (``sealing``) and is
finished at the next open if it was interrupted.

States only move forward (code and SQL triggers): captured(0) → chunked(1) → in_flow(2)
→ sealed(3) → uploaded(4) → anchored(5). Chunks enter at ``chunked``: signing happens as
the producer hands a chunk in, so ``captured`` is kept for producers that stage raw data.
Eviction is a separate flag that is never cleared.

Sealing a dataset also puts one outbox item (kind ``dataset_sealed``, key = dataset id, the
same database file) in the transaction that marks it sealed, so the DAT mint is queued
exactly once whatever fails in between. Store events (``store_events``: store_full,
disk_full, evicted, dataset_sealed, recovered, ...) are for the fleet client to publish.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import Any

from agent import __version__
from agent.errors import ProvenanceError, StateError, StoreError, StoreFullError
from agent.keys._keys import Signer
from agent.provenance._chunk import GENESIS, ChunkHeader, ChunkSpec, SignedChunk, build_chunk, parse_chunk
from agent.provenance._config import ProvenanceConfig
from agent.provenance._dataset import MANIFEST, SignedDataset, build_dataset, canonical_json
from agent.provenance._flow import SignedFlow, build_flow, parse_flow
from agent.store._files import is_tmp, remove_quietly, write_files_atomically
from agent.store._sqlite import connect

log = logging.getLogger(__name__)


class State(IntEnum):
    CAPTURED = 0
    CHUNKED = 1
    IN_FLOW = 2
    SEALED = 3
    UPLOADED = 4
    ANCHORED = 5


_STATE_CHECK = "CHECK (state BETWEEN 0 AND 5)"
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS flows (
    seq INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    root BLOB NOT NULL,
    chunks INTEGER NOT NULL,
    payload_bytes INTEGER NOT NULL,
    file_bytes INTEGER NOT NULL,
    state INTEGER NOT NULL {_STATE_CHECK},
    dataset TEXT,
    evicted INTEGER NOT NULL DEFAULT 0 CHECK (evicted IN (0, 1)),
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
    id TEXT PRIMARY KEY,
    stream TEXT NOT NULL,
    seq INTEGER NOT NULL,
    t_start_ns INTEGER NOT NULL,
    t_end_ns INTEGER NOT NULL,
    payload_bytes INTEGER NOT NULL,
    file_bytes INTEGER NOT NULL,
    attached INTEGER NOT NULL,
    state INTEGER NOT NULL {_STATE_CHECK},
    flow_seq INTEGER REFERENCES flows(seq),
    evicted INTEGER NOT NULL DEFAULT 0 CHECK (evicted IN (0, 1)),
    created REAL NOT NULL,
    UNIQUE (stream, seq)
);
CREATE INDEX IF NOT EXISTS chunks_state ON chunks (state);
CREATE INDEX IF NOT EXISTS chunks_flow ON chunks (flow_seq);
CREATE TABLE IF NOT EXISTS stream_heads (
    stream TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    t_end_ns INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS datasets (
    session TEXT PRIMARY KEY,
    id TEXT,
    root BLOB,
    reason TEXT NOT NULL,
    sealing INTEGER NOT NULL CHECK (sealing IN (0, 1)),
    state INTEGER NOT NULL {_STATE_CHECK},
    sealed_ns INTEGER NOT NULL,
    config_hash TEXT NOT NULL,
    file_bytes INTEGER NOT NULL DEFAULT 0,
    anchor TEXT,
    evicted INTEGER NOT NULL DEFAULT 0 CHECK (evicted IN (0, 1)),
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS store_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    ts REAL NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    published INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS store_counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""
_TRIGGERS = "".join(
    f"""
CREATE TRIGGER IF NOT EXISTS {t}_forward BEFORE UPDATE OF state ON {t}
WHEN NEW.state < OLD.state BEGIN SELECT RAISE(ABORT, 'state may only move forward'); END;
CREATE TRIGGER IF NOT EXISTS {t}_evicted BEFORE UPDATE OF evicted ON {t}
WHEN NEW.evicted < OLD.evicted BEGIN SELECT RAISE(ABORT, 'eviction cannot be undone'); END;
"""
    for t in ("chunks", "flows", "datasets")
)
# Outbox kind of a sealed dataset waiting for its DAT mint (key: dataset id).
OUTBOX_KIND = "dataset_sealed"
# Room kept for a chunk's COSE header and SQLite growth besides its payload.
_CHUNK_OVERHEAD = 1024


@dataclass(frozen=True)
class StreamHead:
    stream: str
    seq: int  # last committed sequence number (-1: none yet)
    hash: bytes  # SHA-256 of the last chunk's COSE bytes (GENESIS: none)
    t_end_ns: int


class ChunkStore:
    """Crash-safe store of signed chunks, Flows and datasets (see the module docstring).

    ``clock_ns`` gives UTC nanoseconds (tests pass a fake clock for Flow ages)."""

    def __init__(self, root: str | Path, signer: Signer, config: ProvenanceConfig | None = None, *,
                 config_hash: str = "", evm_address: str = "", effective_config: dict[str, Any] | None = None,
                 db: str | Path | None = None, clock_ns: Any = time.time_ns) -> None:
        self.root = Path(root)
        self.signer = signer
        self.config = config or ProvenanceConfig()
        self.config_hash = config_hash
        self.evm_address = evm_address
        self.effective_config = effective_config
        self.clock_ns = clock_ns
        self.chunks_dir = self.root / "chunks"
        self.flows_dir = self.root / "flows"
        self.datasets_dir = self.root / "datasets"
        for d in (self.chunks_dir, self.flows_dir, self.datasets_dir):
            d.mkdir(parents=True, exist_ok=True)
        self._conn: sqlite3.Connection | None = connect(db if db is not None else self.root / "store.db")
        self._lock = threading.RLock()
        # Keep the WAL small: checkpoint every ~1 MiB and truncate it afterwards (small disks).
        self._conn.execute("PRAGMA wal_autocheckpoint=256")
        self._conn.execute("PRAGMA journal_size_limit=1048576")
        self._conn.executescript(_SCHEMA + _TRIGGERS)
        from agent.store.outbox import Outbox

        Outbox(self._conn)  # its table: a sealed dataset is queued for minting in the seal's transaction
        self.recovered: dict[str, int] = {}
        self.reserve_path = self.root / "reserve.bin"
        self._fs_full = False
        self._used: int | None = None
        self.recover()
        self._restore_reserve()

    # ------------------------------------------------------------------ lifecycle
    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError("the store is closed")
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> ChunkStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self) -> _Tx:
        return _Tx(self.conn)

    # ------------------------------------------------------------------ paths
    def chunk_paths(self, chunk_id: str, attached: bool = False) -> list[Path]:
        if attached:
            return [self.chunks_dir / f"{chunk_id}.chunk"]
        return [self.chunks_dir / f"{chunk_id}.cose", self.chunks_dir / f"{chunk_id}.bin"]

    def flow_path(self, flow_id: str) -> Path:
        return self.flows_dir / f"{flow_id}.cose"

    def dataset_dir(self, session: str) -> Path:
        return self.datasets_dir / session

    # ------------------------------------------------------------------ recovery
    def recover(self) -> dict[str, int]:
        """Bring files and rows back into agreement after a crash (see the module docstring)."""
        with self._lock:
            stats = {"tmp_removed": 0, "orphan_chunk_files": 0, "orphan_flow_files": 0, "orphan_datasets": 0,
                     "seals_finished": 0, "evicted_files": 0, "missing_files": 0}
            for name in os.listdir(self.root):  # e.g. a reserve file cut short
                if is_tmp(name):
                    os.unlink(self.root / name)
                    stats["tmp_removed"] += 1
            for d in (self.chunks_dir, self.flows_dir, self.datasets_dir):
                for dirpath, _dirs, names in os.walk(d):
                    for name in names:
                        if is_tmp(name):
                            os.unlink(os.path.join(dirpath, name))
                            stats["tmp_removed"] += 1
            known = {r[0]: (bool(r[1]), bool(r[2])) for r in
                     self.conn.execute("SELECT id, attached, evicted FROM chunks")}
            present = set()
            for name in os.listdir(self.chunks_dir):
                cid = name.split(".", 1)[0]
                row = known.get(cid)
                if row is None or row[1]:
                    os.unlink(self.chunks_dir / name)
                    stats["orphan_chunk_files" if row is None else "evicted_files"] += 1
                else:
                    present.add(name)
            for cid, (attached, evicted) in known.items():
                if not evicted and any(p.name not in present for p in self.chunk_paths(cid, attached)):
                    stats["missing_files"] += 1
                    self._event("missing_file", {"chunk": cid}, level=logging.ERROR)
            flows = {r[0]: bool(r[1]) for r in self.conn.execute("SELECT id, evicted FROM flows")}
            for name in os.listdir(self.flows_dir):
                fid = name.split(".", 1)[0]
                if fid not in flows or flows[fid]:
                    os.unlink(self.flows_dir / name)
                    stats["orphan_flow_files" if fid not in flows else "evicted_files"] += 1
            sessions = {r[0]: (r[1], r[2]) for r in self.conn.execute("SELECT session, sealing, evicted FROM datasets")}
            for name in os.listdir(self.datasets_dir):
                st = sessions.get(name)
                if st is None or st[1]:
                    shutil.rmtree(self.datasets_dir / name, ignore_errors=True)
                    stats["orphan_datasets" if st is None else "evicted_files"] += 1
            for session, (sealing, _ev) in sessions.items():
                if sealing:
                    self._finish_seal(session)
                    stats["seals_finished"] += 1
            self.recovered = stats
            if any(stats.values()):
                log.info("store recovery: %s", stats, extra={"fields": {"recovery": stats}})
                self._event("recovered", stats)
            return stats

    # ------------------------------------------------------------------ events and counters
    def _event(self, kind: str, detail: dict[str, Any], level: int = logging.INFO) -> None:
        log.log(level, "store event %s: %s", kind, detail, extra={"fields": {"event": kind, **detail}})
        try:
            self.conn.execute("INSERT INTO store_events (ts, kind, detail) VALUES (?, ?, ?)",
                              (time.time(), kind, json.dumps(detail, sort_keys=True, default=str)))
        except sqlite3.Error as exc:  # e.g. the disk is full: the log line still says it
            log.error("could not record store event %s: %s", kind, exc)

    def _bump(self, name: str, by: int = 1) -> None:
        try:
            self.conn.execute("INSERT INTO store_counters (name, value) VALUES (?, ?) "
                              "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, by))
        except sqlite3.Error as exc:
            log.error("could not count %s: %s", name, exc)

    def events(self, since_id: int = 0, unpublished_only: bool = False) -> list[dict[str, Any]]:
        """Store events (store_full, evicted, dataset_sealed, recovered, ...) for the fleet client."""
        q = "SELECT id, ts, kind, detail, published FROM store_events WHERE id > ?"
        if unpublished_only:
            q += " AND published = 0"
        return [{"id": r[0], "ts": r[1], "kind": r[2], "detail": json.loads(r[3]), "published": bool(r[4])}
                for r in self.conn.execute(q + " ORDER BY id", (since_id,))]

    def mark_events_published(self, up_to_id: int) -> None:
        with self._lock:
            self.conn.execute("UPDATE store_events SET published = 1 WHERE id <= ?", (up_to_id,))

    def counters(self) -> dict[str, int]:
        return {r[0]: r[1] for r in self.conn.execute("SELECT name, value FROM store_counters")}

    # ------------------------------------------------------------------ budget
    def used_bytes(self) -> int:
        """Bytes of chunk, payload, Flow and dataset files not evicted (kept in memory,
        counted from the database at open and after eviction)."""
        if self._used is None:
            self._used = self._count_used()
        return self._used

    def _count_used(self) -> int:
        c = self.conn.execute("SELECT COALESCE(SUM(file_bytes), 0) FROM chunks WHERE evicted = 0").fetchone()[0]
        f = self.conn.execute("SELECT COALESCE(SUM(file_bytes), 0) FROM flows WHERE evicted = 0").fetchone()[0]
        d = self.conn.execute("SELECT COALESCE(SUM(file_bytes), 0) FROM datasets WHERE evicted = 0").fetchone()[0]
        return int(c + f + d)

    def _refuse(self, reason: str, need: int) -> StoreFullError:
        used, budget = self.used_bytes(), self.config.store.budget_bytes
        self._bump("chunks_refused")
        self._event("store_full", {"reason": reason, "used": used, "budget": budget, "needed": need,
                                   "policy": self.config.store.policy}, level=logging.WARNING)
        return StoreFullError(reason, used, budget)

    def _oldest_anchored(self) -> str | None:
        row = self.conn.execute(
            "SELECT session FROM datasets WHERE state = ? AND evicted = 0 AND sealing = 0 "
            "ORDER BY sealed_ns, session LIMIT 1", (State.ANCHORED,)).fetchone()
        return None if row is None else str(row[0])

    def _evict_for_disk(self) -> bool:
        """Policy ``evict`` on a full file system (not only a full budget): drop the oldest
        anchored datasets until the reserve file fits again. The reserve is released first
        so that the evictions can be recorded. False (nothing evicted that helped) under
        policy ``stop`` or when nothing is both uploaded and anchored."""
        if self.config.store.policy != "evict" or self._oldest_anchored() is None:
            return False
        if remove_quietly(self.reserve_path):
            log.warning("file system full: reserve of %d bytes released to evict anchored data",
                        self.config.store.reserve_bytes)
        while (victim := self._oldest_anchored()) is not None:
            self.evict_dataset(victim)
            if self._restore_reserve():
                return True
        return False

    def _ensure_room(self, need: int) -> None:
        if self._fs_full and not self._restore_reserve() and not self._evict_for_disk():
            self._bump("chunks_refused")
            self._event("disk_full", {"what": "file system still full (reserve released)", "needed": need,
                                      "policy": self.config.store.policy}, level=logging.WARNING)
            raise StoreFullError("the file system is full (reserve released)", self.used_bytes(),
                                 self.config.store.budget_bytes)
        budget = self.config.store.budget_bytes
        while self.used_bytes() + need > budget:
            if self.config.store.policy == "stop":
                raise self._refuse("policy stop: new data refused until space is freed", need)
            victim = self._oldest_anchored()
            if victim is None:
                raise self._refuse("policy evict: nothing evictable (no dataset both uploaded and anchored); "
                                   "acting as stop", need)
            self.evict_dataset(victim)

    def evict_dataset(self, session: str) -> int:
        """Drop an anchored dataset's files (it must be uploaded and anchored). Returns bytes freed."""
        with self._lock:
            row = self.conn.execute("SELECT state, evicted FROM datasets WHERE session = ?", (session,)).fetchone()
            if row is None:
                raise StoreError(f"no dataset {session!r}")
            if row[0] != State.ANCHORED:
                raise StoreError(f"dataset {session!r} is {State(row[0]).name.lower()}: only anchored data is evicted")
            if row[1]:
                return 0
            before = self.used_bytes()
            flows = [r[0] for r in self.conn.execute("SELECT seq FROM flows WHERE dataset = ?", (session,))]
            chunk_rows = self._chunks_of_flows(flows)
            with self._tx() as c:
                c.execute("UPDATE datasets SET evicted = 1 WHERE session = ?", (session,))
                c.executemany("UPDATE flows SET evicted = 1 WHERE seq = ?", [(s,) for s in flows])
                c.executemany("UPDATE chunks SET evicted = 1 WHERE id = ?", [(r[0],) for r in chunk_rows])
            self._used = None
            freed = before - self.used_bytes()
            # Files go after the commit: a crash here leaves files of evicted rows, removed at recovery.
            shutil.rmtree(self.dataset_dir(session), ignore_errors=True)
            for cid, attached in chunk_rows:
                for p in self.chunk_paths(cid, attached):
                    remove_quietly(p)
            for fid, in self.conn.execute("SELECT id FROM flows WHERE dataset = ?", (session,)):
                remove_quietly(self.flow_path(fid))
            self._bump("datasets_evicted")
            self._event("evicted", {"dataset": session, "bytes_freed": freed, "chunks": len(chunk_rows)},
                        level=logging.WARNING)
            return freed

    def _chunks_of_flows(self, flow_seqs: list[int]) -> list[tuple[str, bool]]:
        out: list[tuple[str, bool]] = []
        for s in flow_seqs:
            out += [(r[0], bool(r[1])) for r in
                    self.conn.execute("SELECT id, attached FROM chunks WHERE flow_seq = ? ORDER BY rowid", (s,))]
        return out

    # ------------------------------------------------------------------ chunks
    def stream_head(self, stream: str) -> StreamHead:
        row = self.conn.execute("SELECT seq, hash, t_end_ns FROM stream_heads WHERE stream = ?", (stream,)).fetchone()
        if row is None:
            return StreamHead(stream, -1, GENESIS, 0)
        return StreamHead(stream, row[0], bytes(row[1]), row[2])

    def ingest(self, spec: ChunkSpec) -> SignedChunk:
        """Sign ``spec`` as the next chunk of its stream and commit it durably. When this
        returns, the chunk survives a crash. Raises :class:`StoreFullError` per the policy."""
        with self._lock:
            self._ensure_room(len(spec.payload) + _CHUNK_OVERHEAD)
            head = self.stream_head(spec.stream)
            chunk = build_chunk(self.signer, spec, head.seq + 1, head.hash)
            attached = self.config.attach_payload
            paths = self.chunk_paths(chunk.id, attached)
            blobs = [chunk.attached()] if attached else [chunk.cose, spec.payload]
            h = chunk.header
            # A full file system under policy evict: evict anchored data, then one retry.
            for attempt in (0, 1):
                try:
                    write_files_atomically(list(zip(paths, blobs)))
                except OSError as exc:
                    for p in paths:
                        remove_quietly(p)
                    if attempt == 0 and _is_full(exc) and self._evict_for_disk():
                        continue
                    raise self._io_failure(exc, "writing chunk files", len(spec.payload)) from None
                try:
                    with self._tx() as c:
                        c.execute(
                            "INSERT INTO chunks (id, stream, seq, t_start_ns, t_end_ns, payload_bytes, file_bytes, "
                            "attached, state, created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                            (chunk.id, h.stream, h.seq, h.t_start_ns, h.t_end_ns, h.payload_size,
                             sum(len(b) for b in blobs), int(attached), State.CHUNKED, time.time()))
                        c.execute("INSERT INTO stream_heads (stream, seq, hash, t_end_ns) VALUES (?, ?, ?, ?) "
                                  "ON CONFLICT(stream) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, "
                                  "t_end_ns = excluded.t_end_ns", (h.stream, h.seq, chunk.id_bytes, h.t_end_ns))
                except sqlite3.Error as exc:
                    for p in paths:
                        remove_quietly(p)
                    if attempt == 0 and _is_full(exc) and self._evict_for_disk():
                        continue
                    raise self._io_failure(exc, "committing a chunk", len(spec.payload)) from None
                break
            self._used = self.used_bytes() + sum(len(b) for b in blobs)
            return chunk

    def _restore_reserve(self) -> bool:
        """(Re)create the reserve file; False when the file system has no room for it."""
        size = self.config.store.reserve_bytes
        if size == 0 or (self.reserve_path.exists() and self.reserve_path.stat().st_size == size):
            self._fs_full = False
            return True
        try:
            write_files_atomically([(self.reserve_path, bytes(size))])
        except OSError:
            remove_quietly(self.reserve_path)
            return False
        self._fs_full = False
        return True

    def _io_failure(self, exc: Exception, what: str, need: int) -> StoreError:
        if _is_full(exc):
            # Release the reserve so that the counter and the event below can be written.
            self._fs_full = True
            released = remove_quietly(self.reserve_path)
            if released:
                log.warning("file system full: reserve of %d bytes released", self.config.store.reserve_bytes)
            self._bump("chunks_refused")
            self._event("disk_full", {"what": what, "error": str(exc), "needed": need,
                                      "policy": self.config.store.policy}, level=logging.WARNING)
            return StoreFullError(f"the file system is full while {what}", self.used_bytes(),
                                  self.config.store.budget_bytes)
        return StoreError(f"{what} failed: {exc}")

    def read_chunk(self, chunk_id: str) -> tuple[bytes, bytes]:
        """(COSE bytes, payload) of a stored chunk."""
        row = self.conn.execute("SELECT attached, evicted FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
        if row is None:
            raise StoreError(f"no chunk {chunk_id}")
        if row[1]:
            raise StoreError(f"chunk {chunk_id} was evicted")
        if row[0]:
            from agent.provenance._chunk import split_attached

            return split_attached(self.chunk_paths(chunk_id, True)[0].read_bytes())
        cose, payload = self.chunk_paths(chunk_id)
        return cose.read_bytes(), payload.read_bytes()

    def chunk_state(self, chunk_id: str) -> State:
        row = self.conn.execute("SELECT state FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
        if row is None:
            raise StoreError(f"no chunk {chunk_id}")
        return State(row[0])

    # ------------------------------------------------------------------ flows
    def _pending(self) -> list[tuple[str, int, float]]:
        return [(r[0], r[1], r[2]) for r in self.conn.execute(
            "SELECT id, payload_bytes, created FROM chunks WHERE state = ? AND evicted = 0 ORDER BY rowid",
            (State.CHUNKED,))]

    def cut_flow(self, force: bool = False) -> SignedFlow | None:
        """Batch pending chunks into one Flow when a limit (bytes, chunks, age) is reached,
        or whenever there are pending chunks if ``force``. Returns the Flow or None."""
        with self._lock:
            pending = self._pending()
            if not pending:
                return None
            lim = self.config.flow
            take, size = [], 0
            for cid, nbytes, _created in pending:
                if take and (len(take) >= lim.max_chunks or size + nbytes > lim.max_bytes):
                    break
                take.append(cid)
                size += nbytes
            full = len(take) < len(pending) or len(take) >= lim.max_chunks or size >= lim.max_bytes
            aged = time.time() - pending[0][2] >= lim.max_age_s
            if not (force or full or aged):
                return None
            last = self.conn.execute("SELECT seq, root FROM flows ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev_root = (0, GENESIS) if last is None else (last[0] + 1, bytes(last[1]))
            flow = build_flow(self.signer, [bytes.fromhex(c) for c in take], seq, prev_root, self.clock_ns(),
                              __version__, self.config_hash)
            path = self.flow_path(flow.id)
            try:
                # No budget check here: the budget limits new data; Flows must still be cut
                # so that data can be sealed, uploaded, anchored and then evicted.
                write_files_atomically([(path, flow.cose)])
            except OSError as exc:
                remove_quietly(path)
                raise self._io_failure(exc, "writing a Flow", len(flow.cose)) from None
            with self._tx() as c:
                c.execute("INSERT INTO flows (seq, id, root, chunks, payload_bytes, file_bytes, state, created) "
                          "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                          (seq, flow.id, flow.manifest.root, len(take), size, len(flow.cose), State.IN_FLOW,
                           time.time()))
                n = 0
                for cid in take:
                    n += c.execute("UPDATE chunks SET state = ?, flow_seq = ? WHERE id = ? AND state = ?",
                                   (State.IN_FLOW, seq, cid, State.CHUNKED)).rowcount
                if n != len(take):
                    raise StoreError(f"Flow {seq}: {len(take) - n} chunks were no longer pending")
            self._used = self.used_bytes() + len(flow.cose)
            return flow

    def cut_flows(self, force: bool = False) -> list[SignedFlow]:
        """Cut Flows until no limit is reached (or nothing is pending, with ``force``)."""
        out = []
        while (flow := self.cut_flow(force)) is not None:
            out.append(flow)
        return out

    def flow_of_chunk(self, chunk_id: str) -> tuple[str, int, list[bytes], bytes]:
        """(Flow id, index, inclusion proof, Flow root) of a chunk already in a Flow."""
        row = self.conn.execute("SELECT f.id FROM chunks c JOIN flows f ON c.flow_seq = f.seq WHERE c.id = ?",
                                (chunk_id,)).fetchone()
        if row is None:
            raise StoreError(f"chunk {chunk_id} is not in a Flow")
        _msg, m = parse_flow(self.flow_path(row[0]).read_bytes())
        index, proof = m.proof(chunk_id)
        return row[0], index, proof, m.root

    # ------------------------------------------------------------------ datasets
    def maybe_seal(self) -> SignedDataset | None:
        """Seal when the configured window has passed since the oldest unsealed chunk."""
        window = self.config.dataset.window_s
        if window is None:
            return None
        row = self.conn.execute("SELECT MIN(created) FROM chunks WHERE state IN (?, ?) AND evicted = 0",
                                (State.CHUNKED, State.IN_FLOW)).fetchone()
        if row[0] is None or time.time() - row[0] < window:
            return None
        return self.seal_dataset("window")

    def on_ignition(self, on: bool) -> SignedDataset | None:
        """A power event from the vehicle: ignition off closes the drive session."""
        if on:
            self._event("ignition_on", {})
            return None
        return self.seal_dataset("ignition_off")

    def seal_dataset(self, reason: str = "explicit", session: str | None = None) -> SignedDataset | None:
        """Close the session: put pending chunks in Flows, then sign a dataset over every
        Flow not yet in one (``reason``: explicit, ignition_off, window). None when empty."""
        with self._lock:
            for (pending,) in list(self.conn.execute("SELECT session FROM datasets WHERE sealing = 1")):
                self._finish_seal_or_raise(pending)  # an earlier seal that failed half-way
            self.cut_flows(force=True)
            flows = [r[0] for r in self.conn.execute("SELECT seq FROM flows WHERE dataset IS NULL ORDER BY seq")]
            if not flows:
                return None
            sealed_ns = self.clock_ns()
            if session is None:
                session = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(sealed_ns / 1e9)) + f"-f{flows[0]}"
            with self._tx() as c:
                c.execute("INSERT INTO datasets (session, reason, sealing, state, sealed_ns, config_hash, created) "
                          "VALUES (?, ?, 1, ?, ?, ?, ?)",
                          (session, reason, State.IN_FLOW, sealed_ns, self.config_hash, time.time()))
                c.executemany("UPDATE flows SET dataset = ? WHERE seq = ?", [(session, s) for s in flows])
            return self._finish_seal_or_raise(session)

    def _finish_seal_or_raise(self, session: str) -> SignedDataset:
        try:
            return self._finish_seal(session)
        except (OSError, sqlite3.Error) as exc:
            # The intent stays recorded: the next seal or the next open finishes it.
            raise self._io_failure(exc, f"sealing dataset {session}", 0) from None

    def _finish_seal(self, session: str) -> SignedDataset:
        """Write the dataset directory and mark it sealed; safe to redo after a crash
        (same inputs, deterministic Ed25519: the same bytes)."""
        reason, sealed_ns, config_hash = self.conn.execute(
            "SELECT reason, sealed_ns, config_hash FROM datasets WHERE session = ?", (session,)).fetchone()
        flow_rows = list(self.conn.execute("SELECT seq, id, root FROM flows WHERE dataset = ? ORDER BY seq",
                                           (session,)))
        chunk_rows = self._chunks_of_flows([r[0] for r in flow_rows])
        headers: list[ChunkHeader] = []
        for cid, attached in chunk_rows:
            cose, _ = self.read_chunk(cid) if attached else (self.chunk_paths(cid)[0].read_bytes(), b"")
            headers.append(parse_chunk(cose)[1])
        t0 = min(h.t_start_ns for h in headers)
        t1 = max(h.t_end_ns for h in headers)
        ds = build_dataset(self.signer, evm_address=self.evm_address, session=session, reason=reason, started_ns=t0,
                           ended_ns=t1, sealed_ns=sealed_ns, flows=[(bytes.fromhex(r[1]), bytes(r[2])) for r in flow_rows],
                           headers=headers, usage_terms=self.config.dataset.usage_terms,
                           agent_version=__version__, config_hash=config_hash)
        out = self.dataset_dir(session)
        (out / "flows").mkdir(parents=True, exist_ok=True)
        (out / "chunks").mkdir(parents=True, exist_ok=True)
        for _seq, fid, _root in flow_rows:
            _link(self.flow_path(fid), out / "flows" / f"{fid}.cose")
        for cid, attached in chunk_rows:
            for p in self.chunk_paths(cid, attached):
                _link(p, out / "chunks" / p.name)
        from agent.store._files import fsync_dir

        fsync_dir(out / "flows")
        fsync_dir(out / "chunks")
        extra = [(out / "coverage.geojson", canonical_json(ds.manifest["coverage"]))]
        if self.effective_config is not None:
            extra.append((out / "config.json", canonical_json(self.effective_config)))
        write_files_atomically(extra)
        write_files_atomically([(out / MANIFEST, ds.cose)])  # last: its presence means complete
        fbytes = len(ds.cose) + sum(len(b) for _, b in extra)
        with self._tx() as c:
            c.execute("UPDATE datasets SET sealing = 0, id = ?, root = ?, state = ?, file_bytes = ? WHERE session = ?",
                      (ds.id, ds.manifest["root"], State.SEALED, fbytes, session))
            c.execute("UPDATE flows SET state = ? WHERE dataset = ?", (State.SEALED, session))
            c.executemany("UPDATE chunks SET state = ? WHERE id = ?", [(State.SEALED, cid) for cid, _ in chunk_rows])
            # Exactly once with the seal: the chain side takes it from the outbox (kind dataset_sealed).
            job = {"session": session, "dataset_id": ds.id, "root": "0x" + ds.manifest["root"].hex(),
                   "path": str(out), "device": self.signer.key_id, "evm_address": self.evm_address}
            c.execute("INSERT OR IGNORE INTO outbox (kind, key, payload, created) VALUES (?, ?, ?, ?)",
                      (OUTBOX_KIND, ds.id, json.dumps(job, sort_keys=True, separators=(",", ":")), time.time()))
        self._used = None  # the dataset's own files now count
        self._event("dataset_sealed", {"dataset": session, "id": ds.id, "root": ds.manifest["root"].hex(),
                                       "reason": reason, "flows": len(flow_rows), "chunks": len(chunk_rows),
                                       "path": str(out)})
        return ds

    def datasets(self) -> list[dict[str, Any]]:
        return [{"session": r[0], "id": r[1], "root": r[2].hex() if r[2] else None, "reason": r[3],
                 "state": State(r[4]).name.lower(), "evicted": bool(r[5]), "anchor": r[6],
                 "path": str(self.dataset_dir(r[0]))}
                for r in self.conn.execute("SELECT session, id, root, reason, state, evicted, anchor FROM datasets "
                                           "WHERE sealing = 0 ORDER BY sealed_ns")]

    def _advance(self, session: str, state: State, anchor: str | None = None) -> None:
        with self._lock:
            row = self.conn.execute("SELECT state, sealing FROM datasets WHERE session = ?", (session,)).fetchone()
            if row is None:
                raise StoreError(f"no dataset {session!r}")
            if row[1]:
                raise StateError(f"dataset {session!r} is still being sealed")
            if state < row[0]:
                raise StateError(f"dataset {session!r} is {State(row[0]).name.lower()}: "
                                 f"cannot move back to {state.name.lower()}")
            flows = [r[0] for r in self.conn.execute("SELECT seq FROM flows WHERE dataset = ?", (session,))]
            with self._tx() as c:
                c.execute("UPDATE datasets SET state = ?, anchor = COALESCE(?, anchor) WHERE session = ?",
                          (state, anchor, session))
                c.execute("UPDATE flows SET state = ? WHERE dataset = ?", (state, session))
                c.executemany("UPDATE chunks SET state = ? WHERE flow_seq = ?", [(state, s) for s in flows])
            self._event(f"dataset_{state.name.lower()}", {"dataset": session, "anchor": anchor})

    def mark_uploaded(self, session: str) -> None:
        """The dataset reached its upload sink."""
        self._advance(session, State.UPLOADED)

    def mark_anchored(self, session: str, anchor: str) -> None:
        """The dataset is anchored on chain (``anchor``: e.g. the tx hash or token id). Must be uploaded first."""
        row = self.conn.execute("SELECT state FROM datasets WHERE session = ?", (session,)).fetchone()
        if row is not None and row[0] < State.UPLOADED:
            raise StateError(f"dataset {session!r} is not uploaded yet: anchor after upload")
        self._advance(session, State.ANCHORED, anchor)

    def set_chunk_state(self, chunk_id: str, state: State) -> None:
        """Low-level move of one chunk (forward only)."""
        with self._lock:
            row = self.conn.execute("SELECT state FROM chunks WHERE id = ?", (chunk_id,)).fetchone()
            if row is None:
                raise StoreError(f"no chunk {chunk_id}")
            if state < row[0]:
                raise StateError(f"chunk {chunk_id} is {State(row[0]).name.lower()}: "
                                 f"cannot move back to {state.name.lower()}")
            with self._tx() as c:
                c.execute("UPDATE chunks SET state = ? WHERE id = ?", (state, chunk_id))

    def iter_chunks(self, stream: str | None = None) -> Iterator[tuple[str, str, int, State]]:
        q = "SELECT id, stream, seq, state FROM chunks"
        args: tuple[Any, ...] = ()
        if stream is not None:
            q += " WHERE stream = ?"
            args = (stream,)
        for r in self.conn.execute(q + " ORDER BY rowid", args):
            yield r[0], r[1], r[2], State(r[3])


def _is_full(exc: Exception) -> bool:
    """ENOSPC from a file write, or SQLite's "database or disk is full"."""
    return (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or (
        isinstance(exc, sqlite3.Error) and "full" in str(exc).lower())


def _link(src: Path, dst: Path) -> None:
    """Hard link (no extra space); copy where links are not possible. Idempotent."""
    if dst.exists():
        return
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


class _Tx:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error)."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.c = conn

    def __enter__(self) -> sqlite3.Connection:
        self.c.execute("BEGIN IMMEDIATE")
        return self.c

    def __exit__(self, et: object, e: object, tb: object) -> None:
        if et is None:
            try:
                self.c.execute("COMMIT")
                return
            except BaseException:
                self._rollback()  # SQLite may have rolled back already (e.g. SQLITE_FULL)
                raise
        self._rollback()

    def _rollback(self) -> None:
        if self.c.in_transaction:
            try:
                self.c.execute("ROLLBACK")
            except sqlite3.Error:
                pass


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


__all__ = ["ChunkStore", "ProvenanceError", "State", "StreamHead"]
