"""The bridge: link frames in, bus messages out.

:class:`BridgeCore` is pure (frames and frame errors in, :mod:`agent.bus` messages out, no
I/O): it line-assembles NMEA from the GNSS byte chunks, keeps the tick → UTC fit
(:class:`~firmware_bridge.timesync.TickClock`) and turns IMU, power and PPS records into
``ImuSample``, ``PowerEvent`` and ``TimeSync`` messages. Nothing from a rejected frame reaches
it, and a half-received NMEA line is dropped whenever frames were lost (CRC error, decode
error, a gap in the MCU's sequence numbers, an MCU reboot), so a sentence spliced from two
pieces is never published.

:class:`Bridge` is the runner: it owns a :class:`~firmware_bridge.link.SerialLink` and a sink
(an :class:`agent.bus.Publisher` or any callable taking a message), reads until stopped, logs
its counters every ``stats_interval`` seconds and on exit, and sends host commands waiting for
their acknowledgement (:meth:`Bridge.command`).

Message times: ``utc_ns`` is the MCU tick of the record mapped through the PPS fit once the
fit has an edge (before that, and after an MCU reboot until the next labelled edge, the host's
clock at receipt); ``mono_ns`` is the same tick on the host's monotonic clock, estimated by
:class:`~firmware_bridge.timesync.HostClock` from the smallest recent delivery delay (so a
burst of frames read at once keeps its real spacing).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.bus.messages import BusMessage, NmeaSentence, PowerEvent, PowerEventKind, TimeSync
from agent.bus.messages import ImuSample as BusImu
from firmware_bridge._config import BridgeConfig
from firmware_bridge._nmea import LineAssembler, utc_second
from firmware_bridge.errors import CommandRejected, CommandTimeout, FrameError, LinkError
from firmware_bridge.link import ByteStream, SerialLink
from firmware_bridge.records import (
    TICK_HZ,
    Ack,
    AckStatus,
    Boot,
    CameraTriggered,
    Frame,
    GnssBytes,
    Heartbeat,
    ImuSample,
    Power,
    PowerReason,
    Pps,
    Record,
)
from firmware_bridge.timesync import HostClock, SyncState, TickClock

log = logging.getLogger(__name__)

_POWER_KIND = {
    PowerReason.IGNITION_ON: PowerEventKind.IGNITION_ON,
    PowerReason.IGNITION_OFF: PowerEventKind.IGNITION_OFF,
    PowerReason.STATUS: PowerEventKind.VOLTAGE,
    PowerReason.UNDERVOLTAGE: PowerEventKind.LOW_VOLTAGE,
}


@dataclass
class CoreStats:
    """What the core made of the frames it was given."""

    published: Counter = field(default_factory=Counter)  # bus message type name → count
    records: Counter = field(default_factory=Counter)  # frame record type name → count
    unexpected: int = 0  # host → MCU record types arriving from the MCU
    lines_dropped_on_loss: int = 0
    gnss_bytes_lost: int = 0  # UART bytes the offsets say never arrived
    utc_from_host: int = 0  # messages stamped with the host clock (no PPS fit yet)
    mcu: dict[str, Any] = field(default_factory=dict)  # last heartbeat / boot


class BridgeCore:
    """Frames → bus messages; see the module docstring. ``source`` names the GNSS/IMU/power
    source on the bus (``source`` field of every message)."""

    def __init__(self, clock: TickClock | None = None, source: str = "mcu",
                 on_ack: Callable[[Ack], None] | None = None) -> None:
        self.clock = clock or TickClock()
        self.host_clock = HostClock()
        self.source = source
        self.nmea = LineAssembler()
        self.on_ack = on_ack
        self.stats = CoreStats()
        self.last_sync: SyncState | None = None
        self.triggers: list[tuple[CameraTriggered, int | None]] = []  # with their UTC ns
        self._gnss_next: int | None = None  # UART offset the next GNSS chunk should start at

    @classmethod
    def from_config(cls, cfg: BridgeConfig, **overrides: Any) -> BridgeCore:
        """A core set up from the ``bridge`` configuration section."""
        clock = TickClock(window=cfg.timesync_window, max_label_delay=cfg.label_delay_s, outlier=cfg.outlier_s)
        return cls(clock=clock, **{"source": cfg.source, **overrides})

    def _utc_ns(self, tick: int) -> int:
        utc = self.clock.to_utc(tick)
        if utc is None:
            self.stats.utc_from_host += 1
            return time.time_ns()
        return round(utc * 1e9)

    def _lost(self) -> None:
        if self.nmea.has_partial:
            self.stats.lines_dropped_on_loss += 1
        self.nmea.drop_partial()

    def handle(self, item: Frame | FrameError, mono_ns: int | None = None) -> list[BusMessage]:
        """Messages for one decoded frame (none for a frame error: whether GNSS bytes were lost
        with it is told by the next chunk's UART offset, not guessed: it may have been noise)."""
        if not isinstance(item, Frame):
            return []
        received = time.monotonic_ns() if mono_ns is None else mono_ns
        rec: Record = item.record
        self.stats.records[type(rec).__name__] += 1
        if isinstance(rec, Boot):
            self._gnss_next = None
            self.host_clock.reset()
            self.host_clock.observe(item.tick, received)
            self.clock.reset()  # ticks restart with the MCU
            self._lost()
            self.stats.mcu.update(fw_version=".".join(map(str, rec.fw_version)), reset_reason=rec.reset_reason.name)
            log.info("MCU booted: firmware %s, reset reason %s", ".".join(map(str, rec.fw_version)),
                     rec.reset_reason.name)
            return []
        # The UTC fit's rate, once there is one, is also the best estimate of the tick rate on the
        # host's clock (both follow true time to a few ppm).
        ns_per_tick = 1e9 / TICK_HZ if self.clock.state is None else self.clock.state.slope * 1e9
        self.host_clock.observe(item.tick, received, ns_per_tick)
        mono = self.host_clock.to_mono(item.tick, ns_per_tick) or received
        out: list[BusMessage] = []
        if isinstance(rec, GnssBytes):
            if self._gnss_next is not None and rec.offset != self._gnss_next:
                # UART bytes went missing (a lost frame): a partial line may lack its middle.
                self.stats.gnss_bytes_lost += (rec.offset - self._gnss_next) & 0xFFFFFFFF
                self._lost()
            self._gnss_next = (rec.offset + len(rec.data)) & 0xFFFFFFFF
            for line in self.nmea.feed(rec.data):
                second = utc_second(line)
                if second is not None:
                    state = self.clock.on_utc_second(second, item.tick)
                    if state is not None:
                        edge_mono = self.host_clock.to_mono(state.edge_tick, state.slope * 1e9) or received
                        out.append(self._sync_message(state, edge_mono))
                out.append(NmeaSentence(text=line, source=self.source, mono_ns=mono, utc_ns=self._utc_ns(item.tick)))
        elif isinstance(rec, ImuSample):
            out.append(BusImu(gyro=rec.gyro, accel=rec.accel,
                              temperature_c=None if math.isnan(rec.temperature) else rec.temperature,
                              source=self.source, mono_ns=mono, utc_ns=self._utc_ns(item.tick)))
        elif isinstance(rec, Pps):
            self.clock.on_pps(rec.edge_tick)
        elif isinstance(rec, Power):
            out.append(PowerEvent(kind=_POWER_KIND[rec.reason], ignition=rec.ignition, supply_v=rec.supply_mv / 1000.0,
                                  source=self.source, mono_ns=mono, utc_ns=self._utc_ns(item.tick)))
        elif isinstance(rec, Heartbeat):
            self.stats.mcu.update(uptime_ms=rec.uptime_ms, fw_version=".".join(map(str, rec.fw_version)),
                                  frames_sent=rec.frames_sent, host_frames_ok=rec.host_frames_ok,
                                  host_crc_errors=rec.host_crc_errors, uart_overruns=rec.uart_overruns)
        elif isinstance(rec, Ack):
            if self.on_ack is not None:
                self.on_ack(rec)
        elif isinstance(rec, CameraTriggered):
            utc = self.clock.to_utc(rec.edge_tick)
            self.triggers.append((rec, None if utc is None else round(utc * 1e9)))
            del self.triggers[:-256]
        else:
            self.stats.unexpected += 1
        for msg in out:
            self.stats.published[msg.TYPE.name] += 1
        return out

    def link_lost(self) -> None:
        """The connection dropped: a half line cannot be finished and the UART offsets restart."""
        self._lost()
        self._gnss_next = None

    def _sync_message(self, state: SyncState, mono: int) -> TimeSync:
        self.last_sync = state
        residual = state.edge_utc - state.to_utc(state.edge_tick)
        return TimeSync(mcu_tick=state.edge_tick, pps_utc_ns=round(state.edge_utc * 1e9), tick_hz=1.0 / state.slope,
                        residual_ns=residual * 1e9, source=self.source, mono_ns=mono,
                        utc_ns=round(state.edge_utc * 1e9))

    def stats_dict(self) -> dict[str, Any]:
        s = self.stats
        a = self.nmea.stats
        sync = self.last_sync
        return {
            "published": dict(s.published),
            "records": dict(s.records),
            "unexpected_records": s.unexpected,
            "nmea": {"lines_ok": a.lines_ok, "checksum_errors": a.checksum_errors, "malformed": a.malformed,
                     "overlong": a.overlong, "partial_dropped": a.partial_dropped},
            "timesync": None if sync is None else {
                "edges": sync.edges, "residual_rms_us": sync.residual_rms * 1e6,
                "residual_max_us": sync.residual_max * 1e6, "drift_ppm": sync.drift_ppm,
                "outliers": self.clock.outliers, "restarts": self.clock.restarts},
            "gnss_bytes_lost": s.gnss_bytes_lost,
            "nmea_lines_dropped_on_loss": s.lines_dropped_on_loss,
            "utc_from_host": s.utc_from_host,
            "mcu": dict(s.mcu),
        }


Sink = Callable[[BusMessage], Any]


class Bridge:
    """Runs a :class:`BridgeCore` over a :class:`SerialLink`, publishing to ``sink``
    (an ``agent.bus.Publisher``, whose ``publish`` is used, or a callable)."""

    def __init__(self, link: SerialLink, sink: Any, *, core: BridgeCore | None = None,
                 stats_interval: float = 10.0, on_stats: Callable[[dict[str, Any]], None] | None = None,
                 reopen: Callable[[], ByteStream] | None = None, reopen_interval: float = 1.0,
                 command_timeout: float = 1.0) -> None:
        self.link = link
        self.command_timeout = command_timeout
        self.reopen = reopen
        self.reopen_interval = reopen_interval
        self._publish: Sink = sink.publish if hasattr(sink, "publish") else sink
        self.core = core or BridgeCore()
        self.core.on_ack = self._on_ack
        self.stats_interval = stats_interval
        self.on_stats = on_stats
        self._pending: dict[int, tuple[threading.Event, list[Ack]]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.started = time.monotonic()

    def stop(self) -> None:
        self._stop.set()

    def stats(self) -> dict[str, Any]:
        return {"link": self.link.stats.as_dict(), **self.core.stats_dict(),
                "seconds": round(time.monotonic() - self.started, 3)}

    def _report(self, final: bool = False) -> None:
        doc = self.stats()
        link = doc["link"]
        log.info("bridge %s: %d frames ok, %d CRC errors, %d decode errors, %d resyncs, %d bytes discarded",
                 "final stats" if final else "stats", link["frames_ok"], link["crc_errors"], link["decode_errors"],
                 link["resyncs"], link["bytes_discarded"], extra={"fields": {"bridge_stats": doc}})
        if self.on_stats is not None:
            self.on_stats({"final": final, **doc})

    def pump(self) -> int:
        """Read once from the link and publish what it decodes; returns messages published."""
        n = 0
        for item in self.link.read_frames():
            for msg in self.core.handle(item):
                self._publish(msg)
                n += 1
        return n

    def run(self, duration: float | None = None, until: Callable[[], bool] | None = None) -> dict[str, Any]:
        """Read and publish until :meth:`stop`, ``duration`` seconds, ``until()`` is true or the
        input ends (a file). Returns the final stats (also logged)."""
        self.started = time.monotonic()
        end = None if duration is None else self.started + duration
        next_report = self.started + self.stats_interval
        try:
            while not self._stop.is_set():
                try:
                    self.pump()
                except EOFError:
                    break
                except LinkError as err:
                    if self.reopen is None:
                        raise
                    self._reconnect(err, end)
                now = time.monotonic()
                if now >= next_report:
                    self._report()
                    next_report = now + self.stats_interval
                if (end is not None and now >= end) or (until is not None and until()):
                    break
        finally:
            self._report(final=True)
        return self.stats()

    def _reconnect(self, err: LinkError, end: float | None = None) -> None:
        """The port failed (an MCU reset re-enumerates USB CDC): reopen it until it comes back
        or the bridge is stopped."""
        assert self.reopen is not None
        log.warning("serial link failed (%s); reopening every %g s", err, self.reopen_interval)
        self.core.link_lost()
        while not self._stop.wait(self.reopen_interval):
            if end is not None and time.monotonic() >= end:
                return  # the run's time is up: the loop above ends it
            try:
                stream = self.reopen()
            except LinkError as again:
                log.debug("reopen failed: %s", again)
                continue
            self.link.reattach(stream)
            log.info("serial link reopened")
            return

    # -- host → MCU commands

    def _on_ack(self, ack: Ack) -> None:
        with self._lock:
            waiting = self._pending.get(ack.acked_seq)
        if waiting is None:
            log.warning("acknowledgement for seq %d that nobody waits for", ack.acked_seq)
            return
        waiting[1].append(ack)
        waiting[0].set()

    def command(self, record: Record, timeout: float | None = None) -> Ack:
        """Send a command and wait for its acknowledgement (the reading loop must be running in
        another thread). Raises CommandTimeout, or CommandRejected on a NACK."""
        if int(record.TYPE) < 0x80:
            raise LinkError(f"{record.TYPE.name} is not a host → MCU command")
        timeout = self.command_timeout if timeout is None else timeout
        event: threading.Event = threading.Event()
        box: list[Ack] = []
        with self._lock:
            seq = self.link.send(record)
            self._pending[seq] = (event, box)
        try:
            if not event.wait(timeout):
                raise CommandTimeout(seq, record.TYPE.name, timeout)
        finally:
            with self._lock:
                self._pending.pop(seq, None)
        ack = box[0]
        if ack.status != AckStatus.OK:
            raise CommandRejected(seq, record.TYPE.name, ack.status.name)
        return ack


__all__ = ["Bridge", "BridgeCore", "CoreStats"]
