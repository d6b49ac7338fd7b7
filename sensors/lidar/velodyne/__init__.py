"""Velodyne LiDAR decoding: VLP-16 (Puck LITE, Puck Hi-Res), VLP-32C, HDL-32E and VLS-128.

:class:`VelodyneDecoder` turns data packets (UDP 2368, 1206 bytes) into scans with numba
kernels working on many packets at once; position packets (UDP 8308, 512 bytes) become
:class:`PositionInfo` via :func:`parse_position_packet`.
"""

from sensors.lidar.velodyne._decoder import VelodyneDecoder, detect_model
from sensors.lidar.velodyne._models import MODELS, VelodyneModel, model_by_name
from sensors.lidar.velodyne._position import PositionInfo, parse_position_packet

__all__ = [
    "MODELS",
    "PositionInfo",
    "VelodyneDecoder",
    "VelodyneModel",
    "detect_model",
    "model_by_name",
    "parse_position_packet",
]
