"""The agent's state machine: one object that owns the store, the fleet client, the chain
and the upload sink, runs a message source through the pipeline and moves every dataset
forward (sealed → uploaded → anchored), resuming whatever a crash or a power cut left.

Durable states (all in ``<state_dir>/store/store.db``, SQLite WAL + FULL sync):

- chunks and Flows (``agent.store``): committed chunks stay ``chunked`` until a Flow takes
  them; a dataset seal interrupted half-way is finished at the next open.
- ``dataset_sealed`` outbox items (queued by the store in the seal's own transaction): each
  is worked through *upload* (sink.put, recorded as an ``upload`` outbox row, store state
  ``uploaded``) and *mint* (:meth:`agent.chain.Idao.mint`, exactly once: it asks the chain
  first and resends stored transactions), then ``anchored``; only then is the item done.
- ``replay`` rows (outbox kind ``replay``, key = drive identity): how far a replay got. A
  replay of the same drive after a crash regenerates the same chunks (the pipeline is
  deterministic when nothing is dropped) and skips the ones each stream already committed,
  so the dataset comes out byte-identical (same root) and is minted once.

Threads: a capture thread reads the source into the intake queue (live sources never wait:
see :class:`agent.runtime._config.RuntimeConfig` for the backpressure policy); the thread
that calls :meth:`Agent.run` processes, commits and ticks the state machine.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import queue
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import AgentError

log = logging.getLogger(__name__)

_END = object()  # end of the source


@dataclass
class RunSummary:
    """What one run did (the demo and replay print it)."""

    device: str = ""
    state_dir: str = ""
    duration_s: float = 0.0  # data time covered
    wall_s: float = 0.0
    warmup_s: float = 0.0  # numba JIT load/compile at start-up
    realtime_factor: float = 0.0
    stopped_by: str = "end"
    pipeline: dict[str, Any] = field(default_factory=dict)
    chunks: int = 0
    chunks_skipped: int = 0  # already committed before a crash (resumed replay)
    flows: int = 0
    datasets: list[dict[str, Any]] = field(default_factory=list)
    drops: dict[str, int] = field(default_factory=dict)
    first_chunk_s: float | None = None  # wall time from start to the first committed chunk
    resumed: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


class Agent:
    """The daemon's core. ``open()`` (or a ``with`` block), then :meth:`run` a source.

    ``replay``: the source is a file (block instead of drop; Flows cut by size only and the
    store's clock is the data's, so a resumed replay rebuilds the same dataset)."""

    def __init__(self, config: Any, *, state_dir: str | Path | None = None, replay: bool = False,
                 config_path: str | Path | None = None, lidar_meta: str | None = None,
                 passphrase: bytes | None = None) -> None:
        if replay:
            # Flows by size only: a wall-clock age would make Flow boundaries (and the root)
            # depend on how fast the machine replayed.
            config = config.model_copy(deep=True)
            config.provenance.flow.max_age_s = 1e9
        self.cfg = config
        self.rt = config.runtime
        self.state = Path(state_dir if state_dir is not None else config.state_dir)
        self.replay = replay
        self.config_path = config_path
        self.lidar_meta = lidar_meta
        self.passphrase = passphrase
        self.store: Any = None
        self.fleet: Any = None
        self.idao: Any = None
        self.sink: Any = None
        self.metrics: Any = None
        self.pipeline: Any = None
        self.metrics_port = 0
        self._data_ns = 0
        self._drops: dict[str, int] = {"camera_frames": 0, "capture_overflow": 0}
        # A file can wait: a short queue keeps a replay's memory small (the capture thread
        # would otherwise read ahead by intake_max messages: 1 GB of OS1-128 packets).
        self._q: queue.Queue[Any] = queue.Queue(maxsize=min(self.rt.intake_max, 2000) if replay
                                                else self.rt.intake_max)
        self._stop = threading.Event()
        self._chain_lock = threading.Lock()
        self._watchdog = bool(os.environ.get("WATCHDOG_USEC"))
        self._stop_reason = "end"
        self._last_tick = 0.0
        self._last_counts: dict[str, int] = {}
        self._state_name = "starting"
        self._started = time.time()
        self.summary = RunSummary()
        # fleet jobs (agent.runtime._jobs): capture switch, calls served by the run loop
        self._capture_on = threading.Event()
        self._capture_on.set()
        self._paused_msgs = 0
        self._calls: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._skip: dict[str, int] = {}
        self._calls_closed: AgentError | None = None
        self.on_restart: Callable[[], None] | None = None  # a restart job: how to stop (cmd_run sets it)

    # ------------------------------------------------------------------ lifecycle
    def open(self) -> Agent:
        from agent.keys import keys_dir, open_keystore
        from agent.runtime._sinks import make_sink
        from agent.runtime._status import Metrics
        from agent.store import ChunkStore

        self.state.mkdir(parents=True, exist_ok=True)
        ks = open_keystore(keys_dir(self.state), self.passphrase)
        if not ks.exists():
            ks.init(self.passphrase)
            log.info("device keys created in %s", keys_dir(self.state))
        ident = ks.identity()
        # open_store's ChunkStore, with the data clock in replay (see the class docstring)
        clock = self._clock if self.replay else time.time_ns
        self.store = ChunkStore(self.state / "store", ks.device_signer(), self.cfg.provenance,
                                config_hash=self.cfg.digest(), evm_address=ident["evm_address"],
                                effective_config=self.cfg.model_dump(mode="json"), clock_ns=clock)
        self.signer = ks.device_signer()
        self.summary.device = self.signer.key_id
        self.summary.state_dir = str(self.state)
        self.summary.resumed = {"recovered": {k: v for k, v in self.store.recovered.items() if v},
                                "pending_mints": self.store.conn.execute(
                                    "SELECT COUNT(*) FROM outbox WHERE kind='dataset_sealed' AND state='pending'"
                                ).fetchone()[0],
                                "unsealed_chunks": self.store.conn.execute(
                                    "SELECT COUNT(*) FROM chunks WHERE state < 3").fetchone()[0]}
        self.sink = make_sink(self.rt.upload.sink, self.rt.upload.target, self.state)
        self.metrics = Metrics()
        self.metrics.queue_max.set(self.rt.intake_max)
        self.metrics_port = self.metrics.serve(self.rt.metrics_port, self.rt.metrics_host)
        if self.cfg.fleet.enabled:
            self._open_fleet()
        self._state_name = "idle"
        self._write_status()
        return self

    def _open_fleet(self) -> None:
        from agent.fleet.device import DeviceClient
        from agent.fleet.handlers import local_handlers
        from agent.runtime._jobs import runtime_handlers

        handlers = local_handlers(self.config_path or "", self.state, stats=self.telemetry,
                                  actions=runtime_handlers(self))
        self.fleet = DeviceClient(self.cfg.fleet, self.cfg.device_id, self.state / "fleet.db", handlers,
                                  state_dir=self.state, telemetry=self.telemetry, device_key=self.signer,
                                  on_restart=lambda: (self.on_restart or (lambda: self.request_stop("fleet_restart")))())
        self.fleet.start()

    def close(self) -> None:
        self._state_name = "stopped"
        try:
            self._write_status()
        except Exception:
            log.exception("status")
        if self.fleet is not None:
            self.fleet.close()
            self.fleet = None
        if self.idao is not None:
            self.idao.close()
            self.idao = None
        if self.metrics is not None:
            self.metrics.close()
        if self.store is not None:
            self.store.close()
            self.store = None

    def __enter__(self) -> Agent:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _clock(self) -> int:
        return self._data_ns or time.time_ns()

    def set_capture(self, on: bool) -> bool:
        """Take sensor data in (True) or discard it at intake (False; sources keep reading so
        nothing backs up, power events still pass). Thread-safe; returns the previous state."""
        was = self._capture_on.is_set()
        (self._capture_on.set if on else self._capture_on.clear)()
        return was

    def call(self, fn: Callable[[Agent], Any], timeout: float | None = None) -> Any:
        """Run ``fn(self)`` on the thread that runs :meth:`run`, between two messages (so it
        never races the pipeline or the store); returns its result or raises its error."""
        box: list[Any] = [threading.Event(), None, None]
        self._calls.put((fn, box))
        end = None if timeout is None else time.monotonic() + timeout
        while not box[0].wait(0.5):
            if self._calls_closed is not None:  # run() has returned: nobody serves calls any more
                self._serve_calls(self._calls_closed)
            elif end is not None and time.monotonic() > end:
                raise AgentError(f"the agent did not get to the job within {timeout} s")
        if box[2] is not None:
            raise box[2]
        return box[1]

    def _serve_calls(self, error: BaseException | None = None) -> None:
        while True:
            try:
                fn, box = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                if error is not None:
                    raise error
                box[1] = fn(self)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                box[2] = exc
            box[0].set()

    def seal_now(self, reason: str) -> Any:
        """Worker thread only (see :meth:`call`): flush open chunks, cut the Flow, seal what is
        unsealed; the SignedDataset, or None when nothing was captured since the last seal."""
        if self.pipeline is not None:
            self._commit(self.pipeline.flush(), self._skip)
        self.store.cut_flows()
        return self.store.seal_dataset(reason) if self._has_unsealed() else None

    def request_stop(self, reason: str = "signal") -> None:
        """Ask :meth:`run` to flush, seal and return (safe from a signal handler)."""
        self._stop_reason = reason
        self._stop.set()

    # ------------------------------------------------------------------ running
    def run(self, source: Iterable[Any] | list[Iterable[Any]], *, source_id: str | None = None,
            progress: Callable[[int], None] | None = None, live: bool = False) -> RunSummary:
        """Run ``source`` (bus messages; a list: one capture thread each) to its end or until :meth:`request_stop`; then
        flush, seal, upload and mint. ``source_id`` (replay): resume a crashed replay of the
        same drive. ``progress`` gets the data time (UTC ns) of each message."""
        from agent.runtime._pipeline import Pipeline

        t_start = time.time()
        self._calls_closed = None
        # capture first: live sources fill the intake queue while the kernels load
        self._state_name = "running"
        sources = source if isinstance(source, list) else [source]
        caps = [threading.Thread(target=self._capture, args=(src, live), name=f"capture-{i}", daemon=True)
                for i, src in enumerate(sources)]
        for cap in caps:
            cap.start()
        if self.rt.mint_on_seal and self.cfg.chain.backend == "embedded":
            # py-evm, web3 and the contract deployment take seconds: ready them meanwhile
            threading.Thread(target=self._open_chain, name="chain-open", daemon=True).start()
        self.summary.warmup_s = _warm_numba()
        self.pipeline = Pipeline(self.cfg, lidar_meta=self.lidar_meta)
        skip = self._skip = self._resume_counts(source_id)
        self._tick(force=True)  # resume pending uploads/mints before new data
        ends = 0
        deadline: float | None = None
        flushed_power = False
        while True:
            if self._stop.is_set() and deadline is None:
                deadline = time.monotonic() + self.rt.shutdown_timeout_s * 0.5
                self._state_name = "stopping"
            try:
                msg = self._q.get(timeout=self.rt.tick_s)
            except queue.Empty:
                msg = None
            if msg is _END:
                ends += 1
                if ends == len(caps):
                    break
                continue
            if msg is not None:
                self._data_ns = max(self._data_ns, msg.utc_ns)
                if live:
                    fill = self._q.qsize() / self.rt.intake_max
                    self.pipeline.skip_scans = fill > self.rt.behind_high
                self._commit(self.pipeline.feed(msg), skip)
                if progress is not None:
                    progress(msg.utc_ns)
                if self._is_ignition_off(msg):
                    self._commit(self.pipeline.flush(), skip)
                    self.store.cut_flows()
                    self.store.on_ignition(False)
                    flushed_power = True
            if deadline is not None and (time.monotonic() > deadline or (not any(c.is_alive() for c in caps) and self._q.empty())):
                break
            self._tick()
            self._serve_calls()
        self._serve_calls()  # accepted before the stop: still done
        self._commit(self.pipeline.flush(), skip)
        self.store.cut_flows()
        reason = "end_of_drive" if self._stop_reason == "end" else self._stop_reason
        if not flushed_power or self._has_unsealed():
            self.store.seal_dataset(reason)
        if source_id:
            self._replay_done(source_id)
        self._state_name = "anchoring"
        budget = None if not self._stop.is_set() else self.rt.shutdown_timeout_s * 0.4
        self._tick(force=True, budget_s=budget)
        self._stop.set()
        st = self.pipeline.stats
        s = self.summary
        s.stopped_by = self._stop_reason
        s.wall_s = time.time() - t_start
        if st.first_utc_ns is not None and st.last_utc_ns is not None:
            s.duration_s = (st.last_utc_ns - st.first_utc_ns) / 1e9
        s.realtime_factor = s.duration_s / s.wall_s if s.wall_s > 0 else 0.0
        s.pipeline = st.as_dict()
        s.drops = dict(self._drops, scans=st.scans_dropped)
        s.flows = self.store.conn.execute("SELECT COUNT(*) FROM flows").fetchone()[0]
        s.datasets = self.datasets()
        self._state_name = "idle"
        self._write_status()
        self._calls_closed = AgentError("the agent has stopped")
        self._serve_calls(self._calls_closed)
        return s

    def _capture(self, source: Iterable[Any], live: bool) -> None:
        """Capture thread: never waits on processing in live mode (see RuntimeConfig)."""
        from agent.bus.messages import CameraFrame

        cam_limit = int(self.rt.intake_max * self.rt.camera_high)
        try:
            for msg in source:
                if self._stop.is_set():
                    break
                if not self._capture_on.is_set() and not self._is_power(msg):
                    if not live:  # a file can wait
                        while not self._capture_on.is_set() and not self._stop.is_set():
                            self._capture_on.wait(0.2)
                    else:
                        self._paused_msgs += 1
                        continue
                if not live:
                    while not self._stop.is_set():
                        try:
                            self._q.put(msg, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    continue
                if isinstance(msg, CameraFrame) and self._q.qsize() >= cam_limit:
                    self._drops["camera_frames"] += 1  # camera goes first
                    continue
                try:
                    self._q.put_nowait(msg)
                except queue.Full:
                    self._drops["capture_overflow"] += 1
        except Exception as exc:  # noqa: BLE001 - a dying source stops the run cleanly
            if self._stop.is_set():  # closed under it while stopping: expected
                log.debug("source closed while stopping: %s", exc)
                return
            log.error("source failed: %s", exc)
            self._stop_reason = f"source_error: {exc}"
            self._stop.set()
        finally:
            while True:
                try:
                    self._q.put(_END, timeout=0.5)
                    break
                except queue.Full:
                    if self._stop.is_set():
                        # the worker is stopping: make room for the end marker
                        try:
                            self._q.get_nowait()
                        except queue.Empty:
                            pass

    @staticmethod
    def _is_power(msg: Any) -> bool:
        from agent.bus.messages import PowerEvent

        return isinstance(msg, PowerEvent)

    @staticmethod
    def _is_ignition_off(msg: Any) -> bool:
        from agent.bus.messages import PowerEvent

        return isinstance(msg, PowerEvent) and not msg.ignition and msg.kind.name.upper().startswith("IGNITION")

    def _has_unsealed(self) -> bool:
        return bool(self.store.conn.execute("SELECT COUNT(*) FROM flows WHERE dataset IS NULL").fetchone()[0]
                    or self.store.conn.execute("SELECT COUNT(*) FROM chunks WHERE state = 1").fetchone()[0])

    def _commit(self, specs: list[Any], skip: dict[str, int]) -> None:
        for spec in specs:
            left = skip.get(spec.stream, 0)
            if left > 0:  # committed before a crash: the same chunk again
                skip[spec.stream] = left - 1
                self.summary.chunks_skipped += 1
                continue
            self.store.ingest(spec)
            self.summary.chunks += 1
            if self.summary.first_chunk_s is None:
                self.summary.first_chunk_s = time.time() - self._started
        if specs:
            self.store.cut_flows()  # by size (and by age when live)

    # ------------------------------------------------------------------ resume
    def _resume_counts(self, source_id: str | None) -> dict[str, int]:
        """Per stream, how many chunks a crashed replay of this drive already committed."""
        if not source_id:
            return {}
        from agent.store import Outbox

        ob = Outbox(self.store.conn)
        item = ob.get("replay", source_id)
        heads = {r[0]: r[1] + 1 for r in self.store.conn.execute("SELECT stream, seq FROM stream_heads")}
        if item is None:
            # what the streams held before this drive (other drives in the same state dir)
            ob.put("replay", source_id, {"started": time.time(), "config": self.cfg.digest(), "base": heads})
            return {}
        if item.payload.get("config") not in (None, self.cfg.digest()):
            # other settings make other chunks: skipping by count would mix two runs
            raise AgentError(f"{self.state} holds a replay of this drive made with another configuration; "
                             "replay into a new --state-dir")
        base = item.payload.get("base") or {}
        heads = {k: v - int(base.get(k, 0)) for k, v in heads.items() if v - int(base.get(k, 0)) > 0}
        self.summary.resumed["replay"] = {"source": source_id, "done_before": item.state == "done",
                                          "committed": heads}
        return heads

    def _replay_done(self, source_id: str) -> None:
        from agent.store import Outbox

        ob = Outbox(self.store.conn)
        item = ob.get("replay", source_id)
        if item is not None and item.state == "pending":
            ob.done(item.id, {"finished": time.time()})

    # ------------------------------------------------------------------ state machine tick
    def _tick(self, force: bool = False, budget_s: float | None = None) -> None:
        now = time.monotonic()
        if not force and now - self._last_tick < self.rt.tick_s:
            return
        self._last_tick = now
        if not self.replay:
            self.store.cut_flows()  # age-based cuts when live
            self.store.maybe_seal()
        t_end = None if budget_s is None else now + budget_s
        for item in self.store_outbox_pending():
            if t_end is not None and time.monotonic() > t_end:
                log.warning("shutdown bound reached: %s stays queued for the next start", item.key)
                break
            try:
                self._advance_dataset(item)
            except AgentError as exc:
                log.warning("dataset %s: %s (retried later)", item.payload.get("session"), exc)
                if self.fleet is not None:
                    self.fleet.fault("dataset_advance", str(exc), dataset=item.payload.get("session"))
                break
        self._publish_store_events()
        self._update_metrics()
        self._write_status()
        if self._watchdog:
            from agent.runtime._status import sd_notify

            sd_notify("WATCHDOG=1")  # systemd WatchdogSec: the state machine still ticks

    def store_outbox_pending(self) -> list[Any]:
        from agent.store import Outbox

        return Outbox(self.store.conn).pending("dataset_sealed")

    def _advance_dataset(self, item: Any) -> None:
        """sealed → uploaded → (minted) anchored, each step idempotent."""
        from agent.store import Outbox, State

        ob = Outbox(self.store.conn)
        job = item.payload
        session = job["session"]
        row = self.store.conn.execute("SELECT state, anchor FROM datasets WHERE session = ?", (session,)).fetchone()
        state = State(row[0])
        ddir = Path(job["path"])
        result: dict[str, Any] = {"session": session, "dataset_id": job["dataset_id"], "root": job["root"]}
        if self.rt.outputs:
            from agent.runtime._outputs import write_outputs

            try:
                result["outputs"] = write_outputs(ddir, self.state / "outputs" / session, self.cfg)
            except Exception as exc:  # noqa: BLE001 - a map or export must never block anchoring
                log.warning("outputs of %s: %s", session, exc)
        if self.fleet is not None:
            self.fleet.dataset_sealed(job["dataset_id"], job["root"], session=session)
        if state < State.UPLOADED:
            url = self.sink.put(session, ddir)
            ob.put("upload", session, {"sink": self.sink.name, "url": url, "at": time.time()})
            self.store.mark_uploaded(session)
            state = State.UPLOADED
        up = ob.get("upload", session)
        result["upload"] = up.payload if up is not None else None
        if state < State.ANCHORED and self.rt.mint_on_seal:
            res = self._mint(ddir)
            tx = res.sent.get("requestReward") or next(iter(res.sent.values()), "")
            anchor = f"token:{res.token_id} tx:{tx}"
            self.store.mark_anchored(session, anchor)
            result.update(token_id=res.token_id, tx_hash=tx, file_id=res.file_id, owner=res.owner,
                          already_minted=res.already_minted, chain=self.idao.client.endpoint
                          if hasattr(self.idao.client, "endpoint") else self.cfg.chain.backend)
            self.metrics.minted.inc()
            if self.fleet is not None:
                self.fleet.dat_minted(job["dataset_id"], tx, res.token_id, session=session)
        ob.done(item.id, result)
        log.info("dataset %s: %s", session, {k: result.get(k) for k in ("token_id", "tx_hash")})

    def _open_chain(self) -> Any:
        from agent.chain import Idao

        with self._chain_lock:
            if self.idao is None:
                t = time.time()
                try:
                    self.idao = Idao.open(self.cfg.chain, self.state)
                except Exception as exc:  # noqa: BLE001 - the mint step retries and reports
                    log.warning("chain not ready: %s", exc)
                    return None
                log.info("chain %s ready in %.1f s", self.cfg.chain.backend, time.time() - t)
            return self.idao

    def _mint(self, ddir: Path) -> Any:
        from agent.chain import DatasetRef, Idao

        with self._chain_lock:
            if self.idao is None:
                self.idao = Idao.open(self.cfg.chain, self.state)  # raises a ChainError the tick reports
        ref = DatasetRef.load(ddir, self.cfg.chain.metadata_url_template)
        ref.check()
        return self.idao.mint(ref)

    def _publish_store_events(self) -> None:
        if self.fleet is None:
            return
        evs = self.store.events(unpublished_only=True)
        for ev in evs:
            # "store_<kind>": the store's own log (dataset_sealed/dat_minted come from _advance_dataset)
            self.fleet.publish_event(f"store_{ev.get('kind')}", ev.get("detail", {}),
                                     event_id=f"store:{self.summary.device}:{ev.get('id')}")
        if evs:
            self.store.mark_events_published(max(int(e.get("id", 0)) for e in evs))

    # ------------------------------------------------------------------ numbers
    def datasets(self) -> list[dict[str, Any]]:
        from agent.store import Outbox

        ob = Outbox(self.store.conn)
        out = []
        for d in self.store.datasets():
            row = self.store.conn.execute("SELECT result FROM outbox WHERE kind='dataset_sealed' AND key=?",
                                          (d["id"],)).fetchone()
            import json

            res = json.loads(row[0]) if row and row[0] else {}
            up = ob.get("upload", d["session"])
            out.append(dict(d, token_id=res.get("token_id"), tx_hash=res.get("tx_hash"),
                            upload=up.payload if up else None, outputs=res.get("outputs")))
        return out

    def telemetry(self) -> dict[str, Any]:
        st = self.pipeline.stats if self.pipeline is not None else None
        return {"state": self._state_name, "queue_depth": self._q.qsize(), "drops": dict(self._drops),
                "capture": {"on": self._capture_on.is_set(), "discarded": self._paused_msgs},
                "rates": dict(self._rates) if hasattr(self, "_rates") else {},
                "gnss": st.last_fix if st else None,
                "chunks": self.summary.chunks, "datasets": len(self.store.datasets()) if self.store else 0}

    def _update_metrics(self) -> None:
        m = self.metrics
        st = self.pipeline.stats if self.pipeline is not None else None
        m.queue.set(self._q.qsize())
        if st is not None:
            counts = {"lidar": st.lidar_packets, "camera": st.camera_frames, "gnss": st.gnss_fixes,
                      "imu": st.imu_samples, "nmea": st.nmea_sentences}
            dt = max(self.rt.tick_s, 1e-3)
            self._rates = {}
            for k, v in counts.items():
                d = v - self._last_counts.get(k, 0)
                if d:
                    m.messages.labels(k).inc(d)
                self._rates[k] = d / dt
                m.rate.labels(k).set(d / dt)
            self._last_counts = counts
            if st.last_fix:
                m.fix_lat.set(st.last_fix["lat"])
                m.fix_lon.set(st.last_fix["lon"])
                m.fix_type.set(st.last_fix["fix_type"])
                m.fix_age.set(st.last_fix["utc"])
        for what, n in dict(self._drops, scans=st.scans_dropped if st else 0).items():
            m.drops.labels(what)  # exported at 0 too
            cur = m.drops.labels(what)._value.get()
            if n > cur:
                m.drops.labels(what).inc(n - cur)
        c = self.store.conn
        for stream, n in c.execute("SELECT stream, COUNT(*) FROM chunks GROUP BY stream"):
            m.chunks.labels(stream).set(n)
        m.flows.set(c.execute("SELECT COUNT(*) FROM flows").fetchone()[0])
        for state, n in c.execute("SELECT state, COUNT(*) FROM datasets WHERE sealing = 0 GROUP BY state"):
            from agent.store import State

            m.datasets.labels(State(state).name.lower()).set(n)
        m.mint.set(c.execute("SELECT COUNT(*) FROM outbox WHERE kind='dataset_sealed' AND state='pending'").fetchone()[0])
        m.disk.set(self.store.used_bytes())
        m.disk_free.set(shutil.disk_usage(self.state).free)

    def _write_status(self) -> None:
        from agent.runtime._status import write_status

        if self.store is None:
            return
        st = self.pipeline.stats if self.pipeline is not None else None
        c = self.store.conn
        doc = {
            "pid": os.getpid(), "state": self._state_name, "updated": time.time(), "started": self._started,
            "device": getattr(self, "signer", None) and self.signer.key_id, "state_dir": str(self.state),
            "metrics_port": self.metrics_port, "queue_depth": self._q.qsize(), "queue_capacity": self.rt.intake_max,
            "capture": {"on": self._capture_on.is_set(), "discarded": self._paused_msgs},
            "drops": dict(self._drops, scans=st.scans_dropped if st else 0),
            "rates": getattr(self, "_rates", {}),
            "chunks": {r[0]: r[1] for r in c.execute("SELECT stream, COUNT(*) FROM chunks GROUP BY stream")},
            "flows": c.execute("SELECT COUNT(*) FROM flows").fetchone()[0],
            "datasets": [{k: d[k] for k in ("session", "state", "anchor")} for d in self.store.datasets()],
            "pending_mints": c.execute("SELECT COUNT(*) FROM outbox WHERE kind='dataset_sealed' "
                                       "AND state='pending'").fetchone()[0],
            "store_bytes": self.store.used_bytes(),
            "last_fix": st.last_fix if st else None,
            "points": {"in": st.points_in, "kept": st.points_kept} if st else None,
            "fleet": None if self.fleet is None else {"connected": self.fleet.link.connected,
                                                       "pending": self.fleet.pending()},
        }
        write_status(self.state / self.rt.status_file, doc)


_WARM: float | None = None


def _warm_numba() -> float:
    """Load (or compile) the numba kernels before data flows; returns the seconds it took
    (a few hundred ms from a warm cache, tens of seconds cold)."""
    global _WARM
    if _WARM is not None:
        return 0.0
    t = time.time()
    import numpy as np

    from agent.config import AgentConfig
    from agent.runtime._pipeline import Pipeline

    try:
        from sensors.simulator import DriveSimulation
        from sensors.simulator._bus import bus_messages

        # a quarter second of a simulated drive through every stage: every kernel specialised
        sim = DriveSimulation(duration=0.5, camera=False)
        cfg = AgentConfig()
        p = Pipeline(cfg, camera=False)
        for m in bus_messages(sim):
            p.feed(m)
        p.flush()
        from pipeline.codecs import make_codec

        make_codec("quantized").encode(np.random.default_rng(0).normal(size=(64, 3)))
    except Exception as exc:  # noqa: BLE001 - warm-up is an optimisation only
        log.debug("warm-up: %s", exc)
    _WARM = time.time() - t
    return _WARM


def drive_id(path: str | Path) -> str:
    """Identity of a drive file for resuming its replay: name, size and head/tail hash."""
    p = Path(path)
    size = p.stat().st_size
    h = hashlib.sha256(f"{p.name}:{size}".encode())
    with open(p, "rb") as f:
        h.update(f.read(1 << 16))
        if size > 1 << 16:
            f.seek(max(0, size - (1 << 16)))
            h.update(f.read())
    return "drive:" + h.hexdigest()[:32]


def _finite(x: float) -> bool:
    return math.isfinite(x)
