"""``edge-agent demo``: a simulated drive through everything, verified (no fixtures needed)."""

from __future__ import annotations

import json
from pathlib import Path

from agent.verify import verify_path
from tests.e2e.conftest import run_agent


def test_demo_runs_everything_and_verifies(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    s = run_agent("demo", "--duration", "6", "--out", str(out))
    assert s["verified"] is True
    p = s["pipeline"]
    assert p["points_in"] > 500_000 and 0 < p["points_kept"] < p["points_in"]
    assert p["points_no_pose"] == 0  # the simulated GNSS covers every scan
    assert p["keyframes"] >= 1 and p["lidar_packets"] > 4000
    assert s["drops"] == {"camera_frames": 0, "capture_overflow": 0, "scans": 0}  # replay loses nothing
    assert s["chunks"] >= 4 and s["flows"] >= 1
    (ds,) = s["datasets"]
    assert ds["state"] == "anchored" and ds["token_id"] == 1 and ds["tx_hash"].startswith("0x")
    # the sealed dataset verifies from disk too, and its copy at the upload sink
    assert verify_path(ds["path"]).ok
    uploaded = Path(ds["upload"]["url"].removeprefix("file://"))
    assert uploaded.is_dir() and verify_path(uploaded).ok
    # per-dataset outputs for people
    outputs = Path(ds["outputs"]["dir"])
    track = json.loads((outputs / "track.geojson").read_text())
    assert len(track["features"][0]["geometry"]["coordinates"]) >= 4
    tiles = json.loads((outputs / "tiles.geojson").read_text())
    assert tiles["features"] and all(f["geometry"]["type"] == "Polygon" for f in tiles["features"])
    assert (outputs / "coverage.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import laspy

    las = laspy.read(outputs / "points.laz")
    assert len(las.points) == p["points_kept"]
