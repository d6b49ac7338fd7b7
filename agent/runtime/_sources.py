"""Live sources of ``edge-agent run`` as bus-message iterators that end when asked to stop.

- LiDAR: ``udp://HOST:PORT`` (a live sensor; :class:`sensors.packets.UdpSource`) or a pcap
  (bring-up: replayed once as fast as read), stamped with the host's UTC clock on arrival.
- GNSS: anything :func:`sensors.gnss.open_gnss_source` opens (serial port or pty, gpsd,
  an NMEA file), already bus messages (NMEA sentences and assembled fixes).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

LIDAR_SOURCE = "lidar0"


def lidar_messages(spec: str, stop: threading.Event, closers: list[Any]) -> Iterator[Any]:
    from agent.bus.messages import LidarPacket

    if spec.startswith("udp://"):
        from sensors.packets._udp import UdpSource

        src = UdpSource(spec, idle_timeout=0.5)
        closers.append(src)
        while not stop.is_set():
            for p in src:  # returns after 0.5 s without a datagram: check stop, listen again
                yield LidarPacket(source=LIDAR_SOURCE, port=p.port, data=p.data, utc_ns=int(p.timestamp * 1e9),
                                  mono_ns=time.monotonic_ns())
                if stop.is_set():
                    break
        return
    from sensors.packets import open_packet_source

    with open_packet_source(spec) as src:
        for p in src:
            if stop.is_set():
                return
            yield LidarPacket(source=LIDAR_SOURCE, port=p.port, data=p.data, utc_ns=int(p.timestamp * 1e9))


def gnss_messages(spec: str, baud: int, stop: threading.Event, closers: list[Any]) -> Iterator[Any]:
    from sensors.gnss import gnss_source_kind, open_gnss_source

    if gnss_source_kind(spec) == "serial" and "baud=" not in spec:
        spec = f"serial://{spec.removeprefix('serial://')}?baud={baud}"
    src = open_gnss_source(spec)
    closers.append(src)
    with src:
        for item in src:
            if stop.is_set():
                return
            yield item


def camera_messages(cfg: Any, stop: threading.Event, closers: list[Any]) -> Iterator[Any]:
    """``CameraFrame`` messages of one configured camera (``cameras:`` in the config)."""
    from sensors.camera import camera_source_from_config

    src = camera_source_from_config(cfg)
    closers.append(src)
    for msg in src:
        if stop.is_set():
            return
        yield msg


def bus_messages(endpoint: str, stop: threading.Event, closers: list[Any], *, bind: bool = True) -> Iterator[Any]:
    """Messages other processes publish on the bus (the firmware bridge's power events and
    IMU, ``edge-agent replay --bus-only``, external drivers). Binds ``endpoint`` by default:
    publishers connect to the daemon."""
    from agent.bus import Subscriber

    sub = Subscriber(endpoint, bind=bind).open()
    try:
        while not stop.is_set():
            msg = sub.recv(timeout_ms=200)
            if msg is not None:
                yield msg
    finally:
        sub.close()
