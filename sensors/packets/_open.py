"""Choose a packet source by what the input is (a registry tests can extend)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sensors.errors import SourceError
from sensors.packets._types import PacketSource

SourceFactory = Callable[..., PacketSource]


def _pcap(spec: str, ports: set[int] | None) -> PacketSource:
    from sensors.packets._pcap import PcapSource

    return PcapSource(spec, ports)


def _rosbag2(spec: str, ports: set[int] | None) -> PacketSource:
    from sensors.packets._rosbag2 import Rosbag2Source

    return Rosbag2Source(spec, ports)


def _udp(spec: str, ports: set[int] | None) -> PacketSource:
    from sensors.packets._udp import UdpSource

    return UdpSource(spec, ports)


SOURCE_PLUGINS: dict[str, SourceFactory] = {"pcap": _pcap, "rosbag2": _rosbag2, "udp": _udp}


def source_kind(spec: str) -> str:
    """Name the kind of source ``spec`` is, from its scheme, layout or first bytes."""
    if spec.startswith("udp://"):
        return "udp"
    path = Path(spec)
    if not path.exists():
        raise SourceError(spec, "no such file or directory")
    if path.is_dir():
        if (path / "metadata.yaml").exists():
            return "rosbag2"
        raise SourceError(spec, "a directory that is not a ROS 2 bag (no metadata.yaml)")
    with open(path, "rb") as fh:
        head = fh.read(8)
    from sensors.packets._pcap import is_capture

    if is_capture(head):
        return "pcap"
    if head.startswith(b"\x89MCAP") or path.suffix in (".db3", ".mcap"):
        return "rosbag2"
    if not head:
        raise SourceError(spec, "empty file: not a capture")
    raise SourceError(spec, "not a pcap, pcapng or ROS 2 bag (unknown file type)")


def open_packet_source(spec: str | Path, ports: set[int] | None = None) -> PacketSource:
    """Open ``spec`` (a path or ``udp://HOST:PORT``) as a packet source."""
    spec = str(spec)
    return SOURCE_PLUGINS[source_kind(spec)](spec, ports)
