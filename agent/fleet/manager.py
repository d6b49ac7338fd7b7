"""The fleet manager's side: sign and send jobs, follow their updates, watch devices, and
consume events/updates in MQTT 5 shared-subscription groups.

Everything the device sends at least once carries an id (``id`` on events, ``update_id`` on
job updates); the classes here deduplicate on it, and order job updates by their ``seq``.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from nacl.signing import SigningKey

from agent.errors import FleetError
from agent.fleet import _topics as T
from agent.fleet._config import FleetConfig
from agent.fleet._mqtt import MqttLink
from agent.fleet.jobs import JobState, sign_job


def verify_device_doc(doc: dict[str, Any], public_key: str | None = None) -> bool | None:
    """Check ``device_sig`` on a status, event or job update. None when the document is not
    signed; with ``public_key`` (hex) the signer must also be that device key."""
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    sig, key = doc.get("device_sig"), doc.get("device_key")
    if not isinstance(sig, str) or not isinstance(key, str):
        return None
    if public_key is not None and key != public_key:
        return False
    body = {k: v for k, v in doc.items() if k != "device_sig"}
    try:
        VerifyKey(bytes.fromhex(key)).verify(json.dumps(body, sort_keys=True, separators=(",", ":")).encode(),
                                             bytes.fromhex(sig))
    except (BadSignatureError, ValueError):
        return False
    return True


class Dedupe:
    """Ids seen recently (bounded LRU): True the first time an id is offered."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self.duplicates = 0

    def first(self, key: str) -> bool:
        with self._lock:
            if key in self._seen:
                self._seen.move_to_end(key)
                self.duplicates += 1
                return False
            self._seen[key] = None
            if len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
            return True


class SqliteDedupe:
    """Ids seen, in a SQLite file shared by every consumer of a group on one host (several
    processes): a duplicate delivered to another member of the group is still caught.
    ``synchronous=NORMAL``: after a power cut a few ids may be forgotten (at least once)."""

    def __init__(self, path: str | Path) -> None:
        from agent.store._sqlite import connect

        self._conn = connect(path)
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("CREATE TABLE IF NOT EXISTS fleet_seen (id TEXT PRIMARY KEY, ts REAL NOT NULL)")
        self._lock = threading.Lock()
        self.duplicates = 0

    def first(self, key: str) -> bool:
        with self._lock:
            cur = self._conn.execute("INSERT OR IGNORE INTO fleet_seen (id, ts) VALUES (?, ?)", (key, time.time()))
            if cur.rowcount == 1:
                return True
            self.duplicates += 1
            return False

    def close(self) -> None:
        self._conn.close()


class JobFollower:
    """The updates of one job, deduplicated by ``update_id`` and released in ``seq`` order."""

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        self.history: list[dict[str, Any]] = []
        self._buffer: dict[int, dict[str, Any]] = {}
        self._next = 0
        self._ids = Dedupe(10_000)
        self._cond = threading.Condition()
        self.final: dict[str, Any] | None = None

    def offer(self, update: dict[str, Any]) -> list[dict[str, Any]]:
        """Take one received update; returns the updates now released in order."""
        released = []
        with self._cond:
            uid = str(update.get("update_id"))
            if not self._ids.first(uid):
                return []
            seq = int(update.get("seq", 0))
            if seq < self._next:
                return []
            self._buffer[seq] = update
            while self._next in self._buffer:
                u = self._buffer.pop(self._next)
                self._next += 1
                self.history.append(u)
                released.append(u)
                if JobState(u["state"]).final:
                    self.final = u
            self._cond.notify_all()
        return released

    def wait(self, timeout: float) -> dict[str, Any] | None:
        with self._cond:
            self._cond.wait_for(lambda: self.final is not None, timeout)
            return self.final


class FleetClient:
    """Connects as a fleet manager: sends signed jobs and follows their updates.

    The session is persistent for ``session_expiry_s`` (at most 10 minutes here) so updates
    published while this client or the broker was away are delivered after the reconnect.
    """

    def __init__(self, cfg: FleetConfig, key: SigningKey | None = None, client_id: str | None = None) -> None:
        cfg = cfg.model_copy(update={"session_expiry_s": min(cfg.session_expiry_s, 600)})
        self.cfg = cfg
        self.key = key
        self.root = cfg.topic_root
        self._followers: dict[str, JobFollower] = {}
        self._lock = threading.Lock()
        self.on_update: Callable[[dict[str, Any]], None] | None = None
        self.link = MqttLink(cfg, client_id or f"fleet-{uuid.uuid4().hex[:12]}", persistent=True,
                             on_message=self._on_message)

    def start(self, timeout: float = 10.0) -> FleetClient:
        self.link.start()
        if not self.link.wait_ready(timeout):
            self.link.stop()
            raise FleetError(f"cannot connect to the broker at {self.cfg.host}:{self.cfg.port}"
                             + (f": {self.link.last_error}" if self.link.last_error else ""))
        return self

    def close(self) -> None:
        self.link.stop()

    def __enter__(self) -> FleetClient:
        return self.start() if not self.link.connected else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def follow(self, device_id: str, job_id: str) -> JobFollower:
        """Subscribe to a job's updates (call before sending it)."""
        f = JobFollower(job_id)
        with self._lock:
            self._followers[job_id] = f
        self.link.subscribe(T.job_update_topic(self.root, device_id, job_id), 1)
        return f

    def send(self, device_id: str, job_type: str, params: dict[str, Any] | None = None, *, ttl_s: int = 600,
             timeout_s: float | None = None, follow: bool = True, publish_timeout: float = 10.0
             ) -> tuple[dict[str, Any], JobFollower | None]:
        """Sign a job, subscribe to its updates (if ``follow``), publish it at QoS 1 and wait
        for the broker's PUBACK. Returns (document, follower)."""
        if self.key is None:
            raise FleetError("no fleet signing key loaded")
        doc = sign_job(self.key, device_id, job_type, params, ttl_s=ttl_s, timeout_s=timeout_s)
        return doc, self.send_document(device_id, doc, follow=follow, publish_timeout=publish_timeout)

    def send_document(self, device_id: str, doc: dict[str, Any] | bytes, *, follow: bool = True,
                      publish_timeout: float = 10.0) -> JobFollower | None:
        """Publish an already built (signed, or deliberately broken) job document."""
        follower = None
        if follow and isinstance(doc, dict):
            follower = self.follow(device_id, str(doc["job_id"]))
        body = doc if isinstance(doc, bytes) else json.dumps(doc, separators=(",", ":")).encode()
        info = self.link.publish(T.device_topic(self.root, device_id, T.JOBS_NOTIFY), body, qos=1)
        try:
            info.wait_for_publish(publish_timeout)
        except (RuntimeError, ValueError) as exc:
            raise FleetError(f"job not accepted by the broker: {exc}") from None
        if not info.is_published():
            raise FleetError(f"job not acknowledged by the broker in {publish_timeout} s")
        return follower

    def _on_message(self, topic: str, payload: bytes) -> None:
        try:
            update = json.loads(payload)
        except ValueError:
            return
        if not isinstance(update, dict) or "job_id" not in update:
            return
        with self._lock:
            f = self._followers.get(str(update["job_id"]))
        if f is None:
            return
        for u in f.offer(update):
            if self.on_update:
                self.on_update(u)


class FleetView:
    """Live picture of the fleet from retained status, telemetry and events."""

    def __init__(self, cfg: FleetConfig, client_id: str | None = None) -> None:
        self.cfg = cfg
        self.root = cfg.topic_root
        self.devices: dict[str, dict[str, Any]] = {}
        self._events = Dedupe()
        self._lock = threading.Lock()
        subs = [(f"{self.root}/+/{leaf}", 1) for leaf in (T.STATUS, T.TELEMETRY, T.EVENTS)]
        self.link = MqttLink(cfg, client_id or f"fleet-view-{uuid.uuid4().hex[:12]}", persistent=False,
                             subscriptions=subs, on_message=self._on_message)

    def start(self, timeout: float = 10.0) -> FleetView:
        self.link.start()
        if not self.link.wait_ready(timeout):
            self.link.stop()
            raise FleetError(f"cannot connect to the broker at {self.cfg.host}:{self.cfg.port}"
                             + (f": {self.link.last_error}" if self.link.last_error else ""))
        return self

    def close(self) -> None:
        self.link.stop()

    def _dev(self, device_id: str) -> dict[str, Any]:
        return self.devices.setdefault(device_id, {"device_id": device_id, "online": None, "birth": None,
                                                   "last_seen": None, "queue_depth": None, "outbox_pending": None,
                                                   "gnss_fix": None, "datasets": 0, "telemetry_seq": None,
                                                   "status_signed": None})

    def _on_message(self, topic: str, payload: bytes) -> None:
        parsed = T.parse(self.root, topic)
        if parsed is None:
            return
        device_id, leaf = parsed
        try:
            doc = json.loads(payload) if payload else {}
        except ValueError:
            return
        if not isinstance(doc, dict):
            return
        with self._lock:
            d = self._dev(device_id)
            if leaf == T.STATUS:
                d["online"] = bool(doc.get("online"))
                d["status_signed"] = verify_device_doc(doc)
                d["birth"] = doc.get("birth")
                if doc.get("online"):
                    d["last_seen"] = max(d["last_seen"] or 0, float(doc.get("ts") or 0)) or None
            elif leaf == T.TELEMETRY:
                d["last_seen"] = time.time()
                d["telemetry_seq"] = doc.get("seq")
                d["queue_depth"] = doc.get("queue_depth")
                d["outbox_pending"] = doc.get("outbox_pending")
                gnss = doc.get("gnss")
                d["gnss_fix"] = gnss.get("fix") if isinstance(gnss, dict) else gnss
                if isinstance(doc.get("datasets"), int):
                    d["datasets"] = max(d["datasets"], doc["datasets"])
            elif leaf == T.EVENTS:
                d["last_seen"] = time.time()
                if self._events.first(str(doc.get("id"))) and doc.get("type") == "dataset_sealed":
                    d["datasets"] += 1

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(d) for _, d in sorted(self.devices.items())]


def render_table(rows: Iterable[dict[str, Any]], now: float | None = None) -> str:
    """A plain text table of :meth:`FleetView.snapshot` rows."""
    now = time.time() if now is None else now
    head = ("DEVICE", "ONLINE", "LAST SEEN", "QUEUE", "OUTBOX", "GNSS FIX", "DATASETS")
    lines = [head]
    for r in rows:
        seen = "-" if not r.get("last_seen") else f"{max(0.0, now - r['last_seen']):.0f}s ago"
        online = {True: "yes", False: "no", None: "?"}[r.get("online")]
        lines.append((r["device_id"], online, seen, str(r.get("queue_depth") if r.get("queue_depth") is not None else "-"),
                      str(r.get("outbox_pending") if r.get("outbox_pending") is not None else "-"),
                      str(r.get("gnss_fix") or "-"), str(r.get("datasets", 0))))
    widths = [max(len(row[i]) for row in lines) for i in range(len(head))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in lines)


class SharedConsumer:
    """A member of an MQTT 5 shared-subscription group on events and job updates of every
    device: the broker gives each message to one member. ``handler(kind, device_id, doc)``
    is called once per id (kind ``event`` or ``update``): per member with the default
    in-memory :class:`Dedupe`, per group when the members share a :class:`SqliteDedupe`."""

    def __init__(self, cfg: FleetConfig, handler: Callable[[str, str, dict[str, Any]], None], *,
                 group: str | None = None, client_id: str | None = None,
                 leaves: tuple[str, ...] = (T.EVENTS, "jobs/+/update"),
                 dedupe: Dedupe | SqliteDedupe | None = None) -> None:
        if cfg.protocol == "3.1.1":
            raise FleetError("shared subscriptions need MQTT 5 (fleet.protocol is 3.1.1)")
        self.cfg = cfg
        self.root = cfg.topic_root
        self.handler = handler
        self.group = group or cfg.shared_group
        self.dedupe = dedupe if dedupe is not None else Dedupe()
        self.received = 0
        subs = [(T.shared(self.group, f"{self.root}/+/{leaf}"), 1) for leaf in leaves]
        self.link = MqttLink(cfg, client_id or f"fleet-{self.group}-{uuid.uuid4().hex[:8]}", persistent=True,
                             subscriptions=subs, on_message=self._on_message)

    def start(self, timeout: float = 10.0) -> SharedConsumer:
        self.link.start()
        if not self.link.wait_ready(timeout):
            self.link.stop()
            raise FleetError(f"cannot connect to the broker at {self.cfg.host}:{self.cfg.port}")
        return self

    def close(self) -> None:
        self.link.stop()

    def _on_message(self, topic: str, payload: bytes) -> None:
        parsed = T.parse(self.root, topic)
        if parsed is None:
            return
        try:
            doc = json.loads(payload)
        except ValueError:
            return
        if not isinstance(doc, dict):
            return
        self.received += 1
        kind = "event" if parsed[1] == T.EVENTS else "update"
        key = str(doc.get("id") if kind == "event" else doc.get("update_id"))
        if self.dedupe.first(f"{kind}:{key}"):
            self.handler(kind, parsed[0], doc)
