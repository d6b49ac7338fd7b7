"""Serial link to the vehicle unit's microcontroller (GNSS UART, IMU, PPS, ignition), published onto the bus.

The wire protocol is written down in ``PROTOCOL.md`` beside this file: COBS-framed records
(``00 ‖ COBS(header ‖ payload ‖ CRC-32C) ‖ 00``) in :mod:`firmware_bridge.records`, read with
resynchronisation by :class:`~firmware_bridge.link.FrameDecoder` /
:class:`~firmware_bridge.link.SerialLink`, MCU ticks mapped to UTC from PPS edges by
:class:`~firmware_bridge.timesync.TickClock`, and turned into bus messages by
:class:`~firmware_bridge.bridge.BridgeCore` (pure) run by :class:`~firmware_bridge.bridge.Bridge`.
:class:`~firmware_bridge.simulator.FirmwareSimulator` plays the MCU on a pseudo-terminal.
The process is ``edge-agent bridge``.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "Bridge": "firmware_bridge.bridge",
    "BridgeCore": "firmware_bridge.bridge",
    "BridgeConfig": "firmware_bridge._config",
    "FirmwareSimulator": "firmware_bridge.simulator",
    "FrameDecoder": "firmware_bridge.link",
    "LinkStats": "firmware_bridge.link",
    "SerialLink": "firmware_bridge.link",
    "SyncState": "firmware_bridge.timesync",
    "TickClock": "firmware_bridge.timesync",
}


def __getattr__(name: str) -> Any:
    # Lazy, so that importing the package (e.g. for its config section) pulls in neither the
    # bus nor pyserial.
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'firmware_bridge' has no attribute {name!r}")


__all__ = ["Bridge", "BridgeConfig", "BridgeCore", "FirmwareSimulator", "FrameDecoder", "LinkStats", "SerialLink",
           "SyncState", "TickClock"]
