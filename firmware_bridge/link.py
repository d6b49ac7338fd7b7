"""The serial link: frames out of a byte stream with resynchronisation, and frames into it.

:class:`FrameDecoder` is the pure part: feed it bytes in any chunking, it returns decoded
frames and the errors of rejected ones, and keeps counters. Resynchronisation is the
delimiter's job: every frame is sent as ``00 ‖ COBS ‖ 00``, so a damaged frame, garbage
between frames or a frame cut short by an MCU reset spoils only the bytes up to the next
0x00, and the next frame decodes. Bytes that never reach a delimiter within the longest
legal frame are thrown away.

:class:`SerialLink` runs a decoder over a pyserial port (or any stream with ``read``/
``write``) and numbers the frames it sends.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import Any, Protocol, Self

from firmware_bridge.errors import FrameCRCError, FrameError, LinkError
from firmware_bridge.records import MAX_ENCODED, Boot, Frame, Record, decode_frame, encode_frame


@dataclass(slots=True)
class LinkStats:
    """Counters of one link (host side, MCU → host direction unless named otherwise)."""

    bytes_in: int = 0
    frames_ok: int = 0
    crc_errors: int = 0
    decode_errors: int = 0
    resyncs: int = 0  # returns to a good frame after rejected or discarded bytes
    bytes_discarded: int = 0
    seq_gaps: int = 0  # places where the MCU's sequence number skipped
    frames_missing: int = 0  # frames the gaps say were never decoded
    mcu_boots: int = 0
    frames_sent: int = 0
    bytes_out: int = 0
    reconnects: int = 0  # the port was reopened after it failed (USB re-enumeration)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


class FrameDecoder:
    """Bytes in, ``Frame`` or ``FrameError`` out, in stream order, with counters."""

    def __init__(self) -> None:
        self.stats = LinkStats()
        self.restart()

    def restart(self) -> None:
        """Forget the stream's state (a new connection), keeping the counters."""
        self._tail = b""
        self._hunting = False  # discarding an overlong run up to the next delimiter
        self._lost = False  # bytes were rejected since the last good frame
        self._started = False  # the first chunk may be the tail of a frame we joined late
        self._last_seq: int | None = None

    def feed(self, data: bytes) -> list[Frame | FrameError]:
        stats = self.stats
        stats.bytes_in += len(data)
        parts = (self._tail + data).split(b"\x00") if self._tail else data.split(b"\x00")
        self._tail = parts.pop()
        out: list[Frame | FrameError] = []
        for chunk in parts:
            if self._hunting:
                stats.bytes_discarded += len(chunk)
                self._hunting = False
                continue
            # Only bytes before the very first delimiter can be the tail of a frame we joined
            # late; a stream that starts with 0x00 (as a booting MCU's does) is in sync at once.
            first = not self._started
            self._started = True
            if not chunk:
                continue  # the empty run between a frame's closing and the next's opening 0x00
            try:
                frame = decode_frame(chunk)
            except FrameError as err:
                stats.bytes_discarded += len(chunk)
                self._lost = True
                if first:
                    continue  # joined mid-frame: not an error of the link
                if isinstance(err, FrameCRCError):
                    stats.crc_errors += 1
                else:
                    stats.decode_errors += 1
                out.append(err)
                continue
            if self._lost:
                stats.resyncs += 1
                self._lost = False
            self._check_seq(frame)
            stats.frames_ok += 1
            out.append(frame)
        if len(self._tail) > MAX_ENCODED:
            # No delimiter within the longest legal frame: noise, or a stuck line.
            stats.bytes_discarded += len(self._tail)
            stats.decode_errors += 1
            self._tail = b""
            self._hunting = True
            self._lost = True
            self._started = True
        return out

    def _check_seq(self, frame: Frame) -> None:
        if isinstance(frame.record, Boot):
            self.stats.mcu_boots += 1  # the MCU restarted: its numbering restarts too
        elif self._last_seq is not None:
            gap = (frame.seq - self._last_seq - 1) & 0xFFFF
            if gap:
                self.stats.seq_gaps += 1
                self.stats.frames_missing += gap
        self._last_seq = frame.seq


class ByteStream(Protocol):
    """What the link needs from a port: pyserial's ``Serial`` has it, so do files and pipes."""

    def read(self, size: int = 1) -> bytes: ...
    def write(self, data: bytes, /) -> int | None: ...
    def close(self) -> None: ...


def open_serial(port: str, baud: int = 921_600, timeout: float = 0.05) -> Any:
    """Open a serial port (or a pyserial URL such as ``loop://``) for the link."""
    try:
        import serial  # pyserial
    except ImportError:
        raise LinkError("the bridge needs pyserial: pip install pyserial") from None
    try:
        if "://" in port:
            return serial.serial_for_url(port, baudrate=baud, timeout=timeout)
        return serial.Serial(port, baudrate=baud, timeout=timeout, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as err:
        raise LinkError(f"cannot open serial port {port}: {err}") from None


class SerialLink:
    """A frame link over a byte stream; ``read_frames`` reads what is there (up to the port's
    timeout), ``send`` numbers and writes one host → MCU record. Writes are thread-safe."""

    def __init__(self, stream: ByteStream, read_size: int = 4096) -> None:
        self._stream: ByteStream | None = stream
        self._read_size = read_size
        self._write_lock = threading.Lock()
        self._seq = 0
        self.decoder = FrameDecoder()
        self._t0 = time.monotonic_ns()

    @classmethod
    def open(cls, port: str, baud: int = 921_600, timeout: float = 0.05) -> SerialLink:
        return cls(open_serial(port, baud, timeout))

    @property
    def stats(self) -> LinkStats:
        return self.decoder.stats

    @property
    def is_open(self) -> bool:
        return self._stream is not None

    def _require(self) -> ByteStream:
        if self._stream is None:
            raise LinkError("link is not open")
        return self._stream

    def read_frames(self) -> list[Frame | FrameError]:
        """Read what the port has (blocking up to its timeout) and decode it. An empty
        read of a non-serial stream (a file) means end of input: ``EOFError``."""
        stream = self._require()
        try:
            waiting = getattr(stream, "in_waiting", None)
        except OSError as err:
            raise LinkError(f"serial port failed: {err}") from None
        if waiting is None:
            size = self._read_size  # a file or pipe: read returns what there is, b"" at the end
        else:
            size = min(waiting, self._read_size) if waiting else 1  # 1: block up to the timeout
        try:
            data = stream.read(size)
        except OSError as err:  # pyserial's SerialException is an OSError (device unplugged)
            raise LinkError(f"serial read failed: {err}") from None
        if not data:
            if waiting is None:
                raise EOFError
            return []
        return self.decoder.feed(data)

    def send(self, record: Record) -> int:
        """Write one record to the MCU; returns the sequence number it was sent with."""
        stream = self._require()
        with self._write_lock:
            seq = self._seq
            self._seq = (self._seq + 1) & 0xFFFF
            # Host frames carry host time (µs since link open): the MCU ignores it.
            wire = encode_frame(record, seq, (time.monotonic_ns() - self._t0) // 1000)
            try:
                stream.write(wire)
                flush = getattr(stream, "flush", None)
                if flush is not None:
                    flush()
            except OSError as err:
                raise LinkError(f"serial write failed: {err}") from None
            self.stats.frames_sent += 1
            self.stats.bytes_out += len(wire)
        return seq

    def reattach(self, stream: ByteStream) -> None:
        """Carry on over a new stream (the port was reopened): the counters go on, the
        decoder's partial state does not."""
        with self._write_lock:
            old, self._stream = self._stream, stream
            if old is not None:
                try:
                    old.close()
                except OSError:
                    pass
            self.decoder.restart()
            self.stats.reconnects += 1

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.close()
            except OSError:
                pass
            self._stream = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["ByteStream", "FrameDecoder", "LinkStats", "SerialLink", "open_serial"]
