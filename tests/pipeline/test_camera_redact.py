"""Privacy redaction with the Haar cascades shipped in OpenCV, on the nuScenes fixture frames
and on a composite built from a region where the face cascade fires."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from pipeline.camera import CameraProcessingConfig
from pipeline.camera.process import CameraStage, DirectorySink, Keyframe
from pipeline.camera.redact import (
    CASCADES,
    Box,
    HaarDetector,
    RedactedImage,
    Redactor,
    detector_from_config,
    redactor_from_config,
)
from pipeline.errors import CameraProcessingError, RedactionError
from tests._fixtures import fixture_file


def frame(name: str) -> np.ndarray:
    (path,) = fixture_file("camera/nuscenes").glob(f"{name}__*.jpg")
    img = cv2.imread(str(path))
    assert img is not None and img.shape == (900, 1600, 3)
    return img


def outside_mask(shape: tuple[int, ...], regions: tuple[Box, ...] | list[Box]) -> np.ndarray:
    m = np.ones(shape[:2], bool)
    for r in regions:
        m[r.y : r.y + r.h, r.x : r.x + r.w] = False
    return m


def assert_redacted(original: np.ndarray, red: RedactedImage) -> None:
    """Every region changed throughout; every pixel outside all regions is untouched."""
    out = red.image
    for r in red.regions:
        a = original[r.y : r.y + r.h, r.x : r.x + r.w].astype(np.int16)
        b = out[r.y : r.y + r.h, r.x : r.x + r.w].astype(np.int16)
        diff = np.abs(a - b).max(axis=2)
        assert (diff > 0).mean() > 0.5, f"{r}: only {(diff > 0).mean():.0%} of its pixels changed"
        assert diff.mean() > 3.0, f"{r}: mean change {diff.mean():.1f}"
        # the detail is gone: what edges remain (block borders, smooth ramps) are not the original's
        la = cv2.Laplacian(
            cv2.cvtColor(original[r.y : r.y + r.h, r.x : r.x + r.w], cv2.COLOR_BGR2GRAY), cv2.CV_64F
        )
        lb = cv2.Laplacian(
            cv2.cvtColor(np.ascontiguousarray(out[r.y : r.y + r.h, r.x : r.x + r.w]), cv2.COLOR_BGR2GRAY),
            cv2.CV_64F,
        )
        if la.std() > 0 and lb.std() > 0:
            assert abs(np.corrcoef(la.ravel(), lb.ravel())[0, 1]) < 0.3, f"{r}: detail survives"
    keep = outside_mask(original.shape, red.regions)
    assert np.array_equal(original[keep], out[keep])


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return redactor_from_config(CameraProcessingConfig().redaction)


@pytest.fixture(scope="module")
def fixture_redactions(redactor: Redactor) -> dict[str, tuple[np.ndarray, RedactedImage]]:
    names = ["CAM_FRONT", "CAM_FRONT_LEFT", "CAM_FRONT_RIGHT", "CAM_BACK", "CAM_BACK_LEFT", "CAM_BACK_RIGHT"]
    out = {}
    for n in names:
        img = frame(n)
        out[n] = (img, redactor.redact(img))
    return out


def test_the_cascades_ship_with_the_installed_opencv() -> None:
    det = HaarDetector(list(CASCADES))
    for files in CASCADES.values():
        for f in files:
            assert f in det.cascade_files
            assert os.path.getsize(os.path.join(cv2.data.haarcascades, f)) > 10_000


@pytest.mark.fixtures
def test_fixture_frames_are_redacted_where_detected(fixture_redactions) -> None:
    kinds: dict[str, int] = {}
    for img, red in fixture_redactions.values():
        assert len(red.boxes) == len(red.regions)
        for b, r in zip(red.boxes, red.regions, strict=True):
            kinds[b.kind] = kinds.get(b.kind, 0) + 1
            # the region is the box grown by the margin, clipped to the frame
            assert r.x <= b.x and r.y <= b.y and r.x + r.w >= b.x + b.w and r.y + r.h >= b.y + b.h
            assert 0 <= r.x and 0 <= r.y and r.x + r.w <= 1600 and r.y + r.h <= 900
        assert_redacted(img, red)
        assert not np.array_equal(img, red.image) or not red.regions
    # the cascades find something on these frames (pedestrians with the full-body cascade; the face
    # and plate cascades fire on textures: faces here are a few pixels tall)
    assert sum(kinds.values()) >= 3, kinds
    assert kinds.get("person", 0) >= 1, kinds


@pytest.mark.fixtures
def test_composite_with_a_detected_region(redactor: Redactor) -> None:
    """A region where the face cascade fires, pasted into another frame at a known place: it is
    found there, hidden there, and nothing else in the picture changes."""
    faces = HaarDetector(["face"])
    src = frame("CAM_BACK_RIGHT")
    found = faces.detect(src)
    assert found, "the face cascade fires somewhere on CAM_BACK_RIGHT"
    b = max(found, key=lambda x: x.w * x.h)
    g = b.grown(0.5, src.shape[1], src.shape[0])
    canvas = cv2.resize(frame("CAM_FRONT"), (640, 480), interpolation=cv2.INTER_AREA)
    assert not any(x.kind == "face" for x in faces.detect(canvas))
    ox, oy = 300, 200
    canvas[oy : oy + g.h, ox : ox + g.w] = src[g.y : g.y + g.h, g.x : g.x + g.w]
    where = Box(ox + b.x - g.x, oy + b.y - g.y, b.w, b.h, "face")
    red = Redactor(faces, method="pixelate", margin=0.2).redact(canvas)
    hits = [x for x in red.boxes if _iou(x, where) > 0.5]
    assert hits, f"face cascade did not fire at {where}: {red.boxes}"
    assert_redacted(canvas, red)
    # pixelated: the cascade no longer fires there
    assert not [x for x in faces.detect(np.array(red.image)) if _iou(x, where) > 0.3]
    # blur works the same way
    blurred = Redactor(faces, method="blur", margin=0.2).redact(canvas)
    assert [x for x in blurred.boxes if _iou(x, where) > 0.5]
    assert_redacted(canvas, blurred)


def _iou(a: Box, b: Box) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    return inter / (a.w * a.h + b.w * b.h - inter)


def test_redacted_image_is_sealed_and_read_only(redactor: Redactor) -> None:
    img = np.zeros((64, 64, 3), np.uint8)
    with pytest.raises(TypeError, match="only by Redactor.redact"):
        RedactedImage(img, [], [], "fake")
    red = redactor.redact(img)
    with pytest.raises(ValueError, match="read-only"):
        red.image[0, 0, 0] = 1
    with pytest.raises(ValueError, match="cannot set WRITEABLE"):
        red.image.flags.writeable = True
    assert img.flags.writeable  # the caller's array is not frozen nor changed
    with pytest.raises(TypeError, match="only from a RedactedImage"):
        Keyframe(img, camera_id="c", frame_index=0, utc_ns=0, position=None, sharpness=0.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="only Keyframe"):
        DirectorySink(Path(os.environ.get("TMPDIR", "/tmp")) / "edge-agent-never-written").write(b"\xff\xd8")  # type: ignore[arg-type]
    with pytest.raises(CameraProcessingError, match="needs a Redactor"):
        CameraStage(None)  # type: ignore[arg-type]


def test_redaction_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(RedactionError, match="not in"):
        HaarDetector(["face"], directory=str(tmp_path))
    (tmp_path / "haarcascade_frontalface_default.xml").write_text("<opencv_storage></opencv_storage>")
    with pytest.raises(RedactionError, match="did not load"):
        HaarDetector(["face"], directory=str(tmp_path))
    with pytest.raises(RedactionError, match="unknown detection kind"):
        HaarDetector(["cat"])
    cfg = CameraProcessingConfig().redaction.model_copy(
        update={"faces": False, "plates": False, "persons": False}
    )
    with pytest.raises(RedactionError, match="hide nothing"):
        detector_from_config(cfg)
    red = Redactor(HaarDetector(["plate"]))
    with pytest.raises(RedactionError, match="BGR uint8"):
        red.redact(np.zeros((10, 10), np.uint8))
    with pytest.raises(RedactionError, match="BGR uint8"):
        red.redact(np.zeros((10, 10, 3), np.float32))
