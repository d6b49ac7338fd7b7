"""Camera processing: keyframes by distance travelled, blur rejection, privacy redaction
(faces, licence plates, pedestrians) and JPEG with GPS EXIF.

The stage is :class:`CameraStage` (built from config by :func:`camera_stage_from_config`); its
only output, :class:`Keyframe`, is made from a :class:`RedactedImage`, which only
:meth:`Redactor.redact` makes. OpenCV is imported when first used.
"""

from __future__ import annotations

from pipeline.camera._config import CameraProcessingConfig, RedactionConfig
from pipeline.camera.blur import is_blurry, laplacian_variance
from pipeline.camera.exif import build_exif, insert_exif
from pipeline.camera.keyframes import GnssTrack, KeyframeSelector, Position, haversine_m, select_keyframes
from pipeline.camera.process import (
    BLURRY,
    KEYFRAME,
    NO_POSITION,
    NOT_DUE,
    CameraStage,
    DirectorySink,
    Keyframe,
    StageResult,
    camera_stage_from_config,
)
from pipeline.camera.redact import Box, HaarDetector, RedactedImage, Redactor, redactor_from_config

__all__ = [
    "BLURRY",
    "KEYFRAME",
    "NOT_DUE",
    "NO_POSITION",
    "Box",
    "CameraProcessingConfig",
    "CameraStage",
    "DirectorySink",
    "GnssTrack",
    "HaarDetector",
    "Keyframe",
    "KeyframeSelector",
    "Position",
    "RedactedImage",
    "RedactionConfig",
    "Redactor",
    "StageResult",
    "build_exif",
    "camera_stage_from_config",
    "haversine_m",
    "insert_exif",
    "is_blurry",
    "laplacian_variance",
    "redactor_from_config",
    "select_keyframes",
]
