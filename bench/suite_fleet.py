"""Fleet link over MQTT on loopback, against a real Mosquitto started for the run.

1. Job round trip: the fleet side signs a job, publishes it (QoS 1, waits for PUBACK) and
   waits for the device's SUCCEEDED update; the device (a separate process running
   :class:`agent.fleet.device.DeviceClient` with a no-op handler) verifies the signature,
   records the job in its SQLite ledger and sends QUEUED, IN_PROGRESS and SUCCEEDED through
   the durable outbox (each marked done on PUBACK). 1,000 jobs one after another; p50 and
   p99 in milliseconds. Reference: a raw paho QoS 1 publish → echo process → QoS 1 publish
   back, without signing, ledger or outbox; ``ratio`` = ours / raw (lower is better).
   The first job (connections, caches) is its own row and is excluded.
2. 100 simulated devices (100 DeviceClients in one process, each its own MQTT session and
   SQLite files) publishing telemetry at 1 Hz for ~20 s: CPU of the broker and of the agent
   process (psutil, percent of one core), and the telemetry rate a subscriber receives.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from agent.fleet._mqtt import _nodelay
from bench._harness import Row, ratio_row

SUITE = "fleet"
_ROOT = Path(__file__).resolve().parents[1]
N_JOBS = int(os.environ.get("EDGE_BENCH_FLEET_JOBS", "1000"))
N_DEVICES = int(os.environ.get("EDGE_BENCH_FLEET_DEVICES", "100"))
CPU_SECONDS = float(os.environ.get("EDGE_BENCH_FLEET_SECONDS", "20"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_broker(workdir: Path) -> tuple[subprocess.Popen[bytes], int]:
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text("\n".join([f"user {getpass.getuser()}", f"listener {port} 127.0.0.1", "allow_anonymous true",
                               "persistence true", f"persistence_location {workdir}/", "max_queued_messages 100000",
                               "max_connections -1", "log_dest none", "set_tcp_nodelay true"]) + "\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("mosquitto did not start")


def _fleet_cfg(port: int, **over: Any) -> Any:
    from agent.fleet import FleetConfig

    return FleetConfig.model_validate({"host": "127.0.0.1", "port": port, "keepalive_s": 30, **over})


# -- child processes --------------------------------------------------------------------------------
def _serve_devices(port: int, workdir: str, n: int, interval: float, trusted: str) -> None:
    """Run ``n`` device clients with no-op handlers until SIGTERM."""
    from agent.fleet.device import DeviceClient

    def noop(job: Any, progress: Any) -> dict[str, Any]:
        return {}

    handlers = {t: noop for t in ("start_capture", "stop_capture", "seal_dataset", "mint", "flush_uploads")}
    cfg = _fleet_cfg(port, telemetry_interval_s=interval, trusted_keys=[trusted] if trusted else [])
    clients = []
    for i in range(n):
        state = Path(workdir) / f"dev-{i:03d}"
        c = DeviceClient(cfg, f"dev-{i:03d}", state / "agent.db", handlers, state_dir=state,
                         telemetry=lambda: {"rates": {"lidar_pps": 18000.0}, "queue_depth": 0,
                                            "gnss": {"fix": "rtk_fixed"}, "datasets": 0})
        c.start()
        clients.append(c)
    for c in clients:
        c.link.wait_ready(30)
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    for c in clients:
        c.close(timeout=0.5)


def _serve_echo(port: int) -> None:
    """Raw paho: republish every ``bench/ping`` message on ``bench/pong`` (QoS 1)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-echo", protocol=mqtt.MQTTv5)
    ready = threading.Event()
    c.on_connect = lambda cl, u, f, rc, p: (_nodelay(cl), cl.subscribe("bench/ping", 1))
    c.on_subscribe = lambda *a: ready.set()
    c.on_message = lambda cl, u, m: cl.publish("bench/pong", m.payload, qos=1)
    c.connect("127.0.0.1", port)
    c.loop_start()
    ready.wait(10)
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    stop.wait()
    c.loop_stop()


def _child(args: list[str]) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-m", "bench.suite_fleet", *args], cwd=_ROOT, stdout=subprocess.PIPE,
                         text=True)
    assert p.stdout is not None
    if p.stdout.readline().strip() != "ready":
        p.kill()
        raise RuntimeError(f"bench child {args[0]} did not start")
    return p


def _stop(p: subprocess.Popen[Any]) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


# -- measurements -------------------------------------------------------------------------------------
def _job_latency(port: int, workdir: Path) -> tuple[list[float], float]:
    from nacl.signing import SigningKey

    from agent.fleet.manager import FleetClient

    key = SigningKey.generate()
    dev = _child(["devices", str(port), str(workdir / "lat"), "1", "3600", key.verify_key.encode().hex()])
    try:
        with FleetClient(_fleet_cfg(port), key) as fc:
            t0 = time.perf_counter()
            _, f = fc.send("dev-000", "start_capture")
            assert f is not None and f.wait(30) is not None
            first = time.perf_counter() - t0
            out = []
            for _ in range(N_JOBS):
                t0 = time.perf_counter()
                _, f = fc.send("dev-000", "start_capture")
                final = f.wait(30) if f else None
                out.append(time.perf_counter() - t0)
                if final is None or final["state"] != "SUCCEEDED":
                    raise RuntimeError(f"bench job ended {final}")
    finally:
        _stop(dev)
    return out, first


def _raw_latency(port: int) -> list[float]:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    echo = _child(["echo", str(port)])
    got = threading.Event()
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-ping", protocol=mqtt.MQTTv5)
    subd = threading.Event()
    c.on_subscribe = lambda *a: subd.set()
    c.on_message = lambda cl, u, m: got.set()
    c.on_connect = lambda cl, *a: _nodelay(cl)
    c.connect("127.0.0.1", port)
    c.loop_start()
    c.subscribe("bench/pong", 1)
    subd.wait(10)
    out = []
    try:
        for i in range(N_JOBS + 1):
            got.clear()
            t0 = time.perf_counter()
            c.publish("bench/ping", json.dumps({"i": i, "pad": "x" * 300}).encode(), qos=1).wait_for_publish(10)
            if not got.wait(10):
                raise RuntimeError("echo lost")
            if i:  # the first is warm-up
                out.append(time.perf_counter() - t0)
    finally:
        c.loop_stop()
        c.disconnect()
        _stop(echo)
    return out


def _cpu_load(broker: subprocess.Popen[bytes], port: int, workdir: Path) -> dict[str, float]:
    import paho.mqtt.client as mqtt
    import psutil
    from paho.mqtt.enums import CallbackAPIVersion

    count = [0]
    c = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench-tele", protocol=mqtt.MQTTv5)
    c.on_message = lambda *a: count.__setitem__(0, count[0] + 1)
    c.connect("127.0.0.1", port)
    c.subscribe("edge/v1/+/telemetry", 0)
    c.loop_start()
    t_start = time.perf_counter()
    devs = _child(["devices", str(port), str(workdir / "load"), str(N_DEVICES), "1.0", ""])
    startup = time.perf_counter() - t_start
    try:
        time.sleep(2.0)  # settle: first telemetry, page cache
        pb, pd = psutil.Process(broker.pid), psutil.Process(devs.pid)
        b0, d0, n0, t0 = sum(pb.cpu_times()[:2]), sum(pd.cpu_times()[:2]), count[0], time.perf_counter()
        time.sleep(CPU_SECONDS)
        b1, d1, n1, t1 = sum(pb.cpu_times()[:2]), sum(pd.cpu_times()[:2]), count[0], time.perf_counter()
        rss = pd.memory_info().rss
    finally:
        _stop(devs)
        c.loop_stop()
        c.disconnect()
    dt = t1 - t0
    return {"broker_cpu_pct": 100 * (b1 - b0) / dt, "agent_cpu_pct": 100 * (d1 - d0) / dt,
            "telemetry_per_s": (n1 - n0) / dt, "startup_s": startup, "agent_rss_mb": rss / 2**20}


def run(input: str | None = None, meta: str | None = None) -> list[Row]:
    """Rows described in the module docstring (``input``/``meta`` are not used)."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        work = Path(tmp)
        broker, port = _start_broker(work)
        try:
            ours, first = _job_latency(port, work)
            raw = _raw_latency(port)
            case = f"job round trip, {N_JOBS} jobs (sign, verify, ledger, outbox, 3 updates)"
            for name, q in (("p50", 0.5), ("p99", 0.99)):
                rows.append(ratio_row(SUITE, case, f"latency {name}", "ms", 1000 * _pct(ours, q), 1000 * _pct(raw, q),
                                      "raw paho QoS 1 publish/echo", better="lower"))
            rows.append(Row(SUITE, case, "throughput (sequential)", "jobs/s", len(ours) / sum(ours)))
            rows.append(Row(SUITE, "first job (connect, warm-up; excluded above)", "latency", "ms", 1000 * first,
                            better="lower"))
            load = _cpu_load(broker, port, work)
            case = f"{N_DEVICES} devices, telemetry 1 Hz, {CPU_SECONDS:.0f} s"
            rows.append(Row(SUITE, case, "broker CPU", "% of a core", load["broker_cpu_pct"], better="lower"))
            rows.append(Row(SUITE, case, "agent CPU (all devices, one process)", "% of a core", load["agent_cpu_pct"],
                            better="lower"))
            rows.append(Row(SUITE, case, "agent CPU per device", "% of a core", load["agent_cpu_pct"] / N_DEVICES,
                            better="lower"))
            rows.append(Row(SUITE, case, "telemetry received", "msg/s", load["telemetry_per_s"]))
            rows.append(Row(SUITE, case, "agent RSS (all devices)", "MiB", load["agent_rss_mb"], better="lower"))
            rows.append(Row(SUITE, case, "start-up of all devices", "s", load["startup_s"], better="lower"))
        finally:
            broker.terminate()
            broker.wait(10)
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="bench child processes (internal)")
    ap.add_argument("what", choices=["devices", "echo"])
    ap.add_argument("rest", nargs="*")
    a = ap.parse_args()
    if a.what == "devices":
        port, workdir, n, interval, trusted = a.rest
        _serve_devices(int(port), workdir, int(n), float(interval), trusted)
    else:
        _serve_echo(int(a.rest[0]))
