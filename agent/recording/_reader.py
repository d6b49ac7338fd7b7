"""Reading drive MCAPs front to back, tolerant of a file cut short.

A recording interrupted by a power loss ends inside a chunk (or inside any record). This
reader walks the records in order (like mcap's non-seeking ``StreamReader``), and when the
file ends early it decompresses what is there of the last chunk (zstd decodes a prefix of a
frame), yields every message that is complete, and stops with one warning: a truncated
recording replays up to its last complete message and never raises for the cut itself.
"""

from __future__ import annotations

import logging
import mmap
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import zstandard

from agent.bus.messages import Message, MessageType
from agent.errors import RecordingError
from agent.recording._channels import channel_bus_type, decode_payload

log = logging.getLogger(__name__)

MAGIC = b"\x89MCAP0\r\n"
OP_HEADER, OP_FOOTER, OP_SCHEMA, OP_CHANNEL, OP_MESSAGE, OP_CHUNK = 0x01, 0x02, 0x03, 0x04, 0x05, 0x06
OP_METADATA, OP_DATA_END = 0x0C, 0x0F

_REC = struct.Struct("<BQ")
_MSG = struct.Struct("<HIQQ")
_CHUNK = struct.Struct("<QQQI")
_U16, _U32, _U64 = struct.Struct("<H"), struct.Struct("<I"), struct.Struct("<Q")


class _Short(Exception):
    """A record runs past the end of the data (the file was cut)."""


class RawMessage(NamedTuple):
    """One MCAP message as stored."""

    channel_id: int
    sequence: int
    log_time: int
    publish_time: int
    data: bytes


@dataclass
class Channel:
    id: int
    schema_id: int
    topic: str
    message_encoding: str
    metadata: dict[str, str]
    schema_name: str = ""
    schema_encoding: str = ""
    bus_type: MessageType | None = None


@dataclass
class ReadStats:
    """What a pass over the file saw."""

    messages: int = 0
    bytes: int = 0  # message payload bytes
    chunks: int = 0
    truncated: bool = False
    complete: bool = False  # the data section ended properly (DataEnd seen)
    warnings: list[str] = field(default_factory=list)


def _string(buf: memoryview, pos: int) -> tuple[str, int]:
    (n,) = _U32.unpack_from(buf, pos)
    end = pos + 4 + n
    if end > len(buf):
        raise _Short
    return bytes(buf[pos + 4 : end]).decode("utf-8"), end


def _map(buf: memoryview, pos: int) -> tuple[dict[str, str], int]:
    (n,) = _U32.unpack_from(buf, pos)
    end = pos + 4 + n
    pos += 4
    out = {}
    while pos < end:
        k, pos = _string(buf, pos)
        v, pos = _string(buf, pos)
        out[k] = v
    return out, end


class DriveReader:
    """Reads a drive MCAP in file order. Use as a context manager::

        with DriveReader("drive.mcap") as r:
            for msg in r.messages():
                ...

    ``channels`` fills in as channel records are met; ``metadata`` holds the file's metadata
    records (name → mapping); ``stats`` tells whether the file was cut short.
    """

    def __init__(self, path: str | Path, validate_crcs: bool = True) -> None:
        self.path = Path(path)
        self.validate_crcs = validate_crcs
        self.channels: dict[int, Channel] = {}
        self.schemas: dict[int, tuple[str, str, bytes]] = {}
        self.metadata: dict[str, dict[str, str]] = {}
        self.header: tuple[str, str] = ("", "")
        self.stats = ReadStats()
        self._file = None
        self._map: mmap.mmap | None = None

    def open(self) -> DriveReader:
        if self._file is not None:
            return self
        try:
            self._file = open(self.path, "rb")
        except OSError as exc:
            raise RecordingError(f"{self.path}: cannot open: {exc.strerror or exc}") from None
        size = self.path.stat().st_size
        if size < len(MAGIC):
            self.close()
            raise RecordingError(f"{self.path}: not an MCAP file ({size} bytes)")
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ)
        if self._map[: len(MAGIC)] != MAGIC:
            self.close()
            raise RecordingError(f"{self.path}: not an MCAP file (bad magic)")
        return self

    def close(self) -> None:
        if self._map is not None:
            try:
                self._map.close()
            except BufferError:  # a generator left unfinished still holds a view; GC closes it
                pass
            self._map = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> DriveReader:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- records ---------------------------------------------------------------------------

    def _warn(self, text: str) -> None:
        self.stats.warnings.append(text)
        log.warning("%s: %s", self.path, text)

    def _truncated(self, where: str) -> None:
        self.stats.truncated = True
        self._warn(f"recording is truncated ({where}); read {self.stats.messages} complete messages")

    def _schema(self, buf: memoryview, pos: int) -> None:
        (sid,) = _U16.unpack_from(buf, pos)
        name, pos = _string(buf, pos + 2)
        enc, pos = _string(buf, pos)
        (n,) = _U32.unpack_from(buf, pos)
        self.schemas[sid] = (name, enc, bytes(buf[pos + 4 : pos + 4 + n]))

    def _channel(self, buf: memoryview, pos: int) -> None:
        cid, sid = struct.unpack_from("<HH", buf, pos)
        topic, pos = _string(buf, pos + 4)
        enc, pos = _string(buf, pos)
        meta, pos = _map(buf, pos)
        sname, senc, _ = self.schemas.get(sid, ("", "", b""))
        self.channels[cid] = Channel(
            cid, sid, topic, enc, meta, sname, senc, channel_bus_type(meta, sname, enc)
        )

    def _records(self, buf: memoryview, start: int, end: int, in_chunk: bool) -> Iterator[RawMessage]:
        """Schema, channel and message records in ``buf[start:end]``; stops at a cut."""
        pos = start
        while pos < end:
            if pos + 9 > end:
                raise _Short
            op, length = _REC.unpack_from(buf, pos)
            body = pos + 9
            nxt = body + length
            if nxt > end:
                raise _Short
            if op == OP_MESSAGE:
                cid, seq, lt, pt = _MSG.unpack_from(buf, body)
                data = bytes(buf[body + _MSG.size : nxt])
                self.stats.messages += 1
                self.stats.bytes += len(data)
                yield RawMessage(cid, seq, lt, pt, data)
            elif op == OP_CHANNEL:
                self._channel(buf, body)
            elif op == OP_SCHEMA:
                self._schema(buf, body)
            elif in_chunk:
                pass  # unknown record inside a chunk: skip
            elif op == OP_CHUNK:
                yield from self._chunk(buf, body, nxt)
            elif op == OP_METADATA:
                name, p = _string(buf, body)
                self.metadata[name], _ = _map(buf, p)
            elif op == OP_HEADER:
                profile, p = _string(buf, body)
                library, _ = _string(buf, p)
                self.header = (profile, library)
            elif op in (OP_DATA_END, OP_FOOTER):
                self.stats.complete = True
                return
            pos = nxt

    def _chunk(self, buf: memoryview, body: int, end: int) -> Iterator[RawMessage]:
        self.stats.chunks += 1
        _, _, usize, crc = _CHUNK.unpack_from(buf, body)
        comp, p = _string(buf, body + _CHUNK.size)
        (rlen,) = _U64.unpack_from(buf, p)
        data = buf[p + 8 : p + 8 + rlen]
        raw = self._decompress(comp, data, usize, partial=False)
        if self.validate_crcs and crc and zlib.crc32(raw) != crc:
            self._warn(f"chunk at offset {body - 9}: CRC mismatch, chunk skipped")
            return
        try:
            yield from self._records(memoryview(raw), 0, len(raw), in_chunk=True)
        except _Short:
            self._warn(f"chunk at offset {body - 9}: records run past the chunk end")

    def _decompress(self, comp: str, data: memoryview, usize: int, partial: bool) -> bytes:
        if comp == "":
            return bytes(data)
        if comp == "zstd":
            if partial:
                return zstandard.ZstdDecompressor().decompressobj().decompress(bytes(data))
            return zstandard.ZstdDecompressor().decompress(data, max_output_size=usize)
        if comp == "lz4":
            try:
                import lz4.frame
            except ImportError:
                raise RecordingError(f"{self.path}: lz4-compressed chunks need the 'lz4' package") from None
            return lz4.frame.decompress(bytes(data))
        raise RecordingError(f"{self.path}: unknown chunk compression {comp!r}")

    def _partial_chunk(self, buf: memoryview, pos: int) -> Iterator[RawMessage]:
        """Messages in the readable prefix of a chunk the file ends inside."""
        body = pos + 9
        try:
            _, _, usize, _ = _CHUNK.unpack_from(buf, body)
            comp, p = _string(buf, body + _CHUNK.size)
            data = buf[p + 8 :]
            raw = self._decompress(comp, data, usize, partial=True)
        except (struct.error, _Short, zstandard.ZstdError, RecordingError, UnicodeDecodeError):
            return
        try:
            yield from self._records(memoryview(raw), 0, len(raw), in_chunk=True)
        except (_Short, struct.error):
            return

    def raw_messages(self) -> Iterator[RawMessage]:
        """Every complete message in file order (the channel table fills in as it goes)."""
        if self._map is None:
            raise RecordingError(f"{self.path}: reader is not open")
        buf = memoryview(self._map)
        pos = len(MAGIC)
        end = len(buf)
        try:
            while pos < end:
                if pos + 9 > end:
                    raise _Short
                op, length = _REC.unpack_from(buf, pos)
                nxt = pos + 9 + length
                if nxt > end:
                    if op == OP_CHUNK:
                        yield from self._partial_chunk(buf, pos)
                    raise _Short
                done = op in (OP_DATA_END, OP_FOOTER)
                yield from self._records(buf, pos, nxt, in_chunk=False)
                if done:
                    return
                pos = nxt
            self._truncated("no data end record")
        except (_Short, struct.error, UnicodeDecodeError):
            self._truncated(f"cut inside the record at offset {pos}")
        except zstandard.ZstdError as exc:
            self._truncated(f"unreadable chunk at offset {pos}: {exc}")
        finally:
            del buf

    def read_metadata(self) -> dict[str, dict[str, str]]:
        """The file's metadata records (name → mapping) without decompressing any chunk:
        e.g. ``drive`` (simulated drives: origin, mounts) or ``lidar`` (Ouster sensor JSON)."""
        if self._map is None:
            raise RecordingError(f"{self.path}: reader is not open")
        buf = memoryview(self._map)
        pos, end = len(MAGIC), len(buf)
        try:
            while pos + 9 <= end:
                op, length = _REC.unpack_from(buf, pos)
                nxt = pos + 9 + length
                if nxt > end or op in (OP_DATA_END, OP_FOOTER):
                    break
                if op == OP_METADATA:
                    name, p = _string(buf, pos + 9)
                    self.metadata[name], _ = _map(buf, p)
                pos = nxt
        except (_Short, struct.error, UnicodeDecodeError):
            pass  # a cut file: what was read is all there is
        finally:
            del buf
        return dict(self.metadata)

    def messages(
        self, kinds: set[MessageType] | None = None
    ) -> Iterator[tuple[Channel, RawMessage, Message]]:
        """(channel, raw record, bus message) for every message of a known bus type."""
        skipped: set[int] = set()
        for raw in self.raw_messages():
            ch = self.channels.get(raw.channel_id)
            if ch is None or ch.bus_type is None:
                if raw.channel_id not in skipped:
                    skipped.add(raw.channel_id)
                    self._warn(f"channel {ch.topic if ch else raw.channel_id}: not a bus channel, skipped")
                continue
            if kinds is not None and ch.bus_type not in kinds:
                continue
            try:
                msg = decode_payload(ch.bus_type, raw.data, raw.log_time)
            except Exception as exc:  # noqa: BLE001 - one bad message must not end a replay
                self._warn(f"{ch.topic}: message {raw.sequence} skipped: {exc}")
                continue
            yield ch, raw, msg


def drive_metadata(path: str | Path) -> dict[str, dict[str, str]]:
    """The metadata records of a drive recording (see :meth:`DriveReader.read_metadata`)."""
    with DriveReader(path) as reader:
        return reader.read_metadata()


def iter_drive(path: str | Path, kinds: set[MessageType] | None = None) -> Iterator[Message]:
    """The bus messages of a drive recording in recorded order (``kinds`` filters by type).

    A truncated file yields every complete message and logs one warning."""
    with DriveReader(path) as reader:
        for _, _, msg in reader.messages(kinds):
            yield msg
