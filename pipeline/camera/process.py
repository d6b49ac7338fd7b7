"""The camera stage: frame in → keyframe decision → blur rejection → redaction → JPEG with
GPS EXIF out.

:class:`CameraStage` takes bus :class:`~agent.bus.messages.CameraFrame` messages (JPEG) or
sensor :class:`~sensors.camera.RawFrame` images, and :class:`~agent.bus.messages.GnssFix`
messages for the track. Work is spent only on due frames: a frame that is not due is not
even decoded. Its output, :class:`Keyframe`, is built from a
:class:`~pipeline.camera.redact.RedactedImage` and nothing else, so every JPEG the stage gives
out went through the redactor; :class:`DirectorySink` writes only keyframes.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agent.bus.messages import CameraFrame, GnssFix
from pipeline.camera._config import CameraProcessingConfig
from pipeline.camera._cv import cv2_module
from pipeline.camera.blur import is_blurry
from pipeline.camera.exif import build_exif
from pipeline.camera.keyframes import GnssTrack, KeyframeSelector, Position
from pipeline.camera.redact import Box, Detector, RedactedImage, Redactor, redactor_from_config
from pipeline.errors import CameraProcessingError

#: what the stage decided for a frame
NO_POSITION = "no_position"  # no GNSS position at the frame's time
NOT_DUE = "not_due"  # not far enough (or too soon) since the last keyframe
BLURRY = "blurry"  # due but rejected by the blur check (the next sharp frame is taken)
KEYFRAME = "keyframe"


class Keyframe:
    """A redacted keyframe as JPEG with GPS EXIF. Built only from a :class:`RedactedImage`."""

    __slots__ = (
        "boxes",
        "camera_id",
        "frame_index",
        "height",
        "jpeg",
        "position",
        "regions",
        "sharpness",
        "utc_ns",
        "width",
    )

    def __init__(
        self,
        redacted: RedactedImage,
        *,
        camera_id: str,
        frame_index: int,
        utc_ns: int,
        position: Position,
        sharpness: float,
        quality: int = 85,
        make: str = "edge-agent",
        camera_yaw_deg: float = 0.0,
    ) -> None:
        if type(redacted) is not RedactedImage:
            raise TypeError("a Keyframe is built only from a RedactedImage (Redactor.redact)")
        self.camera_id = camera_id
        self.frame_index = frame_index
        self.utc_ns = utc_ns
        self.position = position
        self.sharpness = sharpness
        self.boxes: tuple[Box, ...] = redacted.boxes
        self.regions: tuple[Box, ...] = redacted.regions
        self.height, self.width = redacted.shape[:2]
        exif = build_exif(
            position,
            utc_ns=utc_ns,
            make=make,
            model=camera_id,
            description=f"{camera_id} frame {frame_index}",
            camera_yaw_deg=camera_yaw_deg,
        )
        self.jpeg: bytes = redacted.to_jpeg(quality, exif)

    @property
    def file_name(self) -> str:
        """``<camera>_<utc_ns>_<frame index>.jpg``: sorts by time per camera."""
        return f"{self.camera_id}_{self.utc_ns:019d}_{self.frame_index:06d}.jpg"

    def __repr__(self) -> str:
        return (
            f"Keyframe({self.camera_id}#{self.frame_index} at {self.position.lat_deg:.6f},"
            f"{self.position.lon_deg:.6f}, {len(self.boxes)} redacted, {len(self.jpeg)} B)"
        )


@dataclass
class StageResult:
    """What the stage did with one frame."""

    decision: str  # NO_POSITION, NOT_DUE, BLURRY or KEYFRAME
    camera_id: str
    frame_index: int
    utc_ns: int
    position: Position | None = None
    sharpness: float | None = None
    keyframe: Keyframe | None = None


@dataclass
class CameraStageStats:
    """Counts per decision and detections per kind."""

    frames: int = 0
    no_position: int = 0
    not_due: int = 0
    blurry: int = 0
    keyframes: int = 0
    detections: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "frames": self.frames,
            "no_position": self.no_position,
            "not_due": self.not_due,
            "blurry": self.blurry,
            "keyframes": self.keyframes,
            "detections": dict(self.detections),
        }


def decode_jpeg(data: bytes, camera_id: str = "", frame_index: int = -1) -> np.ndarray:
    """JPEG bytes → BGR uint8 image; CameraProcessingError when they do not decode."""
    cv2 = cv2_module()
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise CameraProcessingError("frame is not a decodable JPEG", camera_id, frame_index)
    return img


class CameraStage:
    """Keyframes from camera frames: one :class:`KeyframeSelector` per camera over one shared
    :class:`GnssTrack`. Feed fixes with :meth:`add_fix` and frames with :meth:`process`."""

    def __init__(
        self,
        redactor: Redactor,
        *,
        track: GnssTrack | None = None,
        every_m: float = 5.0,
        min_interval_s: float = 0.5,
        blur_threshold: float = 100.0,
        blur_max_side: int = 640,
        jpeg_quality: int = 85,
        make: str = "edge-agent",
        camera_yaw_deg: dict[str, float] | None = None,
    ) -> None:
        if not isinstance(redactor, Redactor):
            raise CameraProcessingError("the camera stage needs a Redactor: frames never leave unredacted")
        self.redactor = redactor
        self.track = track or GnssTrack()
        self.every_m = every_m
        self.min_interval_s = min_interval_s
        self.blur_threshold = blur_threshold
        self.blur_max_side = blur_max_side
        self.jpeg_quality = jpeg_quality
        self.make = make
        self.camera_yaw_deg = dict(camera_yaw_deg or {})
        self.selectors: dict[str, KeyframeSelector] = {}
        self.stats = CameraStageStats()

    def add_fix(self, fix: GnssFix) -> bool:
        """Add a GNSS fix to the track; False when it carries no usable position."""
        return self.track.add(fix)

    def _selector(self, camera_id: str) -> KeyframeSelector:
        sel = self.selectors.get(camera_id)
        if sel is None:
            sel = self.selectors[camera_id] = KeyframeSelector(self.every_m, self.min_interval_s)
        return sel

    def process(self, frame: CameraFrame | Any, camera_id: str | None = None) -> StageResult:
        """Decide on one frame: a bus ``CameraFrame`` (JPEG), or a ``RawFrame`` (BGR image with
        ``utc_ns`` and ``index``; give ``camera_id``)."""
        if isinstance(frame, CameraFrame):
            cid, idx, t = frame.camera_id, frame.frame_index, frame.utc_ns
            jpeg: bytes | None = frame.jpeg
            image: np.ndarray | None = None
        else:
            cid, idx, t = camera_id or "cam0", int(frame.index), int(frame.utc_ns)
            jpeg, image = None, frame.image
        self.stats.frames += 1
        pos = self.track.position_at(t)
        if pos is None:
            self.stats.no_position += 1
            return StageResult(NO_POSITION, cid, idx, t)
        sel = self._selector(cid)
        if not sel.due(pos):
            self.stats.not_due += 1
            return StageResult(NOT_DUE, cid, idx, t, pos)
        if image is None:
            assert jpeg is not None
            image = decode_jpeg(jpeg, cid, idx)
        blurry, sharp = is_blurry(image, self.blur_threshold, self.blur_max_side)
        if blurry:
            self.stats.blurry += 1
            return StageResult(BLURRY, cid, idx, t, pos, sharp)
        redacted = self.redactor.redact(image)
        kf = Keyframe(
            redacted,
            camera_id=cid,
            frame_index=idx,
            utc_ns=t,
            position=pos,
            sharpness=sharp,
            quality=self.jpeg_quality,
            make=self.make,
            camera_yaw_deg=self.camera_yaw_deg.get(cid, 0.0),
        )
        sel.mark(pos)
        self.stats.keyframes += 1
        for b in kf.boxes:
            self.stats.detections[b.kind] = self.stats.detections.get(b.kind, 0) + 1
        return StageResult(KEYFRAME, cid, idx, t, pos, sharp, kf)

    def run(self, messages: Iterable[CameraFrame | GnssFix]) -> Iterator[StageResult]:
        """Process a time-ordered stream of bus messages (fixes feed the track, frames are
        decided); other message types are skipped."""
        for m in messages:
            if isinstance(m, GnssFix):
                self.add_fix(m)
            elif isinstance(m, CameraFrame):
                yield self.process(m)


def camera_stage_from_config(cfg: CameraProcessingConfig, detector: Detector | None = None) -> CameraStage:
    """The stage a :class:`CameraProcessingConfig` describes (STYLE.md habit 2)."""
    track = GnssTrack(
        stationary_speed_mps=cfg.stationary_speed_mps,
        max_gap_s=cfg.max_gnss_gap_s,
        max_extrapolation_s=cfg.max_extrapolation_s,
    )
    return CameraStage(
        redactor_from_config(cfg.redaction, detector),
        track=track,
        every_m=cfg.keyframe_every_m,
        min_interval_s=cfg.min_interval_s,
        blur_threshold=cfg.blur_threshold,
        blur_max_side=cfg.blur_max_side,
        jpeg_quality=cfg.jpeg_quality,
        make=cfg.make,
        camera_yaw_deg=cfg.camera_yaw_deg,
    )


class DirectorySink:
    """Writes keyframes (and nothing else) into a directory: temporary file, fsync, rename, so
    a crash leaves no partial photo."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.written: list[Path] = []

    def write(self, keyframe: Keyframe) -> Path:
        """Write one keyframe; returns its path."""
        if type(keyframe) is not Keyframe:
            raise TypeError("DirectorySink writes only Keyframe objects (redacted by construction)")
        path = self.directory / keyframe.file_name
        fd, tmp = tempfile.mkstemp(prefix=".kf-", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(keyframe.jpeg)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.written.append(path)
        return path
