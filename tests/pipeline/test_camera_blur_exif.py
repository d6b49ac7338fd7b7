"""Blur rejection on the fixture frames; GPS EXIF read back with Pillow."""

from __future__ import annotations

import io
import math
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from pipeline.camera.blur import is_blurry, laplacian_variance
from pipeline.camera.exif import build_exif, from_dms, insert_exif, to_dms
from pipeline.camera.keyframes import Position
from pipeline.errors import CameraProcessingError
from tests._fixtures import fixture_file

GPS_IFD, EXIF_IFD = 0x8825, 0x8769
THRESHOLD = 100.0  # the default in configs/default.yaml


def fixture_frames() -> list[Path]:
    files = sorted(fixture_file("camera/nuscenes").glob("CAM_*.jpg"))
    assert len(files) == 6
    return files


@pytest.mark.fixtures
def test_fixture_frames_are_sharp_and_blurred_copies_are_rejected() -> None:
    for path in fixture_frames():
        img = cv2.imread(str(path))
        blurry, sharp = is_blurry(img, THRESHOLD)
        assert not blurry, f"{path.name}: {sharp:.0f}"
        measures = [laplacian_variance(cv2.GaussianBlur(img, (0, 0), s)) for s in (1.0, 3.0, 6.0)]
        assert sharp > measures[0] > measures[1] > measures[2]  # monotone in the blur
        b3, v3 = is_blurry(cv2.GaussianBlur(img, (0, 0), 3.0), THRESHOLD)
        assert b3 and v3 < THRESHOLD / 2, f"{path.name}: sigma 3 gives {v3:.0f}"
        # horizontal motion blur over 25 px (about 1.5 m/s crossing at 10 m with 1/30 s exposure)
        k = np.zeros((25, 25), np.float32)
        k[12, :] = 1 / 25
        assert laplacian_variance(cv2.filter2D(img, -1, k)) < sharp / 2


@pytest.mark.fixtures
def test_blur_decision_holds_at_another_resolution() -> None:
    img = cv2.imread(str(fixture_frames()[0]))
    full = laplacian_variance(img, 640)
    half = cv2.resize(img, (800, 450), interpolation=cv2.INTER_AREA)  # an 800x450 camera
    assert not is_blurry(half, THRESHOLD)[0]
    assert is_blurry(cv2.GaussianBlur(half, (0, 0), 1.5), THRESHOLD)[0]  # sigma 3 at full size
    assert is_blurry(cv2.GaussianBlur(img, (0, 0), 6.0), 0.0)[0] is False  # threshold 0: accept all
    grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    assert laplacian_variance(grey) == pytest.approx(full)


def _small_jpeg() -> bytes:
    rng = np.random.default_rng(1)
    ok, buf = cv2.imencode(".jpg", rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    assert ok
    return buf.tobytes()


def _read_back(jpeg: bytes) -> tuple[dict, dict, dict]:
    ex = Image.open(io.BytesIO(jpeg)).getexif()
    return dict(ex), ex.get_ifd(GPS_IFD), ex.get_ifd(EXIF_IFD)


def _deg(dms: tuple, ref: str) -> float:
    return from_dms(tuple(float(v) for v in dms), ref)


@pytest.mark.parametrize(
    ("lat", "lon", "alt", "course"),
    [
        (48.137154, 11.576124, 519.3, 271.25),  # Munich, north-east
        (-33.856784, 151.215297, 4.2, 0.0),  # Sydney: south
        (40.689247, -74.044502, -3.75, 359.99),  # below sea level, west
        (1.2800, 103.8500, math.nan, math.nan),  # no altitude, no course
    ],
)
def test_gps_exif_round_trip_through_pillow(lat: float, lon: float, alt: float, course: float) -> None:
    t_ns = 1532402927_612_460_000  # 2018-07-24 03:28:47.612 UTC
    p = Position(t_ns, lat, lon, alt, course, 12.0, 0.0, 0.8)
    jpeg = insert_exif(_small_jpeg(), build_exif(p, model="front", camera_yaw_deg=90.0))
    # still a JPEG that decodes to the same size
    assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (48, 64, 3)
    zeroth, gps, exif = _read_back(jpeg)
    assert gps[1] == ("N" if lat >= 0 else "S") and gps[3] == ("E" if lon >= 0 else "W")
    # 1e-4 arc-second resolution: half of it at most, about 1.5 mm
    assert _deg(gps[2], gps[1]) == pytest.approx(lat, abs=0.5e-4 / 3600 + 1e-12)
    assert _deg(gps[4], gps[3]) == pytest.approx(lon, abs=0.5e-4 / 3600 + 1e-12)
    if math.isnan(alt):
        assert 6 not in gps and gps[10] == "2"
    else:
        assert gps[5] == (b"\x00" if alt >= 0 else b"\x01")
        assert (-1 if gps[5] == b"\x01" else 1) * float(gps[6]) == pytest.approx(alt, abs=5e-4)
        assert gps[10] == "3"
    assert tuple(float(v) for v in gps[7]) == (3.0, 28.0, 47.612)  # GPSTimeStamp, UTC
    assert gps[29] == "2018:07:24"  # GPSDateStamp
    assert exif[0x9003] == "2018:07:24 03:28:47"  # DateTimeOriginal
    assert exif[0x9291] == "612" and exif[0x9011] == "+00:00"
    assert zeroth[0x010F] == "edge-agent" and zeroth[0x0110] == "front"
    if math.isnan(course):
        assert 17 not in gps and 15 not in gps
    else:
        assert gps[16] == "T" and float(gps[17]) == pytest.approx((course + 90.0) % 360.0, abs=0.005)
        assert float(gps[15]) == pytest.approx(course, abs=0.005)  # GPSTrack
    assert float(gps[13]) == pytest.approx(12.0 * 3.6, abs=0.005) and gps[12] == "K"
    assert float(gps[11]) == pytest.approx(0.8) and gps[18] == "WGS-84"
    # no thumbnail: a second, unredacted copy must never ride along
    assert b"\xff\xd8" not in jpeg[2 : jpeg.index(b"\xff\xdb")]


@given(st.floats(-180.0, 180.0, allow_nan=False))
def test_dms_carries_and_round_trips(value: float) -> None:
    (d, _), (m, _), (s, den) = to_dms(value)
    assert 0 <= m < 60 and 0 <= s < 60 * den
    assert from_dms(((d, 1), (m, 1), (s, den)), "W" if value < 0 else "E") == pytest.approx(
        value, abs=0.5e-4 / 3600 + 1e-12
    )


def test_exif_without_a_position_is_refused() -> None:
    with pytest.raises(CameraProcessingError, match="no position"):
        build_exif(Position(0, math.nan, math.nan, 0.0, 0.0, 0.0, 0.0))
    with pytest.raises(CameraProcessingError, match="cannot insert EXIF"):
        insert_exif(b"not a jpeg at all", build_exif(Position(0, 1.0, 2.0, 0.0, 0.0, 0.0, 0.0)))
