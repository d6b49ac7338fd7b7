"""Privacy redaction of faces, licence plates and pedestrians before a frame is stored or sent.

Detection uses the Haar cascades that ship inside OpenCV 4.x's wheel (``cv2.data.haarcascades``;
OpenCV 5 dropped them, hence the ``<5`` pin): frontal faces, optionally profile faces, the two
Russian-plate cascades for licence plates, and the full-body cascade for pedestrians (on car
cameras most faces are too small for the face cascade, the whole person is not). No model is
downloaded. A cascade missing from the installed OpenCV is a :class:`RedactionError`: the stage
stops rather than pass a frame unredacted.

Each detected box is grown by ``margin`` and pixelated (blocks of at least a sixth of the box's
long side) or Gaussian-blurred with a sigma of a quarter of it: both unreadable.

Speed against coverage (review of 2026-11-25, six nuScenes 1600x900 frames, 2 shared cores;
``bench camera`` and the ``detect at N px`` rows): full size costs 0.7-1.7 s a frame (frontal
face about half of it, full body a third, plates a fifth). Every faster setting tried hides fewer
of the full-size detections: ``detect_max_side`` 1280 / 960 / 640 is 1.3-2.3x / 1.8-3.7x / 3.3x
faster and still hides 6 / 5 / 4 of the 11 full-size boxes; a per-cascade downscale that keeps
each cascade's smallest box (full body at 0.58, plates at 0.67-0.83) 7 of 11 at about 1.6x;
``scale_factor`` 1.2 3 of 11; faces only inside person boxes 4 of 11; one OpenCV thread instead
of two is 1.5-2x slower for the same boxes. So full size stays the default. Of the 7 pedestrians
a person can see on those frames the default finds 2 (960 px: none); the face cascade never
fires on a real face there (faces are under 24 px), its hits are textures.

The seal: :class:`RedactedImage` can only be made by :meth:`Redactor.redact`, its pixels are
read-only, and it is the only thing :mod:`pipeline.camera` turns into JPEG bytes
(:meth:`RedactedImage.to_jpeg`); the stage's :class:`~pipeline.camera.process.Keyframe` is built
from one. So the stage API has no path from a camera frame to JPEG bytes that skips redaction.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import NamedTuple, Protocol, runtime_checkable

import numpy as np

from pipeline.camera._config import RedactionConfig
from pipeline.camera._cv import cv2_module
from pipeline.errors import RedactionError

#: detection kind → cascade files (in ``cv2.data.haarcascades``) that find it
CASCADES: dict[str, tuple[str, ...]] = {
    "face": ("haarcascade_frontalface_default.xml",),
    "profile_face": ("haarcascade_profileface.xml",),
    "plate": ("haarcascade_russian_plate_number.xml", "haarcascade_license_plate_rus_16stages.xml"),
    "person": ("haarcascade_fullbody.xml",),
}


class Box(NamedTuple):
    """A detected region in full-size image pixels."""

    x: int
    y: int
    w: int
    h: int
    kind: str  # face, profile_face, plate, person

    def grown(self, margin: float, width: int, height: int) -> Box:
        """This box grown by ``margin`` of its size on each side, clipped to the image."""
        mx, my = math.ceil(self.w * margin), math.ceil(self.h * margin)
        x0, y0 = max(0, self.x - mx), max(0, self.y - my)
        x1, y1 = min(width, self.x + self.w + mx), min(height, self.y + self.h + my)
        return Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0), self.kind)


@runtime_checkable
class Detector(Protocol):
    """Finds regions to redact in a BGR image."""

    name: str

    def detect(self, image: np.ndarray) -> list[Box]: ...


def cascade_dir() -> str:
    """Where the installed OpenCV keeps its Haar cascades."""
    cv2 = cv2_module()
    data = getattr(cv2, "data", None)
    d = getattr(data, "haarcascades", None) if data is not None else None
    if not d:
        raise RedactionError(
            f"OpenCV {cv2.__version__} has no cv2.data.haarcascades (OpenCV 5 dropped the "
            "Haar cascades): install opencv-python-headless<5"
        )
    return str(d)


class HaarDetector:
    """OpenCV Haar cascades over a histogram-equalised grey image, optionally downscaled so its
    long side is at most ``detect_max_side`` (boxes are scaled back to full size)."""

    def __init__(
        self,
        kinds: Sequence[str] = ("face", "plate", "person"),
        *,
        scale_factor: float = 1.1,
        min_neighbors: int = 4,
        min_size_px: int = 24,
        detect_max_side: int | None = None,
        directory: str | None = None,
    ) -> None:
        cv2 = cv2_module()
        if not hasattr(cv2, "CascadeClassifier"):
            raise RedactionError(
                f"OpenCV {cv2.__version__} has no CascadeClassifier (removed in OpenCV 5): "
                "install opencv-python-headless<5"
            )
        unknown = [k for k in kinds if k not in CASCADES]
        if unknown:
            raise RedactionError(f"unknown detection kind(s) {unknown}; known: {sorted(CASCADES)}")
        if not kinds:
            raise RedactionError("no detection kind enabled: redaction would hide nothing")
        self.kinds = tuple(kinds)
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size_px = min_size_px
        self.detect_max_side = detect_max_side
        base = directory or cascade_dir()
        self._cascades: list[tuple[str, str, object]] = []
        for kind in self.kinds:
            for fname in CASCADES[kind]:
                path = os.path.join(base, fname)
                if not os.path.isfile(path):
                    raise RedactionError(f"Haar cascade {fname} is not in {base}")
                try:
                    clf = cv2.CascadeClassifier(path)
                except (cv2.error, SystemError) as exc:  # a file that is not a cascade
                    raise RedactionError(f"Haar cascade {path} did not load: {exc}") from exc
                if clf.empty():
                    raise RedactionError(f"Haar cascade {path} did not load")
                self._cascades.append((kind, fname, clf))
        self.name = "haar:" + "+".join(self.kinds)

    @property
    def cascade_files(self) -> list[str]:
        """The cascade files in use."""
        return [f for _, f, _ in self._cascades]

    def detect(self, image: np.ndarray) -> list[Box]:
        """Boxes of every enabled kind in a BGR (or grey) uint8 image, in full-size pixels."""
        cv2 = cv2_module()
        grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
        h, w = grey.shape[:2]
        scale = 1.0
        if self.detect_max_side and max(h, w) > self.detect_max_side:
            scale = self.detect_max_side / max(h, w)
            grey = cv2.resize(grey, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        grey = cv2.equalizeHist(grey)  # the cascades were trained on equalised patches
        m = max(8, round(self.min_size_px * scale))
        out: list[Box] = []
        for kind, _, clf in self._cascades:
            found = clf.detectMultiScale(
                grey,
                scaleFactor=self.scale_factor,  # type: ignore[attr-defined]
                minNeighbors=self.min_neighbors,
                minSize=(m, m),
            )
            for bx, by, bw, bh in np.asarray(found).reshape(-1, 4):
                x0, y0 = math.floor(bx / scale), math.floor(by / scale)
                x1, y1 = min(w, math.ceil((bx + bw) / scale)), min(h, math.ceil((by + bh) / scale))
                out.append(Box(x0, y0, x1 - x0, y1 - y0, kind))
        return out


_SEAL = object()


class RedactedImage:
    """A frame after redaction: read-only pixels, the detections and the regions hidden.
    Made only by :meth:`Redactor.redact`."""

    __slots__ = ("_image", "boxes", "detector", "regions")

    def __init__(
        self, image: np.ndarray, boxes: list[Box], regions: list[Box], detector: str, *, _seal: object = None
    ) -> None:
        if _seal is not _SEAL:
            raise TypeError("a RedactedImage is made only by Redactor.redact()")
        image.flags.writeable = False
        self._image = image
        self.boxes = tuple(boxes)
        self.regions = tuple(regions)
        self.detector = detector

    @property
    def image(self) -> np.ndarray:
        """The redacted BGR pixels: a read-only view (its flag cannot be turned back on, the
        array it views is read-only too)."""
        return self._image.view()

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._image.shape)

    def to_jpeg(self, quality: int = 85, exif: bytes | None = None) -> bytes:
        """The redacted image as JPEG at ``quality``, with an EXIF APP1 segment when given
        (bytes as :func:`pipeline.camera.exif.build_exif` makes them). No thumbnail is ever
        embedded (it would be a second copy to redact)."""
        cv2 = cv2_module()
        if not 1 <= quality <= 100:
            raise ValueError(f"JPEG quality {quality} is not in 1..100")
        ok, buf = cv2.imencode(".jpg", self._image, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
        if not ok:
            raise RedactionError("JPEG encoding of the redacted frame failed")
        data = buf.tobytes()
        if exif is not None:
            from pipeline.camera.exif import insert_exif

            data = insert_exif(data, exif)
        return data


def pixelate(region: np.ndarray, block_px: int = 12) -> np.ndarray:
    """``region`` as coarse blocks: at least ``block_px`` and at least a sixth of the long side,
    so even a large face becomes a 6x6 mosaic at most."""
    cv2 = cv2_module()
    h, w = region.shape[:2]
    block = max(block_px, math.ceil(max(h, w) / 6))
    small = cv2.resize(
        region, (max(1, math.ceil(w / block)), max(1, math.ceil(h / block))), interpolation=cv2.INTER_AREA
    )
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST)


def strong_blur(region: np.ndarray) -> np.ndarray:
    """``region`` Gaussian-blurred with a sigma of a quarter of its long side."""
    cv2 = cv2_module()
    h, w = region.shape[:2]
    return cv2.GaussianBlur(region, (0, 0), sigmaX=max(2.0, max(h, w) / 4.0), borderType=cv2.BORDER_REPLICATE)


class Redactor:
    """Detect, then hide each detection grown by ``margin``."""

    def __init__(
        self, detector: Detector, *, method: str = "pixelate", margin: float = 0.2, block_px: int = 12
    ) -> None:
        if method not in ("pixelate", "blur"):
            raise RedactionError(f"unknown redaction method {method!r} (pixelate or blur)")
        if not isinstance(detector, Detector):
            raise RedactionError(f"{detector!r} is not a Detector")
        self.detector = detector
        self.method = method
        self.margin = margin
        self.block_px = block_px

    def redact(self, image: np.ndarray) -> RedactedImage:
        """A redacted copy of a BGR uint8 image (the input is left as it is)."""
        if (
            not isinstance(image, np.ndarray)
            or image.dtype != np.uint8
            or image.ndim != 3
            or image.shape[2] != 3
        ):
            raise RedactionError(
                f"expected a BGR uint8 image (H, W, 3), got "
                f"{getattr(image, 'dtype', type(image).__name__)} {getattr(image, 'shape', '')}"
            )
        h, w = image.shape[:2]
        out = np.array(image, copy=True, order="C")
        boxes = self.detector.detect(out)
        regions = [b.grown(self.margin, w, h) for b in boxes]
        for r in regions:
            if r.w == 0 or r.h == 0:
                continue
            roi = out[r.y : r.y + r.h, r.x : r.x + r.w]
            roi[...] = pixelate(roi, self.block_px) if self.method == "pixelate" else strong_blur(roi)
        return RedactedImage(out, boxes, regions, self.detector.name, _seal=_SEAL)


def detector_from_config(cfg: RedactionConfig) -> HaarDetector:
    """The Haar detector a :class:`RedactionConfig` describes."""
    kinds = [
        k
        for k, on in (
            ("face", cfg.faces),
            ("profile_face", cfg.profile_faces),
            ("plate", cfg.plates),
            ("person", cfg.persons),
        )
        if on
    ]
    return HaarDetector(
        kinds,
        scale_factor=cfg.scale_factor,
        min_neighbors=cfg.min_neighbors,
        min_size_px=cfg.min_size_px,
        detect_max_side=cfg.detect_max_side,
    )


def redactor_from_config(cfg: RedactionConfig, detector: Detector | None = None) -> Redactor:
    """A :class:`Redactor` from config (``detector`` overrides the Haar one, e.g. a better model)."""
    return Redactor(
        detector or detector_from_config(cfg), method=cfg.method, margin=cfg.margin, block_px=cfg.block_px
    )
