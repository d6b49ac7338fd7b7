"""A drive imported from the real recordings replayed through the whole agent with a real
Mosquitto broker and the embedded EVM: every chunk verifies, one DAT, the fleet side sees
status, telemetry and events."""

from __future__ import annotations

import time
from pathlib import Path

from agent.verify import verify_path
from tests.e2e.conftest import FleetWatcher, run_agent, write_config
from tests.fleet.conftest import Broker


def test_real_drive_through_the_whole_agent(real_drive: Path, mqtt_broker: Broker, fleet_watcher: FleetWatcher,
                                            tmp_path: Path) -> None:
    cfg = write_config(tmp_path / "agent.yaml",
                       fleet={"enabled": True, "host": "127.0.0.1", "port": mqtt_broker.port,
                              "telemetry_interval_s": 0.2, "reconnect_min_s": 1, "reconnect_max_s": 2})
    state = tmp_path / "state"
    s = run_agent("replay", str(real_drive), "--config", str(cfg), "--state-dir", str(state))
    assert s["verified"] is True
    p = s["pipeline"]
    assert p["lidar_packets"] == 603 and p["scans"] >= 4
    assert p["points_no_pose"] == 0 and p["points_kept"] > 10_000  # georeferenced with the real track
    assert p["gnss_fixes"] > 1000
    (ds,) = s["datasets"]
    assert ds["state"] == "anchored" and ds["token_id"] == 1
    rep = verify_path(ds["path"])
    assert rep.ok and rep.checked["chunks"] == s["chunks"] == s["pipeline"]["chunks"]["nmea"] + 2
    # the store as a whole verifies too (every chunk, every Flow)
    assert verify_path(state / "store").ok
    # fleet side: retained status, telemetry, dataset_sealed and dat_minted events (once each)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not fleet_watcher.events("dat_minted"):
        time.sleep(0.1)
    kinds = fleet_watcher.kinds()
    assert kinds.get("status"), kinds.keys()
    assert kinds.get("telemetry"), kinds.keys()
    sealed = {e["data"]["dataset_id"] for e in fleet_watcher.events("dataset_sealed")}
    minted = fleet_watcher.events("dat_minted")
    assert sealed == {ds["id"]}
    assert {e["data"]["token_id"] for e in minted} == {1}
    assert {e["data"]["tx_hash"] for e in minted} == {ds["tx_hash"]}
    offline = [b for b in kinds["status"] if isinstance(b, dict) and b.get("online") is False]
    assert offline, "the agent marks itself offline when it stops"
