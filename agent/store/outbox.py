"""A durable outbox: put, then hand out until done; idempotent by key.

Used by the fleet client (events, job updates: kind ``mqtt``) and the chain client
(pending transactions: kind ``tx``). Items of one kind come out in insertion order.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.store._sqlite import connect

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    created REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_attempt REAL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'done')),
    result TEXT,
    UNIQUE (kind, key)
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (kind, state, id);
"""


@dataclass(frozen=True)
class OutboxItem:
    id: int
    kind: str
    key: str
    payload: dict[str, Any]
    attempts: int
    state: str
    result: dict[str, Any] | None


class Outbox:
    """Durable at-least-once queue in a SQLite database (may share the store's file)."""

    def __init__(self, db: str | Path | sqlite3.Connection) -> None:
        self._own = not isinstance(db, sqlite3.Connection)
        self._conn = connect(db) if self._own else db  # type: ignore[arg-type]
        self._lock = threading.Lock()
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        if self._own:
            self._conn.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def put(self, kind: str, key: str, payload: dict[str, Any]) -> tuple[OutboxItem, bool]:
        """Queue ``payload`` under (kind, key). Returns (item, created): putting the same
        key again returns the existing item unchanged (``created`` False)."""
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        with self._lock:
            # Inside a caller's open transaction on a shared connection (e.g. a job ledger
            # row and its update in one commit), join it: the caller commits or rolls back.
            own = not self._conn.in_transaction
            if own:
                self._conn.execute("BEGIN IMMEDIATE")
            try:
                cur = self._conn.execute(
                    "INSERT OR IGNORE INTO outbox (kind, key, payload, created) VALUES (?, ?, ?, ?)",
                    (kind, key, body, time.time()),
                )
                created = cur.rowcount == 1
                if own:
                    self._conn.execute("COMMIT")
            except BaseException:
                if own:
                    self._conn.execute("ROLLBACK")
                raise
        item = self.get(kind, key)
        assert item is not None
        return item, created

    def get(self, kind: str, key: str) -> OutboxItem | None:
        row = self._conn.execute(
            "SELECT id, kind, key, payload, attempts, state, result FROM outbox WHERE kind=? AND key=?", (kind, key)
        ).fetchone()
        return _item(row) if row else None

    def pending(self, kind: str, limit: int = 100) -> list[OutboxItem]:
        rows = self._conn.execute(
            "SELECT id, kind, key, payload, attempts, state, result FROM outbox "
            "WHERE kind=? AND state='pending' ORDER BY id LIMIT ?",
            (kind, limit),
        ).fetchall()
        return [_item(r) for r in rows]

    def attempted(self, item_id: int) -> None:
        with self._lock:
            self._conn.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_attempt = ? WHERE id = ?", (time.time(), item_id)
            )

    def update_payload(self, item_id: int, payload: dict[str, Any]) -> None:
        """Record progress inside a pending item (e.g. a transaction hash once sent)."""
        body = json.dumps(payload, sort_keys=True, separators=(",", ":"))
        with self._lock:
            self._conn.execute("UPDATE outbox SET payload = ? WHERE id = ? AND state = 'pending'", (body, item_id))

    def done(self, item_id: int, result: dict[str, Any] | None = None) -> None:
        """Mark delivered. States move forward only: a done item never becomes pending."""
        body = None if result is None else json.dumps(result, sort_keys=True, separators=(",", ":"))
        with self._lock:
            self._conn.execute("UPDATE outbox SET state = 'done', result = ? WHERE id = ?", (body, item_id))

    def count(self, kind: str | None = None, state: str = "pending") -> int:
        if kind is None:
            return self._conn.execute("SELECT COUNT(*) FROM outbox WHERE state=?", (state,)).fetchone()[0]
        return self._conn.execute("SELECT COUNT(*) FROM outbox WHERE kind=? AND state=?", (kind, state)).fetchone()[0]


def _item(row: tuple) -> OutboxItem:
    return OutboxItem(
        id=row[0],
        kind=row[1],
        key=row[2],
        payload=json.loads(row[3]),
        attempts=row[4],
        state=row[5],
        result=json.loads(row[6]) if row[6] else None,
    )
