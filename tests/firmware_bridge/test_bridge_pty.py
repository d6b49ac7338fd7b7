"""End to end over a real pseudo-terminal and a real ZeroMQ bus: the firmware simulator
streams a recorded NMEA drive and recorded IMU through the protocol, the bridge reads it with
pyserial and publishes; a bus subscriber checks what arrives against what the simulator sent.
Faults are injected on the wire (bit flips, dropped bytes, truncated frames, garbage between
frames, an MCU reset mid-frame)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from agent.bus import ImuSample as BusImu
from agent.bus import MessageType, NmeaSentence, PowerEvent, PowerEventKind, Publisher, Subscriber, TimeSync
from firmware_bridge.bridge import Bridge
from firmware_bridge.errors import CommandRejected, CommandTimeout
from firmware_bridge.link import SerialLink
from firmware_bridge.records import CameraTriggerCommand, GnssBytes, ImuSample, LedCommand, LedMode, Power
from firmware_bridge.simulator import FirmwareSimulator
from tests._fixtures import fixture_file

zmq = pytest.importorskip("zmq")

NMEA = "gnss/munich_drive_2014.nmea"
IMU = "gnss/genivi_rpi_regensburg_2016.log"
CLI = [sys.executable, "-c", "from agent.cli import main; main()"]  # edge-agent, whatever the PATH
GNSS_DISCIPLINED = 1.5e18  # utc_ns below this is the 2009 drive's time, above it the host clock (2026)


class Run:
    """A simulator on a pty, a bridge reading it in a thread, a subscriber collecting."""

    def __init__(self, sim: FirmwareSimulator, endpoint: str) -> None:
        self.sim = sim
        self.ctx = zmq.Context()
        self.pub = Publisher(endpoint, context=self.ctx).open()
        self.sub = Subscriber(endpoint, context=self.ctx).open()
        self.pub.wait_for_subscriber(5.0)
        self.link = SerialLink.open(sim.port)
        self.bridge = Bridge(self.link, self.pub, stats_interval=60.0)
        self.messages: list = []
        self._thread = threading.Thread(target=self._bridge_run, daemon=True)
        self.error: BaseException | None = None

    def _bridge_run(self) -> None:
        try:
            self.bridge.run(until=lambda: self.sim.finished.is_set() and self.link.stats.bytes_in >= self.sim.bytes_written)
        except Exception as err:  # noqa: BLE001 - re-raised in the test thread
            self.error = err

    def start(self) -> Run:
        self._thread.start()
        self.sim.start()
        return self

    def collect(self, timeout: float = 60.0) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            msg = self.sub.recv(timeout_ms=100)
            if msg is not None:
                self.messages.append(msg)
            elif not self._thread.is_alive():
                break
        while (msg := self.sub.recv(timeout_ms=200)) is not None:
            self.messages.append(msg)
        assert not self._thread.is_alive(), "bridge did not finish"
        if self.error is not None:
            raise self.error
        assert self.sim.error is None, self.sim.error
        return self.messages

    def close(self) -> None:
        self.bridge.stop()
        self._thread.join(5)
        self.link.close()
        self.sim.close()
        self.sub.close()
        self.pub.close()
        self.ctx.term()


@pytest.fixture
def endpoint(request) -> str:
    return f"inproc://bridge-test-{request.node.name}"


def _of(msgs, cls):
    return [m for m in msgs if isinstance(m, cls)]


def _f32(rows) -> np.ndarray:
    """What float32 on the wire makes of the simulator's values."""
    return np.asarray(rows, dtype=np.float32).astype(np.float64)


def _expected_nmea(sim: FirmwareSimulator) -> list[str]:
    """The sentences whose every byte (CR/LF included) reached the host intact."""
    data = bytearray()
    ok = bytearray()
    for f in sim.log:
        if isinstance(f.record, GnssBytes):
            data += f.record.data
            ok += (b"\x01" if f.intact else b"\x00") * len(f.record.data)
    out, start = [], 0
    while (end := data.find(b"\n", start)) >= 0:
        if all(ok[start : end + 1]):
            out.append(bytes(data[start:end]).strip(b"\r").decode())
        start = end + 1
    return out


def _check_times(sim: FirmwareSimulator, msgs: list, intact_imu) -> dict[str, float]:
    """IMU times against the simulator's exact clock: once 8 edges are fitted within 3 µs
    (1 µs PPS jitter; see test_timesync for the bound), and within 60 ppm of the time since the
    fit's last edge while fewer; returns the worst errors."""
    edges = 0
    last_edge_tick = -1
    imu_i = 0
    worst = {"fitted_8_us": 0.0, "early_us": 0.0, "host_stamped": 0}
    for m in msgs:
        if isinstance(m, TimeSync):
            edges = 1 if m.mcu_tick < last_edge_tick else edges + 1  # the tick went back: MCU reset
            last_edge_tick = m.mcu_tick
        elif isinstance(m, BusImu):
            sent = intact_imu[imu_i]
            imu_i += 1
            if m.utc_ns > GNSS_DISCIPLINED:
                worst["host_stamped"] += 1
                assert abs(m.utc_ns - time.time_ns()) < 120e9
                continue
            err = abs(m.utc_ns / 1e9 - sim.true_utc(sent.tick, sent.boot)) * 1e6
            if edges >= 8:
                worst["fitted_8_us"] = max(worst["fitted_8_us"], err)
            else:
                since = abs(sent.tick - last_edge_tick) / 1e6
                assert err < 60 * since + 3, (err, since)
                worst["early_us"] = max(worst["early_us"], err)
    assert imu_i == len(intact_imu)
    assert worst["fitted_8_us"] < 3.0, worst
    return worst


def test_clean_drive_reaches_the_bus_exactly() -> None:
    sim = FirmwareSimulator(fixture_file(NMEA), fixture_file(IMU), max_seconds=60, drift_ppm=50.0, pps_jitter_us=1.0)
    run = Run(sim, "inproc://bridge-clean").start()
    try:
        msgs = run.collect()
    finally:
        run.close()
    stats = run.bridge.stats()
    link = stats["link"]
    assert link["frames_ok"] == sim.frames_sent and link["crc_errors"] == link["decode_errors"] == 0
    assert link["resyncs"] == link["bytes_discarded"] == link["frames_missing"] == 0
    # Every sentence of the log's first minute, byte for byte, in order.
    nmea = [m.text for m in _of(msgs, NmeaSentence)]
    assert nmea == _expected_nmea(sim) and len(nmea) > 300
    assert nmea == [line.decode() for _, cycle in sim.cycles for line in cycle.split(b"\r\n") if line]
    # IMU: the recorded gyro/accel values (float32 on the wire), in order.
    imu = _of(msgs, BusImu)
    sent_imu = [f for f in sim.log if isinstance(f.record, ImuSample)]
    assert len(imu) == len(sent_imu) > 500
    np.testing.assert_array_equal([m.gyro + m.accel for m in imu], _f32([f.record.gyro + f.record.accel for f in sent_imu]))
    assert imu[0].temperature_c == pytest.approx(7.2, abs=1e-5)
    # Power: ignition on first, voltage reports, ignition off last.
    power = _of(msgs, PowerEvent)
    assert power[0].kind == PowerEventKind.IGNITION_ON and power[-1].kind == PowerEventKind.IGNITION_OFF
    assert power[-1].ignition is False and 11.0 < power[1].supply_v < 13.0
    assert len(power) == sum(isinstance(f.record, Power) for f in sim.log)
    # Time sync: one per PPS edge, on whole seconds, the fitted rate shows the 50 ppm.
    syncs = _of(msgs, TimeSync)
    assert len(syncs) == len(sim.cycles) == 60
    assert all(s.pps_utc_ns % 10**9 == 0 for s in syncs)
    assert syncs[-1].tick_hz == pytest.approx(1e6 * (1 + 50e-6), abs=2.0)
    assert all(abs(s.residual_ns) < 5_000 for s in syncs)
    assert stats["timesync"]["residual_rms_us"] < 2.0 and stats["timesync"]["edges"] == 32
    worst = _check_times(sim, msgs, sent_imu)
    assert 1 <= worst["host_stamped"] <= 8  # 10 Hz IMU in the ~0.7 s from boot to the first labelled edge


def _fault_plan(seed: int):
    rng = random.Random(seed)
    kinds: dict[int, str] = {}

    def faults(i: int, wire: bytes) -> bytes:
        if i < 5:
            return wire
        if i % 41 == 0:
            kinds[i] = "flip"
            k = rng.randrange(1, len(wire) - 1)
            return wire[:k] + bytes([wire[k] ^ (1 << rng.randrange(8))]) + wire[k + 1 :]
        if i % 67 == 0:
            kinds[i] = "drop"
            k = rng.randrange(1, len(wire) - 1)
            return wire[:k] + wire[k + 1 :]
        if i % 89 == 0:
            kinds[i] = "truncate"
            return wire[: rng.randrange(2, len(wire) - 1)]
        if i % 23 == 0:
            kinds[i] = "garbage"
            return wire + bytes(rng.randrange(256) for _ in range(rng.randint(1, 60)))
        return wire

    return faults, kinds


@pytest.mark.parametrize("seed", [11, 12])
def test_faults_on_the_wire_never_reach_the_bus(seed: int) -> None:
    faults, kinds = _fault_plan(seed)
    sim = FirmwareSimulator(fixture_file(NMEA), fixture_file(IMU), max_seconds=60, drift_ppm=50.0,
                            pps_jitter_us=1.0, faults=faults, reset_at=[800], seed=seed)
    run = Run(sim, f"inproc://bridge-faults-{seed}").start()
    try:
        msgs = run.collect()
    finally:
        run.close()
    link = run.bridge.stats()["link"]
    damaged = [i for i, k in kinds.items() if k != "garbage"]
    intact = [f for f in sim.log if f.intact]
    assert len(damaged) > 30 and sum(k == "garbage" for k in kinds.values()) > 30
    # Exactly the intact frames decoded: each damage cost its own frame and no other.
    assert link["frames_ok"] == len(intact) == sim.frames_sent - len(damaged) - 1  # - the frame cut by the reset
    assert link["crc_errors"] > 0 and link["crc_errors"] + link["decode_errors"] >= len(damaged) + 1
    assert 0 < link["resyncs"] <= link["crc_errors"] + link["decode_errors"]
    assert link["bytes_discarded"] > 0 and link["mcu_boots"] == 2
    # The bus carries only what was sent intact: IMU values exactly those of intact frames ...
    sent_imu = [f for f in intact if isinstance(f.record, ImuSample)]
    imu = _of(msgs, BusImu)
    np.testing.assert_array_equal([m.gyro + m.accel for m in imu], _f32([f.record.gyro + f.record.accel for f in sent_imu]))
    # ... NMEA exactly the sentences none of whose bytes were in a damaged frame ...
    nmea = [m.text for m in _of(msgs, NmeaSentence)]
    expected = _expected_nmea(sim)
    assert nmea == expected
    all_lines = [line.decode() for _, c in sim.cycles for line in c.split(b"\r\n") if line]
    assert set(nmea) <= set(all_lines) and 0.8 * len(all_lines) < len(expected) < len(all_lines)
    assert run.bridge.core.stats.gnss_bytes_lost > 0
    # ... and times stay right across the reset (the fit restarts on the MCU's BOOT record).
    assert sum(isinstance(m, PowerEvent) for m in msgs) == sum(isinstance(f.record, Power) for f in intact)
    _check_times(sim, msgs, sent_imu)
    assert run.bridge.core.clock.restarts == 0  # the BOOT record reset it, not an inconsistency


def test_commands_are_acknowledged_over_the_pty() -> None:
    sim = FirmwareSimulator(fixture_file(NMEA), None, max_seconds=5, speed=2.0)
    run = Run(sim, "inproc://bridge-commands").start()
    try:
        time.sleep(0.2)
        ack = run.bridge.command(LedCommand(1, LedMode.BLINK, 250), timeout=2.0)
        assert ack.acked_seq == 0 and ack.acked_type == 0x81
        ack = run.bridge.command(CameraTriggerCommand(2, 120), timeout=2.0)
        assert ack.acked_seq == 1
        with pytest.raises(CommandRejected, match="BAD_ARGUMENT"):
            run.bridge.command(CameraTriggerCommand(9, 120), timeout=2.0)
        deadline = time.monotonic() + 2
        while not run.bridge.core.triggers and time.monotonic() < deadline:
            time.sleep(0.01)
        trig, _utc_ns = run.bridge.core.triggers[0]
        assert trig.camera == 2 and trig.count == 1
        # The MCU heard three good frames from the host.
        assert [type(f.record).__name__ for f in sim.commands] == ["LedCommand", "CameraTriggerCommand",
                                                                    "CameraTriggerCommand"]
        sim.stop()  # the MCU goes silent: the next command times out
        with pytest.raises(CommandTimeout, match="no acknowledgement for CMD_LED seq 3"):
            run.bridge.command(LedCommand(0, LedMode.ON), timeout=0.3)
    finally:
        run.close()
    assert run.link.stats.frames_sent == 4


def test_cli_bridge_process_publishes_on_ipc(tmp_path: Path) -> None:
    """``edge-agent bridge --simulate`` as its own process, a subscriber on its ipc endpoint."""
    endpoint = f"ipc://{tmp_path}/bus"
    nmea = fixture_file(NMEA)  # before any socket: a skip must not leave a context to hang in GC
    ctx = zmq.Context()
    sub = Subscriber(endpoint, [MessageType.TIME_SYNC, MessageType.NMEA_SENTENCE], context=ctx).open()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    proc = subprocess.Popen(
        [*CLI, "bridge", "--simulate", str(nmea), "--sim-seconds", "20",
         "--sim-speed", "0", "--bus", endpoint, "--wait-subscriber", "10", "--json-stats", "--stats-interval", "60"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True)
    got = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            msg = sub.recv(timeout_ms=200)
            if msg is not None:
                got.append(msg)
            elif proc.poll() is not None:
                break
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        sub.close()
        ctx.term()
    assert proc.returncode == 0, err
    final = json.loads(out.strip().splitlines()[-1])
    assert final["final"] is True and final["link"]["frames_ok"] > 400 and final["link"]["crc_errors"] == 0
    assert "bridge final stats" in err
    assert len(_of(got, TimeSync)) == 20 == final["published"]["TIME_SYNC"]
    assert len(_of(got, NmeaSentence)) == final["published"]["NMEA_SENTENCE"] > 100


def test_cli_rejects_bad_usage() -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    r = subprocess.run([*CLI, "bridge", "--port", "/dev/nonexistent-tty", "--bus",
                        "ipc:///tmp/unused-bridge-test"], check=False, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("ERROR: cannot open serial port")
    r = subprocess.run([*CLI, "bridge"], check=False, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and "ERROR: give exactly one of --port or --simulate" in r.stderr


def test_bridge_reopens_the_port_when_the_mcu_goes_away() -> None:
    """USB CDC: an MCU reset makes the port vanish and come back. The first simulator's pty is
    closed under the bridge (reads fail with EIO, as on an unplugged device); the bridge reopens
    through its factory, here the second simulator's pty, and carries on: counters continue,
    the new boot restarts the time fit."""
    sims = [FirmwareSimulator(fixture_file(NMEA), None, max_seconds=5, speed=0.0, seed=s) for s in (1, 2)]
    ports = iter([sims[1].port])
    got: list = []
    from firmware_bridge.link import open_serial

    link = SerialLink.open(sims[0].port)
    bridge = Bridge(link, got.append, stats_interval=60, reopen=lambda: open_serial(next(ports)), reopen_interval=0.05)
    done = threading.Event()
    thread = threading.Thread(target=lambda: (bridge.run(), done.set()), daemon=True)
    try:
        thread.start()
        sims[0].start()
        deadline = time.monotonic() + 20
        while link.stats.bytes_in < sims[0].bytes_written or not sims[0].finished.is_set():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        first = link.stats.frames_ok
        sims[0].close()  # the device goes away
        while link.stats.reconnects == 0:  # ... and is back (pyserial flushes what came before it opened)
            assert time.monotonic() < deadline
            time.sleep(0.01)
        sims[1].start()
        while not (sims[1].finished.is_set() and link.stats.frames_ok >= first + sims[1].frames_sent):
            assert time.monotonic() < deadline, link.stats
            time.sleep(0.01)
    finally:
        bridge.stop()
        thread.join(5)
        link.close()
        for sim in sims:
            sim.close()
    assert done.is_set()
    assert link.stats.frames_ok == sims[0].frames_sent + sims[1].frames_sent and link.stats.mcu_boots == 2
    assert link.stats.crc_errors == link.stats.decode_errors == 0
    syncs = [m for m in got if isinstance(m, TimeSync)]
    assert len(syncs) == 10 and syncs[5].mcu_tick < syncs[4].mcu_tick  # the second MCU's clock started anew
