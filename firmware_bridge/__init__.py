"""Serial link to the vehicle unit's microcontroller (GNSS UART, IMU, PPS, ignition), published onto the bus."""

__all__: list[str] = []
