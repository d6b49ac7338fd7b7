"""ZeroMQ publisher and subscriber for bus messages.

The publisher is an XPUB socket: it sends like PUB (a subscriber whose queue is full loses
messages, the publisher never waits), and it also sees subscriptions, so a caller can wait
until a subscriber is listening (:meth:`Publisher.wait_for_subscriber`) instead of sleeping
against ZeroMQ's "slow joiner" effect.

Drops are counted where they can be seen: each message carries the publisher's id and a
sequence number per (publisher, message type); the subscriber counts gaps in it.

Sockets are not thread safe: use one Publisher or Subscriber per thread.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import zmq

from agent.bus._config import BusConfig
from agent.bus.messages import (
    BusMessage,
    Message,
    MessageType,
    decode_message,
    message_type_of_topic,
    peek_header,
)
from agent.errors import BusError, MessageDecodeError

log = logging.getLogger(__name__)

SCHEMES = ("inproc://", "ipc://", "tcp://")
_ZERO_COPY_MIN = 64 * 1024  # larger bodies are handed to ZeroMQ without a copy


def check_endpoint(endpoint: str) -> str:
    """Validate an endpoint string; raises BusError naming what is wrong."""
    if not endpoint.startswith(SCHEMES):
        raise BusError(f"bus endpoint {endpoint!r}: scheme must be one of inproc://, ipc://, tcp://")
    if endpoint.endswith("://"):
        raise BusError(f"bus endpoint {endpoint!r}: no address after the scheme")
    return endpoint


class _Socket:
    """Lifecycle shared by both ends: open/close, context manager, a not-open guard."""

    _kind = 0
    _sock: zmq.Socket | None

    def __init__(self, endpoint: str, *, bind: bool, linger_ms: int, context: zmq.Context | None) -> None:
        self.endpoint = check_endpoint(endpoint)
        self.bind = bind
        self.linger_ms = linger_ms
        self._ctx = context
        self._sock = None

    def _configure(self, sock: zmq.Socket) -> None:  # pragma: no cover - overridden
        pass

    def open(self) -> _Socket:
        """Create the socket and bind or connect it; idempotent."""
        if self._sock is not None:
            return self
        ctx = self._ctx or zmq.Context.instance()
        sock = ctx.socket(self._kind)
        sock.setsockopt(zmq.LINGER, self.linger_ms)
        self._configure(sock)
        try:
            if self.bind:
                if self.endpoint.startswith("ipc://"):
                    os.makedirs(os.path.dirname(self.endpoint[6:]) or ".", exist_ok=True)
                sock.bind(self.endpoint)
            else:
                sock.connect(self.endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            verb = "bind" if self.bind else "connect"
            raise BusError(f"cannot {verb} bus endpoint {self.endpoint}: {exc}") from exc
        self._sock = sock
        return self

    def close(self) -> None:
        """Close the socket (waiting up to ``linger_ms`` for unsent messages)."""
        if self._sock is not None:
            self._sock.close(self.linger_ms)
            self._sock = None

    @property
    def is_open(self) -> bool:
        return self._sock is not None

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            raise BusError(f"{type(self).__name__} on {self.endpoint} is not open")
        return self._sock

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()


class Publisher(_Socket):
    """Publishes bus messages; never blocks on slow subscribers (they lose messages at the HWM).

    ``bind=True`` (default) when this is the one publisher many subscribers connect to;
    ``bind=False`` when many publishers connect to one subscriber that binds.
    """

    _kind = zmq.XPUB

    def __init__(self, endpoint: str, *, send_hwm: int = 10000, bind: bool = True, linger_ms: int = 0,
                 context: zmq.Context | None = None, publisher_id: int | None = None) -> None:
        super().__init__(endpoint, bind=bind, linger_ms=linger_ms, context=context)
        self.send_hwm = send_hwm
        self.publisher_id = publisher_id if publisher_id is not None else int.from_bytes(os.urandom(4), "little")
        self._seq: dict[MessageType, int] = {}
        self.sent = 0  # messages handed to ZeroMQ
        self.send_failed = 0  # messages ZeroMQ refused at once (EAGAIN)
        self.subscriptions = 0  # subscribe notices seen so far

    @classmethod
    def from_config(cls, cfg: BusConfig, **kwargs: object) -> Publisher:
        return cls(cfg.endpoint, send_hwm=cfg.send_hwm, linger_ms=cfg.linger_ms, **kwargs)  # type: ignore[arg-type]

    def _configure(self, sock: zmq.Socket) -> None:
        sock.setsockopt(zmq.SNDHWM, self.send_hwm)
        sock.setsockopt(zmq.XPUB_VERBOSE, 1)  # report every subscriber's subscription

    def open(self) -> Publisher:
        super().open()
        return self

    def __enter__(self) -> Publisher:
        return self.open()

    def publish(self, msg: BusMessage) -> bool:
        """Stamp ``msg`` with this publisher's id and next sequence number, encode and send it.
        Returns False when ZeroMQ refused it outright (counted in ``send_failed``); messages
        dropped for a full subscriber queue are invisible here and counted by subscribers."""
        sock = self._socket()
        kind = msg.TYPE
        seq = self._seq.get(kind, 0) + 1
        self._seq[kind] = seq
        msg.seq = seq
        msg.publisher = self.publisher_id
        body = msg.encode()
        try:
            sock.send(kind.topic, zmq.SNDMORE | zmq.NOBLOCK)
            sock.send(body, zmq.NOBLOCK, copy=len(body) < _ZERO_COPY_MIN)
        except zmq.Again:
            self.send_failed += 1
            return False
        self.sent += 1
        return True

    def _drain_subscriptions(self, timeout_ms: int) -> int:
        sock = self._socket()
        got = 0
        while sock.poll(timeout_ms, zmq.POLLIN):
            frame = sock.recv(zmq.NOBLOCK)
            if frame[:1] == b"\x01":
                got += 1
            timeout_ms = 0
        self.subscriptions += got
        return got

    def wait_for_subscriber(self, timeout_s: float = 5.0, count: int = 1) -> None:
        """Wait until ``count`` subscriptions in total have reached this publisher; raises
        BusError on timeout. Avoids losing the first messages to a subscriber still joining."""
        deadline = time.monotonic() + timeout_s
        while self.subscriptions < count:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BusError(f"no subscriber on {self.endpoint} within {timeout_s:g} s "
                               f"({self.subscriptions} of {count} subscriptions)")
            self._drain_subscriptions(int(left * 1000) + 1)


@dataclass
class SubscriberStats:
    """What a subscriber received and what it can tell it missed."""

    received: int = 0  # messages delivered to the caller
    dropped: int = 0  # sum of sequence gaps over every (publisher, type) stream
    decode_errors: int = 0  # frames that were not valid messages (skipped)
    restarts: int = 0  # a stream's sequence went back (its publisher restarted)
    dropped_by_type: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"received": self.received, "dropped": self.dropped, "decode_errors": self.decode_errors,
                "restarts": self.restarts, "dropped_by_type": dict(self.dropped_by_type)}


class Subscriber(_Socket):
    """Receives bus messages of the chosen types (all when ``types`` is None), counting drops.

    With ``bind=True`` (many publishers connect to it) note that ZeroMQ attaches a new peer,
    and sends it the subscriptions, only while this socket is inside a call such as
    :meth:`recv`: a subscriber sitting idle is not yet subscribed at a new publisher.

    ``strict=True`` raises MessageDecodeError on a malformed frame; by default it is counted
    in ``stats.decode_errors``, logged and skipped, so one bad sender cannot stop a consumer.
    """

    _kind = zmq.SUB

    def __init__(self, endpoint: str, types: Iterable[MessageType] | None = None, *, recv_hwm: int = 10000,
                 bind: bool = False, linger_ms: int = 0, context: zmq.Context | None = None,
                 strict: bool = False) -> None:
        super().__init__(endpoint, bind=bind, linger_ms=linger_ms, context=context)
        self.types = None if types is None else tuple(MessageType(t) for t in types)
        self.recv_hwm = recv_hwm
        self.strict = strict
        self.stats = SubscriberStats()
        self._last: dict[tuple[int, MessageType], int] = {}

    @classmethod
    def from_config(cls, cfg: BusConfig, types: Iterable[MessageType] | None = None,
                    **kwargs: object) -> Subscriber:
        return cls(cfg.endpoint, types, recv_hwm=cfg.recv_hwm, linger_ms=cfg.linger_ms, **kwargs)  # type: ignore[arg-type]

    def _configure(self, sock: zmq.Socket) -> None:
        sock.setsockopt(zmq.RCVHWM, self.recv_hwm)
        for topic in [b""] if self.types is None else [t.topic for t in self.types]:
            sock.setsockopt(zmq.SUBSCRIBE, topic)

    def open(self) -> Subscriber:
        super().open()
        return self

    def __enter__(self) -> Subscriber:
        return self.open()

    def _count(self, kind: MessageType, publisher: int, seq: int) -> None:
        key = (publisher, kind)
        last = self._last.get(key)
        if last is not None:
            if seq > last + 1:
                gap = seq - last - 1
                self.stats.dropped += gap
                self.stats.dropped_by_type[kind.name] = self.stats.dropped_by_type.get(kind.name, 0) + gap
            elif seq <= last:
                self.stats.restarts += 1
        self._last[key] = seq
        self.stats.received += 1

    def _recv_frames(self, deadline: float | None) -> list[bytes] | None:
        """The next multipart message, or None once ``deadline`` (monotonic s) passes."""
        sock = self._socket()
        while True:
            try:
                # try first: under load a message is usually waiting, and poll costs a syscall
                return sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                pass
            if deadline is None:
                return sock.recv_multipart()
            left = int((deadline - time.monotonic()) * 1000)
            if left <= 0 or not sock.poll(left, zmq.POLLIN):
                if left > 0 or not sock.poll(0, zmq.POLLIN):
                    return None

    def _bad(self, reason: str | MessageDecodeError) -> None:
        err = reason if isinstance(reason, MessageDecodeError) else MessageDecodeError(reason)
        if self.strict:
            raise err
        self.stats.decode_errors += 1
        log.warning("bus %s: skipped a malformed message: %s", self.endpoint, err)

    @staticmethod
    def _deadline(timeout_ms: int | None) -> float | None:
        return None if timeout_ms is None else time.monotonic() + timeout_ms / 1000

    def recv_raw(self, timeout_ms: int | None = None) -> tuple[MessageType, dict, bytes] | None:
        """The next message as (type, header fields, encoded body) without decoding the body
        (a recorder stores the bytes as they are). None on timeout."""
        deadline = self._deadline(timeout_ms)
        while True:
            frames = self._recv_frames(deadline)
            if frames is None:
                return None
            try:
                if len(frames) != 2:
                    raise MessageDecodeError(f"expected 2 frames (topic, body), got {len(frames)}")
                kind = message_type_of_topic(frames[0])
                got, head = peek_header(frames[1])
                if got is not kind:
                    raise MessageDecodeError(f"topic {kind.name} carries a {got.name} body", int(got))
            except MessageDecodeError as err:
                self._bad(err)
                continue
            self._count(kind, head["publisher"], head["seq"])
            return kind, head, frames[1]

    def recv(self, timeout_ms: int | None = None) -> Message | None:
        """The next decoded message, or None when ``timeout_ms`` passes first."""
        deadline = self._deadline(timeout_ms)
        while True:
            frames = self._recv_frames(deadline)
            if frames is None:
                return None
            try:
                if len(frames) != 2:
                    raise MessageDecodeError(f"expected 2 frames (topic, body), got {len(frames)}")
                msg = decode_message(frames[1])
                if frames[0] != msg.TYPE.topic:
                    message_type_of_topic(frames[0])  # names an unknown topic first
                    raise MessageDecodeError(f"topic {bytes(frames[0]).decode()} carries a {msg.TYPE.name} body",
                                             int(msg.TYPE))
            except MessageDecodeError as err:
                self._bad(err)
                continue
            self._count(msg.TYPE, msg.publisher, msg.seq)
            return msg

    def __iter__(self) -> Iterator[Message]:
        """Messages until the socket is closed (blocks between them)."""
        while self.is_open:
            msg = self.recv(timeout_ms=200)
            if msg is not None:
                yield msg
