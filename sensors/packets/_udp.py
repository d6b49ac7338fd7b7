"""Live UDP sockets (``udp://0.0.0.0:2368``) with a large receive buffer.

Kernel drops are counted through ``SO_RXQ_OVFL`` (Linux): every datagram carries the
socket's cumulative drop counter as ancillary data.
"""

from __future__ import annotations

import logging
import socket
import struct
import time
from collections.abc import Iterator
from urllib.parse import urlparse

from sensors.errors import SourceError
from sensors.packets._types import Packet, SourceStats

log = logging.getLogger(__name__)
SO_RXQ_OVFL = getattr(socket, "SO_RXQ_OVFL", 40)
DEFAULT_RCVBUF = 16 * 1024 * 1024


def parse_udp_uri(uri: str) -> tuple[str, int]:
    parsed = urlparse(uri)
    if parsed.scheme != "udp" or parsed.port is None:
        raise SourceError(uri, "expected udp://HOST:PORT, e.g. udp://0.0.0.0:2368")
    return parsed.hostname or "0.0.0.0", parsed.port


class UdpSource:
    """Datagrams from a bound UDP socket until ``max_packets`` or ``idle_timeout`` (seconds
    without a datagram; None waits forever) or :meth:`close`."""

    def __init__(
        self,
        uri: str,
        ports: set[int] | None = None,
        rcvbuf: int = DEFAULT_RCVBUF,
        idle_timeout: float | None = 2.0,
        max_packets: int | None = None,
    ) -> None:
        self.name = uri
        host, port = parse_udp_uri(uri)
        self.port = port
        self.stats = SourceStats()
        self.idle_timeout = idle_timeout
        self.max_packets = max_packets
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
                self._count_drops = True
            except OSError:
                self._count_drops = False
            self._sock.bind((host, port))
        except OSError as exc:
            self._sock.close()
            raise SourceError(uri, f"cannot bind: {exc.strerror or exc}") from None
        self.rcvbuf = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        if self.rcvbuf < rcvbuf:
            log.warning("%s: receive buffer is %d bytes, asked %d (raise net.core.rmem_max)", uri, self.rcvbuf, rcvbuf)
        self._sock.settimeout(idle_timeout)
        self._closed = False

    @property
    def address(self) -> tuple[str, int]:
        return self._sock.getsockname()

    def __enter__(self) -> UdpSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._sock.close()

    def __iter__(self) -> Iterator[Packet]:
        anc = socket.CMSG_SPACE(4)
        while not self._closed:
            if self.max_packets is not None and self.stats.packets >= self.max_packets:
                return
            try:
                data, ancdata, _flags, _addr = self._sock.recvmsg(65535, anc)
            except socket.timeout:
                return
            except OSError:
                if self._closed:
                    return
                raise
            for level, ctype, cdata in ancdata:
                if level == socket.SOL_SOCKET and ctype == SO_RXQ_OVFL and len(cdata) >= 4:
                    self.stats.drops = struct.unpack("I", cdata[:4])[0]
            self.stats.frames += 1
            self.stats.packets += 1
            yield Packet(time.time(), self.port, data)
