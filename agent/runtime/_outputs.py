"""Per-dataset outputs for people: read back from the sealed, signed dataset itself.

``<out>/``
  ``track.geojson``   the GNSS track (LineString, from the dataset's NMEA chunks, 1 Hz)
  ``tiles.geojson``   one Polygon per chunk tile (slippy z/x/y) with its chunks and points
  ``coverage.png``    a map of tiles, track and a sample of the points (matplotlib, Agg)
  ``points.laz``      the georeferenced points (LAS 1.4, LAZ), local ENU metres around the
                      origin in ``index.json`` (CloudCompare opens it as is)
  ``index.json``      what was written, the ENU origin, counts
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np


def _chunks(ddir: Path) -> list[tuple[Any, Path]]:
    from agent.provenance import parse_chunk

    out = []
    for p in sorted((ddir / "chunks").glob("*.cose")):
        _msg, h = parse_chunk(p.read_bytes())
        out.append((h, p.with_suffix(".bin")))
    return out


def _track(chunks: list[tuple[Any, Path]]) -> list[list[float]]:
    import zstandard

    from sensors.gnss import Gga, try_parse

    pts: list[tuple[int, float, float]] = []
    for h, binp in chunks:
        if not h.stream.endswith("/nmea") or not binp.exists():
            continue
        text = zstandard.ZstdDecompressor().decompress(binp.read_bytes()).decode(errors="replace")
        last_s = None
        for line in text.splitlines():
            rec = try_parse(line, require_checksum=False)
            if isinstance(rec, Gga) and rec.lat is not None and rec.lon is not None and rec.quality > 0:
                sec = (rec.tod_ns or 0) // 1_000_000_000
                if sec != last_s:
                    pts.append((h.t_start_ns, rec.lon, rec.lat))
                    last_s = sec
    pts.sort(key=lambda p: p[0])
    return [[lon, lat] for _t, lon, lat in pts]


def write_outputs(ddir: str | Path, out: str | Path, config: Any | None = None, *, points: bool = True,
                  png: bool = True) -> dict[str, Any]:
    """Write the outputs of the sealed dataset ``ddir`` into ``out``; returns the index."""
    from pipeline.chunking import tile_bounds

    ddir, out = Path(ddir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    chunks = _chunks(ddir)
    track = _track(chunks)
    tiles: dict[str, dict[str, Any]] = {}
    for h, _ in chunks:
        if h.tile:
            t = tiles.setdefault(h.tile, {"chunks": 0, "points": 0, "streams": set()})
            t["chunks"] += 1
            t["points"] += int(h.counts.get("points", 0))
            t["streams"].add(h.stream)
    feats = []
    for tile, info in sorted(tiles.items()):
        z, x, y = (int(v) for v in tile.split("/"))
        w, s, e, n = tile_bounds(z, x, y)
        feats.append({"type": "Feature", "properties": {"tile": tile, "chunks": info["chunks"], "points": info["points"],
                                                        "streams": sorted(info["streams"])},
                      "geometry": {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}})
    session = ddir.name
    (out / "tiles.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    (out / "track.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"session": session, "fixes": len(track)},
         "geometry": {"type": "LineString", "coordinates": track}}]}))
    index: dict[str, Any] = {"session": session, "tiles": len(feats), "track_points": len(track),
                             "files": ["track.geojson", "tiles.geojson"]}
    sample = np.zeros((0, 2))
    if points:
        n, origin, sample = _write_laz(chunks, out / "points.laz")
        if n:
            index.update(points=n, origin_lat_lon_h=origin, frame="ENU metres around origin_lat_lon_h")
            index["files"].append("points.laz")
    if png:
        _png(out / "coverage.png", feats, track, sample, session)
        index["files"].append("coverage.png")
    (out / "index.json").write_text(json.dumps(index, indent=1))
    index["dir"] = str(out)
    return index


def _write_laz(chunks: list[tuple[Any, Path]], path: Path) -> tuple[int, list[float] | None, np.ndarray]:
    """Points of every quantized chunk (decoded from the signed payloads) to one LAZ file."""
    import laspy

    from pipeline.codecs.quantized import QuantizedCodec
    from pipeline.georef import enu_to_geodetic

    pts = [(h, b) for h, b in chunks if h.codec == "quantized" and b.exists()]
    if not pts:
        return 0, None, np.zeros((0, 2))
    origin = list(pts[0][0].codec_params["origin"])
    codec = QuantizedCodec()
    header = laspy.LasHeader(point_format=1, version="1.4")
    header.scales = np.array([0.01, 0.01, 0.01])
    header.offsets = np.array([0.0, 0.0, 0.0])
    header.system_identifier = "edge-agent ENU"
    header.generating_software = "edge-agent"
    rng = np.random.default_rng(0)
    samples = []
    n = 0
    path.unlink(missing_ok=True)
    try:  # compress on every core (Rust threads, outside the GIL)
        backend: Any = laspy.LazBackend.LazrsParallel
        if not backend.is_available():
            backend = None
    except AttributeError:
        backend = None
    with laspy.open(path, mode="w", header=header, do_compress=True, laz_backend=backend) as w:
        for h, binp in pts:
            cloud = codec.decode(binp.read_bytes())
            xyz = cloud.xyz
            if list(h.codec_params["origin"]) != origin:  # another origin: through ECEF into this one
                from pipeline.georef import geodetic_to_enu

                geo = enu_to_geodetic(np.ascontiguousarray(xyz), *h.codec_params["origin"])
                xyz = geodetic_to_enu(np.ascontiguousarray(geo), *origin)
            rec = laspy.ScaleAwarePointRecord.zeros(len(xyz), header=header)
            rec.x, rec.y, rec.z = xyz[:, 0], xyz[:, 1], xyz[:, 2]
            inten = cloud.attrs.get("intensity")
            if inten is not None:
                rec.intensity = np.asarray(inten).astype(np.uint16)
            w.write_points(rec)
            n += len(xyz)
            k = min(len(xyz), 4000)
            samples.append(xyz[rng.choice(len(xyz), k, replace=False)] if k else xyz[:0])
    sxyz = np.concatenate(samples) if samples else np.zeros((0, 3))
    geo = enu_to_geodetic(np.ascontiguousarray(sxyz), *origin) if len(sxyz) else np.zeros((0, 3))
    return n, origin, geo[:, [1, 0]] if len(geo) else np.zeros((0, 2))


def _png(path: Path, feats: list[dict[str, Any]], track: list[list[float]], sample: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 7), dpi=100)
    for f in feats:
        ring = np.array(f["geometry"]["coordinates"][0])
        ax.fill(ring[:, 0], ring[:, 1], alpha=0.15, color="tab:blue")
        ax.plot(ring[:, 0], ring[:, 1], color="tab:blue", lw=0.8)
        c = ring[:4].mean(axis=0)
        ax.text(c[0], c[1], f["properties"]["tile"], fontsize=6, ha="center", color="tab:blue")
    if len(sample):
        ax.scatter(sample[:, 0], sample[:, 1], s=0.2, color="0.3", alpha=0.5, label="points (sample)")
    if track:
        t = np.array(track)
        ax.plot(t[:, 0], t[:, 1], color="tab:red", lw=2, label="GNSS track")
    lat = np.mean([c[1] for f in feats for c in f["geometry"]["coordinates"][0]]) if feats else 0.0
    ax.set_aspect(1.0 / max(math.cos(math.radians(lat)), 1e-3))
    ax.set_xlabel("longitude (deg)")
    ax.set_ylabel("latitude (deg)")
    ax.set_title(f"coverage of {title}", fontsize=9)
    if track or len(sample):
        ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
