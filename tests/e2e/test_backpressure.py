"""The backpressure policy, in process: live capture never waits; camera frames go first,
LiDAR scans are skipped whole while their raw packets are still chunked; every message is
either processed or counted as dropped."""

from __future__ import annotations

from pathlib import Path

from agent.bus.messages import CameraFrame, LidarPacket
from agent.config import load_config
from agent.runtime import Agent, Pipeline
from agent.verify import verify_path
from sensors.simulator import simulate_messages


def test_skipped_scans_are_whole_and_raw_packets_are_all_kept() -> None:
    cfg = load_config()
    msgs = list(simulate_messages(duration=2.0, camera=False))
    p = Pipeline(cfg, camera=False)
    specs = []
    for i, m in enumerate(msgs):
        p.skip_scans = i % 2 == 0  # behind half of the time
        specs += p.feed(m)
    specs += p.flush()
    st = p.stats
    assert st.scans_dropped > 0 and st.scans_processed > 0
    assert st.scans_dropped + st.scans_processed == st.scans  # whole scans: each one or the other
    packets = sum(s.counts["packets"] for s in specs if s.stream.endswith("/packets"))
    assert packets == st.lidar_packets == sum(isinstance(m, LidarPacket) for m in msgs)


def test_live_burst_drops_camera_first_and_counts_everything(tmp_path: Path) -> None:
    cfg = load_config(overrides={"runtime.intake_max": 200, "runtime.mint_on_seal": False, "runtime.outputs": False,
                                 "camera_processing.blur_threshold": 2.0})
    msgs = list(simulate_messages(duration=3.0))
    n_cam = sum(isinstance(m, CameraFrame) for m in msgs)
    n_lidar = sum(isinstance(m, LidarPacket) for m in msgs)
    with Agent(cfg, state_dir=tmp_path / "state") as agent:
        # the whole drive arrives at once while the worker is still loading its kernels
        s = agent.run(iter(msgs), live=True)
    d = s.drops
    assert d["camera_frames"] > 0  # the camera went first
    st = s.pipeline
    assert st["camera_frames"] + d["camera_frames"] <= n_cam
    # every message was processed or counted: nothing vanished silently
    assert st["messages"] + d["camera_frames"] + d["capture_overflow"] == len(msgs)
    assert st["lidar_packets"] <= n_lidar
    (ds,) = s.datasets
    assert verify_path(ds["path"]).ok and ds["state"] == "uploaded"
