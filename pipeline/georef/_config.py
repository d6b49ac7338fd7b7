"""Configuration of georeferencing: sensor extrinsics, GNSS antenna lever arm, fix quality."""

from __future__ import annotations

import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class Extrinsics(BaseModel):
    """A sensor's mounting in the vehicle frame (x forward, y left, z up, origin on the
    ground below the vehicle's reference point): lever arm in metres and rotation as
    roll/pitch/yaw in degrees (``R = Rz(yaw) Ry(pitch) Rx(roll)``, sensor → vehicle)."""

    model_config = ConfigDict(extra="forbid")

    xyz: tuple[float, float, float] = (0.0, 0.0, 1.9)
    rpy_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def rotation(self) -> np.ndarray:
        from pipeline.georef.frames import rpy_matrix

        r, p, y = (math.radians(v) for v in self.rpy_deg)
        return rpy_matrix(r, p, y)

    def translation(self) -> np.ndarray:
        return np.asarray(self.xyz, dtype=np.float64)


class GeorefConfig(BaseModel):
    """Pose from GNSS (+ IMU) and georeferencing of LiDAR points."""

    model_config = ConfigDict(extra="forbid")

    lidar: Extrinsics = Field(default_factory=Extrinsics, description="LiDAR mounting (sensor → vehicle)")
    antenna_xyz: tuple[float, float, float] = Field(
        (0.0, 0.0, 1.95), description="GNSS antenna phase centre in the vehicle frame, metres")
    accepted_fix_types: list[int] = Field(
        # agent.bus.messages.FixType values: GPS, DGPS, PPS, RTK fixed, RTK float
        default_factory=lambda: [1, 2, 3, 4, 5],
        description="GGA fix qualities trusted for a pose (not by default: 0 no fix, 6 dead reckoning, "
                    "7 manual, 8 simulated)")
    max_hdop: float = Field(5.0, gt=0, description="fixes with a larger HDOP give no pose")
    max_gap_s: float = Field(1.5, gt=0, description="no pose between two fixes further apart than this")
    max_extrapolation_s: float = Field(0.15, ge=0, description="pose this far past the last fix (at its velocity)")
    min_course_speed_mps: float = Field(
        1.0, ge=0, description="heading from course over ground at or above this speed, from the IMU yaw rate below")
    max_imu_gap_s: float = Field(0.25, gt=0, description="an IMU stream with a longer gap does not cover a segment")
    use_imu: bool = True
    deskew: bool = Field(True, description="pose at each point's own time (else one pose per scan)")
    origin: tuple[float, float, float] | None = Field(
        None, description="local ENU origin lat, lon (deg), ellipsoidal height (m); default the first good fix")
