"""Our Ouster decoder against ouster-sdk on the recorded captures and on packets the SDK writes.

Same frames, identical destaggered images, the same valid columns and column timestamps, XYZ
within 5 mm for every valid return, and the point attributes (ring, azimuth, time, intensity,
return type) where the image says they come from.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import numpy as np
import pytest

from sensors.lidar import RETURN_SECOND, RETURN_STRONGEST, Scan
from sensors.lidar.ouster import OusterDecoder, decode_imu_packet, load_metadata
from sensors.packets import Packet, open_packet_source
from tests._fixtures import fixture_file

osdk = pytest.importorskip("ouster.sdk")
from ouster.sdk import core  # noqa: E402
from ouster.sdk import pcap as opcap  # noqa: E402

pytestmark = pytest.mark.fixtures

OS1 = ("lidar/ouster/OS-1-128_v2.3.0_1024x10_lb_n3.pcap", "lidar/ouster/OS-1-128_v2.3.0_1024x10.json")
OS0 = ("lidar/ouster/OS-0-32-U1_v2.2.0_1024x10.pcap", "lidar/ouster/OS-0-32-U1_v2.2.0_1024x10.json")
CRC = ("lidar/ouster/crc_test.pcap", "lidar/ouster/crc_test.json")
ONE = ("lidar/ouster/OS-0-32-U1_v2.2.0_1024x10-single-packet.pcap", OS0[1])
CAPTURES = [OS1, OS0, CRC, ONE]
IDS = ["os1-128-lowbandwidth", "os0-32-dual", "crc_test", "single-packet"]

FIELDS = {"range": "RANGE", "reflectivity": "REFLECTIVITY", "signal": "SIGNAL", "nir": "NEAR_IR",
          "range2": "RANGE2", "reflectivity2": "REFLECTIVITY2", "signal2": "SIGNAL2"}


@functools.cache
def ours(pcap: str, meta: str) -> tuple[list[Scan], OusterDecoder]:
    dec = OusterDecoder(str(fixture_file(meta)))
    with open_packet_source(fixture_file(pcap)) as src:
        scans = list(dec.feed(src)) + list(dec.flush())
    return scans, dec


@functools.cache
def reference(pcap: str, meta: str) -> list[dict[str, Any]]:
    """Everything we compare, read with ouster-sdk."""
    src = opcap.PcapFrameSetSource(str(fixture_file(pcap)), meta=[str(fixture_file(meta))])
    info = src.sensor_info[0]
    lut = core.XYZLut(info)
    out = []
    for frame_set in src:
        f = frame_set[0]
        rec: dict[str, Any] = {"frame_id": f.frame_id, "status": np.asarray(f.status).copy(),
                               "timestamp": np.asarray(f.timestamp).copy(), "images": {}, "xyz": {}}
        for ours_name, sdk_name in FIELDS.items():
            if f.has_field(sdk_name):
                rec["images"][ours_name] = core.destagger(info, f.field(sdk_name)).copy()
                if ours_name.startswith("range"):
                    rec["xyz"][ours_name] = core.destagger(info, lut(f.field(sdk_name))).copy()
        out.append(rec)
    src.close()
    return out


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_same_frames(capture: tuple[str, str]) -> None:
    scans, dec = ours(*capture)
    ref = reference(*capture)
    assert [s.index for s in scans] == [r["frame_id"] for r in ref]
    assert len(scans) >= 1
    assert dec.stats.bad_packets == 0
    assert dec.stats.scans == len(scans)


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_images_identical(capture: tuple[str, str]) -> None:
    scans, _ = ours(*capture)
    for scan, ref in zip(scans, reference(*capture)):
        assert set(ref["images"]) <= set(scan.extras)
        for name, image in ref["images"].items():
            assert scan.extras[name].shape == image.shape
            np.testing.assert_array_equal(scan.extras[name].astype(np.int64), image.astype(np.int64),
                                          err_msg=name)
        valid = (ref["status"] & 1).astype(bool)
        np.testing.assert_array_equal(scan.extras["valid_columns"], valid)
        np.testing.assert_array_equal(scan.extras["column_timestamp"][valid], ref["timestamp"][valid])


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_xyz_within_5mm(capture: tuple[str, str]) -> None:
    scans, _ = ours(*capture)
    for scan, ref in zip(scans, reference(*capture)):
        flags = [("range", RETURN_STRONGEST), ("range2", RETURN_SECOND)]
        total = 0
        for name, flag in flags:
            if name not in ref["xyz"]:
                continue
            image = ref["images"][name]
            expected = ref["xyz"][name][image > 0]
            got = scan.xyz[scan.return_type == flag]
            assert got.shape == expected.shape, name
            total += len(got)
            if len(got):
                assert np.abs(got - expected).max() < 0.005
        assert total == len(scan)


@pytest.mark.parametrize("capture", [OS1, OS0, CRC], ids=IDS[:3])
def test_point_attributes(capture: tuple[str, str]) -> None:
    scans, dec = ours(*capture)
    meta = load_metadata(str(fixture_file(capture[1])))
    h, w = meta.pixels_per_column, meta.columns_per_frame
    shifts = np.asarray(meta.pixel_shift_by_row)
    for scan in scans:
        image = scan.extras["range"]
        first = scan.return_type == RETURN_STRONGEST
        rows, cols = np.nonzero(image)
        assert first.sum() == len(rows)
        # ring 0 is the lowest beam; image row 0 is the top one
        np.testing.assert_array_equal(scan.ring[first], h - 1 - rows)
        assert np.all(np.diff(np.asarray(meta.beam_altitude_angles)) < 0)
        mid = (cols - shifts[rows]) % w
        np.testing.assert_allclose(scan.azimuth[first], mid * 360.0 / w, atol=1e-3)
        np.testing.assert_array_equal(scan.intensity[first], scan.extras["reflectivity"][rows, cols])
        # time is the column timestamp, shifted by one constant to the capture clock
        offset = scan.time[first] - scan.extras["column_timestamp"][mid] * 1e-9
        assert np.ptp(offset) < 1e-6
        assert scan.t_start <= scan.time.min() and scan.time.max() <= scan.t_end
        assert scan.t_end - scan.t_start < 0.11  # one 10 Hz rotation
        assert scan.sensor == "ouster" and scan.model == meta.prod_line
        for col in ("x", "y", "z", "intensity", "azimuth", "time"):
            assert np.isfinite(getattr(scan, col)).all()
    # the internal oscillator clock of these captures is anchored to the capture time
    with open_packet_source(fixture_file(capture[0])) as src:
        first_capture = next(iter(src)).timestamp
    assert abs(scans[0].t_start - first_capture) < 0.01


def test_higher_rings_look_higher() -> None:
    scans, _ = ours(*OS1)
    scan = scans[0]
    elevation = np.degrees(np.arctan2(scan.z, np.hypot(scan.x, scan.y)))
    far = np.hypot(scan.x, scan.y) > 5.0  # away from the beam-origin offset
    by_ring = [np.median(elevation[far & (scan.ring == r)]) for r in (0, 64, 127)]
    assert by_ring[0] < by_ring[1] < by_ring[2]


def test_streaming_one_packet_at_a_time() -> None:
    batch_scans, _ = ours(*OS1)
    dec = OusterDecoder(str(fixture_file(OS1[1])))
    scans = []
    emitted_during_feed = 0
    with open_packet_source(fixture_file(OS1[0])) as src:
        for packet in src:
            got = list(dec.feed([packet]))
            emitted_during_feed += len(got)
            scans += got
    scans += list(dec.flush())
    # complete frames come out of feed as soon as their last column arrives
    assert emitted_during_feed == 3
    assert [s.index for s in scans] == [s.index for s in batch_scans]
    for a, b in zip(scans, batch_scans):
        np.testing.assert_array_equal(a.xyz, b.xyz)
        np.testing.assert_array_equal(a.time, b.time)


def test_return_modes_and_min_range() -> None:
    scans, _ = ours(*OS0)
    both = scans[0]
    meta = str(fixture_file(OS0[1]))
    pcap = fixture_file(OS0[0])
    for mode, flag in (("strongest", RETURN_STRONGEST), ("second", RETURN_SECOND)):
        dec = OusterDecoder(meta, return_mode=mode)
        with open_packet_source(pcap) as src:
            (scan,) = list(dec.feed(src)) + list(dec.flush())
        np.testing.assert_array_equal(scan.xyz, both.xyz[both.return_type == flag])
    dec = OusterDecoder(meta, min_range_m=2.0, return_mode="strongest")
    with open_packet_source(pcap) as src:
        (near,) = list(dec.feed(src)) + list(dec.flush())
    image = both.extras["range"]
    assert len(near) == int(((image > 0) & (image >= 2000)).sum())
    assert 0 < len(near) < int((image > 0).sum())
    np.testing.assert_array_equal(near.extras["range"], image)  # the image keeps every return


def test_imu_packets_match_sdk() -> None:
    pcap, meta = (str(fixture_file(p)) for p in OS1)
    src = opcap.PcapPacketSource(pcap, meta=[meta])
    expected = []
    for item in src:
        packet = item[1] if isinstance(item, tuple) else item
        if isinstance(packet, core.ImuPacket):
            sample = decode_imu_packet(bytes(packet.buf))
            # ouster-sdk 1.x reports m/s² and rad/s; the packet (and ImuSample) holds g and deg/s
            np.testing.assert_allclose(sample.accel_mps2, packet.accel()[0], rtol=1e-5)
            np.testing.assert_allclose(sample.gyro_rps, packet.gyro()[0], rtol=1e-5, atol=1e-9)
            np.testing.assert_allclose(sample.accel_g, packet.accel()[0] / 9.80665, rtol=1e-5)
            assert sample.sys_ts == packet.sys_ts()
            assert sample.accel_ts == packet.accel_ts()
            assert sample.gyro_ts == packet.gyro_ts()
            expected.append(sample)
    src.close()
    assert len(expected) == 30
    norms = [np.linalg.norm(s.accel_mps2) for s in expected]
    assert all(7.0 < n < 13.0 for n in norms)  # about 1 g: the units are right
    dec = OusterDecoder(meta)
    with open_packet_source(pcap) as src:
        list(dec.feed(src))
    taken = dec.take_imu()
    assert [(s.sys_ts, s.accel_g) for s in taken] == [(s.sys_ts, s.accel_g) for s in expected]
    assert all(s.capture_time > 1.6e9 for s in taken)
    assert dec.stats.other_packets == 30 and dec.take_imu() == []


PROFILES = ["LEGACY", "RNG19_RFL8_SIG16_NIR16", "RNG19_RFL8_SIG16_NIR16_DUAL", "RNG15_RFL8_NIR8",
            "RNG15_RFL8_NIR8_DUAL", "FIVE_WORD_PIXEL"]


@functools.cache
def _source_frame() -> Any:
    src = opcap.PcapFrameSetSource(str(fixture_file(OS0[0])), meta=[str(fixture_file(OS0[1]))])
    frame = next(iter(src))[0]
    return frame


@pytest.mark.parametrize("profile", PROFILES)
def test_profiles_written_by_sdk(profile: str) -> None:
    """The real OS-0-32 frame re-encoded by ouster-sdk's own packet writer in each profile,
    decoded by the SDK and by us: identical images, same XYZ."""
    with open(fixture_file(OS0[1])) as fh:
        doc = json.load(fh)
    doc["data_format"]["udp_profile_lidar"] = profile
    info = core.SensorInfo(json.dumps(doc))
    fmt = core.PacketFormat(info)
    packets = [p for p in core.frame_to_packets(_source_frame(), fmt, info.init_id, info.sn)
               if isinstance(p, core.LidarPacket)]
    batcher = core.FrameBatcher(info)
    frame = core.LidarFrame(info)
    for p in packets:
        batcher.batch(p, frame)
    dec = OusterDecoder(doc)
    assert dec.packet_bytes == fmt.lidar_packet_size
    (scan,) = list(dec.feed(Packet(1.0, 7502, bytes(p.buf)) for p in packets)) + list(dec.flush())
    assert dec.stats.bad_packets == 0 and dec.stats.packets == len(packets) == 64
    # the SDK exposes FIVE_WORD_PIXEL only as raw words: compare that one with the source frame
    ref = frame if frame.has_field("RANGE") else _source_frame()
    compared = 0
    for name, sdk_name in FIELDS.items():
        if ref.has_field(sdk_name):
            np.testing.assert_array_equal(scan.extras[name].astype(np.int64),
                                          core.destagger(info, ref.field(sdk_name)).astype(np.int64),
                                          err_msg=name)
            compared += 1
    assert compared >= 3
    image = core.destagger(info, ref.field("RANGE"))
    xyz = core.destagger(info, core.XYZLut(info)(ref.field("RANGE")))
    got = scan.xyz[scan.return_type == RETURN_STRONGEST]
    expected = xyz[image > 0]
    assert got.shape == expected.shape
    assert np.abs(got - expected).max() < 0.005
