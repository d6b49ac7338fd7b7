"""Velodyne decoding: our numba decoder against velodyne_decoder 3.1 (C++), same captures, same run.

The work measured on both sides is the whole job from a pcap on disk: read the capture, cut
scans, compute XYZ (and the other point fields) of every non-zero return. Ours:
``open_packet_source`` + ``VelodyneDecoder`` (cut at 0 degrees). velodyne_decoder:
``vd.read_pcap`` with ``cut_angle=0`` (its default config otherwise). Note that on the VLP-16
county-fair capture velodyne_decoder trusts the packets' product byte (0x21) and decodes them
with HDL-32E geometry; the work per point is the same, so the rate still compares.

Rows per capture: throughput in million points per second with the reference beside it and
``ratio`` = ours / velodyne_decoder (higher is better); each side is timed as the best of
repeated calls over at least a second (bench._harness.measure). A last row gives our cold
start: the first decode in a fresh process with an empty numba cache (JIT compile), which the
timed rows exclude.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._harness import Row, measure, ratio_row

SUITE = "decode-velodyne"
_ROOT = Path(__file__).resolve().parents[1]
_FIXTURES = Path(os.environ.get("EDGE_AGENT_FIXTURES", _ROOT.parent / "shared" / "fixtures"))
_FIXTURES = _FIXTURES / "lidar" / "velodyne"
CAPTURES = [
    ("VLP-16 county fair", "vlp16_county_fair.pcap"),
    ("HDL-32E with GPS", "hdl32e_with_gps.pcap"),
]


def decode_ours(pcap: str) -> tuple[int, int]:
    """Scans and points of a capture decoded by our decoder."""
    from sensors.lidar.velodyne import VelodyneDecoder
    from sensors.packets import open_packet_source

    dec = VelodyneDecoder(cut_angle_deg=0.0)
    scans = points = 0
    with open_packet_source(pcap) as src:
        for batch in (dec.feed(src), dec.flush()):
            for scan in batch:
                scans += 1
                points += len(scan)
    return scans, points


def decode_reference(pcap: str) -> tuple[int, int]:
    """The same work with velodyne_decoder."""
    import velodyne_decoder as vd

    cfg = vd.Config()
    cfg.cut_angle = 0.0
    scans = points = 0
    for _stamp, cloud in vd.read_pcap(pcap, cfg):
        scans += 1
        points += len(cloud)
    return scans, points


def _cold_start(pcap: str) -> float:
    """Seconds of the first decode in a fresh process with an empty numba cache."""
    code = (
        "import time, sys; t = time.perf_counter();"
        "from bench.suite_decode_velodyne import decode_ours; decode_ours(sys.argv[1]);"
        "print(time.perf_counter() - t)"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(_ROOT))
        out = subprocess.run([sys.executable, "-c", code, pcap], env=env, cwd=_ROOT, capture_output=True,
                             text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def run(input: str | None = None, meta: str | None = None) -> list[Row]:
    """Rows for each Velodyne capture (or ``input``); ``meta`` is unused (Velodyne needs none)."""
    if input:
        cases = [(Path(input).name, str(input))]
    else:
        cases = [(name, str(_FIXTURES / f)) for name, f in CAPTURES]
    rows: list[Row] = []
    for name, pcap in cases:
        if not Path(pcap).exists():
            continue
        decode_ours(pcap)  # JIT warm-up (and the numba cache), outside the timing
        t_ours, (scans, pts) = measure(lambda: decode_ours(pcap))
        try:
            t_ref, (_, ref_pts) = measure(lambda: decode_reference(pcap))
        except ImportError:
            t_ref, ref_pts = None, 0
        ours_rate = pts / t_ours / 1e6
        ref_rate = ref_pts / t_ref / 1e6 if t_ref else None
        rows.append(ratio_row(SUITE, name, "throughput", "Mpts/s", ours_rate, ref_rate, "velodyne_decoder"))
        rows.append(ratio_row(SUITE, name, "scans per second", "scans/s", scans / t_ours,
                              None if t_ref is None else scans / t_ref, "velodyne_decoder"))
    if cases and Path(cases[0][1]).exists():
        rows.append(Row(SUITE, f"{cases[0][0]} cold start", "JIT warm-up", "s", _cold_start(cases[0][1]),
                        better="lower"))
    return rows
