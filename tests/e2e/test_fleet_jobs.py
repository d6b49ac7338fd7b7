"""Fleet jobs against the live daemon: ``edge-agent run`` as a real subprocess on real VLP-16
packets (UDP on loopback) and a real NMEA log (pty), connected to a real Mosquitto; the
fleet side (:class:`agent.fleet.manager.FleetClient`) sends signed jobs and checks what they
did to the agent: capture stops and resumes, a dataset is sealed now (and verifies), uploaded
to the sink, minted on the embedded chain, a bad config is refused with the file untouched,
and a restart job ends the process with exit code 75."""

from __future__ import annotations

import json
import os
import pty
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from nacl.signing import SigningKey

from tests._fixtures import fixture_file
from tests.e2e.conftest import ROOT, FleetWatcher, agent_cmd, env, write_config
from tests.e2e.test_run import _nmea_now
from tests.fleet.conftest import Broker, free_port

DEVICE = "edge-e2e-jobs"


def _status(state: Path) -> dict[str, Any]:
    for _ in range(20):  # written by rename: a read never sees half a file, but it may not exist yet
        try:
            return json.loads((state / "status.json").read_text())
        except (FileNotFoundError, ValueError):
            time.sleep(0.05)
    return {}


def _intake(st: dict[str, Any]) -> int:
    """Everything the pipeline has taken in so far (chunks committed and points decoded)."""
    return sum((st.get("chunks") or {}).values()) + ((st.get("points") or {}).get("in") or 0)


def test_fleet_jobs_drive_the_running_agent(tmp_path: Path, mqtt_broker: Broker, fleet_watcher: FleetWatcher) -> None:
    from agent.fleet.manager import FleetClient
    from sensors.packets import open_packet_source

    pcap = fixture_file("lidar/velodyne/vlp16_county_fair.pcap")
    nmea = fixture_file("gnss/munich_drive_2014.nmea").read_text(errors="replace").splitlines()
    nmea = [ln for ln in nmea[2000:2600] if ln.startswith(("$GPGGA", "$GPRMC"))]
    with open_packet_source(pcap) as src:
        packets = [p.data for p in src]
    key = SigningKey.generate()
    port = free_port()
    master, slave = pty.openpty()
    fleet = json.loads(mqtt_broker.fleet_config(trusted_keys=[key.verify_key.encode().hex()]).model_dump_json())
    cfg = write_config(tmp_path / "agent.yaml", device_id=DEVICE, fleet=dict(fleet, enabled=True),
                       runtime={"sources": {"lidar": f"udp://127.0.0.1:{port}", "gnss": os.ttyname(slave)},
                                "shutdown_timeout_s": 15, "tick_s": 0.2, "mint_on_seal": False, "outputs": False})
    state = tmp_path / "state"
    stop = threading.Event()

    def feed() -> None:  # LiDAR at about its real rate, NMEA at 20 Hz, until the test ends
        i = 0
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
            while not stop.is_set():
                tx.sendto(packets[i % len(packets)], ("127.0.0.1", port))
                i += 1
                if i % 20 == 0:
                    time.sleep(0.025)
                if i % 40 == 0:
                    try:
                        os.write(master, (_nmea_now(nmea[(i // 40) % len(nmea)]) + "\r\n").encode())
                    except OSError:
                        return

    with open(tmp_path / "agent.log", "wb") as err:  # the child keeps its own descriptor
        p = subprocess.Popen(agent_cmd("--log-level", "INFO", "run", "--config", str(cfg), "--state-dir", str(state),
                                       "--json"), stdout=subprocess.PIPE, stderr=err, env=env(), cwd=ROOT)
    feeder = threading.Thread(target=feed, daemon=True)
    client = FleetClient(mqtt_broker.fleet_config(), key)

    history: dict[str, list[dict[str, Any]]] = {}

    def job(job_type: str, params: dict[str, Any] | None = None, timeout: float = 60) -> dict[str, Any]:
        _doc, follower = client.send(DEVICE, job_type, params)
        assert follower is not None
        final = follower.wait(timeout)
        assert final is not None, f"{job_type}: no final update in {timeout} s\n{_log()}"
        history[job_type] = list(follower.history)
        return final

    def _log() -> str:
        return (tmp_path / "agent.log").read_text(errors="replace")[-4000:]

    def succeeded(job_type: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        final = job(job_type, params)
        assert final["state"] == "SUCCEEDED", (job_type, final, _log())
        return final["details"]

    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _status(state).get("state") != "running":
            assert p.poll() is None, _log()
            time.sleep(0.1)
        feeder.start()
        client.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and _intake(_status(state)) == 0:
            time.sleep(0.2)
        assert _intake(_status(state)) > 0, _log()

        # stop_capture: intake stops (counters stand still) while the sources keep sending
        assert succeeded("stop_capture")["capture"] == "off"
        assert succeeded("stop_capture")["changed"] is False  # idempotent
        time.sleep(1.0)  # what was queued before the stop is processed
        before = _status(state)
        assert before["capture"]["on"] is False
        time.sleep(2.0)
        after = _status(state)
        assert _intake(after) == _intake(before), (before, after)
        assert after["capture"]["discarded"] > before["capture"]["discarded"] > 0
        telemetry = [t for t in fleet_watcher.kinds().get("telemetry", []) if isinstance(t, dict)]
        assert telemetry and telemetry[-1]["capture"]["on"] is False  # the fleet sees it too

        # start_capture: intake resumes
        assert succeeded("start_capture")["capture"] == "on"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and _intake(_status(state)) <= _intake(after):
            time.sleep(0.2)
        assert _intake(_status(state)) > _intake(after)
        assert _status(state)["capture"]["on"] is True
        time.sleep(1.0)  # some data for the dataset

        # seal_dataset: a sealed dataset now, which verifies
        sealed = succeeded("seal_dataset")
        assert sealed["sealed"] is True and sealed["root"].startswith("0x"), sealed
        steps = [u["details"].get("step") for u in history["seal_dataset"] if u["state"] == "IN_PROGRESS"]
        assert any(steps), history["seal_dataset"]  # progress reported on the way
        ddir = Path(sealed["path"])
        assert (ddir / "manifest.cose").exists()
        v = subprocess.run(agent_cmd("verify", str(ddir), "--json"), check=False, capture_output=True, text=True, env=env(),
                           cwd=ROOT, timeout=60)
        assert v.returncode == 0, v.stdout[-2000:] + v.stderr[-2000:]
        ds = {d["session"]: d for d in _status(state)["datasets"]}
        assert ds[sealed["session"]]["state"] in ("sealed", "uploaded")  # not anchored: mint_on_seal is off

        # flush_uploads: the dataset is in the upload sink
        flushed = succeeded("flush_uploads")
        urls = {x["session"]: x["url"] for x in flushed["in_sink"]}
        assert sealed["session"] in urls, flushed
        dst = Path(urlparse(urls[sealed["session"]]).path)
        assert dst.is_relative_to(state / "uploads") and (dst / "manifest.cose").read_bytes() == \
            (ddir / "manifest.cose").read_bytes()

        # mint: the dataset is anchored, its token id in the job's details and in the store
        minted = succeeded("mint")
        by = {m["session"]: m for m in minted["minted"]}
        assert sealed["session"] in by, minted
        token = by[sealed["session"]]["token_id"]
        assert isinstance(token, int) and by[sealed["session"]]["tx_hash"]
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            d = {x["session"]: x for x in _status(state)["datasets"]}[sealed["session"]]
            if d["state"] == "anchored":
                break
            time.sleep(0.1)
        assert d["state"] == "anchored" and d["anchor"].startswith(f"token:{token} "), d
        assert succeeded("mint")["minted"] == []  # nothing left: exactly once

        # set_config: an invalid value FAILs and leaves the file as it was; a valid one applies live
        original = cfg.read_bytes()
        bad = job("set_config", {"runtime.tick_s": -1})
        assert bad["state"] == "FAILED" and "tick_s" in json.dumps(bad["details"]), bad
        assert cfg.read_bytes() == original
        good = succeeded("set_config", {"runtime.tick_s": 0.25, "lidar.min_range_m": 1.0})
        assert good["applied_live"] == ["runtime.tick_s"] and good["restart_required"] == ["lidar.min_range_m"]
        assert "tick_s: 0.25" in cfg.read_text()

        # restart: seal first, SUCCEEDED, then the process exits 75 (systemd starts it again)
        restarted = succeeded("restart")
        assert "sealed" in restarted
        out, _ = p.communicate(timeout=40)
        assert p.returncode == 75, _log()
        summary = json.loads(out)
        assert summary["stopped_by"] == "fleet_restart"
        assert all(d["state"] in ("sealed", "uploaded", "anchored") for d in summary["datasets"])
        final = json.loads((state / "status.json").read_text())
        assert final["state"] == "stopped"
    finally:
        stop.set()
        client.close()
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)
        os.close(slave)


def test_call_outside_run_fails_fast_instead_of_hanging(tmp_path: Path) -> None:
    """A job arriving after run() returned (the agent is closing) FAILs at once, not at its timeout."""
    import pytest

    from agent.config import AgentConfig
    from agent.errors import AgentError
    from agent.runtime._agent import Agent

    agent = Agent(AgentConfig(), state_dir=tmp_path / "state")
    agent._calls_closed = AgentError("the agent has stopped")
    t = time.monotonic()
    with pytest.raises(AgentError, match="stopped"):
        agent.call(lambda a: 1, timeout=30)
    assert time.monotonic() - t < 5
    assert agent.set_capture(False) is True and agent.set_capture(False) is False  # idempotent switch
