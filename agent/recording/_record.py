"""Recording the bus to a drive MCAP."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from agent.bus.messages import MessageType, decode_message
from agent.errors import MessageDecodeError
from agent.recording._writer import DEFAULT_CHUNK_SIZE, DriveWriter

log = logging.getLogger(__name__)


@dataclass
class RecordStats:
    messages: int = 0
    bytes: int = 0
    dropped: int = 0  # sequence gaps the subscriber saw (publisher-side drops)
    decode_errors: int = 0
    wall_s: float = 0.0
    by_type: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "bytes": self.bytes,
            "dropped": self.dropped,
            "decode_errors": self.decode_errors,
            "wall_s": round(self.wall_s, 3),
            "by_type": dict(self.by_type),
        }


def record(
    endpoint: str,
    out: str | Path,
    duration: float | None = None,
    kinds: Iterable[MessageType] | None = None,
    should_stop: Callable[[], bool] | None = None,
    max_messages: int | None = None,
    bind: bool = False,
    flush_interval_s: float = 1.0,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    compression: str = "zstd",
    on_ready: Callable[[], None] | None = None,
    context: object | None = None,
) -> RecordStats:
    """Subscribe to the bus at ``endpoint`` and write every message to ``out`` until
    ``duration`` seconds pass, ``max_messages`` were written or ``should_stop()`` is true.

    LiDAR packets are stored as the bus bytes received (no decode, no re-encode); other types
    are decoded and stored as JSON. The open chunk is written out every ``flush_interval_s``
    so a power cut loses at most about that much. ``on_ready`` is called once subscribed."""
    from agent.bus import Subscriber

    stats = RecordStats()
    t0 = time.monotonic()
    deadline = None if duration is None else t0 + duration
    kwargs = {} if context is None else {"context": context}
    with (
        Subscriber(endpoint, kinds, bind=bind, **kwargs) as sub,
        DriveWriter(
            out, flush_interval_s=flush_interval_s, chunk_size=chunk_size, compression=compression
        ) as writer,
    ):  # type: ignore[arg-type]
        if on_ready is not None:
            on_ready()
        while True:
            if should_stop is not None and should_stop():
                break
            if max_messages is not None and stats.messages >= max_messages:
                break
            left_ms = 200
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                left_ms = max(1, min(200, int(left * 1000)))
            got = sub.recv_raw(left_ms)
            writer.maybe_flush()
            if got is None:
                continue
            kind, head, body = got
            try:
                msg = decode_message(body)
            except MessageDecodeError as exc:
                stats.decode_errors += 1
                log.warning("record: skipped a malformed %s message: %s", kind.name, exc)
                continue
            received = time.time_ns()
            if kind is MessageType.LIDAR_PACKET:
                writer.write_encoded(msg, bytes(body), publish_time_ns=received)
            else:
                writer.write(msg, publish_time_ns=received)
            stats.messages += 1
            stats.bytes += len(body)
            stats.by_type[kind.name] = stats.by_type.get(kind.name, 0) + 1
        stats.dropped = sub.stats.dropped
        stats.decode_errors += sub.stats.decode_errors
    stats.wall_s = time.monotonic() - t0
    return stats
