"""Configuration of one camera source."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CameraSourceConfig(BaseModel):
    """One camera: where frames come from and how they are put on the bus."""

    model_config = ConfigDict(extra="forbid")

    source: str = Field(..., min_length=1, description="v4l2://0, /dev/video0, a video file, rtsp://..., "
                                                       "gst://<pipeline ending in appsink>, or an image folder")
    camera_id: str = Field("cam0", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    max_fps: float | None = Field(None, gt=0, description="drop frames beyond this rate")
    jpeg_quality: int = Field(90, ge=1, le=100)
    reconnect: bool | None = Field(None, description="re-open a lost stream (default: live streams yes, files no)")
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(10.0, gt=0)
    backoff_max_attempts: int | None = Field(10, ge=1, description="None: retry forever")
