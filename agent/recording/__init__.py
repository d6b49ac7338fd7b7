"""Drive recordings: the bus to MCAP and back.

- :class:`DriveWriter` writes bus messages to a drive MCAP (zstd chunks; channel layout in
  :mod:`agent.recording._channels`: raw LiDAR packets byte-exact, GNSS fixes as
  ``foxglove.LocationFix``, camera frames as ``foxglove.CompressedImage``, NMEA as text).
- :func:`iter_drive` yields a recording's bus messages; :class:`DriveReader` gives the
  channels, metadata and truncation state too. A file cut short (power loss) reads up to
  its last complete message with a warning.
- :func:`replay` publishes a recording onto the bus (recorded speed or as fast as possible).
- :func:`record` writes what a bus carries; :func:`import_drive` builds a drive from a
  pcap / rosbag2 capture, an NMEA log and a video or image folder; :func:`drive_info`
  summarises a recording.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # static names for type checkers; at run time they load lazily
    from agent.recording._channels import (
        BUS_ENCODING,
        PROFILE,
        SCHEMAS,
        decode_payload,
        encode_payload,
        topic_for,
    )
    from agent.recording._config import RecordingConfig
    from agent.recording._import import ImportStats, import_drive
    from agent.recording._info import drive_info
    from agent.recording._reader import DriveReader, RawMessage, ReadStats, drive_metadata, iter_drive
    from agent.recording._record import RecordStats, record
    from agent.recording._replay import ReplayStats, parse_speed, replay
    from agent.recording._writer import DriveWriter

# Everything loads on first use: the configuration imports ``agent.recording._config``
# without paying for mcap, zstandard and the bus messages.
_LAZY = {
    "BUS_ENCODING": "agent.recording._channels",
    "PROFILE": "agent.recording._channels",
    "SCHEMAS": "agent.recording._channels",
    "decode_payload": "agent.recording._channels",
    "encode_payload": "agent.recording._channels",
    "topic_for": "agent.recording._channels",
    "DriveReader": "agent.recording._reader",
    "RawMessage": "agent.recording._reader",
    "ReadStats": "agent.recording._reader",
    "drive_metadata": "agent.recording._reader",
    "iter_drive": "agent.recording._reader",
    "ReplayStats": "agent.recording._replay",
    "parse_speed": "agent.recording._replay",
    "replay": "agent.recording._replay",
    "DriveWriter": "agent.recording._writer",
    "RecordingConfig": "agent.recording._config",
    "record": "agent.recording._record",
    "RecordStats": "agent.recording._record",
    "import_drive": "agent.recording._import",
    "ImportStats": "agent.recording._import",
    "drive_info": "agent.recording._info",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agent.recording' has no attribute {name!r}")


__all__ = [
    "BUS_ENCODING",
    "PROFILE",
    "SCHEMAS",
    "DriveReader",
    "DriveWriter",
    "ImportStats",
    "RawMessage",
    "ReadStats",
    "RecordStats",
    "RecordingConfig",
    "ReplayStats",
    "decode_payload",
    "drive_metadata",
    "drive_info",
    "encode_payload",
    "import_drive",
    "iter_drive",
    "parse_speed",
    "record",
    "replay",
    "topic_for",
]
