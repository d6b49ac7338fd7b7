"""End-to-end fixtures: a drive imported from the real recordings, a Mosquitto broker
(tests/fleet's fixture), a ganache node whose chain outlives the agent process
(tests/chain's), and helpers to run ``edge-agent`` as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests._fixtures import fixture_file
from tests.fleet.conftest import Broker, _broker

ROOT = Path(__file__).resolve().parents[2]
# Where the LiDAR sits in the NMEA track (seconds after its first epoch): the car is moving
# there, so every scan gets a pose (in the first minutes it is parked: no heading).
LIDAR_AT_S = 120.0


@pytest.fixture(scope="session")
def real_drive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The VLP-16 rosbag2 (4 scans) with the 31-minute Munich NMEA track, time-aligned by
    agent.recording's import (GNSS shifted so the LiDAR lands LIDAR_AT_S into the track)."""
    from agent.recording import import_drive

    bag = fixture_file("lidar/velodyne/vlp16_rosbag2")
    nmea = fixture_file("gnss/munich_drive_2014.nmea")
    d = tmp_path_factory.mktemp("drive")
    # first aligned (the import's own rule: first NMEA epoch on the first packet), then moved
    aligned = import_drive(d / "aligned.mcap", gnss=str(nmea), lidar=str(bag), offsets={"gnss": "align"})
    out = d / "real.mcap"
    stats = import_drive(out, lidar=str(bag), gnss=str(nmea),
                         offsets={"gnss": aligned.offsets_s["gnss"] - LIDAR_AT_S})
    (d / "aligned.mcap").unlink()
    assert stats.lidar_packets > 500 and stats.gnss_fixes > 1000
    return out


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[Broker]:
    yield from _broker(tmp_path, "plain")


class FleetWatcher:
    """The fleet side: subscribes to ``edge/v1/#`` and keeps every message."""

    def __init__(self, port: int) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[tuple[str, Any]] = []
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="e2e-fleet-watcher")
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_a: c.subscribe("edge/v1/#", qos=1)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = msg.payload
        with self._lock:
            self.messages.append((msg.topic, body))

    def kinds(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        with self._lock:
            for topic, body in self.messages:
                out.setdefault(topic.split("/", 3)[-1], []).append(body)
        return out

    def events(self, event_type: str) -> list[dict[str, Any]]:
        return [b for b in self.kinds().get("events", []) if isinstance(b, dict) and b.get("type") == event_type]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def fleet_watcher(mqtt_broker: Broker) -> Iterator[FleetWatcher]:
    w = FleetWatcher(mqtt_broker.port)
    deadline = time.monotonic() + 5
    while not w.client.is_connected() and time.monotonic() < deadline:
        time.sleep(0.05)
    yield w
    w.close()


def write_config(path: Path, **sections: Any) -> Path:
    doc: dict[str, Any] = {"device_id": "edge-e2e-0001", "state_dir": str(path.parent / "state-unused")}
    doc.update(sections)
    path.write_text(yaml.safe_dump(doc))
    return path


def agent_cmd(*args: str) -> list[str]:
    return [sys.executable, "-c", "from agent.cli import main; main()", *args]


def env() -> dict[str, str]:
    e = dict(os.environ)
    e.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".cache" / "numba"))
    e["PYTHONPATH"] = str(ROOT)
    return e


def run_agent(*args: str, timeout: float = 240) -> dict[str, Any]:
    """Run ``edge-agent ARGS --json`` to its end; returns its JSON document."""
    p = subprocess.run(agent_cmd("--log-level", "WARNING", *args, "--json"), check=False, capture_output=True, text=True,
                       timeout=timeout, env=env(), cwd=ROOT)
    assert p.returncode == 0, f"exit {p.returncode}\nstdout: {p.stdout[-3000:]}\nstderr: {p.stderr[-5000:]}"
    return json.loads(p.stdout)
