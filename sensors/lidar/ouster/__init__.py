"""Ouster OS-0/OS-1/OS-2 LiDAR decoding, driven by the sensor's metadata JSON.

:class:`OusterDecoder` implements :class:`sensors.lidar.LidarDecoder`: lidar packets (UDP 7502
by default) become one :class:`sensors.lidar.Scan` per frame, with ouster-sdk's geometry and
destaggered images in ``Scan.extras`` (see ``_decoder`` for every convention, notably
ring 0 = lowest beam while image row 0 = top beam). Profiles: LEGACY, RNG19_RFL8_SIG16_NIR16,
RNG19_RFL8_SIG16_NIR16_DUAL, RNG15_RFL8_NIR8, RNG15_RFL8_NIR8_DUAL, FIVE_WORD_PIXEL.
IMU packets (UDP 7503, 48 bytes) decode with :func:`decode_imu_packet`; accelerations are in
g, angular velocities in deg/s.
"""

from sensors.lidar.ouster._decoder import OusterDecoder, xyz_lut
from sensors.lidar.ouster._imu import ImuSample, decode_imu_array, decode_imu_packet
from sensors.lidar.ouster._metadata import OusterMetadata, load_metadata, parse_metadata
from sensors.lidar.ouster._profiles import LIDAR_PROFILES, LidarProfile

__all__ = [
    "LIDAR_PROFILES",
    "ImuSample",
    "LidarProfile",
    "OusterDecoder",
    "OusterMetadata",
    "decode_imu_array",
    "decode_imu_packet",
    "load_metadata",
    "parse_metadata",
    "xyz_lut",
]
