"""Ouster sensor metadata (the sensor's JSON) as one validated record.

Three layouts are read, as ouster-sdk reads them:

- **flat** (firmware 2.0-2.3, e.g. ``OS-0-32-U1_v2.2.0_1024x10.json``): beam angles, transforms and
  ids at the top level, the packet layout in ``data_format``;
- **nested** (firmware 2.4+ / ouster-sdk ``sensor_info`` output, e.g. ``crc_test.json``):
  ``beam_intrinsics``, ``lidar_intrinsics``, ``imu_intrinsics``, ``lidar_data_format``,
  ``sensor_info`` and ``config_params`` sections;
- **firmware 1.x flat** without ``data_format``: LEGACY packets, 16 columns per packet, the
  width from ``lidar_mode`` and the default 64-beam pixel shifts (ouster-sdk's
  ``default_data_format``). No capture of this kind is at hand: it is untested on real data.

Every missing or inconsistent field raises :class:`sensors.errors.MetadataError` naming it.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sensors.errors import MetadataError
from sensors.lidar.ouster._profiles import IMU_PROFILES, LIDAR_PROFILES

_MODE_WIDTHS = {"512x10": 512, "512x20": 512, "1024x10": 1024, "1024x20": 1024, "2048x10": 2048,
                "4096x5": 4096}
# ouster-sdk default_data_format: per-row shift pattern of 64-beam firmware 1.x sensors.
_FW1_SHIFT_PATTERN = {512: (9, 6, 3, 0), 1024: (18, 12, 6, 0), 2048: (36, 24, 12, 0),
                      4096: (72, 48, 24, 0)}


@dataclass(frozen=True)
class OusterMetadata:
    """What the decoder needs from the sensor's metadata JSON.

    Transforms are 4x4 float64 with translations in millimetres, as in the JSON.
    ``beam_to_lidar_transform`` is built from ``lidar_origin_to_beam_origin_mm`` where the JSON
    has only that number (translation along x of the beam frame).
    """

    source: str  # path or "<dict>", for error messages
    layout: str  # "flat", "nested" or "fw1"
    prod_line: str
    prod_sn: int  # 0 when the JSON has none (then packets are not checked against it)
    init_id: int  # 0 when absent
    firmware: str
    lidar_mode: str
    columns_per_frame: int
    columns_per_packet: int
    pixels_per_column: int
    pixel_shift_by_row: tuple[int, ...]
    column_window: tuple[int, int]
    udp_profile_lidar: str
    udp_profile_imu: str
    beam_altitude_angles: tuple[float, ...]
    beam_azimuth_angles: tuple[float, ...]
    beam_to_lidar_transform: np.ndarray
    lidar_to_sensor_transform: np.ndarray
    imu_to_sensor_transform: np.ndarray
    udp_port_lidar: int
    udp_port_imu: int
    return_order: str

    @property
    def firmware_version(self) -> tuple[int, int] | None:
        """(major, minor) parsed from ``image_rev``/``build_rev`` (e.g. ``v2.3.0``), or None."""
        found = re.search(r"v(\d+)\.(\d+)", self.firmware)
        return (int(found.group(1)), int(found.group(2))) if found else None

    @property
    def lidar_origin_to_beam_origin_mm(self) -> float:
        return float(self.beam_to_lidar_transform[0, 3])

    @property
    def window_columns(self) -> int:
        """How many columns the column window holds (the window may wrap past column 0)."""
        a, b = self.column_window
        return (b - a) % self.columns_per_frame + 1

    def window_mask(self) -> np.ndarray:
        """(W,) bool: the measurement ids inside the column window."""
        w = self.columns_per_frame
        a = self.column_window[0]
        mask = np.zeros(w, dtype=np.bool_)
        mask[(a + np.arange(self.window_columns)) % w] = True
        return mask


def load_metadata(meta: str | Path | Mapping[str, Any]) -> OusterMetadata:
    """Read and validate metadata from a path, a JSON string or an already parsed dict."""
    if isinstance(meta, Mapping):
        return parse_metadata(meta, "<dict>")
    text: str
    if isinstance(meta, str) and meta.lstrip().startswith("{"):
        source, text = "<json>", meta
    else:
        source = str(meta)
        try:
            text = Path(meta).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise MetadataError(source, "no such metadata file") from None
        except (OSError, UnicodeDecodeError) as err:
            raise MetadataError(source, f"cannot read metadata: {err}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise MetadataError(source, f"not JSON: {err}") from None
    if not isinstance(doc, dict):
        raise MetadataError(source, "metadata JSON must be an object")
    return parse_metadata(doc, source)


class _Doc:
    """Field lookup across the layouts, with errors that name the missing field."""

    def __init__(self, doc: Mapping[str, Any], source: str, sections: tuple[str, ...]) -> None:
        self.doc = doc
        self.source = source
        self.sections = sections

    def find(self, key: str, default: Any = ...) -> Any:
        if key in self.doc:
            return self.doc[key]
        for sec in self.sections:
            part = self.doc.get(sec)
            if isinstance(part, Mapping) and key in part:
                return part[key]
        if default is ...:
            raise MetadataError(self.source, f"missing field {key!r}")
        return default

    def fail(self, reason: str) -> MetadataError:
        return MetadataError(self.source, reason)


def _int(d: _Doc, value: Any, name: str, lo: int = 0, hi: int = 1 << 62) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise d.fail(f"{name} must be an integer, got {value!r}")
    try:
        out = int(value)
    except ValueError:
        raise d.fail(f"{name} must be an integer, got {value!r}") from None
    if isinstance(value, float) and out != value:
        raise d.fail(f"{name} must be an integer, got {value!r}")
    if not lo <= out <= hi:
        raise d.fail(f"{name} = {out} is out of range [{lo}, {hi}]")
    return out


def _floats(d: _Doc, value: Any, name: str, n: int | None = None) -> tuple[float, ...]:
    if not isinstance(value, (list, tuple)):
        raise d.fail(f"{name} must be a list of numbers")
    try:
        out = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise d.fail(f"{name} must be a list of numbers") from None
    if not all(math.isfinite(v) for v in out):
        raise d.fail(f"{name} holds a non-finite number")
    if n is not None and len(out) != n:
        raise d.fail(f"{name} has {len(out)} values, expected {n}")
    return out


def _matrix(d: _Doc, value: Any, name: str) -> np.ndarray:
    vals = _floats(d, value, name)
    if len(vals) != 16:
        raise d.fail(f"{name} must hold 16 numbers (a row-major 4x4 matrix), got {len(vals)}")
    m = np.array(vals, dtype=np.float64).reshape(4, 4)
    if not np.allclose(m[3], [0, 0, 0, 1]):
        raise d.fail(f"{name} is not a homogeneous transform (last row {m[3].tolist()})")
    return m


def parse_metadata(doc: Mapping[str, Any], source: str = "<dict>") -> OusterMetadata:
    """Validate a parsed metadata JSON object (any of the three layouts)."""
    nested = "lidar_data_format" in doc or "beam_intrinsics" in doc
    sections = ("beam_intrinsics", "lidar_intrinsics", "imu_intrinsics", "lidar_data_format",
                "sensor_info", "config_params") if nested else ("data_format",)
    d = _Doc(doc, source, sections)
    fmt = doc.get("lidar_data_format" if nested else "data_format")
    layout = "nested" if nested else ("flat" if fmt is not None else "fw1")
    if fmt is not None and not isinstance(fmt, Mapping):
        raise d.fail("data_format must be an object")

    alt = _floats(d, d.find("beam_altitude_angles"), "beam_altitude_angles")
    azi = _floats(d, d.find("beam_azimuth_angles"), "beam_azimuth_angles")
    lidar_mode = str(d.find("lidar_mode", "") or "")

    if layout == "fw1":
        h = len(alt)
        w = _MODE_WIDTHS.get(lidar_mode, 0)
        if not w:
            raise d.fail(f"no data_format and an unknown lidar_mode {lidar_mode!r}")
        if h != 64:
            raise d.fail(f"no data_format: only 64-beam firmware 1.x metadata is understood, got {h} beams")
        cpp = 16
        pattern = _FW1_SHIFT_PATTERN[w]
        shifts = tuple(pattern[i % 4] for i in range(h))
        window = (0, w - 1)
        prof_lidar = prof_imu = "LEGACY"
    else:
        assert fmt is not None
        f = _Doc(fmt, source, ())
        w = _int(d, f.find("columns_per_frame"), "columns_per_frame", 1, 65535)
        cpp = _int(d, f.find("columns_per_packet"), "columns_per_packet", 1, 1024)
        h = _int(d, f.find("pixels_per_column"), "pixels_per_column", 1, 1024)
        shifts = tuple(_int(d, v, "pixel_shift_by_row", -w, w)
                       for v in _list(d, f.find("pixel_shift_by_row"), "pixel_shift_by_row", h))
        cw = _list(d, f.find("column_window", [0, w - 1]), "column_window", 2)
        window = (_int(d, cw[0], "column_window", 0, w - 1), _int(d, cw[1], "column_window", 0, w - 1))
        prof_lidar = str(f.find("udp_profile_lidar", "LEGACY"))
        prof_imu = str(f.find("udp_profile_imu", "LEGACY"))
        if not lidar_mode:
            lidar_mode = f"{w}x{fmt.get('fps', '?')}"
    if prof_lidar not in LIDAR_PROFILES:
        raise d.fail(f"unsupported udp_profile_lidar {prof_lidar!r} (supported: {', '.join(LIDAR_PROFILES)})")
    if prof_imu not in IMU_PROFILES:
        raise d.fail(f"unsupported udp_profile_imu {prof_imu!r} (supported: {', '.join(IMU_PROFILES)})")
    if len(alt) != h:
        raise d.fail(f"beam_altitude_angles has {len(alt)} values but pixels_per_column is {h}")
    if len(azi) != h:
        raise d.fail(f"beam_azimuth_angles has {len(azi)} values but pixels_per_column is {h}")

    b2l = d.find("beam_to_lidar_transform", None)
    if b2l is not None:
        beam_to_lidar = _matrix(d, b2l, "beam_to_lidar_transform")
    else:
        origin = d.find("lidar_origin_to_beam_origin_mm", None)
        if origin is None:
            raise d.fail("missing field 'lidar_origin_to_beam_origin_mm' (or 'beam_to_lidar_transform')")
        beam_to_lidar = np.eye(4)
        beam_to_lidar[0, 3] = _floats(d, [origin], "lidar_origin_to_beam_origin_mm")[0]
    lidar_to_sensor = _matrix(d, d.find("lidar_to_sensor_transform"), "lidar_to_sensor_transform")
    imu_raw = d.find("imu_to_sensor_transform", None)
    imu_to_sensor = np.eye(4) if imu_raw is None else _matrix(d, imu_raw, "imu_to_sensor_transform")

    sn_raw = d.find("prod_sn", "")
    sn = _int(d, sn_raw, "prod_sn") if str(sn_raw).strip() else 0
    init_id = _int(d, d.find("initialization_id", 0) or 0, "initialization_id")
    firmware = " ".join(str(d.find(k, "") or "") for k in ("image_rev", "build_rev")).strip()
    ports = (d.find("udp_port_lidar", 7502) or 7502, d.find("udp_port_imu", 7503) or 7503)
    return OusterMetadata(
        source=source,
        layout=layout,
        prod_line=str(d.find("prod_line", "") or "OS"),
        prod_sn=sn,
        init_id=init_id,
        firmware=firmware,
        lidar_mode=lidar_mode,
        columns_per_frame=w,
        columns_per_packet=cpp,
        pixels_per_column=h,
        pixel_shift_by_row=shifts,
        column_window=window,
        udp_profile_lidar=prof_lidar,
        udp_profile_imu=prof_imu,
        beam_altitude_angles=alt,
        beam_azimuth_angles=azi,
        beam_to_lidar_transform=beam_to_lidar,
        lidar_to_sensor_transform=lidar_to_sensor,
        imu_to_sensor_transform=imu_to_sensor,
        udp_port_lidar=_int(d, ports[0], "udp_port_lidar", 0, 65535),
        udp_port_imu=_int(d, ports[1], "udp_port_imu", 0, 65535),
        return_order=str(d.find("return_order", "STRONGEST_TO_WEAKEST") or "STRONGEST_TO_WEAKEST"),
    )


def _list(d: _Doc, value: Any, name: str, n: int) -> list[Any]:
    if not isinstance(value, (list, tuple)):
        raise d.fail(f"{name} must be a list")
    if len(value) != n:
        raise d.fail(f"{name} has {len(value)} values, expected {n}")
    return list(value)
