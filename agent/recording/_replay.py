"""Publishing a drive recording back onto the bus, at recorded speed or as fast as possible."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from agent.bus.messages import Message, MessageType
from agent.errors import RecordingError
from agent.recording._reader import DriveReader


class MessageSink(Protocol):
    """Anything with ``publish(msg)``: :class:`agent.bus.Publisher`, or a pipeline stage."""

    def publish(self, msg: Message) -> object: ...


@dataclass
class ReplayStats:
    messages: int = 0
    bytes: int = 0  # stored payload bytes read
    published_failed: int = 0  # the sink refused (returned False)
    wall_s: float = 0.0
    drive_s: float = 0.0  # log time covered
    truncated: bool = False
    warnings: list[str] = field(default_factory=list)
    by_type: dict[str, int] = field(default_factory=dict)

    @property
    def realtime_factor(self) -> float:
        return self.drive_s / self.wall_s if self.wall_s > 0 else float("inf")

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "bytes": self.bytes,
            "published_failed": self.published_failed,
            "wall_s": round(self.wall_s, 6),
            "drive_s": round(self.drive_s, 6),
            "realtime_factor": round(self.realtime_factor, 3) if self.wall_s > 0 else None,
            "truncated": self.truncated,
            "warnings": list(self.warnings),
            "by_type": dict(self.by_type),
        }


def parse_speed(text: str | float | None) -> float | None:
    """``max`` (or None) → None (as fast as possible); a positive number → that factor."""
    if text is None or (isinstance(text, str) and text.strip().lower() in ("max", "inf")):
        return None
    try:
        speed = float(text)
    except ValueError:
        raise RecordingError(f"speed must be a positive number or 'max', not {text!r}") from None
    if not speed > 0:
        raise RecordingError(f"speed must be a positive number or 'max', not {text!r}")
    return speed


def replay(
    path: str | Path,
    publisher: MessageSink | Callable[[Message], object],
    speed: float | str | None = 1.0,
    kinds: set[MessageType] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ReplayStats:
    """Publish every message of the recording ``path`` in recorded order.

    ``speed`` 1.0 keeps the recorded timing (log time), 2.0 twice as fast, ``None`` or
    ``"max"`` as fast as the sink takes them. ``publisher`` is an object with ``publish``
    or a plain callable. Messages keep their recorded header times (``utc_ns``,
    ``mono_ns``); a Publisher stamps its own ``seq``. A truncated file replays up to its
    last complete message (``stats.truncated``, a warning logged)."""
    factor = parse_speed(speed)
    send = publisher.publish if hasattr(publisher, "publish") else publisher  # type: ignore[union-attr]
    stats = ReplayStats()
    t_first: int | None = None
    t_last = 0
    wall0 = time.perf_counter()
    with DriveReader(path) as reader:
        for _, raw, msg in reader.messages(kinds):
            if should_stop is not None and should_stop():
                break
            if t_first is None:
                t_first = raw.log_time
            t_last = max(t_last, raw.log_time)
            if factor is not None:
                due = wall0 + (raw.log_time - t_first) / 1e9 / factor
                delay = due - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            if send(msg) is False:
                stats.published_failed += 1
            stats.messages += 1
            stats.bytes += len(raw.data)
            stats.by_type[msg.TYPE.name] = stats.by_type.get(msg.TYPE.name, 0) + 1
        stats.truncated = reader.stats.truncated
        stats.warnings = list(reader.stats.warnings)
    stats.wall_s = time.perf_counter() - wall0
    stats.drive_s = 0.0 if t_first is None else (t_last - t_first) / 1e9
    return stats
