"""Payloads for the sign/verify/store suites: raw LiDAR packet bytes (UDP payloads) of the
fixture captures, VLP-16 then OS-1-128 (about 1.7 MB without repetition), repeated where a
chunk is larger. SHA-256 and Ed25519 costs do not depend on content; zstd's does, so the
zstd stand-in is timed on unrepeated bytes only (see :func:`unique_prefix`)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("EDGE_AGENT_FIXTURES", _ROOT.parent / "shared" / "fixtures"))
CAPTURES = [FIXTURES / "lidar" / "velodyne" / "vlp16_county_fair.pcap",
            FIXTURES / "lidar" / "ouster" / "OS-1-128_v2.3.0_1024x10_lb_n3.pcap"]
SIZES = [("16 KiB", 16 * 1024), ("256 KiB", 256 * 1024), ("1 MiB", 1024 * 1024), ("4 MiB", 4 * 1024 * 1024)]


@lru_cache(maxsize=2)
def pool(path: str | None = None) -> bytes:
    """Raw packet bytes without repetition (random bytes when no capture is there)."""
    from sensors.packets import open_packet_source

    sources = [Path(path)] if path else [p for p in CAPTURES if p.exists()]
    raw = b""
    for src in sources:
        with open_packet_source(str(src)) as s:
            raw += b"".join(p.data for p in s)
    return raw or os.urandom(2 << 20)


def payload(size: int, path: str | None = None) -> bytes:
    """``size`` bytes of raw packets (repeated past the pool's length)."""
    raw = pool(path)
    return (raw * (size // len(raw) + 1))[:size]


def unique_prefix(size: int, path: str | None = None) -> bytes:
    """At most ``size`` bytes without repetition (for content-dependent costs)."""
    return pool(path)[:size]


def source_name(path: str | None = None) -> str:
    if path:
        return Path(path).name
    found = [p.name.split("_")[0] for p in CAPTURES if p.exists()]
    return "+".join(found) + " packets" if found else "random bytes"
