"""The agent's point/camera data path builds the camera stage at the first camera frame
(a LiDAR-only drive never loads OpenCV), seeded with the fixes that came before it."""

from __future__ import annotations

import numpy as np

from agent.bus.messages import CameraFrame, FixType, GnssFix
from agent.config import AgentConfig
from agent.runtime._pipeline import Pipeline

T0 = 1_717_236_000_000_000_000


def _fix(i: int) -> GnssFix:
    t = T0 + i * 100_000_000  # 10 Hz, 10 m/s north
    return GnssFix(source="gnss0", lat_deg=48.15 + i * 1.0 / 111_200.0, lon_deg=11.58, alt_m=520.0,
                   fix_type=FixType(4), hdop=0.7, num_sats=14, speed_mps=10.0, course_deg=0.0, geoid_sep_m=47.0,
                   fix_utc_ns=t, utc_ns=t, mono_ns=t - T0)


def _sharp_jpeg() -> bytes:
    import cv2

    img = (np.indices((240, 320)).sum(axis=0) % 16 < 8).astype(np.uint8) * 255  # a checkerboard-like pattern
    ok, buf = cv2.imencode(".jpg", np.dstack([img] * 3))
    assert ok
    return buf.tobytes()


def test_camera_stage_built_at_first_frame_with_earlier_fixes() -> None:
    p = Pipeline(AgentConfig())
    for i in range(30):  # 3 s, 30 m of fixes before any frame
        p.feed(_fix(i))
    assert p.camera is None and len(p._early_fixes) == 30
    t = T0 + 29 * 100_000_000 + 50_000_000
    specs = p.feed(CameraFrame(source="cam0", camera_id="front", width=320, height=240, jpeg=_sharp_jpeg(),
                               utc_ns=t, mono_ns=t - T0))
    assert p.camera is not None and not p._early_fixes
    # the frame has a position from the fixes fed before the stage existed: a keyframe
    assert p.stats.camera_decisions == {"keyframe": 1}, p.stats.camera_decisions
    assert [s.stream for s in specs] == ["front/keyframes"]
    lat = specs[0].bbox[1]
    assert abs(lat - (48.15 + 29.5 / 111_200.0)) < 2e-6


def test_lidar_only_pipeline_has_no_camera_stage() -> None:
    p = Pipeline(AgentConfig())
    for i in range(1000):  # 100 s of fixes: the early-fix buffer stays bounded (60 s)
        p.feed(_fix(i))
    assert p.camera is None
    assert len(p._early_fixes) <= 601
