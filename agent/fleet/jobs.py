"""Signed job documents: build and sign (fleet side), verify and remember (device side).

A job is a JSON object::

    {"v": 1, "job_id": "...", "device_id": "...", "type": "set_config", "params": {...},
     "issued_at": 1764000000, "expires_at": 1764000600, "nonce": "<32 hex>",
     "timeout_s": 120, "key_id": "<hex Ed25519 public key>", "sig": "<hex signature>"}

``sig`` is Ed25519 (pynacl) over the canonical JSON of every other field: sorted keys, no
spaces, UTF-8. The device accepts a job only when the key is one it trusts, the signature
holds, the target is this device, it has not expired, it was not seen before (job id and nonce
are kept in SQLite, in the same file as the outbox) and it is no larger than configured.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import threading
import time
import uuid
from collections import Counter
from enum import StrEnum
from pathlib import Path
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.errors import FleetError, JobRejected
from agent.store._sqlite import connect

JOB_ID_RE = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

JOB_TYPES = (
    "start_capture",
    "stop_capture",
    "seal_dataset",
    "mint",
    "set_config",
    "flush_uploads",
    "collect_diagnostics",
    "restart",
)


class JobState(StrEnum):
    QUEUED = "QUEUED"
    IN_PROGRESS = "IN_PROGRESS"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    REJECTED = "REJECTED"
    TIMED_OUT = "TIMED_OUT"

    @property
    def final(self) -> bool:
        return self in (JobState.SUCCEEDED, JobState.FAILED, JobState.REJECTED, JobState.TIMED_OUT)


class Job(BaseModel):
    """A verified job document (the signature is checked before this model is trusted)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: int = Field(1, ge=1, le=1)
    job_id: str = Field(pattern=JOB_ID_RE.pattern)
    device_id: str = Field(min_length=1, max_length=64)
    type: str = Field(min_length=1, max_length=64)
    params: dict[str, Any] = Field(default_factory=dict)
    issued_at: int = Field(ge=0)
    expires_at: int = Field(ge=0)
    nonce: str = Field(pattern=r"^[0-9a-f]{16,64}$")
    timeout_s: float | None = Field(None, gt=0)
    key_id: str = Field(pattern=r"^[0-9a-f]{64}$")
    sig: str = Field(pattern=r"^[0-9a-f]{128}$")


def canonical(doc: dict[str, Any]) -> bytes:
    """The signed bytes: canonical JSON of ``doc`` without ``sig``."""
    body = {k: v for k, v in doc.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def new_job_id() -> str:
    return "j-" + uuid.uuid4().hex


def sign_job(key: SigningKey, device_id: str, job_type: str, params: dict[str, Any] | None = None, *,
             ttl_s: int = 600, timeout_s: float | None = None, job_id: str | None = None,
             now: float | None = None) -> dict[str, Any]:
    """Build and sign a job document for ``device_id`` (fleet side)."""
    if job_type not in JOB_TYPES:
        raise FleetError(f"unknown job type {job_type!r} (one of {', '.join(JOB_TYPES)})")
    issued = int(time.time() if now is None else now)
    doc: dict[str, Any] = {
        "v": 1,
        "job_id": job_id or new_job_id(),
        "device_id": device_id,
        "type": job_type,
        "params": dict(params or {}),
        "issued_at": issued,
        "expires_at": issued + int(ttl_s),
        "nonce": secrets.token_hex(16),
        "key_id": key.verify_key.encode().hex(),
    }
    if timeout_s is not None:
        doc["timeout_s"] = float(timeout_s)
    doc["sig"] = key.sign(canonical(doc)).signature.hex()
    return doc


_SEEN_SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet_jobs (
    job_id TEXT PRIMARY KEY,
    nonce TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    received REAL NOT NULL,
    expires_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    next_seq INTEGER NOT NULL DEFAULT 0,
    doc TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS fleet_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class JobLedger:
    """Jobs this device has accepted (job id and nonce, for replay refusal) and their state,
    plus small persistent counters (birth sequence). SQLite WAL with synchronous=FULL."""

    def __init__(self, db: str | Path | sqlite3.Connection) -> None:
        self._own = not isinstance(db, sqlite3.Connection)
        self._conn = connect(db) if self._own else db  # type: ignore[arg-type]
        self._lock = threading.Lock()
        self._conn.executescript(_SEEN_SCHEMA)

    def close(self) -> None:
        if self._own:
            self._conn.close()

    def accept(self, job: Job, raw: str) -> bool:
        """Record ``job`` as seen (state QUEUED). False if its id or nonce was seen before."""
        with self._lock:
            try:
                self._conn.execute(
                    "INSERT INTO fleet_jobs (job_id, nonce, type, received, expires_at, state, doc) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (job.job_id, job.nonce, job.type, time.time(), job.expires_at, JobState.QUEUED.value, raw),
                )
            except sqlite3.IntegrityError:
                return False
        return True

    def seen(self, job_id: str) -> bool:
        return self._conn.execute("SELECT 1 FROM fleet_jobs WHERE job_id=?", (job_id,)).fetchone() is not None

    def next_seq(self, job_id: str, state: JobState) -> int:
        """Take the next update sequence number of ``job_id`` and record its state."""
        with self._lock:
            own = not self._conn.in_transaction  # else join the caller's transaction
            if own:
                self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT next_seq FROM fleet_jobs WHERE job_id=?", (job_id,)).fetchone()
                if row is not None:
                    self._conn.execute("UPDATE fleet_jobs SET next_seq = next_seq + 1, state = ? WHERE job_id = ?",
                                       (state.value, job_id))
                if own:
                    self._conn.execute("COMMIT")
            except BaseException:
                if own:
                    self._conn.execute("ROLLBACK")
                raise
        return 0 if row is None else int(row[0])  # None: a rejected job never accepted, one update

    def unfinished(self) -> list[tuple[str, str]]:
        """(job_id, state) of accepted jobs that never reached a final state (agent died)."""
        finals = tuple(s.value for s in JobState if s.final)
        rows = self._conn.execute(
            f"SELECT job_id, state FROM fleet_jobs WHERE state NOT IN ({','.join('?' * len(finals))}) ORDER BY received",
            finals,
        ).fetchall()
        return [(r[0], r[1]) for r in rows]

    def state(self, job_id: str) -> str | None:
        row = self._conn.execute("SELECT state FROM fleet_jobs WHERE job_id=?", (job_id,)).fetchone()
        return row[0] if row else None

    def prune(self, before: float) -> int:
        """Forget finished jobs that expired before ``before``: expiry already refuses them."""
        finals = tuple(s.value for s in JobState if s.final)
        with self._lock:
            cur = self._conn.execute(
                f"DELETE FROM fleet_jobs WHERE expires_at < ? AND state IN ({','.join('?' * len(finals))})",
                (before, *finals),
            )
        return cur.rowcount

    def bump(self, key: str) -> int:
        """Increment and return a persistent counter (e.g. the status birth sequence)."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                row = self._conn.execute("SELECT value FROM fleet_meta WHERE key=?", (key,)).fetchone()
                value = (int(row[0]) if row else 0) + 1
                self._conn.execute("INSERT OR REPLACE INTO fleet_meta (key, value) VALUES (?, ?)", (key, str(value)))
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return value


class JobVerifier:
    """Turns received bytes into a :class:`Job` or raises :class:`JobRejected`.

    Checks, in order: size, JSON, job id (without one nobody can be told), schema, trusted
    key and signature, target device, expiry and validity window, job type, replay. Replays
    are dropped silently (the original job's updates stand); documents with no usable job id
    are dropped; the rest are REJECTED to the sender. ``counts`` tallies every reason.
    """

    def __init__(self, device_id: str, trusted_keys: list[str], ledger: JobLedger, *, max_bytes: int = 16384,
                 max_validity_s: int = 7 * 24 * 3600, clock_skew_s: int = 300) -> None:
        self.device_id = device_id
        self._keys = {k: VerifyKey(bytes.fromhex(k)) for k in trusted_keys}
        self.ledger = ledger
        self.max_bytes = max_bytes
        self.max_validity_s = max_validity_s
        self.clock_skew_s = clock_skew_s
        self.counts: Counter[str] = Counter()

    def _reject(self, reason: str, job_id: str | None, tell: bool) -> JobRejected:
        self.counts[reason.split(":")[0]] += 1
        # Never answer on the topic of a job this device already took: a forger could
        # otherwise append REJECTED to a real job's history.
        if tell and job_id is not None and self.ledger.seen(job_id):
            tell = False
        return JobRejected(reason, job_id, tell)

    def verify(self, raw: bytes, now: float | None = None) -> Job:
        now = time.time() if now is None else now
        if len(raw) > self.max_bytes:
            raise self._reject(f"oversized: {len(raw)} > {self.max_bytes} bytes", None, False)
        try:
            doc = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
            raise self._reject("malformed: not JSON", None, False) from None
        if not isinstance(doc, dict):
            raise self._reject("malformed: not a JSON object", None, False)
        job_id = doc.get("job_id")
        if not isinstance(job_id, str) or not JOB_ID_RE.match(job_id):
            raise self._reject("malformed: no valid job_id", None, False)
        try:
            job = Job.model_validate(doc)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first["loc"]) or "(document)"
            raise self._reject(f"malformed: {where}: {first['msg']}", job_id, True) from None
        key = self._keys.get(job.key_id)
        if key is None:
            raise self._reject("bad signature: key not trusted", job_id, True)
        try:
            key.verify(canonical(doc), bytes.fromhex(job.sig))
        except BadSignatureError:
            raise self._reject("bad signature", job_id, True) from None
        if job.device_id != self.device_id:
            raise self._reject(f"wrong target: for {job.device_id}", job_id, True)
        if job.expires_at <= now:
            raise self._reject("expired", job_id, True)
        if job.issued_at > now + self.clock_skew_s:
            raise self._reject("not yet valid: issued in the future", job_id, True)
        if job.expires_at - job.issued_at > self.max_validity_s:
            raise self._reject("validity window too long", job_id, True)
        if job.type not in JOB_TYPES:
            raise self._reject(f"unknown job type: {job.type}", job_id, True)
        if not self.ledger.accept(job, raw.decode("utf-8")):
            raise self._reject("replay", job_id, False)
        self.counts["accepted"] += 1
        return job


def load_signing_key(path: str | Path) -> SigningKey:
    """A fleet signing key stored as a hex seed (``edge-agent fleet keys init``)."""
    p = Path(path)
    try:
        seed = bytes.fromhex(p.read_text().strip())
    except FileNotFoundError:
        raise FleetError(f"{p}: no fleet key (run: edge-agent fleet keys init)") from None
    except ValueError:
        raise FleetError(f"{p}: not a hex Ed25519 seed") from None
    if len(seed) != 32:
        raise FleetError(f"{p}: an Ed25519 seed has 32 bytes, found {len(seed)}")
    return SigningKey(seed)


def create_signing_key(path: str | Path, overwrite: bool = False) -> SigningKey:
    """Create a fleet signing key file (mode 0600, written then fsynced then renamed)."""
    import os

    p = Path(path)
    if p.exists() and not overwrite:
        raise FleetError(f"{p}: exists (use --force to replace it)")
    p.parent.mkdir(parents=True, exist_ok=True)
    key = SigningKey.generate()
    tmp = p.with_name(p.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, key.encode().hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, p)
    return key
