"""Read point clouds from files for benchmarks and tools (never used by the kernels).

Formats: ``.npz`` (``xyz`` or ``points`` arrays, or ``x``/``y``/``z`` columns as written by
``edge-agent decode``), ``.pcd`` (ASCII or binary; not binary_compressed), ``.ply`` (ASCII
or binary little/big endian vertex element), ``.bin`` (float32 rows of 5 values, as
nuScenes ``.pcd.bin``, or of 4, as KITTI; 5 is tried first when the size allows both).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.errors import PipelineError

FORMATS = (".npz", ".pcd", ".ply", ".bin")


class CloudFormatError(PipelineError):
    """A point-cloud file is unreadable or not in a supported format."""


@dataclass
class Cloud:
    """Points ``(N, 3)`` and any other per-point columns found in the file."""

    xyz: np.ndarray
    fields: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.xyz)


def _bin(path: Path) -> Cloud:
    raw = np.fromfile(path, dtype="<f4")
    name = path.name.lower()
    width = 5 if raw.size % 5 == 0 and (".pcd." in name or raw.size % 4 != 0) else 4
    if raw.size % width:
        raise CloudFormatError(f"{path}: {raw.size * 4} bytes is not a whole number of float32 x4 or x5 rows")
    a = raw.reshape(-1, width)
    fields = {"intensity": a[:, 3].copy()}
    if width == 5:
        fields["ring"] = a[:, 4].copy()
    return Cloud(np.ascontiguousarray(a[:, :3]), fields)


def _npz(path: Path) -> Cloud:
    with np.load(path) as z:
        keys = set(z.files)
        for k in ("xyz", "points"):
            if k in keys:
                a = np.asarray(z[k])
                return Cloud(np.ascontiguousarray(a[:, :3]), {n: z[n] for n in keys - {k}})
        if {"x", "y", "z"} <= keys:
            xyz = np.stack([z["x"], z["y"], z["z"]], axis=1)
            return Cloud(np.ascontiguousarray(xyz), {n: z[n] for n in keys - {"x", "y", "z"}})
    raise CloudFormatError(f"{path}: no 'xyz', 'points' or 'x'/'y'/'z' arrays in the npz (has {sorted(keys)})")


_PCD_TYPES = {("F", 4): "f4", ("F", 8): "f8", ("U", 1): "u1", ("U", 2): "u2", ("U", 4): "u4", ("U", 8): "u8",
              ("I", 1): "i1", ("I", 2): "i2", ("I", 4): "i4", ("I", 8): "i8"}


def _pcd(path: Path) -> Cloud:
    data = path.read_bytes()
    header: dict[str, list[str]] = {}
    pos = 0
    while True:
        end = data.find(b"\n", pos)
        if end < 0:
            raise CloudFormatError(f"{path}: PCD header without a DATA line")
        line = data[pos:end].decode("ascii", "replace").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *vals = line.split()
        header[key.upper()] = vals
        if key.upper() == "DATA":
            break
    try:
        names = header["FIELDS"]
        sizes = [int(v) for v in header["SIZE"]]
        types = header["TYPE"]
        counts = [int(v) for v in header.get("COUNT", ["1"] * len(names))]
        n = int(header["POINTS"][0]) if "POINTS" in header else int(header["WIDTH"][0]) * int(header["HEIGHT"][0])
        mode = header["DATA"][0].lower()
    except (KeyError, ValueError, IndexError) as exc:
        raise CloudFormatError(f"{path}: bad PCD header ({exc})") from None
    dt = []
    for name, size, typ, cnt in zip(names, sizes, types, counts):
        code = _PCD_TYPES.get((typ.upper(), size))
        if code is None:
            raise CloudFormatError(f"{path}: unsupported PCD field type {typ}{size} for {name!r}")
        dt.append((name if name != "_" else f"_pad{len(dt)}", "<" + code, (cnt,)) if cnt > 1
                  else (name if name != "_" else f"_pad{len(dt)}", "<" + code))
    dtype = np.dtype(dt)
    if mode == "binary":
        if len(data) - pos < n * dtype.itemsize:
            raise CloudFormatError(f"{path}: truncated binary PCD ({n} points expected)")
        arr = np.frombuffer(data, dtype=dtype, count=n, offset=pos)
    elif mode == "ascii":
        rows = np.loadtxt(data[pos:].decode("ascii").splitlines(), ndmin=2)
        arr = np.empty(len(rows), dtype=dtype)
        col = 0
        for name in dtype.names or ():
            w = int(np.prod(dtype[name].shape)) if dtype[name].shape else 1
            arr[name] = rows[:, col] if w == 1 else rows[:, col:col + w]
            col += w
    else:
        raise CloudFormatError(f"{path}: PCD DATA {mode} is not supported (ascii, binary)")
    return _from_struct(path, arr)


def _from_struct(path: Path, arr: np.ndarray) -> Cloud:
    names = arr.dtype.names or ()
    if not {"x", "y", "z"} <= set(names):
        raise CloudFormatError(f"{path}: no x, y, z fields (has {list(names)})")
    xyz = np.stack([arr["x"], arr["y"], arr["z"]], axis=1)
    if xyz.dtype not in (np.float32, np.float64):
        xyz = xyz.astype(np.float64)
    return Cloud(np.ascontiguousarray(xyz), {n: np.array(arr[n]) for n in names
                                               if n not in ("x", "y", "z") and not n.startswith("_pad")})


_PLY_TYPES = {"char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
              "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
              "float": "f4", "float32": "f4", "double": "f8", "float64": "f8"}


def _ply(path: Path) -> Cloud:
    data = path.read_bytes()
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise CloudFormatError(f"{path}: not a PLY file")
    body = data.index(b"\n", end) + 1
    lines = data[:end].decode("ascii", "replace").splitlines()
    fmt = ""
    elements: list[tuple[str, int, list[tuple[str, str]]]] = []
    for line in lines:
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "format":
            fmt = parts[1]
        elif parts[0] == "element":
            elements.append((parts[1], int(parts[2]), []))
        elif parts[0] == "property":
            if parts[1] == "list":
                raise CloudFormatError(f"{path}: list properties before the vertices are not supported")
            if not elements:
                raise CloudFormatError(f"{path}: property outside an element")
            code = _PLY_TYPES.get(parts[1])
            if code is None:
                raise CloudFormatError(f"{path}: unknown PLY type {parts[1]!r}")
            elements[-1][2].append((parts[2], code))
    if not elements or elements[0][0] != "vertex":
        raise CloudFormatError(f"{path}: the first PLY element must be 'vertex'")
    _, n, props = elements[0]
    if fmt == "ascii":
        text = data[body:].decode("ascii").splitlines()[:n]
        rows = np.loadtxt(text, ndmin=2)
        arr = np.empty(len(rows), dtype=[(p, c) for p, c in props])
        for j, (p, _c) in enumerate(props):
            arr[p] = rows[:, j]
    elif fmt in ("binary_little_endian", "binary_big_endian"):
        order = "<" if fmt == "binary_little_endian" else ">"
        dtype = np.dtype([(p, order + c) for p, c in props])
        if len(data) - body < n * dtype.itemsize:
            raise CloudFormatError(f"{path}: truncated PLY ({n} vertices expected)")
        arr = np.frombuffer(data, dtype=dtype, count=n, offset=body)
    else:
        raise CloudFormatError(f"{path}: unknown PLY format {fmt!r}")
    return _from_struct(path, arr)


def load_cloud(path: str | Path) -> Cloud:
    """Read a point cloud; the format comes from the suffix (``.pcd.bin`` is ``.bin``)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise CloudFormatError(f"{path}: unknown point-cloud format {suffix!r}; use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise CloudFormatError(f"{path}: no such file")
    reader = {".npz": _npz, ".pcd": _pcd, ".ply": _ply, ".bin": _bin}[suffix]
    try:
        return reader(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise CloudFormatError(f"{path}: unreadable ({exc})") from None
