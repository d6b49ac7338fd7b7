"""The packet record and the protocol every packet source implements."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol, runtime_checkable


class Packet(NamedTuple):
    """One UDP payload as it left the sensor."""

    timestamp: float  # seconds since the Unix epoch (capture or message time)
    port: int  # UDP destination port
    data: bytes


@dataclass
class SourceStats:
    """What a source saw besides the packets it yielded."""

    packets: int = 0  # packets yielded
    frames: int = 0  # link-layer frames or bag messages read
    skipped: int = 0  # not UDP/IPv4, or filtered out by port
    truncated: bool = False  # the file ended inside a record
    fragments_dropped: int = 0  # IPv4 fragments never completed
    drops: int = 0  # live sockets: datagrams the kernel dropped (SO_RXQ_OVFL)
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "packets": self.packets,
            "frames": self.frames,
            "skipped": self.skipped,
            "truncated": self.truncated,
            "fragments_dropped": self.fragments_dropped,
            "drops": self.drops,
        }


@runtime_checkable
class PacketSource(Protocol):
    """A stream of packets with an explicit lifecycle (use as a context manager)."""

    name: str
    stats: SourceStats

    def __enter__(self) -> PacketSource: ...

    def __exit__(self, *exc: object) -> None: ...

    def __iter__(self) -> Iterator[Packet]: ...

    def close(self) -> None: ...
