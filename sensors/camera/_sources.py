"""Camera sources built on OpenCV: V4L2 devices, video files, RTSP streams, GStreamer
pipelines (e.g. a Jetson CSI camera through ``nvarguscamerasrc``) and image folders.

Every source yields :class:`RawFrame` (BGR image + times) from :meth:`frames` and bus-ready
:class:`~agent.bus.messages.CameraFrame` (JPEG) from ``__iter__``, limited to ``max_fps``.

Times: a video file's frames are stamped from ``CAP_PROP_POS_MSEC`` (media time, so replays
are exact) offset by ``start_utc_ns``; live captures (device, RTSP, GStreamer) are stamped on
arrival; image folders take the time from the file name's digits (nuScenes' microseconds,
or seconds/ms/ns by their count) or else the file's mtime.

A stream that stops delivering (camera unplugged, RTSP server gone) is re-opened with
exponential backoff; with ``reconnect`` on, a video file is re-opened at its end in the same way
(which also makes a looping test source).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, Protocol, runtime_checkable

import numpy as np

from agent.bus.messages import CameraFrame
from sensors.errors import SourceError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _cv2() -> Any:
    try:
        import cv2
    except ImportError:
        raise SourceError("camera", "OpenCV is not installed: pip install opencv-python-headless") from None
    return cv2


class RawFrame(NamedTuple):
    """One decoded image and when it was taken."""

    image: np.ndarray  # BGR uint8, (height, width, 3)
    mono_ns: int
    utc_ns: int
    index: int  # frame number in the source's stream


@dataclass
class CameraStats:
    """What a camera source did."""

    read: int = 0  # frames read from the device/file
    emitted: int = 0  # frames yielded (after rate limiting)
    rate_limited: int = 0  # frames skipped by max_fps
    failed_reads: int = 0
    reconnects: int = 0  # successful re-opens
    backoffs: list[float] = field(default_factory=list)  # seconds waited before each re-open attempt

    def as_dict(self) -> dict[str, object]:
        return {"read": self.read, "emitted": self.emitted, "rate_limited": self.rate_limited,
                "failed_reads": self.failed_reads, "reconnects": self.reconnects}


@dataclass
class Backoff:
    """Exponential backoff for re-opening a stream: ``initial_s``, ×``factor`` per failed
    attempt up to ``max_s``; ``max_attempts`` consecutive failures (None = forever) give up."""

    initial_s: float = 0.5
    factor: float = 2.0
    max_s: float = 10.0
    max_attempts: int | None = 10

    def delays(self) -> Iterator[float]:
        d = self.initial_s
        n = 0
        while self.max_attempts is None or n < self.max_attempts:
            yield d
            d = min(d * self.factor, self.max_s)
            n += 1


@runtime_checkable
class CameraSource(Protocol):
    """A stream of camera frames with an explicit lifecycle (use as a context manager)."""

    name: str
    camera_id: str
    stats: CameraStats

    def __enter__(self) -> CameraSource: ...

    def __exit__(self, *exc: object) -> None: ...

    def frames(self) -> Iterator[RawFrame]: ...

    def __iter__(self) -> Iterator[CameraFrame]: ...

    def close(self) -> None: ...


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """BGR image → JPEG bytes at ``quality`` (1..100)."""
    cv2 = _cv2()
    ok, buf = cv2.imencode(".jpg", image, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise SourceError("camera", "JPEG encoding failed")
    return buf.tobytes()


class _Base:
    """Rate limiting, JPEG encoding and the lifecycle shared by all sources."""

    name: str

    def __init__(self, camera_id: str, max_fps: float | None, jpeg_quality: int) -> None:
        if not 1 <= jpeg_quality <= 100:
            raise ValueError(f"jpeg_quality {jpeg_quality} is not in 1..100")
        if max_fps is not None and max_fps <= 0:
            raise ValueError("max_fps must be positive")
        self.camera_id = camera_id
        self.max_fps = max_fps
        self.jpeg_quality = jpeg_quality
        self.stats = CameraStats()
        self._closed = False
        self._next_ns: int | None = None
        self._prefiltered = False  # True when _raw applies the rate limit itself

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True

    def _keep(self, t_ns: int) -> bool:
        """Rate limit on the frame's own clock: keep a frame when at least 1/max_fps has
        passed since the last kept one."""
        self.stats.read += 1
        if self.max_fps is None:
            return True
        period = int(1e9 / self.max_fps)
        # a tenth of a period of slack: frame clocks jitter (29.97 fps, rounded ms positions)
        if self._next_ns is not None and t_ns < self._next_ns - period // 10:
            self.stats.rate_limited += 1
            return False
        # schedule from the ideal time so that e.g. 30 fps → 10 fps keeps every third frame
        self._next_ns = t_ns + period if self._next_ns is None or t_ns - self._next_ns > period else self._next_ns + period
        return True

    def _raw(self) -> Iterator[RawFrame]:
        raise NotImplementedError

    def frames(self) -> Iterator[RawFrame]:
        """Decoded frames after rate limiting."""
        for fr in self._raw():
            if self._prefiltered or self._keep(fr.mono_ns):
                self.stats.emitted += 1
                yield fr

    def _message(self, fr: RawFrame, jpeg: bytes | None = None) -> CameraFrame:
        h, w = fr.image.shape[:2]
        return CameraFrame(source=self.camera_id, camera_id=self.camera_id, mono_ns=fr.mono_ns, utc_ns=fr.utc_ns,
                           width=w, height=h, frame_index=fr.index,
                           jpeg=jpeg if jpeg is not None else encode_jpeg(fr.image, self.jpeg_quality))

    def __iter__(self) -> Iterator[CameraFrame]:
        for fr in self.frames():
            yield self._message(fr)


class OpenCvCaptureSource(_Base):
    """A ``cv2.VideoCapture`` source: ``kind`` is ``device`` (V4L2 index), ``file``, ``rtsp``
    or ``gstreamer`` (a pipeline string ending in ``appsink``)."""

    def __init__(self, target: str | int, kind: str, *, camera_id: str = "cam0", max_fps: float | None = None,
                 jpeg_quality: int = 90, reconnect: bool | None = None, backoff: Backoff | None = None,
                 start_utc_ns: int | None = None, width: int | None = None, height: int | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        super().__init__(camera_id, max_fps, jpeg_quality)
        if kind not in ("device", "file", "rtsp", "gstreamer"):
            raise ValueError(f"unknown capture kind {kind!r}")
        self.target = target
        self.kind = kind
        self.name = f"{kind}:{target}"
        # live streams reconnect by default; a file ends at its end unless asked to re-open
        self.reconnect = (kind != "file") if reconnect is None else reconnect
        self.backoff = backoff or Backoff()
        self.start_utc_ns = start_utc_ns
        self.width, self.height = width, height
        self._sleep = sleep
        self._cap: Any = None
        self._opened_at_utc = 0
        self._media_offset_ns = 0  # for files re-opened: media time continues across loops
        self._last_media_ns = 0
        self._index = 0
        if kind == "file" and not Path(str(target)).is_file():
            raise SourceError(str(target), "no such video file")
        if kind == "gstreamer":
            validate_gstreamer_pipeline(str(target))

    def _open_capture(self) -> Any:
        cv2 = _cv2()
        if self.kind == "device":
            api = getattr(cv2, "CAP_V4L2", cv2.CAP_ANY) if os.name == "posix" else cv2.CAP_ANY
            cap = cv2.VideoCapture(int(self.target), api)
        elif self.kind == "gstreamer":
            if not gstreamer_available():
                raise SourceError(self.name, "this OpenCV build has no GStreamer support "
                                             "(use the distribution's OpenCV on a Jetson)")
            cap = cv2.VideoCapture(str(self.target), cv2.CAP_GSTREAMER)
        elif self.kind == "rtsp":
            cap = cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG)
        else:
            cap = cv2.VideoCapture(str(self.target), cv2.CAP_FFMPEG)
        if self.width and self.kind == "device":
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height and self.kind == "device":
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def open(self) -> OpenCvCaptureSource:
        """Open the capture (one attempt; the frame loop retries with backoff)."""
        if self._cap is None:
            cap = self._open_capture()
            if cap is None:
                raise SourceError(self.name, "cannot open video capture")
            self._cap = cap
            self._opened_at_utc = time.time_ns()
            if self.start_utc_ns is None:
                self.start_utc_ns = self._opened_at_utc
        return self

    def __enter__(self) -> OpenCvCaptureSource:
        return self.open()

    def close(self) -> None:
        super().close()
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _reopen(self) -> bool:
        """Release and re-open with backoff; False when attempts are exhausted or closed."""
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        for delay in self.backoff.delays():
            if self._closed:
                return False
            self.stats.backoffs.append(delay)
            self._sleep(delay)
            cap = self._open_capture()
            if cap is not None:
                self._cap = cap
                self.stats.reconnects += 1
                log.info("camera %s re-opened after %d attempt(s)", self.name, len(self.stats.backoffs))
                return True
        return False

    def _raw(self) -> Iterator[RawFrame]:
        cv2 = _cv2()
        if self._cap is None:
            self.open()
        self._prefiltered = True
        while not self._closed:
            # grab, then decode only the frames the rate limit keeps (saves CPU on a Pi)
            ok = self._cap.grab() if self._cap is not None else False
            img = None
            if ok:
                if self.kind == "file":
                    pos_ms = self._cap.get(cv2.CAP_PROP_POS_MSEC)
                    media = self._media_offset_ns + int(round(pos_ms * 1e6))
                    self._last_media_ns = media
                    assert self.start_utc_ns is not None
                    mono, utc = media, self.start_utc_ns + media
                else:
                    mono, utc = time.monotonic_ns(), time.time_ns()
                if not self._keep(mono):
                    self._index += 1
                    continue
                ok, img = self._cap.retrieve()
            if not ok or img is None:
                if self.kind != "file":
                    self.stats.failed_reads += 1
                if not self.reconnect:
                    return
                if self.kind == "file":
                    self._media_offset_ns = self._last_media_ns + 1
                if not self._reopen():
                    if self.kind == "file":
                        return
                    raise SourceError(self.name, f"stream lost and not re-opened after "
                                                 f"{len(self.stats.backoffs)} attempt(s)")
                continue
            yield RawFrame(img, mono, utc, self._index)
            self._index += 1


_DIGITS = re.compile(r"(\d{10,19})")


def timestamp_from_name(name: str) -> int | None:
    """ns since the epoch from the longest run of 10..19 digits in a file name, the unit
    judged by the count: 10 s, 13 ms, 16 µs (nuScenes), 19 ns. None when there is none."""
    runs = _DIGITS.findall(name)
    if not runs:
        return None
    d = max(runs, key=len)
    scale = {10: 10**9, 13: 10**6, 16: 10**3, 19: 1}.get(len(d))
    return int(d) * scale if scale else None


class ImageFolderSource(_Base):
    """Images in a folder, in time order. JPEG files are passed through as they are (no
    re-encoding) unless ``reencode`` is set."""

    def __init__(self, folder: str | Path, *, camera_id: str = "cam0", pattern: str = "*",
                 max_fps: float | None = None, jpeg_quality: int = 90, reencode: bool = False) -> None:
        super().__init__(camera_id, max_fps, jpeg_quality)
        self.folder = Path(folder)
        self.name = str(folder)
        if not self.folder.is_dir():
            raise SourceError(str(folder), "no such image folder")
        self.reencode = reencode
        files = [p for p in self.folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]
        stamped = []
        for p in files:
            t = timestamp_from_name(p.stem)
            stamped.append((t if t is not None else p.stat().st_mtime_ns, p.name, p))
        stamped.sort()
        self.files: list[tuple[int, Path]] = [(t, p) for t, _, p in stamped]
        if not self.files:
            raise SourceError(str(folder), f"no images matching {pattern!r}")

    def __enter__(self) -> ImageFolderSource:
        return self

    def _read(self, path: Path) -> tuple[np.ndarray, bytes]:
        cv2 = _cv2()
        data = path.read_bytes()
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if img is None:
            raise SourceError(str(path), "not a readable image")
        return img, data

    def _raw(self) -> Iterator[RawFrame]:
        for i, (t, path) in enumerate(self.files):
            if self._closed:
                return
            img, _ = self._read(path)
            yield RawFrame(img, t, t, i)

    def __iter__(self) -> Iterator[CameraFrame]:
        for i, (t, path) in enumerate(self.files):
            if self._closed:
                return
            if not self._keep(t):
                continue
            img, data = self._read(path)
            self.stats.emitted += 1
            is_jpeg = data[:3] == b"\xff\xd8\xff"
            fr = RawFrame(img, t, t, i)
            yield self._message(fr, data if is_jpeg and not self.reencode else None)


# ---- GStreamer ---------------------------------------------------------------------------------

def gstreamer_available() -> bool:
    """Whether this OpenCV build can open GStreamer pipelines."""
    cv2 = _cv2()
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line
    return False


def jetson_csi_pipeline(sensor_id: int = 0, width: int = 1920, height: int = 1080, fps: int = 30,
                        flip_method: int = 0, out_width: int | None = None, out_height: int | None = None) -> str:
    """A GStreamer pipeline for a Jetson CSI camera (``nvarguscamerasrc``) that hands BGR
    frames to OpenCV; ``appsink drop=true max-buffers=1`` keeps capture from queueing."""
    for name, v in (("width", width), ("height", height), ("fps", fps)):
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if flip_method not in range(8):
        raise ValueError("flip_method must be 0..7")
    ow, oh = out_width or width, out_height or height
    return (f"nvarguscamerasrc sensor-id={int(sensor_id)} ! "
            f"video/x-raw(memory:NVMM), width=(int){width}, height=(int){height}, "
            f"framerate=(fraction){fps}/1, format=(string)NV12 ! "
            f"nvvidconv flip-method={flip_method} ! "
            f"video/x-raw, width=(int){ow}, height=(int){oh}, format=(string)BGRx ! "
            f"videoconvert ! video/x-raw, format=(string)BGR ! appsink drop=true max-buffers=1")


def validate_gstreamer_pipeline(pipeline: str) -> list[str]:
    """Check the shape of a pipeline string for OpenCV: elements joined by ``!``, none
    empty, ending in an ``appsink``. Returns the element names; raises SourceError."""
    parts = [p.strip() for p in pipeline.split("!")]
    if len(parts) < 2:
        raise SourceError(pipeline[:60], "a GStreamer pipeline needs at least a source and an appsink joined by '!'")
    if any(not p for p in parts):
        raise SourceError(pipeline[:60], "empty element in the GStreamer pipeline (doubled or trailing '!')")
    names = [p.split()[0] for p in parts]
    if names[-1] != "appsink":
        raise SourceError(pipeline[:60], f"a pipeline for OpenCV must end in appsink, not {names[-1]!r}")
    if pipeline.count("(") != pipeline.count(")") or pipeline.count('"') % 2:
        raise SourceError(pipeline[:60], "unbalanced parentheses or quotes in the GStreamer pipeline")
    return names


# ---- registry ----------------------------------------------------------------------------------

CameraSourceFactory = Callable[..., CameraSource]


def _device(spec: str, **kw: Any) -> CameraSource:
    idx = spec[len("v4l2://"):] if spec.startswith("v4l2://") else spec
    if idx.startswith("/dev/video"):
        idx = idx[len("/dev/video"):]
    if not idx.isdigit():
        raise SourceError(spec, "a V4L2 device is an index: v4l2://0 or /dev/video0")
    return OpenCvCaptureSource(int(idx), "device", **kw)


def _file(spec: str, **kw: Any) -> CameraSource:
    return OpenCvCaptureSource(spec, "file", **kw)


def _rtsp(spec: str, **kw: Any) -> CameraSource:
    return OpenCvCaptureSource(spec, "rtsp", **kw)


def _gstreamer(spec: str, **kw: Any) -> CameraSource:
    pipeline = spec[len("gst://"):] if spec.startswith("gst://") else spec
    return OpenCvCaptureSource(pipeline, "gstreamer", **kw)


def _folder(spec: str, **kw: Any) -> CameraSource:
    return ImageFolderSource(spec, **kw)


CAMERA_SOURCES: dict[str, CameraSourceFactory] = {
    "device": _device, "file": _file, "rtsp": _rtsp, "gstreamer": _gstreamer, "folder": _folder,
}


def camera_source_kind(spec: str) -> str:
    """``v4l2://N``, ``/dev/videoN`` or a bare index → device; ``rtsp://``/``rtsps://`` → rtsp;
    ``gst://...`` or a string with ``!`` → gstreamer; a directory → folder; a file → file."""
    if spec.startswith("v4l2://") or spec.startswith("/dev/video") or spec.isdigit():
        return "device"
    if spec.startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    if spec.startswith("gst://") or "!" in spec:
        return "gstreamer"
    path = Path(spec)
    if path.is_dir():
        return "folder"
    if path.is_file():
        return "file"
    raise SourceError(spec, "no such video file, image folder, device or stream URL")


def open_camera_source(spec: str | int, **kwargs: Any) -> CameraSource:
    """Open ``spec`` as the camera source :func:`camera_source_kind` names."""
    spec = str(spec)
    return CAMERA_SOURCES[camera_source_kind(spec)](spec, **kwargs)
