"""A firmware simulator on a pseudo-terminal: the MCU's side of the link, for tests and demos.

It opens a pty pair (``os.openpty``), keeps the master and hands out the slave's path
(``/dev/pts/N``) for the host to open with pyserial like a USB CDC port. It then streams,
through the real protocol:

- **GNSS bytes** from an NMEA log (e.g. ``fixtures/gnss/munich_drive_2014.nmea``): one cycle per
  RMC second, sent as a 9600-baud UART would deliver it (starting 80 ms after the second), cut
  into DMA-sized chunks of 8 to 64 bytes at random places;
- **PPS edges** at each cycle's UTC second, captured on the MCU clock with Gaussian jitter;
- **IMU samples** from a GENIVI log's ``$GVSNSGYR``/``$GVSNSACC`` lines (10 Hz, deg/s converted
  to rad/s, looped over the drive) or, with no log, synthetic at 100 Hz (gravity on z plus a
  slow yaw oscillation and white noise: documented stand-in, not a recording);
- **power** records (ignition on at start, status every 5 s, ignition off at the end),
  **heartbeats** every second, and a **boot** record first.

The MCU clock runs ``drift_ppm`` fast against UTC (ticks in µs since boot). It answers LED and
camera-trigger commands with acks (NACK for an unknown LED/camera or command type) and emits a
``CameraTriggered`` record for each trigger. Faults are injected per frame with ``faults``
(a function of the frame index and its wire bytes returning the bytes to send: flip bits, drop
bytes, truncate, append garbage) and ``reset_at`` (frame indices where the MCU resets halfway
through sending that frame, then boots again with ticks and sequence numbers from 0).

``speed`` paces the stream against the wall clock (1 = real time, 10 = ten times faster);
0 sends as fast as the host reads. ``log`` keeps every frame sent with whether it went out
intact, and :meth:`true_utc` gives the exact UTC of a tick, so tests can check the host.

Run standalone: ``python -m firmware_bridge.simulator NMEA [--imu-log LOG]`` prints the pty path.
"""

from __future__ import annotations

import heapq
import math
import os
import random
import select
import threading
import time
import tty
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from firmware_bridge._nmea import checksum_ok
from firmware_bridge.link import FrameDecoder
from firmware_bridge.records import (
    TICK_HZ,
    Ack,
    AckStatus,
    Boot,
    CameraTriggerCommand,
    CameraTriggered,
    Frame,
    GnssBytes,
    Heartbeat,
    ImuSample,
    LedCommand,
    Power,
    PowerReason,
    Pps,
    Record,
    ResetReason,
    encode_frame,
)

FW_VERSION = (1, 4, 2)
Faults = Callable[[int, bytes], bytes]


@dataclass(frozen=True, slots=True)
class SentFrame:
    """One MCU → host frame as the simulator sent it."""

    index: int
    seq: int
    tick: int
    record: Record
    intact: bool  # its bytes went out whole (maybe with garbage after them): the host can decode it
    boot: int  # how many resets before it (0 for the first boot)


@dataclass(frozen=True, slots=True)
class _Event:
    utc: float
    order: int
    make: Callable[[], tuple[Record, int | None]]  # → record, tick override (None: tick of utc)

    def __lt__(self, other: _Event) -> bool:
        return (self.utc, self.order) < (other.utc, other.order)


# ---------------------------------------------------------------------------------- sources

def nmea_cycles(path: Path) -> list[tuple[float, bytes]]:
    """(UTC second, bytes of that cycle) per RMC in an NMEA log; lines before the first RMC,
    comments and sentences with a bad checksum are dropped; time must go forwards."""
    import calendar

    cycles: list[tuple[float, bytearray]] = []
    last = -math.inf
    for raw in path.read_bytes().splitlines():
        line = raw.strip()
        if not line.startswith((b"$", b"!")) or checksum_ok(line) is False:
            continue
        fields = line.split(b"*")[0].split(b",")
        if fields[0][3:] == b"RMC" and len(fields) >= 10:
            try:
                hms, date = fields[1].decode(), fields[9].decode()
                sec = float(hms[4:])
                utc = calendar.timegm((2000 + int(date[4:6]), int(date[2:4]), int(date[0:2]),
                                       int(hms[0:2]), int(hms[2:4]), int(sec), 0, 0, 0))
            except (ValueError, IndexError):
                utc = None
            if utc is not None and sec == int(sec) and utc > last:
                cycles.append((float(utc), bytearray()))
                last = utc
            elif cycles and utc is not None and utc <= last:
                continue  # time went backwards: skip this RMC
        if cycles:
            cycles[-1][1].extend(line + b"\r\n")
    return [(u, bytes(b)) for u, b in cycles]


def genivi_imu(path: Path) -> list[tuple[float, tuple[float, float, float], tuple[float, float, float], float]]:
    """(seconds from the first sample, gyro rad/s, accel m/s², temperature °C) from a GENIVI
    log's ``$GVSNSGYR`` and ``$GVSNSACC`` lines paired by their sample time."""
    acc: dict[int, tuple[tuple[float, float, float], float]] = {}
    gyr: dict[int, tuple[float, float, float]] = {}
    for raw in path.read_text(errors="replace").splitlines():
        parts = raw.split(",")
        if len(parts) < 8 or parts[2] not in ("$GVSNSACC", "$GVSNSGYR"):
            continue
        try:
            t = int(parts[3])
            x, y, z, temp = (float(v) for v in parts[4:8])
        except ValueError:
            continue
        if parts[2] == "$GVSNSACC":
            acc[t] = ((x, y, z), temp)
        else:
            gyr[t] = (math.radians(x), math.radians(y), math.radians(z))
    times = sorted(set(acc) & set(gyr))
    if not times:
        return []
    t0 = times[0]
    return [((t - t0) / 1000.0, gyr[t], acc[t][0], acc[t][1]) for t in times]


def synthetic_imu(duration: float, hz: float, seed: int):
    """Stand-in IMU at ``hz``: gravity on z, a slow yaw oscillation, white noise."""
    rng = random.Random(seed)
    n = int(duration * hz)
    for i in range(n):
        t = i / hz
        yaw = 0.05 * math.sin(2 * math.pi * 0.1 * t)
        yield (t, (rng.gauss(0, 0.002), rng.gauss(0, 0.002), yaw + rng.gauss(0, 0.002)),
               (rng.gauss(0, 0.02), rng.gauss(0, 0.02), 9.81 + rng.gauss(0, 0.02)), 35.0 + 0.01 * t)


# ---------------------------------------------------------------------------------- simulator

class FirmwareSimulator:
    """The MCU end of the link on a pty; see the module docstring. Use as a context manager:
    ``with FirmwareSimulator(nmea) as sim: open(sim.port) ...``; ``start()`` begins streaming."""

    def __init__(self, nmea_path: str | Path, imu_log: str | Path | None = None, *,
                 drift_ppm: float = 50.0, pps_jitter_us: float = 1.0, speed: float = 0.0,
                 max_seconds: float | None = None, gnss_baud: int = 9600, imu_hz: float = 100.0,
                 faults: Faults | None = None, reset_at: Iterable[int] = (), seed: int = 0,
                 ignition_off_at_end: bool = True, keep_log: bool = True) -> None:
        self.cycles = nmea_cycles(Path(nmea_path))
        if not self.cycles:
            raise ValueError(f"{nmea_path}: no RMC sentence with a whole-second time")
        if max_seconds is not None:
            first = self.cycles[0][0]
            self.cycles = [c for c in self.cycles if c[0] - first < max_seconds]
        self.imu_log = Path(imu_log) if imu_log is not None else None
        self.drift_ppm = drift_ppm
        self.pps_jitter_us = pps_jitter_us
        self.speed = speed
        self.gnss_baud = gnss_baud
        self.imu_hz = imu_hz
        self.faults = faults
        self.reset_at = set(reset_at)
        self.ignition_off_at_end = ignition_off_at_end
        self.keep_log = keep_log
        self._rng = random.Random(seed)
        self._seed = seed
        self.start_utc = self.cycles[0][0] - 0.5  # the MCU boots half a second before the first cycle
        self.end_utc = self.cycles[-1][0] + 1.0
        # Clock model of the current boot: tick = (utc − boot_utc) · TICK_HZ · (1 + drift).
        self.boot_utc = self.start_utc
        self.boot_utcs = [self.start_utc]  # UTC at tick 0 of each boot
        self.boots = 0
        self.log: list[SentFrame] = []
        self.frames_sent = 0
        self.bytes_written = 0
        self.commands: list[Frame] = []
        self.finished = threading.Event()
        self._seq = 0
        self._now_utc = self.start_utc
        self._pps_count = 0
        self._gnss_offset = 0  # UART bytes since boot
        self._trigger_count = 0
        self._host = FrameDecoder()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no CR/LF translation: the pty must pass bytes through
        os.set_blocking(self._master, False)
        self.port = os.ttyname(self._slave)

    # -- clock

    def tick_of(self, utc: float) -> int:
        """The MCU tick (current boot) at a UTC instant."""
        return round((utc - self.boot_utc) * TICK_HZ * (1.0 + self.drift_ppm * 1e-6))

    def true_utc(self, tick: int, boot: int | None = None) -> float:
        """The exact UTC of a tick of boot ``boot`` (default: the current one), which is what
        the host's fit should find."""
        base = self.boot_utcs[self.boots if boot is None else boot]
        return base + tick / (TICK_HZ * (1.0 + self.drift_ppm * 1e-6))

    # -- lifecycle

    def start(self) -> FirmwareSimulator:
        if self._thread is not None:
            raise RuntimeError("simulator already started")
        self._thread = threading.Thread(target=self._run, name="firmware-sim", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def close(self) -> None:
        self.stop()
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
        self._master = self._slave = -1

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- schedule

    def _events(self) -> Iterator[_Event]:
        order = iter(range(1 << 62))
        streams: list[Iterable[_Event]] = [self._gnss_events(order), self._imu_events(order),
                                           self._housekeeping_events(order)]
        return heapq.merge(*streams)

    def _gnss_events(self, order: Iterator[int]) -> Iterator[_Event]:
        byte_s = 10.0 / self.gnss_baud  # 8N1: ten bit times a byte
        for utc, data in self.cycles:
            edge_utc = utc
            jitter = self._rng.gauss(0.0, self.pps_jitter_us) if self.pps_jitter_us else 0.0

            def pps(edge_utc: float = edge_utc, jitter: float = jitter) -> tuple[Record, int | None]:
                self._pps_count += 1
                return Pps(max(0, self.tick_of(edge_utc) + round(jitter)), self._pps_count), None

            yield _Event(edge_utc + 0.0005, next(order), pps)  # sent half a millisecond after the edge
            # UART: start 80 ms after the edge; squeeze long cycles into 0.85 s.
            per_byte = min(byte_s, 0.85 / max(1, len(data)))
            pos = 0
            while pos < len(data):
                n = self._rng.randint(8, 64)
                chunk = data[pos : pos + n]
                pos += len(chunk)
                t = edge_utc + 0.08 + pos * per_byte
                yield _Event(t, next(order), lambda chunk=chunk: (self._gnss_chunk(chunk), None))

    def _gnss_chunk(self, chunk: bytes) -> GnssBytes:
        rec = GnssBytes(self._gnss_offset, chunk)
        self._gnss_offset = (self._gnss_offset + len(chunk)) & 0xFFFFFFFF
        return rec

    def _imu_events(self, order: Iterator[int]) -> Iterator[_Event]:
        duration = self.end_utc - self.start_utc
        if self.imu_log is not None:
            samples = genivi_imu(self.imu_log)
            if not samples:
                raise ValueError(f"{self.imu_log}: no $GVSNSGYR/$GVSNSACC pairs")
            period = samples[-1][0] + 0.1

            def looped():
                k = 0
                while True:
                    for t, g, a, temp in samples:
                        tt = t + k * period
                        if tt >= duration:
                            return
                        yield tt, g, a, temp
                    k += 1

            source = looped()
        else:
            source = synthetic_imu(duration, self.imu_hz, self._seed)
        for t, g, a, temp in source:
            utc = self.start_utc + 0.01 + t
            yield _Event(utc, next(order), lambda g=g, a=a, temp=temp: (ImuSample(g, a, temp), None))

    def _housekeeping_events(self, order: Iterator[int]) -> Iterator[_Event]:
        yield _Event(self.start_utc + 0.001, next(order),
                     lambda: (Power(True, PowerReason.IGNITION_ON, 12_600), None))
        t = self.start_utc + 0.5
        k = 0
        while t < self.end_utc:
            yield _Event(t, next(order), self._heartbeat)
            if k % 5 == 4:
                mv = 12_400 + round(200 * math.sin(k / 7.0))
                yield _Event(t + 0.0001, next(order), lambda mv=mv: (Power(True, PowerReason.STATUS, mv), None))
            t += 1.0
            k += 1
        if self.ignition_off_at_end:
            yield _Event(self.end_utc, next(order), lambda: (Power(False, PowerReason.IGNITION_OFF, 12_100), None))

    def _heartbeat(self) -> tuple[Record, int | None]:
        up = max(0, int((self._now_utc - self.boot_utc) * 1000))
        s = self._host.stats
        return Heartbeat(up & 0xFFFFFFFF, FW_VERSION, self.frames_sent, s.frames_ok, s.crc_errors, 0), None

    # -- the thread

    def _run(self) -> None:
        try:
            self._write_all(b"\x00")  # a fresh start ends whatever half frame the line held
            self._send(Boot(FW_VERSION, ResetReason.POWER_ON), self.tick_of(self.start_utc))
            wall0 = time.monotonic()
            for ev in self._events():
                if self._stop.is_set():
                    return
                if self.speed > 0:
                    due = wall0 + (ev.utc - self.start_utc) / self.speed
                    while not self._stop.is_set():
                        left = due - time.monotonic()
                        if left <= 0:
                            break
                        self._service(min(left, 0.05))
                else:
                    self._service(0.0)
                self._now_utc = ev.utc
                record, tick = ev.make()
                self._send(record, self.tick_of(ev.utc) if tick is None else tick)
            self.finished.set()
            while not self._stop.is_set():
                self._service(0.05)
        except OSError as err:
            if not self._stop.is_set():
                self.error = err
        except Exception as err:  # noqa: BLE001 - the thread has no caller: surfaced through .error
            self.error = err
        finally:
            self.finished.set()

    def _send(self, record: Record, tick: int) -> None:
        index = self.frames_sent
        seq = self._seq
        self._seq = (self._seq + 1) & 0xFFFF
        self.frames_sent += 1
        wire = encode_frame(record, seq, tick)
        if index in self.reset_at:
            self._reset_mid_frame(wire)
            if self.keep_log:
                self.log.append(SentFrame(index, seq, tick, record, False, self.boots - 1))
            return
        out = self.faults(index, wire) if self.faults is not None else wire
        if self.keep_log:
            self.log.append(SentFrame(index, seq, tick, record, wire in out, self.boots))
        self._write_all(out)

    def _reset_mid_frame(self, wire: bytes) -> None:
        """Send half the frame, then die and boot again: the new boot's clock starts now."""
        self._write_all(wire[: len(wire) // 2])
        self.boots += 1
        self.boot_utc = self._now_utc
        self.boot_utcs.append(self.boot_utc)
        self._seq = 0
        self._pps_count = 0
        self._gnss_offset = 0
        self._write_all(b"\x00")
        seq = self._seq
        self._seq += 1
        self.frames_sent += 1
        boot = Boot(FW_VERSION, ResetReason.WATCHDOG)
        if self.keep_log:
            self.log.append(SentFrame(self.frames_sent - 1, seq, 0, boot, True, self.boots))
        self._write_all(encode_frame(boot, seq, 0))

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            if self._stop.is_set():
                raise OSError("simulator stopped")
            try:
                n = os.write(self._master, view)
            except BlockingIOError:
                n = 0
            if n:
                self.bytes_written += n
                view = view[n:]
            else:
                # The host is behind: serve its commands while waiting for room.
                self._service(0.0)
                select.select([], [self._master], [], 0.05)

    def _service(self, timeout: float) -> None:
        """Read and answer host commands (waiting up to ``timeout`` for one)."""
        r, _, _ = select.select([self._master], [], [], timeout)
        if not r:
            return
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, OSError):
            return
        for item in self._host.feed(data):
            if isinstance(item, Frame):
                self.commands.append(item)
                self._answer(item)

    def _answer(self, frame: Frame) -> None:
        rec = frame.record
        tick = self.tick_of(self._now_utc)
        if isinstance(rec, LedCommand):
            status = AckStatus.OK if rec.led < 4 else AckStatus.BAD_ARGUMENT
            self._send(Ack(frame.seq, frame.header.type, status), tick)
        elif isinstance(rec, CameraTriggerCommand):
            if rec.camera >= 4 or rec.pulse_us == 0:
                self._send(Ack(frame.seq, frame.header.type, AckStatus.BAD_ARGUMENT), tick)
                return
            self._send(Ack(frame.seq, frame.header.type, AckStatus.OK), tick)
            self._trigger_count += 1
            self._send(CameraTriggered(rec.camera, self._trigger_count, tick + 50), tick + 50)
        else:
            self._send(Ack(frame.seq, frame.header.type, AckStatus.UNKNOWN_COMMAND), tick)


def _main() -> None:  # pragma: no cover - manual use
    import argparse

    ap = argparse.ArgumentParser(description="Firmware simulator on a pty (prints the port path).")
    ap.add_argument("nmea")
    ap.add_argument("--imu-log")
    ap.add_argument("--speed", type=float, default=1.0)
    ap.add_argument("--drift-ppm", type=float, default=50.0)
    args = ap.parse_args()
    with FirmwareSimulator(args.nmea, args.imu_log, speed=args.speed, drift_ppm=args.drift_ppm) as sim:
        print(sim.port, flush=True)
        sim.start()
        try:
            while not sim.finished.wait(0.5):
                pass
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover
    _main()

__all__ = ["FirmwareSimulator", "SentFrame", "genivi_imu", "nmea_cycles", "synthetic_imu"]
