"""``edge-agent run`` on local sources: real VLP-16 packets from a pcap sent to a UDP port on
loopback, and a pty playing a real NMEA log with the current time, for a few seconds; an
ignition-off power event on the bus (as the firmware bridge sends it) seals the dataset;
then SIGTERM: it seals what came after and exits 0 within its configured bound. ``status`` and the
Prometheus endpoint show what it does meanwhile."""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

from agent.verify import verify_path
from tests._fixtures import fixture_file
from tests.e2e.conftest import ROOT, agent_cmd, env, write_config
from tests.fleet.conftest import free_port


def _nmea_now(line: str) -> str:
    """The sentence with the current UTC time of day (so fixes line up with the packets)."""
    from sensors.gnss import with_checksum

    body = line.strip().split("*")[0]
    f = body.split(",")
    if f[0][3:] in ("GGA", "RMC") and len(f) > 1 and f[1]:
        t = time.gmtime()
        f[1] = time.strftime("%H%M%S", t) + ".00"
        if f[0][3:] == "RMC" and len(f) > 9:
            f[9] = time.strftime("%d%m%y", t)
    return with_checksum(",".join(f)[1:]) if not line.startswith("$") else with_checksum(",".join(f).lstrip("$"))


def _state(state: Path) -> str | None:
    try:
        return json.loads((state / "status.json").read_text()).get("state")
    except (FileNotFoundError, ValueError):
        return None


def _datasets(state: Path) -> list[dict]:
    try:
        return json.loads((state / "status.json").read_text()).get("datasets") or []
    except (FileNotFoundError, ValueError):
        return []


def test_run_live_sources_then_sigterm_seals_within_bound(tmp_path: Path) -> None:
    from sensors.packets import open_packet_source

    pcap = fixture_file("lidar/velodyne/vlp16_county_fair.pcap")
    nmea = fixture_file("gnss/munich_drive_2014.nmea").read_text(errors="replace").splitlines()
    nmea = [ln for ln in nmea[2000:2600] if ln.startswith(("$GPGGA", "$GPRMC"))]
    with open_packet_source(pcap) as src:
        packets = [p.data for p in src]
    port, mport = free_port(), free_port()
    master, slave = pty.openpty()
    bound = 10.0
    bus = f"ipc://{tmp_path}/bus.sock"
    cfg = write_config(tmp_path / "agent.yaml", bus={"endpoint": bus},
                       runtime={"sources": {"lidar": f"udp://127.0.0.1:{port}", "gnss": os.ttyname(slave),
                                            "bus": True},
                                "shutdown_timeout_s": bound, "metrics_port": mport, "tick_s": 0.2})
    state = tmp_path / "state"
    stop = threading.Event()
    # systemd's notify socket (Type=notify, WatchdogSec): READY, WATCHDOG every tick, STOPPING
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(0.2)
    notes: set[str] = set()

    def listen() -> None:
        while not stop.is_set():
            try:
                notes.add(notify.recv(256).decode())
            except OSError:
                continue

    run_env = dict(env(), NOTIFY_SOCKET=str(tmp_path / "notify.sock"), WATCHDOG_USEC="180000000")
    p = subprocess.Popen(agent_cmd("--log-level", "INFO", "run", "--config", str(cfg), "--state-dir", str(state),
                                   "--json"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=run_env, cwd=ROOT)

    def feed_nmea() -> None:
        i = 0
        while not stop.is_set():
            try:
                os.write(master, (_nmea_now(nmea[i % len(nmea)]) + "\r\n").encode())
            except OSError:
                return
            i += 1
            time.sleep(0.05)

    gnss = threading.Thread(target=feed_nmea, daemon=True)
    gnss.start()
    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _state(state) != "running":
            assert p.poll() is None, p.stderr.read().decode()[-3000:]  # type: ignore[union-attr]
            time.sleep(0.1)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            end = time.monotonic() + 4.0
            i = 0
            while time.monotonic() < end:  # ~real rate: a VLP-16 sends ~750 packets a second
                tx.sendto(packets[i % len(packets)], ("127.0.0.1", port))
                i += 1
                if i % 20 == 0:
                    time.sleep(0.025)
        time.sleep(0.6)
        st = subprocess.run(agent_cmd("status", "--config", str(cfg), "--state-dir", str(state), "--json"),
                            check=False, capture_output=True, text=True, env=env(), cwd=ROOT, timeout=60)
        assert st.returncode == 0, st.stderr
        status = json.loads(st.stdout)
        assert status["alive"] and status["state"] == "running"
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{mport}/metrics", timeout=5).read().decode()
        assert 'edge_agent_messages_total{kind="lidar"}' in metrics
        assert "edge_agent_queue_depth" in metrics and "edge_agent_dropped_total" in metrics
        # ignition off from the vehicle unit (as the firmware bridge publishes it): seal now
        from agent.bus import PowerEvent, PowerEventKind, Publisher

        with Publisher(bus, bind=False, linger_ms=1000) as pub:
            time.sleep(0.5)  # let the connection and subscription settle
            pub.publish(PowerEvent(source="mcu", kind=PowerEventKind.IGNITION_OFF, ignition=False, supply_v=12.1))
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not _datasets(state):
            time.sleep(0.1)
        assert _datasets(state) and _datasets(state)[0]["state"] in ("sealed", "uploaded", "anchored")
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=bound + 15)
        took = time.monotonic() - t0
    finally:
        stop.set()
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
        os.close(slave)
    listener.join(5)
    notify.setblocking(False)
    while True:  # what is still queued
        try:
            notes.add(notify.recv(256).decode())
        except OSError:
            break
    notify.close()
    assert {"READY=1", "WATCHDOG=1", "STOPPING=1"} <= notes, notes
    assert p.returncode == 0, err.decode()[-3000:]
    assert took <= bound + 3.0, f"stopped after {took:.1f} s (bound {bound} s + interpreter exit)"
    s = json.loads(out)
    assert s["stopped_by"] == "sigterm"
    assert s["pipeline"]["lidar_packets"] > 1000 and s["pipeline"]["nmea_sentences"] > 20
    first, *rest = s["datasets"]
    assert first["reason"] == "ignition_off"
    assert [d["reason"] for d in rest] in ([], ["sigterm"])  # NMEA kept coming after ignition off
    for ds in s["datasets"]:
        assert verify_path(ds["path"]).ok
        assert ds["state"] == "anchored"  # uploaded and minted on the embedded chain within the bound
    final = json.loads((state / "status.json").read_text())
    assert final["state"] == "stopped"
