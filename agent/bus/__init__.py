"""The ZeroMQ message bus: typed messages (:mod:`agent.bus.messages`), a
:class:`Publisher` and a :class:`Subscriber` with explicit lifecycles, high-water marks and
drop counting, configured by :class:`BusConfig`.

Sockets are imported lazily so that code which only encodes or decodes messages (the
recorder, the firmware bridge's tests) does not need a ZeroMQ context.
"""

from __future__ import annotations

from typing import Any

from agent.bus.messages import (
    NO_TIME,
    WIRE_VERSION,
    BusMessage,
    CameraFrame,
    FixType,
    GnssFix,
    ImuSample,
    LidarPacket,
    Message,
    MessageType,
    NmeaSentence,
    PowerEvent,
    PowerEventKind,
    TimeSync,
    decode_message,
    message_type_of_topic,
    peek_header,
)

_LAZY = {
    "BusConfig": "agent.bus._config",
    "Publisher": "agent.bus._zmq",
    "Subscriber": "agent.bus._zmq",
    "SubscriberStats": "agent.bus._zmq",
    "pump": "agent.bus._pump",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'agent.bus' has no attribute {name!r}")


__all__ = [
    "NO_TIME",
    "WIRE_VERSION",
    "BusConfig",
    "BusMessage",
    "CameraFrame",
    "FixType",
    "GnssFix",
    "ImuSample",
    "LidarPacket",
    "Message",
    "MessageType",
    "NmeaSentence",
    "PowerEvent",
    "PowerEventKind",
    "Publisher",
    "Subscriber",
    "SubscriberStats",
    "TimeSync",
    "decode_message",
    "message_type_of_topic",
    "peek_header",
    "pump",
]
