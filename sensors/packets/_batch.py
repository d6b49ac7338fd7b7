"""Packets gathered into arrays so the numba decoders work on many packets at once."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from sensors.packets._types import Packet


@dataclass
class PacketBatch:
    """``data[i, :sizes[i]]`` holds packet i; rows are ``width`` bytes, zero-padded."""

    data: np.ndarray  # uint8 (n, width)
    sizes: np.ndarray  # int32 (n,)
    timestamps: np.ndarray  # float64 (n,)
    ports: np.ndarray  # int32 (n,)

    def __len__(self) -> int:
        return len(self.sizes)


def batch_packets(packets: Iterable[Packet], width: int) -> PacketBatch:
    """Copy packets into one array; longer packets are cut to ``width`` (their true size
    stays in ``sizes``, so decoders can reject them)."""
    packets = list(packets)
    n = len(packets)
    data = np.zeros((n, width), dtype=np.uint8)
    sizes = np.empty(n, dtype=np.int32)
    ts = np.empty(n, dtype=np.float64)
    ports = np.empty(n, dtype=np.int32)
    flat = data.reshape(-1)
    for i, p in enumerate(packets):
        m = min(len(p.data), width)
        flat[i * width : i * width + m] = np.frombuffer(p.data, dtype=np.uint8, count=m)
        sizes[i] = len(p.data)
        ts[i] = p.timestamp
        ports[i] = p.port
    return PacketBatch(data, sizes, ts, ports)
