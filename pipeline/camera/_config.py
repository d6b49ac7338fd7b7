"""Configuration of the camera processing stage (section ``camera_processing``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RedactionConfig(BaseModel):
    """Privacy redaction: which OpenCV Haar cascades run and how each box is hidden."""

    model_config = ConfigDict(extra="forbid")

    faces: bool = Field(True, description="haarcascade_frontalface_default")
    profile_faces: bool = Field(
        False, description="haarcascade_profileface too (about twice the frontal cost)"
    )
    plates: bool = Field(True, description="haarcascade_russian_plate_number + license_plate_rus_16stages")
    persons: bool = Field(
        True, description="haarcascade_fullbody: whole pedestrians (faces too small to detect)"
    )
    method: str = Field("pixelate", pattern="^(pixelate|blur)$")
    margin: float = Field(
        0.2, ge=0.0, le=2.0, description="grow each box by this fraction of its size per side"
    )
    block_px: int = Field(12, ge=2, le=256, description="pixelation block size (at least long side / 6)")
    scale_factor: float = Field(1.1, gt=1.0, le=2.0, description="cascade image pyramid step")
    min_neighbors: int = Field(4, ge=0, le=50)
    min_size_px: int = Field(
        24, ge=8, le=512, description="smallest box the cascades look for (full-size pixels)"
    )
    detect_max_side: int | None = Field(
        None,
        ge=160,
        description="downscale the image so its long side is at most "
        "this for detection (speed on a Pi; None: full size)",
    )


class CameraProcessingConfig(BaseModel):
    """Camera keyframes: chosen by distance travelled, sharp, redacted, JPEG with GPS EXIF."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="whether the daemon/replay runs the camera stage at all")
    keyframe_every_m: float = Field(
        5.0, gt=0.0, description="one keyframe per this many metres along the track"
    )
    min_interval_s: float = Field(0.5, ge=0.0, description="at least this long between two keyframes")
    stationary_speed_mps: float = Field(
        0.5,
        ge=0.0,
        description="GNSS segments slower than this add no distance (position noise while parked)",
    )
    max_gnss_gap_s: float = Field(
        5.0, gt=0.0, description="no position between fixes further apart than this"
    )
    max_extrapolation_s: float = Field(
        1.0, ge=0.0, description="dead-reckon past the last fix at most this long"
    )
    blur_threshold: float = Field(
        100.0, ge=0.0, description="reject frames whose Laplacian variance is below (0 disables)"
    )
    blur_max_side: int = Field(640, ge=64, description="long side of the grey image the blur measure runs on")
    jpeg_quality: int = Field(85, ge=1, le=100)
    make: str = Field("edge-agent", max_length=64, description="EXIF Make")
    camera_yaw_deg: dict[str, float] = Field(
        default_factory=dict,
        description="camera id -> heading on the vehicle "
        "(0 forward, 90 right, 180 back) for EXIF GPSImgDirection",
    )
    redaction: RedactionConfig = Field(default_factory=RedactionConfig)
