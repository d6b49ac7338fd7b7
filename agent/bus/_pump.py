"""Runner that puts a source's messages on the bus (the capture side of the daemon)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from agent.bus.messages import BusMessage


def pump(messages: Iterable[BusMessage], publish: Callable[[BusMessage], object],
         should_stop: Callable[[], bool] | None = None, max_messages: int | None = None) -> int:
    """Publish every message of ``messages`` (a GNSS or camera source, a replay) with
    ``publish`` (e.g. ``Publisher.publish``) until it ends, ``should_stop()`` or
    ``max_messages``; returns how many were published. Closing the source is the caller's."""
    n = 0
    for msg in messages:
        if should_stop is not None and should_stop():
            break
        publish(msg)
        n += 1
        if max_messages is not None and n >= max_messages:
            break
    return n
