"""Codecs: our quantized XYZ codec against Draco and LAZ, our lossless range-image codec
against zstd, same clouds and packets, same run, single-threaded.

**Quantized XYZ** at a 1 cm step (5 mm maximum error), on: the nuScenes sweep (HDL-32E, 34,688
points), the largest decoded scan of each LiDAR fixture (VLP-16 pcap, HDL-32E pcap, OS-1-128,
OS-0-32), ten nuScenes sweeps stacked (jittered copies, 347k points), and each of them shuffled
(a random permutation); or ``--input CLOUD`` (.npz with ``xyz`` or ``x``/``y``/``z``, .pcd,
.ply, or .bin float32 rows of 5 or 4 values).

- *ours, xyz*: xyz alone (no attribute to lean on); *ours, xyz+ring*: the cloud's ring numbers
  coded along (their bits included), which is what scan-structure prediction uses.
- *Draco*: DracoPy, compression level 10, at the coarsest quantization whose step keeps the
  error within 5 mm (``bits = ceil(log2(range / 1 cm + 1))``: step = range / (2**bits - 1),
  error <= step / 2); points only.
- *LAZ*: laspy + lazrs, point format 0, scale 1 cm, xyz only (the other fields zero).

Rows: bits/point of ours vs the better of Draco and LAZ (``ratio`` = ours / reference, lower
is better; target 0.7), and encode and decode Mpts/s of ours vs each reference (higher is
better; targets 20 and 40 Mpts/s).

**Range image** (lossless), on the data packets of each LiDAR fixture: bits per return of ours vs
zstd level 19 on the same packet bytes (target ratio 0.55), and encode Mret/s of ours vs zstd-19
(target ratio 10). The decode row compares with zstd decompression.

Timings are the best of repeated calls over at least ``MIN_SECONDS`` (bench._harness.measure);
the first call of each of our codecs (numba JIT or cache load) is reported as its own row.
"""

from __future__ import annotations

import io
import math
import os
import time
from pathlib import Path

import numpy as np

from bench._harness import Row, measure, ratio_row

SUITE = "codec"
MIN_SECONDS = 0.3
STEP = 0.01
_ROOT = Path(__file__).resolve().parents[1]
_FIXTURES = Path(os.environ.get("EDGE_AGENT_FIXTURES", _ROOT.parent / "shared" / "fixtures"))
PACKETS = [
    ("VLP-16 pcap", "lidar/velodyne/vlp16_county_fair.pcap", None),
    ("HDL-32E pcap", "lidar/velodyne/hdl32e_with_gps.pcap", None),
    ("VLP-16 rosbag2", "lidar/velodyne/vlp16_rosbag2", None),
    ("OS-1-128 lb", "lidar/ouster/OS-1-128_v2.3.0_1024x10_lb_n3.pcap", "lidar/ouster/OS-1-128_v2.3.0_1024x10.json"),
    ("OS-0-32", "lidar/ouster/OS-0-32-U1_v2.2.0_1024x10.pcap", "lidar/ouster/OS-0-32-U1_v2.2.0_1024x10.json"),
]


# -- inputs -------------------------------------------------------------------------------------

def load_cloud(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """xyz (n, 3) float64 and ring (or None) of a cloud file."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".npz":
        z = np.load(p)
        xyz = z["xyz"] if "xyz" in z else np.stack([z["x"], z["y"], z["z"]], axis=1)
        ring = z.get("ring")
        return np.asarray(xyz, np.float64), ring
    if suffix == ".bin":
        raw = np.fromfile(p, np.float32)
        cols = 5 if raw.size % 5 == 0 else 4
        a = raw.reshape(-1, cols)
        ring = a[:, 4].astype(np.uint16) if cols == 5 else None
        return a[:, :3].astype(np.float64), ring
    if suffix in (".pcd", ".ply"):
        import open3d as o3d

        pc = o3d.io.read_point_cloud(str(p))
        return np.asarray(pc.points, np.float64), None
    from agent.errors import AgentError

    raise AgentError(f"bench codec: cannot read {path} (use .npz, .pcd, .ply or .bin)")


def _packets(rel: str) -> list:
    from sensors.packets import open_packet_source

    with open_packet_source(str(_FIXTURES / rel), None) as src:
        return list(src)


def fixture_clouds() -> list[tuple[str, np.ndarray, np.ndarray | None]]:
    out: list[tuple[str, np.ndarray, np.ndarray | None]] = []
    found = sorted((_FIXTURES / "camera" / "nuscenes").glob("LIDAR_TOP__*.pcd.bin"))
    if found:
        xyz, ring = load_cloud(str(found[0]))
        out.append(("nuScenes sweep", xyz, ring))
        rng = np.random.default_rng(0)
        stack = np.concatenate([xyz + rng.normal(0, 0.01, xyz.shape) for _ in range(10)])
        out.append(("nuScenes x10 stacked", stack, np.tile(ring, 10) if ring is not None else None))
    from sensors.lidar import make_decoder

    for name, rel, meta in PACKETS:
        if name == "VLP-16 rosbag2" or not (_FIXTURES / rel).exists():
            continue
        dec = make_decoder(meta=str(_FIXTURES / meta) if meta else None)
        pk = _packets(rel)
        scans = list(dec.feed(pk)) + list(dec.flush())
        s = max(scans, key=len)
        out.append((f"{name} scan", s.xyz.astype(np.float64), s.ring))
    return out


# -- references ---------------------------------------------------------------------------------

def draco_bits(xyz: np.ndarray) -> int:
    """Coarsest Draco quantization whose error stays within STEP / 2."""
    rng = float((xyz.max(axis=0) - xyz.min(axis=0)).max()) if len(xyz) else 0.0
    return max(1, min(30, math.ceil(math.log2(rng / STEP + 1))))


def draco_encode(xyz: np.ndarray, qbits: int) -> bytes:
    import DracoPy

    return DracoPy.encode(xyz.astype(np.float32), quantization_bits=qbits, compression_level=10)


def draco_decode(blob: bytes) -> np.ndarray:
    import DracoPy

    return np.asarray(DracoPy.decode(blob).points)


def laz_encode(xyz: np.ndarray) -> bytes:
    import laspy

    header = laspy.LasHeader(point_format=0, version="1.2")
    header.scales = np.array([STEP, STEP, STEP])
    header.offsets = np.floor(xyz.min(axis=0))
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
    buf = io.BytesIO()
    las.write(buf, do_compress=True, laz_backend=laspy.LazBackend.Lazrs)
    return buf.getvalue()


def laz_decode(blob: bytes) -> np.ndarray:
    import laspy

    with laspy.open(io.BytesIO(blob), laz_backend=laspy.LazBackend.Lazrs) as f:
        las = f.read()
    return np.stack([las.x, las.y, las.z], axis=1)


# -- the suite ----------------------------------------------------------------------------------

def _cloud_rows(case: str, xyz: np.ndarray, ring: np.ndarray | None) -> list[Row]:
    from pipeline.codecs.quantized import QuantizedCodec

    n = len(xyz)
    rows: list[Row] = []
    codec = QuantizedCodec(step=STEP)
    qb = draco_bits(xyz)
    t_dr, dr = measure(lambda: draco_encode(xyz, qb), MIN_SECONDS)
    t_drd, _ = measure(lambda: draco_decode(dr), MIN_SECONDS)
    t_lz, lz = measure(lambda: laz_encode(xyz), MIN_SECONDS)
    t_lzd, _ = measure(lambda: laz_decode(lz), MIN_SECONDS)
    refs = {f"Draco q{qb} L10": (len(dr) * 8 / n, t_dr, t_drd), "LAZ lazrs 1cm": (len(lz) * 8 / n, t_lz, t_lzd)}
    best_name = min(refs, key=lambda k: refs[k][0])
    variants = [("xyz", None)] + ([("xyz+ring", {"ring": ring})] if ring is not None else [])
    for label, attrs in variants:
        t_enc, blob = measure(lambda attrs=attrs: codec.encode(xyz, attrs), MIN_SECONDS)
        mode = codec.last_mode
        t_dec, _ = measure(lambda blob=blob: codec.decode(blob), MIN_SECONDS)
        bits = len(blob) * 8 / n
        rows.append(ratio_row(SUITE, f"{case} [{label}, {mode}]", "bits/point", "bits", bits, refs[best_name][0],
                              best_name, better="lower"))
        for ref_name, (_, te, td) in refs.items():
            rows.append(ratio_row(SUITE, f"{case} [{label}]", "encode", "Mpts/s", n / t_enc / 1e6, n / te / 1e6,
                                  ref_name))
            rows.append(ratio_row(SUITE, f"{case} [{label}]", "decode", "Mpts/s", n / t_dec / 1e6, n / td / 1e6,
                                  ref_name))
    return rows


def _packet_rows(case: str, pk: list, meta: str | None) -> list[Row]:
    import zstandard

    from pipeline.codecs.rangeimage import RangeImageCodec, layout_for

    layout = layout_for(pk, meta)
    data = [p for p in pk if len(p.data) == layout.size]
    nret = len(data) * layout.n_cols * layout.n_pix
    raw = b"".join(p.data for p in data)
    codec = RangeImageCodec()
    zc = zstandard.ZstdCompressor(level=19)
    t_z, zb = measure(lambda: zc.compress(raw), MIN_SECONDS)
    zd = zstandard.ZstdDecompressor()
    t_zd, _ = measure(lambda: zd.decompress(zb), MIN_SECONDS)
    t_enc, blob = measure(lambda: codec.encode(data, layout), MIN_SECONDS)
    t_dec, _ = measure(lambda: codec.decode(blob), MIN_SECONDS)
    label = f"{case} ({len(data)} packets, {layout.name})"
    return [
        ratio_row(SUITE, label, "bits/return", "bits", len(blob) * 8 / nret, len(zb) * 8 / nret, "zstd-19 packets",
                  better="lower"),
        ratio_row(SUITE, label, "encode", "Mret/s", nret / t_enc / 1e6, nret / t_z / 1e6, "zstd-19 packets"),
        ratio_row(SUITE, label, "decode", "Mret/s", nret / t_dec / 1e6, nret / t_zd / 1e6, "zstd-19 packets"),
    ]


def _warmup_rows() -> list[Row]:
    """First calls (numba JIT, or loading its cache) of both codecs, on tiny inputs."""
    from pipeline.codecs.quantized import QuantizedCodec
    from pipeline.codecs.rangeimage import RangeImageCodec, velodyne_layout

    t0 = time.perf_counter()
    q = QuantizedCodec()
    for order in ("scan", "morton"):
        q.order = order
        q.decode(q.encode(np.random.default_rng(0).normal(size=(50, 3)), {"ring": np.arange(50) % 4}))
    t1 = time.perf_counter()
    r = RangeImageCodec()
    r.decode(r.encode([bytes(1206)], velodyne_layout()))
    t2 = time.perf_counter()
    return [Row(SUITE, "warm-up quantized (JIT or cache load)", "first call", "s", t1 - t0, better="lower"),
            Row(SUITE, "warm-up rangeimage (JIT or cache load)", "first call", "s", t2 - t1, better="lower")]


def run(input: str | None = None, meta: str | None = None) -> list[Row]:
    rows = _warmup_rows()
    if input is not None:
        xyz, ring = load_cloud(input)
        clouds = [(Path(input).name, xyz, ring)]
        packet_cases: list[tuple[str, str, str | None]] = []
    else:
        clouds = fixture_clouds()
        packet_cases = [c for c in PACKETS if (_FIXTURES / c[1]).exists()]
    rng = np.random.default_rng(1)
    for name, xyz, ring in clouds:
        rows += _cloud_rows(name, xyz, ring)
        perm = rng.permutation(len(xyz))
        rows += _cloud_rows(f"{name} shuffled", xyz[perm], ring[perm] if ring is not None else None)
    for name, rel, meta_rel in packet_cases:
        rows += _packet_rows(name, _packets(rel), str(_FIXTURES / meta_rel) if meta_rel else None)
    return rows
