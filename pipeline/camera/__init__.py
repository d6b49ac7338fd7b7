"""Camera processing: keyframes by distance travelled, blur rejection, privacy redaction
(faces, licence plates, pedestrians) and JPEG with GPS EXIF.

- :mod:`pipeline.camera.keyframes`: :class:`GnssTrack` (positions and an odometer from GNSS
  fixes), :class:`KeyframeSelector`.
- :mod:`pipeline.camera.blur`: variance of the Laplacian.
- :mod:`pipeline.camera.redact`: :class:`HaarDetector`, :class:`Redactor` → :class:`RedactedImage`.
- :mod:`pipeline.camera.exif`: GPS and time EXIF (piexif).
- :mod:`pipeline.camera.process`: the stage, :class:`CameraStage` (from config:
  :func:`camera_stage_from_config`), whose only output, :class:`Keyframe`, is made from a
  :class:`RedactedImage`, which only :meth:`Redactor.redact` makes; :class:`DirectorySink`.

Names are imported on first use (``CameraProcessingConfig`` loads without OpenCV or numpy).
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "CameraProcessingConfig": "pipeline.camera._config",
    "RedactionConfig": "pipeline.camera._config",
    "is_blurry": "pipeline.camera.blur",
    "laplacian_variance": "pipeline.camera.blur",
    "build_exif": "pipeline.camera.exif",
    "insert_exif": "pipeline.camera.exif",
    "GnssTrack": "pipeline.camera.keyframes",
    "KeyframeSelector": "pipeline.camera.keyframes",
    "Position": "pipeline.camera.keyframes",
    "haversine_m": "pipeline.camera.keyframes",
    "select_keyframes": "pipeline.camera.keyframes",
    "BLURRY": "pipeline.camera.process",
    "KEYFRAME": "pipeline.camera.process",
    "NOT_DUE": "pipeline.camera.process",
    "NO_POSITION": "pipeline.camera.process",
    "CameraStage": "pipeline.camera.process",
    "DirectorySink": "pipeline.camera.process",
    "Keyframe": "pipeline.camera.process",
    "StageResult": "pipeline.camera.process",
    "camera_stage_from_config": "pipeline.camera.process",
    "Box": "pipeline.camera.redact",
    "HaarDetector": "pipeline.camera.redact",
    "RedactedImage": "pipeline.camera.redact",
    "Redactor": "pipeline.camera.redact",
    "redactor_from_config": "pipeline.camera.redact",
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'pipeline.camera' has no attribute {name!r}")
