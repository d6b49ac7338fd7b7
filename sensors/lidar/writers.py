"""Point-cloud files from decoded scans: ``.npz`` (all scans, with a scan index), ``.ply``,
``.pcd`` (binary), ``.las`` / ``.laz`` (laspy; LAZ through lazrs).

Fields: x y z intensity ring azimuth time return_type, plus ``scan`` (the scan index).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from sensors.errors import SensorError
from sensors.lidar._scan import POINT_FIELDS, Scan

FORMATS = (".npz", ".ply", ".pcd", ".las", ".laz")


def scans_to_columns(scans: Sequence[Scan]) -> dict[str, np.ndarray]:
    """Concatenate scans into columns with a ``scan`` index column."""
    cols: dict[str, np.ndarray] = {}
    for name in POINT_FIELDS:
        parts = [getattr(s, name) for s in scans]
        cols[name] = np.concatenate(parts) if parts else np.empty(0)
    cols["scan"] = np.concatenate([np.full(len(s), s.index, dtype=np.uint32) for s in scans]) if scans else np.empty(0, np.uint32)
    return cols


_DTYPES = {
    "x": np.float32,
    "y": np.float32,
    "z": np.float32,
    "intensity": np.float32,
    "ring": np.uint16,
    "azimuth": np.float32,
    "time": np.float64,
    "return_type": np.uint8,
    "scan": np.uint32,
}


def _structured(cols: dict[str, np.ndarray]) -> np.ndarray:
    n = len(cols["x"])
    arr = np.empty(n, dtype=[(k, _DTYPES[k]) for k in _DTYPES])
    for k in _DTYPES:
        arr[k] = cols[k]
    return arr


def write_points(path: str | Path, scans: Sequence[Scan]) -> int:
    """Write ``scans`` to ``path`` (format from the suffix); returns the number of points.
    Written to a temporary name and renamed, so a reader never sees half a file."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise SensorError(f"{path}: unknown output format {suffix!r}; use one of {', '.join(FORMATS)}")
    cols = scans_to_columns(scans)
    tmp = path.with_name(f".{path.name}.tmp{suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npz":
        meta = np.array([(s.index, len(s), s.t_start, s.t_end) for s in scans], dtype=[("index", "u4"), ("points", "u4"), ("t_start", "f8"), ("t_end", "f8")])
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **{k: cols[k].astype(_DTYPES[k]) for k in _DTYPES}, scans=meta)
    elif suffix == ".ply":
        _write_ply(tmp, _structured(cols))
    elif suffix == ".pcd":
        _write_pcd(tmp, _structured(cols))
    else:
        _write_las(tmp, cols)
    os.replace(tmp, path)
    return len(cols["x"])


_PLY_TYPES = {np.float32: "float", np.float64: "double", np.uint16: "ushort", np.uint8: "uchar", np.uint32: "uint"}
_PCD_TYPES = {np.float32: ("F", 4), np.float64: ("F", 8), np.uint16: ("U", 2), np.uint8: ("U", 1), np.uint32: ("U", 4)}


def _write_ply(path: Path, arr: np.ndarray) -> None:
    lines = ["ply", "format binary_little_endian 1.0", f"element vertex {len(arr)}"]
    lines += [f"property {_PLY_TYPES[_DTYPES[k]]} {k}" for k in _DTYPES]
    lines.append("end_header")
    with open(path, "wb") as fh:
        fh.write(("\n".join(lines) + "\n").encode("ascii"))
        fh.write(arr.astype(arr.dtype.newbyteorder("<")).tobytes())


def _write_pcd(path: Path, arr: np.ndarray) -> None:
    names = list(_DTYPES)
    types = [_PCD_TYPES[_DTYPES[k]] for k in names]
    header = [
        "# .PCD v0.7 - Point Cloud Data file format",
        "VERSION 0.7",
        "FIELDS " + " ".join(names),
        "SIZE " + " ".join(str(t[1]) for t in types),
        "TYPE " + " ".join(t[0] for t in types),
        "COUNT " + " ".join("1" for _ in names),
        f"WIDTH {len(arr)}",
        "HEIGHT 1",
        "VIEWPOINT 0 0 0 1 0 0 0",
        f"POINTS {len(arr)}",
        "DATA binary",
    ]
    with open(path, "wb") as fh:
        fh.write(("\n".join(header) + "\n").encode("ascii"))
        fh.write(arr.tobytes())


def _write_las(path: Path, cols: dict[str, np.ndarray]) -> None:
    import laspy

    header = laspy.LasHeader(point_format=6, version="1.4")
    header.scales = np.array([0.001, 0.001, 0.001])
    xyz = [cols[k].astype(np.float64) for k in ("x", "y", "z")]
    header.offsets = np.array([float(np.floor(v.min())) if len(v) else 0.0 for v in xyz])
    header.add_extra_dims(
        [
            laspy.ExtraBytesParams(name="ring", type=np.uint16),
            laspy.ExtraBytesParams(name="azimuth", type=np.float32),
            laspy.ExtraBytesParams(name="scan", type=np.uint32),
        ]
    )
    las = laspy.LasData(header)
    las.x, las.y, las.z = xyz
    las.intensity = np.clip(cols["intensity"], 0, 65535).astype(np.uint16)
    las.gps_time = cols["time"].astype(np.float64)
    las.return_number = np.ones(len(xyz[0]), dtype=np.uint8)
    las.number_of_returns = np.ones(len(xyz[0]), dtype=np.uint8)
    las.ring = cols["ring"].astype(np.uint16)
    las.azimuth = cols["azimuth"].astype(np.float32)
    las.scan = cols["scan"].astype(np.uint32)
    with open(path, "wb") as fh:
        las.write(fh, do_compress=path.suffix.lower() == ".laz" or str(path).lower().endswith(".laz"))
