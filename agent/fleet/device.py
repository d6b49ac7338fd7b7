"""The device's side of the fleet link.

:class:`DeviceClient` keeps one MQTT connection (see :mod:`agent.fleet._mqtt`) and:

- publishes ``status`` retained at QoS 1 with a birth sequence; the Last Will (retained)
  marks the device offline when it vanishes;
- publishes ``telemetry`` at QoS 0 every ``telemetry_interval_s``;
- takes signed jobs from ``jobs/notify``, verifies them (:class:`~agent.fleet.jobs.JobVerifier`),
  runs the accepted ones one at a time through the daemon's handlers and reports each state
  on ``jobs/<job_id>/update``;
- sends events and job updates through the durable outbox (kind ``mqtt``): paho keeps
  nothing on disk, so an item is marked done only when its PUBACK arrives, and is sent again
  after a crash or reconnect. Every message carries an id (``id`` / ``update_id``) that the
  fleet side deduplicates on.

Run standalone (tests, bench, bring-up)::

    python -m agent.fleet.device --config device.yaml [--db state/agent.db]
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import signal
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent import __version__
from agent.errors import JobRejected
from agent.fleet import _topics as T
from agent.fleet._config import FleetConfig
from agent.fleet._mqtt import MqttLink
from agent.fleet.handlers import JobHandlers
from agent.fleet.jobs import Job, JobLedger, JobState, JobVerifier
from agent.fleet.telemetry import TelemetrySource, disk, temperatures
from agent.keys import Signer
from agent.store._sqlite import connect
from agent.store.outbox import Outbox

log = logging.getLogger(__name__)

OUTBOX_KIND = "mqtt"
RESTART_EXIT_CODE = 75  # EX_TEMPFAIL: "run me again"
_INFLIGHT_STALE_S = 60.0


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), default=str).encode()


def device_signed(doc: dict[str, Any], signer: Signer | None) -> dict[str, Any]:
    """Add ``device_key`` (hex Ed25519 public key) and ``device_sig`` over the canonical JSON
    of every other field, so the fleet can tell the device's documents from a forger's."""
    if signer is None:
        return doc
    doc = dict(doc, device_key=signer.public_key.hex())
    doc.pop("device_sig", None)
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()
    doc["device_sig"] = signer.sign(body).hex()
    return doc


class DeviceClient:
    """Fleet client of one device. ``start()`` connects and runs in background threads;
    ``close()`` marks the device offline and disconnects.

    ``db`` is the SQLite file (or connection) shared with the store: it holds the outbox and
    the job ledger. ``device_key`` (optional, an :class:`agent.keys.Signer`, e.g. the key
    store's ``device_signer()``) signs status, events and job updates (``device_sig``).
    """

    def __init__(self, cfg: FleetConfig, device_id: str, db: str | Path | sqlite3.Connection, handlers: JobHandlers, *,
                 state_dir: str | Path = "state", telemetry: TelemetrySource | None = None,
                 device_key: Signer | None = None,
                 on_restart: Callable[[], None] | None = None) -> None:
        self.cfg = cfg
        self.device_id = device_id
        self.state_dir = Path(state_dir)
        self.handlers = handlers
        self.telemetry_source = telemetry
        self.device_key = device_key
        self.on_restart = on_restart
        # One connection for outbox and ledger, so a ledger change and the update it causes
        # are one fsync'd commit (WAL, synchronous=FULL) rather than two.
        self._own_conn = not isinstance(db, sqlite3.Connection)
        self._conn = connect(db) if self._own_conn else db  # type: ignore[arg-type]
        self.outbox = Outbox(self._conn)
        self.ledger = JobLedger(self._conn)
        self.verifier = JobVerifier(device_id, cfg.trusted_keys, self.ledger, max_bytes=cfg.max_job_bytes,
                                    max_validity_s=cfg.max_job_validity_s, clock_skew_s=cfg.clock_skew_s)
        self.root = cfg.topic_root
        self.birth = self.ledger.bump("status_birth")
        self._db_lock = threading.RLock()  # one writer at a time on the shared connection
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._acks: queue.SimpleQueue[tuple[int, bool]] = queue.SimpleQueue()
        self._intake: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._jobs: queue.Queue[Job | None] = queue.Queue()
        self._inflight: dict[int, tuple[int, float]] = {}  # mid -> (outbox item id, sent at)
        self._inflight_items: set[int] = set()
        self._sent_once: set[int] = set()  # outbox ids published by this process
        self._restart_after: str | None = None  # outbox key whose PUBACK triggers the restart
        self._telemetry_seq = 0
        self._next_prune = 0.0
        self._next_telemetry = 0.0
        self._started_at = time.time()
        self.status_mid: int | None = None
        self.link = MqttLink(
            cfg, client_id=device_id, persistent=True,
            will=(self._topic(T.STATUS), self._status(False)),
            subscriptions=[(self._topic(T.JOBS_NOTIFY), 1)],
            on_message=self._on_message, on_published=self._on_published, on_state=self._on_state,
        )
        self._threads: list[threading.Thread] = []
        self._recover()

    # -- public API -----------------------------------------------------------------------------
    def start(self, wait: float = 0.0) -> bool:
        """Connect and run in background threads. With ``wait``, wait that long for the
        connection and the jobs subscription; returns whether they are up."""
        self.link.start()
        for target, name in ((self._loop, "fleet-loop"), (self._worker, "fleet-jobs")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self.link.wait_ready(wait) if wait > 0 else self.link.connected

    def close(self, timeout: float = 2.0) -> None:
        """Mark offline (retained), drain what can be drained quickly, disconnect."""
        if self.link.connected:
            info = self.link.publish(self._topic(T.STATUS), self._status(False), qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass
        self._stop.set()
        self._wake.set()
        self._jobs.put(None)
        for t in self._threads:
            t.join(timeout)
        self.link.stop()
        self.outbox.close()
        self.ledger.close()
        if self._own_conn:
            self._conn.close()

    def __enter__(self) -> DeviceClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def publish_event(self, event_type: str, data: Mapping[str, Any], event_id: str | None = None) -> str:
        """Queue an event (QoS 1, at least once). Give ``event_id`` a stable value (e.g.
        ``"dataset-sealed:<dataset id>"``) so a repeated call is the same event."""
        eid = event_id or f"evt-{uuid.uuid4().hex}"
        body = device_signed({"id": eid, "device_id": self.device_id, "type": event_type, "ts": time.time(),
                              "data": dict(data)}, self.device_key)
        with self._db_lock:
            self.outbox.put(OUTBOX_KIND, f"event:{eid}", {"topic": self._topic(T.EVENTS), "body": body})
        self._wake.set()
        return eid

    def dataset_sealed(self, dataset_id: str, root: str, **info: Any) -> str:
        """Event ``dataset_sealed`` (id ``dataset-sealed:<dataset_id>``: once per dataset)."""
        return self.publish_event("dataset_sealed", {"dataset_id": dataset_id, "root": root, **info},
                                  event_id=f"dataset-sealed:{dataset_id}")

    def dat_minted(self, dataset_id: str, tx_hash: str, token_id: int, **info: Any) -> str:
        """Event ``dat_minted`` with the transaction hash and token id (once per dataset)."""
        return self.publish_event("dat_minted", {"dataset_id": dataset_id, "tx_hash": tx_hash, "token_id": token_id,
                                                 **info}, event_id=f"dat-minted:{dataset_id}")

    def fault(self, code: str, message: str, **info: Any) -> str:
        """Event ``fault`` (a new id each call)."""
        return self.publish_event("fault", {"code": code, "message": message, **info})

    def pending(self) -> int:
        with self._db_lock:
            return self.outbox.count(OUTBOX_KIND)

    # -- helpers ---------------------------------------------------------------------------------
    @contextmanager
    def _tx(self) -> Iterator[None]:
        """One durable transaction on the shared connection (re-entrant: an inner use joins)."""
        with self._db_lock:
            if self._conn.in_transaction:
                yield
                return
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _topic(self, leaf: str) -> str:
        return T.device_topic(self.root, self.device_id, leaf)

    def _status(self, online: bool) -> bytes:
        doc: dict[str, Any] = {"device_id": self.device_id, "online": online, "birth": self.birth,
                               "ts": time.time(), "agent_version": __version__}
        return _dumps(device_signed(doc, self.device_key))

    def _update(self, job_id: str, state: JobState, progress: float | None = None,
                details: Mapping[str, Any] | None = None) -> str:
        with self._tx():  # the ledger's state and the queued update commit together
            seq = self.ledger.next_seq(job_id, state)
            uid = f"{job_id}/{seq}"
            body = {"update_id": uid, "job_id": job_id, "device_id": self.device_id, "seq": seq,
                    "state": state.value, "progress": progress, "details": dict(details or {}), "ts": time.time()}
            body = device_signed(json.loads(_dumps(body)), self.device_key)  # JSON-safe, then signed
            key = f"update:{uid}"
            self.outbox.put(OUTBOX_KIND, key, {"topic": T.job_update_topic(self.root, self.device_id, job_id),
                                               "body": body})
        self._wake.set()
        return key

    def _recover(self) -> None:
        """Jobs accepted by a previous run that never finished: the agent died under them."""
        for job_id, state in self.ledger.unfinished():
            self._update(job_id, JobState.FAILED, details={"reason": f"agent restarted while {state}"})

    # -- paho thread ------------------------------------------------------------------------------
    def _on_message(self, topic: str, payload: bytes) -> None:
        if topic == self._topic(T.JOBS_NOTIFY):
            self._intake.put(payload)
            self._wake.set()

    def _on_published(self, mid: int, ok: bool) -> None:
        self._acks.put((mid, ok))
        self._wake.set()

    def _on_state(self, connected: bool) -> None:
        if connected:
            info = self.link.publish(self._topic(T.STATUS), self._status(True), qos=1, retain=True)
            self.status_mid = info.mid
            self._next_telemetry = 0.0
        self._wake.set()

    # -- loop thread: acks, intake, outbox pump, telemetry ------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(0.2)
            self._wake.clear()
            try:
                self.link.tick()
                self._drain_acks()
                self._drain_intake()
                self._pump()
                self._maybe_telemetry()
                self._maybe_prune()
            except Exception:
                log.exception("fleet loop error")
                time.sleep(0.5)

    def _drain_acks(self) -> None:
        done: list[int] = []
        while True:
            try:
                mid, ok = self._acks.get_nowait()
            except queue.Empty:
                break
            entry = self._inflight.pop(mid, None)
            if entry is None:
                continue  # status/telemetry, or a message paho re-sent after we gave up on it
            item_id = entry[0]
            self._inflight_items.discard(item_id)
            if ok:
                self._sent_once.discard(item_id)
                done.append(item_id)
        if not done:
            return
        restart = False
        with self._tx():  # every PUBACK that has arrived: one commit
            for item_id in done:
                self.outbox.done(item_id)
            if self._restart_after is not None:
                item = self.outbox.get(OUTBOX_KIND, self._restart_after)
                restart = item is not None and item.state == "done"
        if restart:  # only once the acknowledged update is committed
            self._restart_after = None
            if self.on_restart:
                threading.Thread(target=self.on_restart, daemon=True).start()

    def _drain_intake(self) -> None:
        while True:
            try:
                raw = self._intake.get_nowait()
            except queue.Empty:
                return
            try:
                # The ledger row (job id and nonce seen) and its QUEUED update: one commit, so
                # a crash leaves either nothing or an accepted job with its update queued.
                with self._tx():
                    job = self.verifier.verify(raw)
                    self._update(job.job_id, JobState.QUEUED)
            except JobRejected as rej:
                log.warning("job rejected: %s", rej)
                if rej.tell and rej.job_id:
                    self._update(rej.job_id, JobState.REJECTED, details={"reason": rej.reason})
                continue
            self._jobs.put(job)

    def _pump(self) -> None:
        if not self.link.connected:
            return
        now = time.time()
        for mid, (item_id, sent) in list(self._inflight.items()):
            if now - sent > _INFLIGHT_STALE_S:  # no PUBACK for a long time: send again
                del self._inflight[mid]
                self._inflight_items.discard(item_id)
        with self._db_lock:
            items = self.outbox.pending(OUTBOX_KIND, limit=200)
        for item in items:
            if item.id in self._inflight_items:
                continue
            if not self.link.connected:
                return
            info = self.link.publish(item.payload["topic"], _dumps(item.payload["body"]), qos=1)
            if info.rc != 0:
                return
            self._inflight[info.mid] = (item.id, now)
            self._inflight_items.add(item.id)
            if item.id in self._sent_once:
                # count re-sends only: a first send costs no extra fsync'd commit
                with self._db_lock:
                    self.outbox.attempted(item.id)
            self._sent_once.add(item.id)

    def _maybe_prune(self) -> None:
        """Forget finished jobs well past expiry (expiry alone refuses their replays)."""
        now = time.monotonic()
        if now < self._next_prune:
            return
        self._next_prune = now + 3600.0
        with self._db_lock:
            self.ledger.prune(time.time() - self.cfg.clock_skew_s - 60)

    def _maybe_telemetry(self) -> None:
        now = time.monotonic()
        if not self.link.connected or now < self._next_telemetry:
            return
        self._next_telemetry = now + self.cfg.telemetry_interval_s
        self._telemetry_seq += 1
        doc: dict[str, Any] = {"device_id": self.device_id, "birth": self.birth, "seq": self._telemetry_seq,
                               "ts": time.time(), "uptime_s": round(time.time() - self._started_at, 3)}
        if self.telemetry_source is not None:
            try:
                doc.update(self.telemetry_source())
            except Exception as exc:  # noqa: BLE001 - telemetry must not stop the link
                doc["telemetry_error"] = str(exc)
        doc.setdefault("rates", None)  # the daemon's telemetry source fills these three
        doc.setdefault("queue_depth", None)
        doc.setdefault("gnss", None)
        with self._db_lock:
            doc["outbox_pending"] = self.outbox.count(OUTBOX_KIND)
        doc["disk"] = disk(self.state_dir)
        doc["temps_c"] = temperatures()
        doc["jobs"] = dict(self.verifier.counts)
        self.link.publish(self._topic(T.TELEMETRY), _dumps(doc), qos=0)

    # -- worker thread: run jobs one at a time ---------------------------------------------------------
    def _worker(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                self._run(job)
            except Exception:
                log.exception("job %s crashed the worker", job.job_id)

    def _run(self, job: Job) -> None:
        if time.time() >= job.expires_at:
            self._update(job.job_id, JobState.TIMED_OUT, details={"reason": "expired before it could start"})
            return
        handler = self.handlers.get(job.type)
        if handler is None:
            self._update(job.job_id, JobState.FAILED, details={"reason": f"{job.type} not supported on this device"})
            return
        self._update(job.job_id, JobState.IN_PROGRESS, progress=0.0)

        def progress(fraction: float, details: Mapping[str, Any] | None = None) -> None:
            self._update(job.job_id, JobState.IN_PROGRESS, progress=max(0.0, min(1.0, float(fraction))),
                         details=details)

        result: dict[str, Any] = {}
        error: list[BaseException] = []

        def call() -> None:
            try:
                result.update(handler(job, progress) or {})
            except BaseException as exc:  # noqa: BLE001 - reported as FAILED
                error.append(exc)

        if job.timeout_s is None:
            call()
        else:
            t = threading.Thread(target=call, name=f"job-{job.job_id}", daemon=True)
            t.start()
            t.join(job.timeout_s)
            if t.is_alive():  # a handler cannot be killed; it is left to finish, its result ignored
                self._update(job.job_id, JobState.TIMED_OUT, details={"reason": f"no result in {job.timeout_s} s"})
                return
        if error:
            exc = error[0]
            self._update(job.job_id, JobState.FAILED, details={"error": f"{type(exc).__name__}: {exc}"[:500]})
            return
        restart = bool(result.pop("restart", False))
        key = self._update(job.job_id, JobState.SUCCEEDED, progress=1.0, details=result)
        if restart:
            self._restart_after = key


# -- standalone process ----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Run a device client with the local handlers until SIGTERM/SIGINT (exit 0) or a
    restart job (exit 75, after its SUCCEEDED update was acknowledged by the broker)."""
    from agent.config import load_config
    from agent.fleet.handlers import local_handlers

    ap = argparse.ArgumentParser(prog="python -m agent.fleet.device", description=main.__doc__)
    ap.add_argument("--config", required=True, help="agent YAML config (fleet section, device_id, state_dir)")
    ap.add_argument("--db", help="SQLite file for outbox and job ledger (default: <state_dir>/agent.db)")
    ap.add_argument("--keystore", help="device key store URI (default: <state_dir>/keys when it exists); "
                    "signs status, events and job updates")
    ap.add_argument("--event-every", type=float, default=0.0, help="emit a test event this often (seconds)")
    ap.add_argument("--log-level", default="INFO")
    args = ap.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    cfg = load_config(args.config)
    state = Path(cfg.state_dir)
    stop = threading.Event()
    restart = threading.Event()
    client: DeviceClient | None = None

    def on_restart() -> None:
        restart.set()
        stop.set()

    def stats() -> dict[str, Any]:
        return {"device_id": cfg.device_id, "pending": client.pending() if client else None}

    handlers = local_handlers(args.config, state, stats=stats)
    signer = None
    from agent.keys import keys_dir, open_keystore

    uri = args.keystore or (str(keys_dir(state)) if keys_dir(state).exists() else None)
    if uri:
        signer = open_keystore(uri).device_signer()
    client = DeviceClient(cfg.fleet, cfg.device_id, args.db or state / "agent.db", handlers, state_dir=state,
                          device_key=signer, on_restart=on_restart)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    client.start()
    if not client.link.wait_ready(30):
        log.warning("broker not reachable yet: running on, reconnecting in the background")
    print(json.dumps({"ready": True, "device_id": cfg.device_id, "birth": client.birth}), flush=True)
    n = 0
    while not stop.wait(args.event_every or 0.5):
        if args.event_every:
            n += 1
            client.publish_event("heartbeat", {"n": n}, event_id=f"hb-{client.birth}-{n}")
    client.close()
    # a restart job exits with EX_TEMPFAIL so the supervisor (systemd Restart=on-failure) starts it again
    return RESTART_EXIT_CODE if restart.is_set() else 0


if __name__ == "__main__":
    sys.exit(main())
