"""Exceptions of the sensors package."""

from __future__ import annotations


class SensorError(Exception):
    """Base of the sensors package's errors; bad input the user can fix (exit code 2)."""

    exit_code = 2


class SourceError(SensorError):
    """A packet source cannot be opened or read (missing file, not a capture, not a bag)."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


class DecodeError(SensorError):
    """Packets cannot be decoded at all (unknown sensor, metadata that does not match)."""

    def __init__(self, reason: str, packet_index: int | None = None) -> None:
        self.packet_index = packet_index
        self.reason = reason
        where = f"packet {packet_index}: " if packet_index is not None else ""
        super().__init__(f"{where}{reason}")


class MetadataError(SensorError):
    """Sensor metadata (e.g. Ouster JSON) is missing fields or does not match the data."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


class NmeaError(SensorError):
    """An NMEA 0183 sentence is rejected; ``reason`` says why (checksum, field, type)."""

    def __init__(self, reason: str, sentence: str = "") -> None:
        self.reason = reason
        self.sentence = sentence
        shown = sentence if len(sentence) <= 90 else sentence[:87] + "..."
        super().__init__(f"{reason}: {shown!r}" if sentence else reason)


class LogFormatError(SensorError):
    """A line of a sensor log file (e.g. a GENIVI log) is malformed; names file and line."""

    def __init__(self, path: str, line_no: int, reason: str) -> None:
        self.path = path
        self.line_no = line_no
        self.reason = reason
        super().__init__(f"{path}:{line_no}: {reason}")
