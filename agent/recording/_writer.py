"""Writing drive MCAPs: one channel per (bus type, source), zstd-compressed chunks."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import IO

from mcap.writer import CompressionType, Writer

from agent import __version__
from agent.bus.messages import Message, MessageType
from agent.errors import RecordingError
from agent.recording._channels import BUS_ENCODING, PROFILE, SCHEMAS, encode_payload, topic_for

DEFAULT_CHUNK_SIZE = 1024 * 1024  # ~1 s of VLP-16 packets: what a power cut can cost at most
LIBRARY = f"edge-agent {__version__}"


class DriveWriter:
    """Writes bus messages to a drive MCAP. Use as a context manager; ``close`` finishes the
    file (summary, indexes). ``flush_interval_s`` bounds how much a power cut can lose:
    the open chunk is closed and written out at least that often."""

    def __init__(
        self,
        path: str | Path | IO[bytes],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        compression: str = "zstd",
        metadata: dict[str, dict[str, str]] | None = None,
        flush_interval_s: float | None = None,
    ) -> None:
        self.path = path
        self.chunk_size = chunk_size
        try:
            self.compression = {
                "zstd": CompressionType.ZSTD,
                "lz4": CompressionType.LZ4,
                "none": CompressionType.NONE,
            }[compression]
        except KeyError:
            raise RecordingError(f"unknown compression {compression!r} (zstd, lz4 or none)") from None
        self.metadata = dict(metadata or {})
        self.flush_interval_s = flush_interval_s
        self._stream: IO[bytes] | None = None
        self._own_stream = False
        self._writer: Writer | None = None
        self._schemas: dict[MessageType, int] = {}
        self._channels: dict[tuple[MessageType, str], int] = {}
        self._seq: dict[int, int] = {}
        self._last_flush = time.monotonic()
        self.counts: dict[str, int] = {}
        self.messages = 0
        self.bytes = 0
        self._pending = 0  # messages count at the last flush

    def open(self) -> DriveWriter:
        if self._writer is not None:
            return self
        if isinstance(self.path, (str, Path)):
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
                self._stream = open(self.path, "wb")
            except OSError as exc:
                raise RecordingError(f"{self.path}: cannot write: {exc.strerror or exc}") from None
            self._own_stream = True
        else:
            self._stream = self.path
        self._writer = Writer(self._stream, chunk_size=self.chunk_size, compression=self.compression)
        self._writer.start(profile=PROFILE, library=LIBRARY)
        for name, data in self.metadata.items():
            self._writer.add_metadata(name, data)
        return self

    def __enter__(self) -> DriveWriter:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Finish the file: last chunk, summary and footer."""
        if self._writer is not None:
            self._writer.finish()
            self._writer = None
        if self._stream is not None and self._own_stream:
            self._stream.close()
        self._stream = None

    def _w(self) -> Writer:
        if self._writer is None:
            raise RecordingError(f"{self.path}: writer is not open")
        return self._writer

    def add_metadata(self, name: str, data: dict[str, str]) -> None:
        """A metadata record (all values strings), e.g. sensor calibration or drive facts."""
        self._w().add_metadata(name, {str(k): str(v) for k, v in data.items()})

    def _channel(self, msg: Message) -> int:
        src = getattr(msg, "camera_id", "") or msg.source
        key = (msg.TYPE, src)
        cid = self._channels.get(key)
        if cid is not None:
            return cid
        w = self._w()
        kind = msg.TYPE
        meta = {"bus_type": kind.name, "source": msg.source}
        if kind is MessageType.LIDAR_PACKET:
            sid, enc = 0, BUS_ENCODING
            meta["wire_version"] = "1"
        else:
            sid = self._schemas.get(kind, 0)
            if not sid:
                name, data = SCHEMAS[kind]
                sid = w.register_schema(name=name, encoding="jsonschema", data=data)
                self._schemas[kind] = sid
            enc = "json"
        cid = w.register_channel(topic=topic_for(msg), message_encoding=enc, schema_id=sid, metadata=meta)
        self._channels[key] = cid
        return cid

    def write(self, msg: Message, publish_time_ns: int | None = None) -> None:
        """Append one bus message (``log_time`` = its ``utc_ns``)."""
        self.write_encoded(msg, encode_payload(msg), publish_time_ns)

    def write_encoded(self, msg: Message, data: bytes, publish_time_ns: int | None = None) -> None:
        """Append a message whose MCAP payload is already made (``data``): the recorder
        passes a LiDAR packet's bus bytes as received, without encoding them again."""
        w = self._w()
        cid = self._channel(msg)
        seq = self._seq.get(cid, 0) + 1
        self._seq[cid] = seq
        log_time = max(0, msg.utc_ns)
        w.add_message(
            channel_id=cid,
            log_time=log_time,
            data=data,
            publish_time=log_time if publish_time_ns is None else publish_time_ns,
            sequence=seq,
        )
        self.messages += 1
        self.bytes += len(data)
        self.counts[msg.TYPE.name] = self.counts.get(msg.TYPE.name, 0) + 1
        self.maybe_flush()

    def maybe_flush(self) -> None:
        """Flush when ``flush_interval_s`` has passed since the last flush (call it while idle too)."""
        if self.flush_interval_s is not None and time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def flush(self) -> None:
        """Close the open chunk and push it to the disk (bounds what a power cut loses)."""
        self._last_flush = time.monotonic()
        w = self._w()
        if self._pending == self.messages:
            return  # nothing new since the last flush
        self._pending = self.messages
        if hasattr(w, "flush"):  # mcap >= 1.2.2
            w.flush()
        if self._stream is not None:
            self._stream.flush()
            if self._own_stream:
                os.fsync(self._stream.fileno())
