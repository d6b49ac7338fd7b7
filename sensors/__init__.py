"""Device bytes to typed frames: packet sources, LiDAR decoders, GNSS, IMU and camera readers."""

__all__: list[str] = []
