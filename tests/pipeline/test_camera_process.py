"""The camera stage end to end: fixture frames from the real ImageFolderSource as bus messages,
a GNSS track, keyframe decisions, blur rejection, redaction, JPEG + EXIF written to a
directory; nothing unredacted reaches the disk."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from agent.bus.messages import CameraFrame, FixType, GnssFix, decode_message
from agent.config import load_config
from pipeline.camera import (
    BLURRY,
    KEYFRAME,
    NO_POSITION,
    NOT_DUE,
    CameraProcessingConfig,
    DirectorySink,
    camera_stage_from_config,
)
from pipeline.camera.exif import from_dms
from pipeline.camera.keyframes import EARTH_RADIUS_M
from pipeline.camera.process import decode_jpeg
from pipeline.camera.redact import pixelate
from pipeline.errors import CameraProcessingError
from sensors.camera import ImageFolderSource
from tests._fixtures import fixture_file

S = 1_000_000_000
T0 = 1532402927 * S  # the nuScenes frames' second
LAT0, LON0, ALT = 1.2985, 103.7880, 15.0
SPEED = 10.0  # m/s due north-east
COURSE = 45.0


def expected_latlon(t_ns: int) -> tuple[float, float]:
    """Where the simulated vehicle is (the fixes lie on this line, so interpolation is exact
    up to the sphere's curvature over 10 m)."""
    d = SPEED * (t_ns - T0) / S
    c = math.radians(COURSE)
    return (
        LAT0 + math.degrees(d * math.cos(c) / EARTH_RADIUS_M),
        LON0 + math.degrees(d * math.sin(c) / (EARTH_RADIUS_M * math.cos(math.radians(LAT0)))),
    )


def fixes() -> list[GnssFix]:
    out = []
    for k in range(12):
        lat, lon = expected_latlon(T0 + k * S)
        out.append(
            GnssFix(
                source="gnss0",
                lat_deg=lat,
                lon_deg=lon,
                alt_m=ALT + k * 0.5,
                fix_type=FixType.DGPS,
                hdop=0.7,
                speed_mps=SPEED,
                course_deg=COURSE,
                fix_utc_ns=T0 + k * S,
                utc_ns=T0 + k * S,
            )
        )
    return out


@dataclasses.dataclass
class Run:
    out: Path
    originals: dict[int, bytes]  # frame index -> the JPEG bytes the camera produced
    results: list
    stage: object
    paths: list[Path]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    folder = fixture_file("camera/nuscenes")
    with ImageFolderSource(folder, camera_id="front", pattern="CAM_*.jpg") as src:
        frames = list(src)  # the source's own bus messages (original JPEG bytes)
    assert len(frames) == 6
    # re-stamp one camera's drive: a frame every 0.6 s (6 m), a blurred copy of frame 2 just
    # before it, an early frame before the first fix, and one too soon after a keyframe
    msgs: list = []
    originals: dict[int, bytes] = {}
    early = dataclasses.replace(frames[0], utc_ns=T0 - S // 2, frame_index=100)
    msgs.append(early)
    originals[100] = early.jpeg
    msgs.extend(fixes())
    stream = []
    for i, fr in enumerate(frames):
        t = T0 + i * 600_000_000
        if i == 2:
            img = decode_jpeg(fr.jpeg)
            _ok, buf = cv2.imencode(
                ".jpg", cv2.GaussianBlur(img, (0, 0), 3.0), [cv2.IMWRITE_JPEG_QUALITY, 95]
            )
            stream.append(
                dataclasses.replace(fr, utc_ns=t - 100_000_000, frame_index=200, jpeg=buf.tobytes())
            )
            originals[200] = buf.tobytes()
        stream.append(dataclasses.replace(fr, utc_ns=t, frame_index=i))
        originals[i] = fr.jpeg
        if i == 3:  # 1 m later: not due
            stream.append(dataclasses.replace(fr, utc_ns=t + 100_000_000, frame_index=300))
            originals[300] = fr.jpeg
    msgs.extend(stream)
    # through the bus encoding, as the stage receives them
    msgs = [decode_message(m.encode()) for m in msgs]
    cfg = load_config().camera_processing
    stage = camera_stage_from_config(cfg)
    out = tmp_path_factory.mktemp("keyframes")
    sink = DirectorySink(out)
    results = []
    # fixes first (as a live track is ahead of the frames it places), then the early frame
    results.append(stage.process(msgs[0]))  # before any fix: no position
    for m in msgs[1:]:
        if isinstance(m, GnssFix):
            stage.add_fix(m)
    results.extend(stage.process(m) for m in msgs[1:] if isinstance(m, CameraFrame))
    paths = [sink.write(r.keyframe) for r in results if r.keyframe is not None]
    return Run(out, originals, results, stage, paths)


@pytest.mark.fixtures
def test_decisions(run: Run) -> None:
    got = [(r.frame_index, r.decision) for r in run.results]
    assert got == [
        (100, NO_POSITION),
        (0, KEYFRAME),
        (1, KEYFRAME),
        (200, BLURRY),
        (2, KEYFRAME),
        (3, KEYFRAME),
        (300, NOT_DUE),
        (4, KEYFRAME),
        (5, KEYFRAME),
    ]
    blurry = next(r for r in run.results if r.decision == BLURRY)
    assert blurry.sharpness is not None and blurry.sharpness < 100.0
    st = run.stage.stats.as_dict()  # type: ignore[attr-defined]
    assert st["keyframes"] == 6 and st["blurry"] == 1 and st["not_due"] == 1 and st["no_position"] == 1
    assert sum(st["detections"].values()) >= 3  # the cascades find regions on these frames


@pytest.mark.fixtures
def test_written_files_carry_the_position(run: Run) -> None:
    names = sorted(p.name for p in run.out.iterdir())
    assert names == sorted(p.name for p in run.paths) and len(names) == 6  # nothing else, no temp files
    for r in (r for r in run.results if r.keyframe is not None):
        path = run.out / r.keyframe.file_name
        img = Image.open(path)
        assert img.format == "JPEG" and img.size == (1600, 900)
        gps = img.getexif().get_ifd(0x8825)
        lat, lon = expected_latlon(r.utc_ns)
        assert from_dms(tuple(float(v) for v in gps[2]), gps[1]) == pytest.approx(lat, abs=1e-7)
        assert from_dms(tuple(float(v) for v in gps[4]), gps[3]) == pytest.approx(lon, abs=1e-7)
        assert float(gps[6]) == pytest.approx(ALT + 0.5 * (r.utc_ns - T0) / S, abs=1e-3)
        assert float(gps[17]) == pytest.approx(COURSE, abs=0.01)
        ms = (r.utc_ns // 1_000_000) % 1000
        assert tuple(float(v) for v in gps[7]) == pytest.approx(
            (3.0, 28.0, 47 + (r.utc_ns - T0) // S + ms / 1000)
        )
        assert img.getexif().get_ifd(0x8769)[0x9003].startswith("2018:07:24 03:28:")


@pytest.mark.fixtures
def test_every_written_region_is_redacted_and_no_original_reaches_disk(run: Run) -> None:
    block = run.stage.redactor.block_px  # type: ignore[attr-defined]
    checked = 0
    for r in (r for r in run.results if r.keyframe is not None):
        kf = r.keyframe
        original = decode_jpeg(run.originals[r.frame_index])
        written = cv2.imread(str(run.out / kf.file_name)).astype(np.int16)
        expected = original.copy()  # what redaction of the keyframe's regions gives (pixelate is the default)
        for g in kf.regions:
            roi = expected[g.y : g.y + g.h, g.x : g.x + g.w]
            roi[...] = pixelate(roi, block)
        expected = expected.astype(np.int16)
        for g in kf.regions:
            sl = (slice(g.y, g.y + g.h), slice(g.x, g.x + g.w))
            to_original = np.abs(written[sl] - original[sl].astype(np.int16)).mean()
            to_redacted = np.abs(written[sl] - expected[sl]).mean()
            # the file holds the redacted pixels (up to JPEG noise), not the camera's
            assert to_redacted < to_original, f"{kf.file_name} {g}: {to_redacted:.1f} vs {to_original:.1f}"
            assert to_original > 2.0 * max(to_redacted, 1.0)
            checked += 1
    assert checked >= 3
    # no byte run of any camera JPEG (the frames that passed, the blurred one, the early one)
    # is in any file under the output directory
    disk = [p.read_bytes() for p in run.out.rglob("*") if p.is_file()]
    for idx, data in run.originals.items():
        scan = data[data.index(b"\xff\xda") :]  # entropy-coded image data
        for frac in (0.1, 0.5, 0.9):
            at = int(len(scan) * frac)
            needle = scan[at : at + 64]
            assert not any(needle in d for d in disk), f"bytes of frame {idx} found on disk"


@pytest.mark.fixtures
def test_raw_frames_from_a_sensor_source_go_through_the_same_path(tmp_path: Path) -> None:
    cfg = CameraProcessingConfig(keyframe_every_m=1.0)
    cfg.redaction.detect_max_side = 960  # faster; still finds the pedestrians' region
    stage = camera_stage_from_config(cfg)
    for f in fixes():
        stage.add_fix(f)
    with ImageFolderSource(fixture_file("camera/nuscenes"), pattern="CAM_BACK_RIGHT*.jpg") as src:
        (raw,) = list(src.frames())
    raw = raw._replace(utc_ns=T0 + 3 * S)
    r = stage.process(raw, camera_id="back")
    assert r.decision == KEYFRAME and r.keyframe is not None
    assert r.keyframe.camera_id == "back" and r.keyframe.boxes
    path = DirectorySink(tmp_path).write(r.keyframe)
    assert Image.open(path).getexif()[0x0110] == "back"
    assert not np.array_equal(
        cv2.imread(str(path))[r.keyframe.regions[0].y :, r.keyframe.regions[0].x :][:8, :8],
        raw.image[r.keyframe.regions[0].y :, r.keyframe.regions[0].x :][:8, :8],
    )
    bad = CameraFrame(camera_id="back", width=4, height=4, jpeg=b"\xff\xd8\xff garbage", utc_ns=T0 + 5 * S)
    with pytest.raises(CameraProcessingError, match="not a decodable JPEG"):
        stage.process(bad)


def test_config_section_loads_with_defaults() -> None:
    cfg = load_config().camera_processing
    assert cfg == CameraProcessingConfig()
    assert cfg.redaction.faces and cfg.redaction.plates and cfg.redaction.persons
