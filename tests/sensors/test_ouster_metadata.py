"""Ouster metadata: the three JSON layouts read like ouster-sdk reads them, the XYZ table equal
to the SDK's, and every broken field rejected with a message that names it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sensors.errors import MetadataError
from sensors.lidar.ouster import LIDAR_PROFILES, OusterMetadata, load_metadata, parse_metadata, xyz_lut
from tests._fixtures import fixture_file

core = pytest.importorskip("ouster.sdk.core")

pytestmark = pytest.mark.fixtures

JSONS = ["lidar/ouster/OS-0-32-U1_v2.2.0_1024x10.json", "lidar/ouster/OS-1-128_v2.3.0_1024x10.json",
         "lidar/ouster/crc_test.json"]


def _doc(rel: str) -> dict[str, Any]:
    return json.loads(fixture_file(rel).read_text())


def _fw1_doc() -> dict[str, Any]:
    """Firmware 1.x style: no data_format, 64 beams."""
    doc = _doc(JSONS[1])
    del doc["data_format"]
    doc["prod_line"] = "OS-1-64"
    doc["beam_altitude_angles"] = doc["beam_altitude_angles"][::2]
    doc["beam_azimuth_angles"] = doc["beam_azimuth_angles"][::2]
    return doc


def _pairs() -> list[tuple[str, OusterMetadata, Any]]:
    out = []
    for rel in JSONS:
        text = fixture_file(rel).read_text()
        out.append((rel, load_metadata(fixture_file(rel)), core.SensorInfo(text)))
    doc = _fw1_doc()
    out.append(("fw1", parse_metadata(doc), core.SensorInfo(json.dumps(doc))))
    return out


def test_layouts_read_like_ouster_sdk() -> None:
    layouts = []
    for name, ours, info in _pairs():
        fmt = info.format
        layouts.append(ours.layout)
        assert ours.columns_per_frame == fmt.columns_per_frame, name
        assert ours.pixels_per_column == fmt.pixels_per_column, name
        assert ours.columns_per_packet == fmt.columns_per_packet, name
        assert list(ours.pixel_shift_by_row) == list(fmt.pixel_shift_by_row), name
        assert ours.column_window == tuple(fmt.column_window), name
        assert ours.udp_profile_lidar == str(fmt.udp_profile_lidar).split(".")[-1], name
        np.testing.assert_allclose(ours.beam_altitude_angles, info.beam_altitude_angles)
        np.testing.assert_allclose(ours.beam_azimuth_angles, info.beam_azimuth_angles)
        np.testing.assert_allclose(ours.beam_to_lidar_transform, info.beam_to_lidar_transform)
        np.testing.assert_allclose(ours.lidar_to_sensor_transform, info.lidar_to_sensor_transform)
        np.testing.assert_allclose(ours.imu_to_sensor_transform, info.imu_to_sensor_transform)
        assert ours.prod_sn == int(info.sn) and ours.init_id == info.init_id, name
        assert ours.prod_line == info.prod_line, name
    assert layouts == ["flat", "flat", "nested", "fw1"]
    crc = load_metadata(fixture_file(JSONS[2]))
    assert crc.firmware_version == (3, 2) and crc.lidar_mode == "512x10"
    assert load_metadata(fixture_file(JSONS[1])).firmware_version == (2, 3)


@pytest.mark.parametrize("destaggered", [False, True])
def test_xyz_lut_equals_ouster_sdk(destaggered: bool) -> None:
    rng = np.random.default_rng(0)
    for name, ours, info in _pairs():
        h, w = ours.pixels_per_column, ours.columns_per_frame
        image = rng.integers(1, 120_000, (h, w), dtype=np.uint32)
        expected = core.XYZLut(info, use_extrinsics=False)(image)
        direction, offset = xyz_lut(ours)
        got = image[..., None] * direction + offset
        assert np.abs(got - expected).max() < 1e-4, name  # metres: a tenth of a millimetre
        if destaggered:
            d_dir, d_off = xyz_lut(ours, destaggered=True)
            staggered = core.destagger(info, image, inverse=True)
            np.testing.assert_allclose(image[..., None] * d_dir + d_off,
                                       core.destagger(info, core.XYZLut(info, use_extrinsics=False)(staggered)),
                                       atol=1e-4)


def test_path_text_and_dict_agree() -> None:
    path = fixture_file(JSONS[0])
    a = load_metadata(path)
    b = load_metadata(path.read_text())
    c = load_metadata(json.loads(path.read_text()))
    d = load_metadata(str(path))
    for other in (b, c, d):
        assert other.pixel_shift_by_row == a.pixel_shift_by_row
        assert other.beam_altitude_angles == a.beam_altitude_angles
        assert other.udp_profile_lidar == a.udp_profile_lidar
    assert d.source == str(path) and c.source == "<dict>"
    assert a.window_columns == 1024 and a.window_mask().all()


def test_column_window_that_wraps() -> None:
    doc = _doc(JSONS[0])
    doc["data_format"]["column_window"] = [1000, 20]
    meta = parse_metadata(doc)
    assert meta.window_columns == 45
    mask = meta.window_mask()
    assert mask[1000:].all() and mask[:21].all() and not mask[21:1000].any()


def _broken(mutate: Any, base: str = JSONS[0]) -> dict[str, Any]:
    doc = copy.deepcopy(_doc(base))
    mutate(doc)
    return doc


BROKEN = [
    (lambda d: d.pop("beam_altitude_angles"), "missing field 'beam_altitude_angles'"),
    (lambda d: d["beam_azimuth_angles"].pop(), "beam_azimuth_angles has 31 values but pixels_per_column is 32"),
    (lambda d: d["data_format"].__setitem__("udp_profile_lidar", "RNG99"), "unsupported udp_profile_lidar 'RNG99'"),
    (lambda d: d["data_format"]["pixel_shift_by_row"].pop(), "pixel_shift_by_row has 31 values, expected 32"),
    (lambda d: d["data_format"].__setitem__("columns_per_frame", 0), r"columns_per_frame = 0 is out of range"),
    (lambda d: d["data_format"].__setitem__("pixels_per_column", "many"), "pixels_per_column must be an integer"),
    (lambda d: d.__setitem__("lidar_to_sensor_transform", [1, 0, 0]), "lidar_to_sensor_transform must hold 16"),
    (lambda d: d.__setitem__("lidar_to_sensor_transform", [1] * 16), "not a homogeneous transform"),
    (lambda d: d.pop("lidar_origin_to_beam_origin_mm"), "lidar_origin_to_beam_origin_mm"),
    (lambda d: d["beam_altitude_angles"].__setitem__(3, "up"), "beam_altitude_angles must be a list of numbers"),
    (lambda d: d["data_format"].__setitem__("column_window", [0, 5000]), r"column_window = 5000 is out of range"),
    (lambda d: d.__setitem__("data_format", [1, 2]), "data_format must be an object"),
    (lambda d: (d.pop("data_format"), d.__setitem__("lidar_mode", "999x3")), "unknown lidar_mode '999x3'"),
]


@pytest.mark.parametrize("mutate,message", BROKEN)
def test_broken_metadata_names_the_field(mutate: Any, message: str) -> None:
    with pytest.raises(MetadataError, match=message):
        parse_metadata(_broken(mutate), "sensor.json")


def test_broken_nested_metadata() -> None:
    doc = _broken(lambda d: d["beam_intrinsics"].pop("beam_altitude_angles"), JSONS[2])
    with pytest.raises(MetadataError, match="missing field 'beam_altitude_angles'"):
        parse_metadata(doc)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(MetadataError, match="no such metadata file"):
        load_metadata(tmp_path / "absent.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(MetadataError, match=r"bad.json: not JSON"):
        load_metadata(bad)
    arr = tmp_path / "list.json"
    arr.write_text("[1, 2]")
    with pytest.raises(MetadataError, match="must be an object"):
        load_metadata(arr)


def test_profile_sizes_match_ouster_sdk() -> None:
    doc = _doc(JSONS[0])
    for name, prof in LIDAR_PROFILES.items():
        doc["data_format"]["udp_profile_lidar"] = name
        fmt = core.PacketFormat(core.SensorInfo(json.dumps(doc)))
        assert prof.packet_bytes(32, 16) == fmt.lidar_packet_size, name
        assert prof.column_bytes(32) == fmt.col_size, name
