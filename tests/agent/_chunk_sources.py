"""Real payloads chunked for the provenance tests (until the pipeline exists): raw Velodyne
packets of a pcap chunked by time window, and NMEA lines chunked by fix count."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from agent.provenance import ChunkSpec


def pcap_chunks(path: Path, window_s: float = 0.01, rounds: int = 1, stream: str = "lidar/vlp16",
                start_after_ns: int = -1) -> Iterator[ChunkSpec]:
    """Packets grouped by ``window_s`` of capture time; ``rounds`` replays the capture again
    shifted in time (a longer stream); chunks ending at or before ``start_after_ns`` are skipped
    (resuming an interrupted ingestion)."""
    from sensors.packets import open_packet_source

    with open_packet_source(str(path)) as src:
        packets = list(src)
    span = packets[-1].timestamp - packets[0].timestamp + window_s
    for r in range(rounds):
        shift = r * span
        group: list = []
        w0 = None
        for p in packets:
            t = p.timestamp + shift
            w = math.floor(t / window_s)
            if w0 is not None and w != w0 and group:
                spec = _packet_spec(group, stream)
                if spec.t_end_ns > start_after_ns:
                    yield spec
                group = []
            w0 = w
            group.append((t, p))
        if group:
            spec = _packet_spec(group, stream)
            if spec.t_end_ns > start_after_ns:
                yield spec


def _packet_spec(group: list, stream: str) -> ChunkSpec:
    # Length-prefixed packets: the payload keeps every byte as it left the sensor.
    payload = b"".join(len(p.data).to_bytes(2, "big") + p.port.to_bytes(2, "big") + p.data for _, p in group)
    return ChunkSpec(stream=stream, sensor="velodyne-vlp16", t_start_ns=int(group[0][0] * 1e9),
                     t_end_ns=int(group[-1][0] * 1e9), payload=payload, codec="raw-packets",
                     codec_params={"framing": "u16 length, u16 port, bytes"}, counts={"packets": len(group)})


def nmea_chunks(path: Path, fixes_per_chunk: int = 30, stream: str = "gnss/nmea", zoom: int = 14) -> Iterator[ChunkSpec]:
    """NMEA lines, one chunk per ``fixes_per_chunk`` RMC sentences, with bbox and slippy tile."""
    from sensors.gnss import Rmc, try_parse

    lines: list[bytes] = []
    pts: list[tuple[float, float]] = []
    fixes = 0
    t_first = t_last = None
    for raw in path.read_bytes().splitlines():
        if not raw.startswith(b"$"):
            continue
        lines.append(raw)
        rec = try_parse(raw, require_checksum=False)
        if isinstance(rec, Rmc) and rec.lat is not None and rec.lon is not None:
            pts.append((rec.lon, rec.lat))
            fixes += 1
            t = fixes  # the fixture's dates are sparse: time = fix count in seconds from a fixed epoch
            t_first = t if t_first is None else t_first
            t_last = t
            if fixes % fixes_per_chunk == 0:
                yield _nmea_spec(lines, pts, t_first, t_last, stream, zoom)
                lines, pts, t_first = [], [], None
    if pts:
        yield _nmea_spec(lines, pts, t_first, t_last, stream, zoom)


def _nmea_spec(lines: list[bytes], pts: list[tuple[float, float]], t0: int | None, t1: int | None, stream: str,
               zoom: int) -> ChunkSpec:
    lons = [p[0] for p in pts]
    lats = [p[1] for p in pts]
    bbox = (min(lons), min(lats), max(lons), max(lats))
    lon, lat = (bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2
    n = 2**zoom
    x = int((lon + 180.0) / 360.0 * n)
    y = int((1.0 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2.0 * n)
    base = 1_400_000_000_000_000_000
    return ChunkSpec(stream=stream, sensor="nmea-0183", t_start_ns=base + (t0 or 0) * 10**9,
                     t_end_ns=base + (t1 or 0) * 10**9, payload=b"\r\n".join(lines) + b"\r\n", codec="nmea-lines",
                     tile=f"{zoom}/{x}/{y}", bbox=bbox, counts={"lines": len(lines), "fixes": len(pts)})


PCAP = "lidar/velodyne/vlp16_county_fair.pcap"
NMEA = "gnss/munich_drive_2014.nmea"


def small_dataset(root: Path, signer=None, max_chunks: int = 4, nmea_fixes: int = 400, pcap_window_s: float = 0.03):
    """A sealed dataset from both fixtures (a few chunks per stream, several Flows).
    Returns (store, dataset directory, signer)."""
    from agent.keys import Ed25519Signer
    from agent.provenance import ProvenanceConfig
    from agent.store import ChunkStore
    from tests._fixtures import fixture_file

    signer = signer or Ed25519Signer(bytes(range(32)))
    store = ChunkStore(root, signer, ProvenanceConfig(flow={"max_chunks": max_chunks}), config_hash="0" * 64,
                       evm_address="0x0000000000000000000000000000000000000001")
    for spec in pcap_chunks(fixture_file(PCAP), window_s=pcap_window_s):
        store.ingest(spec)
    for spec in nmea_chunks(fixture_file(NMEA), nmea_fixes):
        store.ingest(spec)
    # A tiny stream too (ignition events), so a test can flip every byte of a payload.
    store.ingest(ChunkSpec("power/events", "vehicle-unit", 1, 2, b'{"ignition":"on","t":1}', codec="json",
                           counts={"events": 1}))
    store.seal_dataset("explicit", session="drive-1")
    return store, store.dataset_dir("drive-1"), signer
