"""Ouster IMU packets (``udp_profile_imu`` LEGACY, 48 bytes, UDP 7503 by default).

Layout (little-endian): system timestamp u64 ns @0, accelerometer read time u64 ns @8, gyroscope
read time u64 ns @16, linear acceleration x/y/z float32 @24/28/32 in g, angular velocity
x/y/z float32 @36/40/44 in deg/s. :class:`ImuSample` keeps those units (``accel_g``,
``gyro_dps``) and converts on request (``accel_mps2``, ``gyro_rps``: the units ouster-sdk 1.x
reports). Axes are the IMU's own frame (``imu_to_sensor_transform`` in the metadata takes them
to the sensor frame).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sensors.errors import DecodeError
from sensors.lidar.ouster._profiles import IMU_PACKET_BYTES

STANDARD_GRAVITY = 9.80665  # m/s² per g

IMU_DTYPE = np.dtype([
    ("sys_ts", "<u8"), ("accel_ts", "<u8"), ("gyro_ts", "<u8"),
    ("accel", "<f4", (3,)), ("gyro", "<f4", (3,)),
])
assert IMU_DTYPE.itemsize == IMU_PACKET_BYTES


@dataclass(frozen=True)
class ImuSample:
    """One IMU packet. Timestamps are the sensor's clock in nanoseconds; ``capture_time`` is
    when the packet was received (seconds since the epoch, from the packet source)."""

    sys_ts: int
    accel_ts: int
    gyro_ts: int
    accel_g: tuple[float, float, float]  # linear acceleration, g
    gyro_dps: tuple[float, float, float]  # angular velocity, degrees per second
    capture_time: float = 0.0

    @property
    def accel_mps2(self) -> tuple[float, float, float]:
        """Linear acceleration in m/s² (``accel_g`` times standard gravity)."""
        ax, ay, az = self.accel_g
        return (ax * STANDARD_GRAVITY, ay * STANDARD_GRAVITY, az * STANDARD_GRAVITY)

    @property
    def gyro_rps(self) -> tuple[float, float, float]:
        """Angular velocity in rad/s."""
        k = np.pi / 180.0
        gx, gy, gz = self.gyro_dps
        return (gx * k, gy * k, gz * k)


def decode_imu_packet(data: bytes, capture_time: float = 0.0) -> ImuSample:
    """Decode one LEGACY IMU packet; raises :class:`DecodeError` when it is not 48 bytes."""
    if len(data) != IMU_PACKET_BYTES:
        raise DecodeError(f"an Ouster IMU packet is {IMU_PACKET_BYTES} bytes, got {len(data)}")
    rec = np.frombuffer(data, dtype=IMU_DTYPE, count=1)[0]
    accel = rec["accel"].astype(np.float64)
    gyro = rec["gyro"].astype(np.float64)
    return ImuSample(int(rec["sys_ts"]), int(rec["accel_ts"]), int(rec["gyro_ts"]),
                     (float(accel[0]), float(accel[1]), float(accel[2])),
                     (float(gyro[0]), float(gyro[1]), float(gyro[2])), float(capture_time))


def decode_imu_array(data: np.ndarray) -> np.ndarray:
    """Decode many IMU packets at once: ``data`` is (n, 48) uint8, the result a structured
    array with fields ``sys_ts``, ``accel_ts``, ``gyro_ts`` (ns), ``accel`` (n, 3, g) and
    ``gyro`` (n, 3, deg/s)."""
    data = np.ascontiguousarray(data, dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != IMU_PACKET_BYTES:
        raise DecodeError(f"IMU packets must be an (n, {IMU_PACKET_BYTES}) uint8 array, got {data.shape}")
    return data.view(IMU_DTYPE).reshape(-1).copy()
