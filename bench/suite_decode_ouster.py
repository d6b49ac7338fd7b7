"""Ouster decoding: our numba decoder against ouster-sdk, same captures, same run.

The work measured on both sides is the whole job from a pcap on disk: read the capture,
assemble frames, destagger the range image and compute XYZ of the valid returns (both returns
for dual profiles). Ours: ``open_packet_source`` + ``OusterDecoder`` (points and every
destaggered field image). ouster-sdk: ``PcapFrameSetSource`` + ``XYZLut`` + ``destagger`` of
the range and XYZ images + selection of the valid returns. Each side builds its look-up
tables once per call, as a fresh open of a file would.

Rows per capture: throughput in million points per second (valid returns) for ours with the
reference beside it and ``ratio`` = ours / ouster-sdk (higher is better), and frames per
second; then the decoding alone on packets already in memory (ours: ``OusterDecoder.feed``;
ouster-sdk: ``FrameBatcher`` + ``XYZLut`` + ``destagger``), in frames per second. A last row gives our cold start: the first decode in a fresh process with an empty
numba cache (JIT compile), which the timed rows exclude.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench._harness import Row, measure, ratio_row

SUITE = "decode-ouster"
_ROOT = Path(__file__).resolve().parents[1]
_FIXTURES = Path(os.environ.get("EDGE_AGENT_FIXTURES", _ROOT.parent / "shared" / "fixtures")) / "lidar" / "ouster"
CAPTURES = [
    ("OS-1-128 RNG15_RFL8_NIR8", "OS-1-128_v2.3.0_1024x10_lb_n3.pcap", "OS-1-128_v2.3.0_1024x10.json"),
    ("OS-0-32 RNG19_..._DUAL", "OS-0-32-U1_v2.2.0_1024x10.pcap", "OS-0-32-U1_v2.2.0_1024x10.json"),
    ("OS-0-128 crc_test RNG15", "crc_test.pcap", "crc_test.json"),
]


def decode_ours(pcap: str, meta: str) -> tuple[int, int]:
    """Frames and points of a capture decoded by our decoder."""
    from sensors.lidar.ouster import OusterDecoder
    from sensors.packets import open_packet_source

    dec = OusterDecoder(meta)
    frames = points = 0
    with open_packet_source(pcap) as src:
        for scans in (dec.feed(src), dec.flush()):
            for scan in scans:
                frames += 1
                points += len(scan)
    return frames, points


def decode_reference(pcap: str, meta: str) -> tuple[int, int]:
    """The same work with ouster-sdk."""
    from ouster.sdk import core
    from ouster.sdk import pcap as opcap

    src = opcap.PcapFrameSetSource(pcap, meta=[meta])
    info = src.sensor_info[0]
    lut = core.XYZLut(info)
    frames = points = 0
    for frame_set in src:
        frame = frame_set[0]
        if frame is None:
            continue
        frames += 1
        for name in ("RANGE", "RANGE2"):
            if not frame.has_field(name):
                continue
            rng = frame.field(name)
            image = core.destagger(info, rng)
            xyz = core.destagger(info, lut(rng))
            points += len(xyz[image > 0])
    src.close()
    return frames, points


def packets_in_memory(pcap: str, meta: str) -> tuple[list, list]:
    """The capture's lidar packets read once, for both sides: ours (Packet) and ouster-sdk's."""
    from ouster.sdk import core
    from ouster.sdk import pcap as opcap

    from sensors.packets import open_packet_source

    with open_packet_source(pcap) as src:
        ours = list(src)
    ref_src = opcap.PcapPacketSource(pcap, meta=[meta])
    ref = []
    for item in ref_src:
        packet = item[1] if isinstance(item, tuple) else item
        if isinstance(packet, core.LidarPacket):
            ref.append(packet)
    ref_src.close()
    return ours, ref


def batch_ours(packets: list, meta: str) -> tuple[int, int]:
    """Frames and points of packets already in memory, ours."""
    from sensors.lidar.ouster import OusterDecoder

    dec = OusterDecoder(meta)
    frames = points = 0
    for scans in (dec.feed(packets), dec.flush()):
        for scan in scans:
            frames += 1
            points += len(scan)
    return frames, points


def batch_reference(packets: list, meta: str) -> tuple[int, int]:
    """The same with ouster-sdk's FrameBatcher, XYZLut and destagger (complete frames only:
    the batcher keeps a last partial frame to itself)."""
    from ouster.sdk import core

    with open(meta) as fh:
        info = core.SensorInfo(fh.read())
    batcher = core.FrameBatcher(info)
    lut = core.XYZLut(info)
    frame = core.LidarFrame(info)
    frames = points = 0
    for packet in packets:
        if batcher.batch(packet, frame):
            frames += 1
            for name in ("RANGE", "RANGE2"):
                if frame.has_field(name):
                    rng = frame.field(name)
                    image = core.destagger(info, rng)
                    points += len(core.destagger(info, lut(rng))[image > 0])
            frame = core.LidarFrame(info)
    return frames, points


def _cold_start(pcap: str, meta: str) -> float:
    """Seconds of the first decode in a fresh process with an empty numba cache."""
    code = (
        "import time, sys; t = time.perf_counter();"
        "from bench.suite_decode_ouster import decode_ours; decode_ours(sys.argv[1], sys.argv[2]);"
        "print(time.perf_counter() - t)"
    )
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(_ROOT))
        out = subprocess.run([sys.executable, "-c", code, pcap, meta], env=env, capture_output=True,
                             text=True, check=True, timeout=300)
    return float(out.stdout.strip().splitlines()[-1])


def _sidecar_meta(input_path: str) -> str | None:
    cand = Path(input_path).with_suffix(".json")
    return str(cand) if cand.exists() else None


def run(input: str | None = None, meta: str | None = None) -> list[Row]:  # noqa: A002
    """Measure every Ouster fixture capture (or ``input`` with ``meta``)."""
    if input is not None:
        meta = meta or _sidecar_meta(input)
        if meta is None:
            from sensors.errors import MetadataError

            raise MetadataError(input, "an Ouster capture needs its metadata JSON (--meta)")
        cases = [(Path(input).name, input, meta)]
    else:
        cases = [(name, str(_FIXTURES / p), str(_FIXTURES / j)) for name, p, j in CAPTURES
                 if (_FIXTURES / p).exists()]
    rows: list[Row] = []
    if not cases:
        return rows
    cold = _cold_start(cases[0][1], cases[0][2])
    decode_ours(cases[0][1], cases[0][2])  # warm this process's JIT (from the cache)
    for name, pcap, meta_path in cases:
        t_ours, (frames, points) = measure(lambda: decode_ours(pcap, meta_path))
        t_ref, (ref_frames, ref_points) = measure(lambda: decode_reference(pcap, meta_path))
        mpts_ours = points / t_ours / 1e6
        mpts_ref = ref_points / t_ref / 1e6
        case = f"{name} ({frames} frames, {points:,} pts)"
        if (frames, points) != (ref_frames, ref_points):
            case += f" [ref: {ref_frames} frames, {ref_points:,} pts]"
        rows.append(ratio_row(SUITE, case, "throughput", "Mpts/s", mpts_ours, mpts_ref, "ouster-sdk"))
        rows.append(ratio_row(SUITE, case, "frames", "frames/s", frames / t_ours, ref_frames / t_ref,
                              "ouster-sdk"))
        # decoding alone, packets already in memory: frames/s, as the SDK's batcher holds back
        # a last partial frame (so the two sides may count different frames)
        pk_ours, pk_ref = packets_in_memory(pcap, meta_path)
        t_ours, (frames, points) = measure(lambda: batch_ours(pk_ours, meta_path))
        t_ref, (ref_frames, ref_points) = measure(lambda: batch_reference(pk_ref, meta_path))
        case = f"{name}, packets in memory ({frames} frames; ref {ref_frames})"
        rows.append(ratio_row(SUITE, case, "decode only", "frames/s", frames / t_ours, ref_frames / t_ref,
                              "ouster-sdk"))
    rows.append(Row(SUITE, f"cold start: first decode, empty numba cache ({cases[0][0]})", "jit warm-up", "s",
                    cold, better="lower"))
    return rows


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input")
    ap.add_argument("--meta")
    args = ap.parse_args()
    for row in run(args.input, args.meta):
        print(json.dumps(row.as_dict()))
