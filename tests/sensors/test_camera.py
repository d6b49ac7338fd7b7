"""Camera sources on the recorded GoPro video and nuScenes images: timestamps, rate
limiting, JPEG encoding, reconnection with backoff, GStreamer pipeline strings, registry."""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from agent.bus.messages import CameraFrame, decode_message
from sensors.camera import (
    CAMERA_SOURCES,
    Backoff,
    CameraSource,
    CameraSourceConfig,
    ImageFolderSource,
    OpenCvCaptureSource,
    camera_source_from_config,
    camera_source_kind,
    encode_jpeg,
    gstreamer_available,
    jetson_csi_pipeline,
    open_camera_source,
    timestamp_from_name,
    validate_gstreamer_pipeline,
)
from sensors.errors import SourceError
from tests._fixtures import fixture_file

VIDEO = "camera/gopro/max-heromode.mp4"
NUSCENES = "camera/nuscenes"
N_FRAMES = 315  # 10.5 s at 29.97 fps


@pytest.mark.fixtures
def test_video_file_frames_and_media_timestamps() -> None:
    start = 1_700_000_000_000_000_000
    with open_camera_source(str(fixture_file(VIDEO)), camera_id="gopro", start_utc_ns=start) as src:
        assert isinstance(src, CameraSource) and isinstance(src, OpenCvCaptureSource)
        frames = list(src.frames())
    assert len(frames) == N_FRAMES == src.stats.read == src.stats.emitted
    assert frames[0].image.shape == (480, 848, 3) and frames[0].image.dtype == np.uint8
    t = np.array([f.mono_ns for f in frames], dtype=np.int64)
    assert t[0] == 0 and np.all(np.diff(t) > 0)
    assert np.allclose(np.diff(t), 1e9 * 1001 / 30000, atol=2e6)  # 29.97 fps, from CAP_PROP_POS_MSEC
    assert 10.3e9 < t[-1] < 10.6e9
    assert [f.utc_ns - start for f in frames] == list(t)
    assert [f.index for f in frames] == list(range(N_FRAMES))


@pytest.mark.fixtures
def test_rate_limit_and_jpeg_messages() -> None:
    with open_camera_source(str(fixture_file(VIDEO)), camera_id="gopro", max_fps=10, jpeg_quality=80) as src:
        msgs = list(src)
    assert len(msgs) == 105 and src.stats.rate_limited == 210  # every third frame of 29.97 fps
    gaps = np.diff([m.mono_ns for m in msgs])
    assert gaps.min() >= 0.09e9 and gaps.max() <= 0.11e9
    m = msgs[10]
    assert isinstance(m, CameraFrame) and (m.camera_id, m.width, m.height) == ("gopro", 848, 480)
    assert m.jpeg[:3] == b"\xff\xd8\xff" and m.frame_index == 30
    img = cv2.imdecode(np.frombuffer(m.jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (480, 848, 3)
    back = decode_message(m.encode())
    assert back == m  # the frame round-trips over the bus encoding


@pytest.mark.fixtures
def test_jpeg_quality_controls_size_and_fidelity() -> None:
    with open_camera_source(str(fixture_file(VIDEO))) as src:
        img = next(iter(src.frames())).image
    sizes = {}
    for q in (30, 60, 95):
        data = encode_jpeg(img, q)
        dec = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        mse = float(np.mean((dec.astype(np.float64) - img) ** 2))
        psnr = 10 * np.log10(255**2 / max(mse, 1e-9))
        sizes[q] = (len(data), psnr)
    assert sizes[30][0] < sizes[60][0] < sizes[95][0]
    assert sizes[30][1] < sizes[95][1] and sizes[95][1] > 35


@pytest.mark.fixtures
def test_video_file_reopened_at_its_end_keeps_time_running() -> None:
    waits: list[float] = []
    src = OpenCvCaptureSource(str(fixture_file(VIDEO)), "file", reconnect=True,
                              backoff=Backoff(initial_s=0.01, max_attempts=3), sleep=waits.append)
    with src:
        frames = list(itertools.islice(src.frames(), 2 * N_FRAMES + 10))
    assert src.stats.reconnects == 2 and waits == [0.01, 0.01]  # backoff starts over after a success
    t = [f.mono_ns for f in frames]
    assert all(b > a for a, b in zip(t, t[1:]))  # media time continues across re-opens
    assert np.array_equal(frames[0].image, frames[N_FRAMES].image)  # it really started over


@pytest.mark.fixtures
def test_stream_drop_reconnects_with_exponential_backoff(tmp_path: Path) -> None:
    """The file vanishes at its end (a dropped stream): re-opening fails with growing waits
    until it is back, then frames flow again."""
    link = tmp_path / "stream.mp4"
    target = fixture_file(VIDEO)
    link.symlink_to(target)
    waits: list[float] = []

    def sleep(s: float) -> None:
        waits.append(s)
        if len(waits) == 4:  # the "server" comes back before the 4th attempt
            link.symlink_to(target)

    src = OpenCvCaptureSource(str(link), "file", reconnect=True, sleep=sleep,
                              backoff=Backoff(initial_s=0.05, factor=2.0, max_s=0.3, max_attempts=6))
    got = []
    with src:
        for fr in src.frames():
            got.append(fr)
            if len(got) == N_FRAMES:
                link.unlink()  # gone once the reader reaches the end
            if len(got) == N_FRAMES + 5:
                break
    assert waits == [0.05, 0.1, 0.2, 0.3]
    assert src.stats.reconnects == 1 and len(got) == N_FRAMES + 5

    # never coming back: the attempts run out and the file source ends
    waits.clear()
    gone = tmp_path / "gone.mp4"
    gone.symlink_to(target)
    src2 = OpenCvCaptureSource(str(gone), "file", reconnect=True, sleep=waits.append,
                               backoff=Backoff(initial_s=0.01, max_attempts=3))
    with src2:
        it = src2.frames()
        next(it)
        gone.unlink()
        rest = list(it)
    assert len(rest) == N_FRAMES - 1 and waits == [0.01, 0.02, 0.04] and src2.stats.reconnects == 0


def test_live_stream_unreachable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"rtsp://127.0.0.1:{port}/cam"
    assert camera_source_kind(url) == "rtsp"
    src = open_camera_source(url, backoff=Backoff(initial_s=0.01, max_attempts=2))
    with pytest.raises(SourceError, match="cannot open video capture"):
        src.open()
    if not os.path.exists("/dev/video7"):
        with pytest.raises(SourceError, match="cannot open video capture"):
            open_camera_source("v4l2://7").open()


@pytest.mark.fixtures
def test_image_folder_in_time_order_with_jpeg_pass_through() -> None:
    folder = fixture_file(NUSCENES)
    with open_camera_source(str(folder), camera_id="nusc") as src:
        assert isinstance(src, ImageFolderSource)
        msgs = list(src)
    files = sorted(folder.glob("CAM_*.jpg"), key=lambda p: int(p.stem.split("__")[1]))
    assert len(msgs) == 6
    assert [m.utc_ns for m in msgs] == [int(p.stem.split("__")[1]) * 1000 for p in files]  # µs in the name
    assert [m.jpeg for m in msgs] == [p.read_bytes() for p in files]  # bytes kept exactly
    assert all((m.width, m.height) == (1600, 900) for m in msgs)
    with ImageFolderSource(folder, reencode=True, jpeg_quality=40) as src:
        small = list(src)
    assert all(len(a.jpeg) < len(b.jpeg) for a, b in zip(small, msgs))
    with ImageFolderSource(folder, max_fps=50) as src:  # frames are ~8 ms apart: 20 ms minimum
        limited = list(src)
    assert 2 <= len(limited) < 6 and src.stats.rate_limited == 6 - len(limited)


def test_image_folder_mtime_and_errors(tmp_path: Path) -> None:
    img = np.full((20, 30, 3), 127, np.uint8)
    for i, name in enumerate(["b.png", "a.png"]):
        cv2.imwrite(str(tmp_path / name), img)
        os.utime(tmp_path / name, ns=(10**18 + i, 10**18 + i))
    with ImageFolderSource(tmp_path) as src:
        msgs = list(src)
    assert [m.utc_ns for m in msgs] == [10**18, 10**18 + 1]  # b.png is older
    assert msgs[0].jpeg[:3] == b"\xff\xd8\xff"  # PNG re-encoded as JPEG
    (tmp_path / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(SourceError, match="not a readable image"):
        list(ImageFolderSource(tmp_path))
    with pytest.raises(SourceError, match="no images"):
        ImageFolderSource(tmp_path, pattern="*.tif")


def test_timestamp_from_name() -> None:
    assert timestamp_from_name("CAM_FRONT__1532402927612460") == 1532402927612460000
    assert timestamp_from_name("frame_1700000000") == 1700000000 * 10**9
    assert timestamp_from_name("img-1700000000123") == 1700000000123 * 10**6
    assert timestamp_from_name("1700000000123456789") == 1700000000123456789
    assert timestamp_from_name("frame_0042") is None


def test_gstreamer_pipelines() -> None:
    p = jetson_csi_pipeline(sensor_id=1, width=1280, height=720, fps=60, flip_method=2)
    assert p.startswith("nvarguscamerasrc sensor-id=1 ! ") and "framerate=(fraction)60/1" in p
    assert validate_gstreamer_pipeline(p) == ["nvarguscamerasrc", "video/x-raw(memory:NVMM),", "nvvidconv",
                                              "video/x-raw,", "videoconvert", "video/x-raw,", "appsink"]
    assert camera_source_kind("gst://" + p) == "gstreamer"
    for bad, why in [("videotestsrc", "at least a source and an appsink"),
                     ("videotestsrc ! ! appsink", "empty element"),
                     ("videotestsrc ! autovideosink", "must end in appsink"),
                     ("videotestsrc ! video/x-raw(memory:NVMM ! appsink", "unbalanced")]:
        with pytest.raises(SourceError, match=why):
            validate_gstreamer_pipeline(bad)
    with pytest.raises(ValueError, match="flip_method"):
        jetson_csi_pipeline(flip_method=9)
    src = open_camera_source("gst://videotestsrc num-buffers=3 ! videoconvert ! appsink")
    if gstreamer_available():
        with src:
            assert len(list(src.frames())) == 3
    else:
        with pytest.raises(SourceError, match="no GStreamer support"):
            src.open()


@pytest.mark.fixtures
def test_registry_and_config_factory(tmp_path: Path) -> None:
    assert set(CAMERA_SOURCES) == {"device", "file", "rtsp", "gstreamer", "folder"}
    assert camera_source_kind("/dev/video0") == camera_source_kind("v4l2://2") == camera_source_kind("0") == "device"
    with pytest.raises(SourceError, match="no such"):
        camera_source_kind(str(tmp_path / "nope.mp4"))
    cfg = CameraSourceConfig(source=str(fixture_file(VIDEO)), camera_id="front", max_fps=5, jpeg_quality=70)
    with camera_source_from_config(cfg) as src:
        assert isinstance(src, OpenCvCaptureSource) and not src.reconnect
        first = list(itertools.islice(iter(src), 3))
    assert [m.camera_id for m in first] == ["front"] * 3 and [m.frame_index for m in first] == [0, 6, 12]
    with pytest.raises(ValueError):
        CameraSourceConfig(source="x", jpeg_quality=0)
