"""OpenCV imported lazily, failing with a typed error (STYLE.md habit 10)."""

from __future__ import annotations

from typing import Any

from pipeline.errors import CameraProcessingError


def cv2_module() -> Any:
    """The ``cv2`` module; CameraProcessingError when OpenCV is not installed."""
    try:
        import cv2
    except ImportError:
        raise CameraProcessingError(
            "OpenCV is not installed: pip install 'opencv-python-headless<5'"
        ) from None
    return cv2
