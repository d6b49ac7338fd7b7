"""ZeroMQ publisher and subscriber for bus messages.

The publisher is an XPUB socket: it sends like PUB (a subscriber whose queue is full loses
messages, the publisher never waits), and it also sees subscriptions, so a caller can wait
until a subscriber is listening (:meth:`Publisher.wait_for_subscriber`) instead of sleeping
against ZeroMQ's "slow joiner" effect.

Drops are counted where they can be seen: each message carries the publisher's id and a
sequence number per (publisher, message type); the subscriber counts gaps in it.

A replay of a recording must lose nothing, so ``Publisher(..., lossless=True)`` sets
ZMQ_XPUB_NODROP: at a subscriber's high-water mark ZeroMQ refuses the send (EAGAIN) instead
of dropping, and :meth:`Publisher.publish` waits and retries. Live capture keeps the default
(never waits).

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
    """Publishes bus messages; never blocks on slow subscribers (they lose messages at the HWM),
    unless ``lossless=True`` (replay): then it waits for them instead of dropping.

    ``bind=True`` (default) when this is the one publisher many subscribers connect to;
    ``bind=False`` when many publishers connect to one subscriber that binds.
    """

    _kind = zmq.XPUB

    def __init__(self, endpoint: str, *, send_hwm: int = 10000, bind: bool = True, linger_ms: int = 0,
                 context: zmq.Context | None = None, publisher_id: int | None = None,
                 lossless: bool = False, stall_timeout_s: float = 30.0) -> None:
        super().__init__(endpoint, bind=bind, linger_ms=linger_ms, context=context)
        self.send_hwm = send_hwm
        # lossless: wait for a full subscriber instead of dropping (replay, not live capture);
        # a subscriber that takes nothing for stall_timeout_s fails the publish (BusError)
        self.lossless = lossless
        self.stall_timeout_s = stall_timeout_s
        self.waits = 0  # lossless: sends that had to wait for a subscriber's queue
        self._own_ctx: zmq.Context | None = None
        self._t_opened = 0.0
        self._t_last_send = 0.0  # perf_counter of the last message sent
        self._t_first_wait: float | None = None  # first time a subscriber's queue was full
        self._sent_at_first_wait = 0
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
        if self.lossless:
            sock.setsockopt(zmq.XPUB_NODROP, 1)  # EAGAIN at the HWM instead of a silent drop

    def open(self) -> Publisher:
        if self.lossless and self._ctx is None and self._sock is None and not self.endpoint.startswith("inproc://"):
            # A context of its own, terminated by close(): only terminating a context makes
            # ZeroMQ send what is still queued before the process exits (pyzmq does not
            # terminate the shared instance at exit, so a replay would lose its tail).
            self._own_ctx = self._ctx = zmq.Context()
        self._t_opened = time.perf_counter()
        try:
            super().open()
        except BaseException:
            self._drop_own_context()
            raise
        return self

    def close(self) -> None:
        """Close the socket. Lossless (not inproc): first give the subscribers time to take
        the backlog, then wait until every queued message has gone (at most
        max(linger_ms, stall_timeout_s))."""
        if self._own_ctx is not None and self._sock is not None:
            # ZeroMQ's linger empties the socket's queue, but then drops the connection with
            # the last batch it could not yet write to a full kernel buffer (a slow reader
            # loses the tail). PUB/SUB has no delivery receipt, so wait for the backlog to
            # drain at the readers' rate as measured while they held this publisher back.
            time.sleep(self._settle_s())
            self._sock.close(max(self.linger_ms, int(self.stall_timeout_s * 1000)))
            self._sock = None
        super().close()
        self._drop_own_context()

    def _settle_s(self) -> float:
        """How long the readers need for what may still be queued for them (lossless close)."""
        if not self.sent:
            return 0.0
        now = time.perf_counter()
        if self._t_first_wait is not None and self._t_last_send > self._t_first_wait:
            # held back at the HWM: since then this publisher moved at the slowest reader's pace
            rate = (self.sent - self._sent_at_first_wait) / (self._t_last_send - self._t_first_wait)
            backlog = self.send_hwm
        else:
            rate = self.sent / max(now - self._t_opened, 1e-3)
            backlog = min(self.sent, self.send_hwm)
        return min(self.stall_timeout_s, 0.25 + 2.0 * backlog / max(rate, 1.0))

    def _drop_own_context(self) -> None:
        if self._own_ctx is not None:
            self._own_ctx.term()  # blocks until the queues are flushed (or linger ran out)
            self._own_ctx = self._ctx = None

    def __enter__(self) -> Publisher:
        return self.open()

    def publish(self, msg: BusMessage) -> bool:
        """Stamp ``msg`` with this publisher's id and next sequence number, encode and send it.

        Default (live capture): never waits. Returns False when ZeroMQ refused it outright
        (counted in ``send_failed``; the sequence number is not used up, so subscribers see no
        false gap); messages dropped for a full subscriber queue are invisible here and
        counted by subscribers. ``lossless``: waits while a subscriber's queue is full and
        returns True once sent; raises BusError when no subscriber took anything for
        ``stall_timeout_s``."""
        sock = self._socket()
        kind = msg.TYPE
        seq = self._seq.get(kind, 0) + 1
        msg.seq = seq
        msg.publisher = self.publisher_id
        body = msg.encode()
        if not self._send_frame(sock, kind.topic, zmq.SNDMORE | zmq.NOBLOCK):
            self.send_failed += 1
            return False
        # The topic frame went: ZeroMQ counts whole messages against the HWM, so the body
        # follows; it must, or the next topic would be glued onto this message.
        self._send_frame(sock, body, zmq.NOBLOCK, copy=len(body) < _ZERO_COPY_MIN, wait=True)
        self._seq[kind] = seq  # only a message that went takes a sequence number
        self.sent += 1
        if self.lossless:
            self._t_last_send = time.perf_counter()
        return True

    def _send_frame(self, sock: zmq.Socket, frame: bytes, flags: int, copy: bool = True,
                    wait: bool = False) -> bool:
        """One frame without blocking; in lossless mode (or ``wait``) retry with a short
        backoff (an XPUB is always writable to poll(), so there is nothing to poll on)."""
        try:
            sock.send(frame, flags, copy=copy)
            return True
        except zmq.Again:
            if not (self.lossless or wait):
                return False
        self.waits += 1
        if self._t_first_wait is None:
            self._t_first_wait, self._sent_at_first_wait = time.perf_counter(), self.sent
        deadline = time.monotonic() + self.stall_timeout_s
        pause = 20e-6
        while True:
            time.sleep(pause)
            try:
                sock.send(frame, flags, copy=copy)  # each call lets ZeroMQ see what readers took
                return True
            except zmq.Again:
                if time.monotonic() > deadline:
                    raise BusError(f"bus {self.endpoint}: a subscriber took no message for "
                                   f"{self.stall_timeout_s:g} s (lossless publisher)") from None
                pause = min(pause * 2, 0.005)

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
