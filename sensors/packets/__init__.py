"""Packet sources: every source yields :class:`Packet` (timestamp, port, payload bytes).

Sources sit behind :class:`PacketSource` and are picked by what the input is
(:func:`open_packet_source`): ``udp://HOST:PORT`` is a live socket, a directory or ``.mcap``
is a ROS 2 bag, a file starting with a pcap or pcapng magic is a capture.
"""

from sensors.packets._types import Packet, PacketSource, SourceStats
from sensors.packets._open import SOURCE_PLUGINS, open_packet_source
from sensors.packets._batch import PacketBatch, batch_packets

__all__ = [
    "Packet",
    "PacketBatch",
    "PacketSource",
    "SOURCE_PLUGINS",
    "SourceStats",
    "batch_packets",
    "open_packet_source",
]
