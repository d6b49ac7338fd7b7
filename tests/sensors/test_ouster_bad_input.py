"""The Ouster decoder on bad input: empty and partial captures, metadata of another sensor,
truncated, oversized, corrupted, late and random packets. Never a crash, a hang or a wrong
point: bad packets are counted, their columns stay invalid, the error names the mismatch."""

from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sensors.errors import MetadataError, SensorError
from sensors.lidar import RETURN_LAST, Scan
from sensors.lidar.ouster import OusterDecoder
from sensors.packets import Packet, open_packet_source
from tests._fixtures import fixture_file

pytestmark = pytest.mark.fixtures

OS1_PCAP = "lidar/ouster/OS-1-128_v2.3.0_1024x10_lb_n3.pcap"
OS1_JSON = "lidar/ouster/OS-1-128_v2.3.0_1024x10.json"
OS0_PCAP = "lidar/ouster/OS-0-32-U1_v2.2.0_1024x10.pcap"
OS0_JSON = "lidar/ouster/OS-0-32-U1_v2.2.0_1024x10.json"
CRC_PCAP, CRC_JSON = "lidar/ouster/crc_test.pcap", "lidar/ouster/crc_test.json"


@functools.cache
def packets(pcap: str) -> tuple[Packet, ...]:
    with open_packet_source(fixture_file(pcap)) as src:
        return tuple(src)


def decode(meta: object, pkts: object, **kw: object) -> tuple[list[Scan], OusterDecoder]:
    dec = OusterDecoder(meta if not isinstance(meta, str) else str(fixture_file(meta)), **kw)
    scans = list(dec.feed(pkts)) + list(dec.flush())  # type: ignore[arg-type]
    return scans, dec


def lidar_indices(pkts: tuple[Packet, ...]) -> list[int]:
    return [i for i, p in enumerate(pkts) if p.port == 7502]


def test_empty_capture_gives_no_frames() -> None:
    scans, dec = decode(OS0_JSON, packets("lidar/ouster/empty.pcap"))
    assert scans == []
    assert dec.stats.packets == dec.stats.bad_packets == dec.stats.scans == 0


def test_single_packet_is_one_partial_frame() -> None:
    scans, dec = decode(OS0_JSON, packets("lidar/ouster/OS-0-32-U1_v2.2.0_1024x10-single-packet.pcap"))
    (scan,) = scans
    valid = scan.extras["valid_columns"]
    assert valid.sum() == 16 and valid[:16].all()
    shifts = np.asarray(json.loads(fixture_file(OS0_JSON).read_text())["data_format"]["pixel_shift_by_row"])
    h, w = scan.extras["range"].shape
    mid = (np.arange(w)[None, :] - shifts[:, None]) % w  # measurement id behind each image pixel
    for name in ("range", "range2", "reflectivity", "signal", "nir"):
        assert not scan.extras[name][~valid[mid]].any(), name  # missing columns are zero
    assert scan.extras["range"][valid[mid]].any()
    assert len(scan) > 0
    assert set(np.round(scan.azimuth * w / 360.0).astype(int)) <= set(range(16))
    assert dec.stats.scans == 1 and dec.stats.packets == 1


def test_metadata_of_another_sensor_is_a_clear_error() -> None:
    # both profiles happen to make 8448-byte packets: the serial number tells them apart
    with pytest.raises(MetadataError, match=r"metadata does not match the data: packets come from "
                       r"sensor sn 122201000998 .*metadata describes sn 992137000142"):
        decode(OS0_JSON, packets(OS1_PCAP))


def test_wrong_profile_is_a_clear_error_with_sizes() -> None:
    doc = json.loads(fixture_file(OS1_JSON).read_text())
    doc["data_format"]["udp_profile_lidar"] = "RNG19_RFL8_SIG16_NIR16"
    with pytest.raises(MetadataError, match=r"metadata does not match the data: expected packet size "
                       r"24832, got 8448 \(192 packets"):
        decode(doc, packets(OS1_PCAP))


def test_mismatch_is_raised_early_on_a_long_stream() -> None:
    """A live stream of the wrong sensor fails after a bounded number of packets, not at the end."""
    pkts = packets(OS1_PCAP)
    lidar = [p for p in pkts if p.port == 7502]
    dec = OusterDecoder(str(fixture_file(OS0_JSON)))
    fed = 0

    def endless():  # would never end: the decoder must give up by itself
        nonlocal fed
        while True:
            for p in lidar:
                fed += 1
                yield p

    with pytest.raises(MetadataError, match="metadata does not match the data"):
        list(dec.feed(endless()))
    assert fed <= 512


def test_soft_id_check_decodes_a_reinitialised_sensor() -> None:
    doc = json.loads(fixture_file(OS1_JSON).read_text())
    doc["initialization_id"] += 1
    with pytest.raises(MetadataError, match="init_id"):
        decode(doc, packets(OS1_PCAP))
    scans, dec = decode(doc, packets(OS1_PCAP), soft_id_check=True)
    assert len(scans) == 3 and dec.stats.bad_packets == 0


def test_truncated_and_oversized_packets_are_counted_and_their_columns_invalid() -> None:
    pkts = list(packets(OS1_PCAP))
    clean, _ = decode(OS1_JSON, pkts)
    idx = lidar_indices(tuple(pkts))
    cut, grown = idx[10], idx[100]
    pkts[cut] = pkts[cut]._replace(data=pkts[cut].data[:4000])
    pkts[grown] = pkts[grown]._replace(data=pkts[grown].data + b"\x00\x01")
    scans, dec = decode(OS1_JSON, pkts)
    assert dec.stats.bad_packets == 2
    assert dec.stats.reasons == {"wrong packet size": 2}
    assert [s.index for s in scans] == [s.index for s in clean]
    for k, bad in ((0, 10), (1, 100 - 64)):
        scan, ref = scans[k], clean[k]
        hole = np.zeros(1024, dtype=bool)
        hole[bad * 16:(bad + 1) * 16] = True
        np.testing.assert_array_equal(scan.extras["valid_columns"], ref.extras["valid_columns"] & ~hole)
        mids = np.round(scan.azimuth * 1024 / 360.0).astype(int)
        assert not hole[mids].any()  # no point from a column that never arrived
        # every other point is exactly the clean decode's
        keep = ~hole[np.round(ref.azimuth * 1024 / 360.0).astype(int)]
        np.testing.assert_array_equal(scan.xyz, ref.xyz[keep])
    np.testing.assert_array_equal(scans[2].xyz, clean[2].xyz)


def test_random_bytes_are_counted_bad() -> None:
    rng = np.random.default_rng(7)
    pkts = list(packets(OS1_PCAP))
    clean, _ = decode(OS1_JSON, pkts)
    noisy = []
    n_random = 0
    for i, p in enumerate(pkts):
        noisy.append(p)
        if i % 7 == 0:
            size = int(rng.choice([8448, 8448, 1206, 48 * 3, int(rng.integers(1, 9000))]))
            noisy.append(Packet(p.timestamp, 7502, rng.integers(0, 256, size, dtype=np.uint8).tobytes()))
            n_random += 1
    scans, dec = decode(OS1_JSON, noisy)
    assert dec.stats.bad_packets == n_random
    assert dec.stats.packets == 192
    assert [s.index for s in scans] == [s.index for s in clean]
    for a, b in zip(scans, clean):
        np.testing.assert_array_equal(a.xyz, b.xyz)


def test_random_packets_with_a_valid_header_are_rejected() -> None:
    """Right size, packet type, serial and init id, but random columns: measurement ids out of
    range are caught before anything is written."""
    rng = np.random.default_rng(3)
    real = [p for p in packets(OS1_PCAP) if p.port == 7502]
    forged = []
    for p in real[:40]:
        body = bytearray(rng.integers(0, 256, len(p.data), dtype=np.uint8).tobytes())
        body[:12] = p.data[:12]  # packet type, frame id, init id, serial number
        forged.append(Packet(p.timestamp, 7502, bytes(body)))
    scans, dec = decode(OS1_JSON, forged + real)
    assert dec.stats.reasons.get("measurement id out of range") == 40
    assert len(scans) == 3


def test_only_random_bytes_is_a_clear_error_not_a_crash() -> None:
    rng = np.random.default_rng(11)
    junk = [Packet(0.0, 7502, rng.integers(0, 256, 700, dtype=np.uint8).tobytes()) for _ in range(5)]
    with pytest.raises(MetadataError, match="expected packet size 8448, got 700"):
        decode(OS1_JSON, junk)


def test_crc_mismatch_is_counted_bad() -> None:
    pkts = list(packets(CRC_PCAP))
    i = lidar_indices(tuple(pkts))[5]
    data = bytearray(pkts[i].data)
    data[1000] ^= 0x40  # one flipped bit in the pixel data
    pkts[i] = pkts[i]._replace(data=bytes(data))
    scans, dec = decode(CRC_JSON, pkts)
    assert dec.stats.reasons == {"CRC64 mismatch": 1}
    assert len(scans) == 2 and scans[0].extras["valid_columns"].sum() == 512 - 16
    _, unchecked = decode(CRC_JSON, pkts, check_crc=False)
    assert unchecked.stats.bad_packets == 0


def test_late_packet_of_an_emitted_frame_is_dropped() -> None:
    pkts = list(packets(OS1_PCAP))
    idx = lidar_indices(tuple(pkts))
    late = pkts[idx[3]]  # a packet of frame 1795, again after frame 1796 began
    pkts.insert(idx[70] + 1, late)
    scans, dec = decode(OS1_JSON, pkts)
    assert [s.index for s in scans] == [1795, 1796, 1797]
    assert dec.stats.reasons == {"late packet of a frame already emitted": 1}


def test_missing_metadata_and_bad_options() -> None:
    with pytest.raises(MetadataError, match="needs the sensor's metadata"):
        OusterDecoder(None)
    with pytest.raises(SensorError, match="unknown return_mode"):
        OusterDecoder(str(fixture_file(OS1_JSON)), return_mode="sideways")
    with pytest.raises(SensorError, match="needs a dual-return profile"):
        OusterDecoder(str(fixture_file(OS1_JSON)), return_mode="second")
    with pytest.raises(SensorError, match="carries no signal"):
        OusterDecoder(str(fixture_file(OS1_JSON)), intensity="signal")
    with pytest.raises(SensorError, match="return_mode 'last' needs a dual-return profile"):
        OusterDecoder(str(fixture_file(OS0_JSON)), return_mode="last")  # STRONGEST_TO_WEAKEST
    doc = json.loads(fixture_file(OS0_JSON).read_text())
    doc["return_order"] = "NEAREST_TO_FARTHEST"
    assert OusterDecoder(doc, return_mode="last")._returns[:, 2].tolist() == [RETURN_LAST]
    # options meant for other decoders are ignored
    OusterDecoder(str(fixture_file(OS1_JSON)), cut_angle=90.0, model="VLP-16")


@functools.cache
def _lidar_os0() -> tuple[Packet, ...]:
    return tuple(p for p in packets(OS0_PCAP) if p.port == 7502)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flips=st.lists(st.tuples(st.integers(0, 63), st.integers(0, 8447), st.integers(1, 255)),
                      min_size=1, max_size=12),
       cut=st.integers(0, 64))
def test_corrupted_packets_never_crash(flips: list[tuple[int, int, int]], cut: int) -> None:
    """Random byte corruption anywhere (headers, ids, pixels) and a stream cut short: every
    outcome is scans with sane points or a SensorError, nothing else."""
    pkts = [bytearray(p.data) for p in _lidar_os0()]
    for k, pos, val in flips:
        pkts[k][pos] ^= val
    stream = [Packet(1.0, 7502, bytes(b)) for b in pkts[:cut]]
    dec = OusterDecoder(str(fixture_file(OS0_JSON)), soft_id_check=True)
    try:
        scans = list(dec.feed(stream)) + list(dec.flush())
    except SensorError:
        return
    assert dec.stats.packets + dec.stats.bad_packets == len(stream)
    for scan in scans:
        assert np.isfinite(scan.xyz).all()
        assert (scan.ring < 32).all()
        assert ((scan.azimuth >= 0) & (scan.azimuth < 360)).all()
        assert scan.extras["range"].shape == (32, 1024)
        assert np.linalg.norm(scan.xyz, axis=1).max() < 600.0  # 19-bit range: at most 524 m


def test_absolute_sensor_clock_is_used_as_is() -> None:
    """With PTP/GPS time the column timestamps are already epoch nanoseconds: no anchoring."""
    import struct

    epoch_ns = 1_635_448_000_000_000_000  # about 50 minutes after the capture clock: trusted
    forged = []
    for p in _lidar_os0():
        data = bytearray(p.data)
        for c in range(16):
            base = 32 + c * (12 + 32 * 16)
            (ts,) = struct.unpack_from("<Q", data, base)
            struct.pack_into("<Q", data, base, epoch_ns + ts)
        forged.append(Packet(p.timestamp, 7502, bytes(data)))
    (scan,), _ = decode(OS0_JSON, forged)
    (plain,), _ = decode(OS0_JSON, list(_lidar_os0()))
    valid = scan.extras["valid_columns"]
    assert abs(scan.t_start - (epoch_ns + int(plain.extras["column_timestamp"][valid].min())) * 1e-9) < 1e-6
    np.testing.assert_allclose(scan.time - scan.t_start, plain.time - plain.t_start, atol=1e-6)


def test_columns_flagged_invalid_by_the_sensor() -> None:
    """Status bit 0 clear (e.g. outside the azimuth window): the column is zero and has no
    points, even when a duplicate of the packet arrives first with the column valid."""
    import struct

    lidar = list(_lidar_os0())
    (clean,), _ = decode(OS0_JSON, lidar)
    data = bytearray(lidar[2].data)  # measurement ids 32..47
    for c in (0, 5, 15):
        base = 32 + c * (12 + 32 * 16)
        struct.pack_into("<H", data, base + 10, 0)
    stream = lidar[:2] + [Packet(0.0, 7502, bytes(data))] + lidar[3:]
    (scan,), dec = decode(OS0_JSON, stream)
    assert dec.stats.bad_packets == 0
    expected = clean.extras["valid_columns"].copy()
    expected[[32, 37, 47]] = False
    np.testing.assert_array_equal(scan.extras["valid_columns"], expected)
    mids = np.round(scan.azimuth * 1024 / 360.0).astype(int)
    assert not np.isin(mids, [32, 37, 47]).any()
    assert len(scan) < len(clean)
    shifts = np.asarray(json.loads(fixture_file(OS0_JSON).read_text())["data_format"]["pixel_shift_by_row"])
    mid = (np.arange(1024)[None, :] - shifts[:, None]) % 1024
    assert not scan.extras["range"][np.isin(mid, [32, 37, 47])].any()
    # a valid copy of the packet first, the invalid one after: the valid data stays
    (again,), _ = decode(OS0_JSON, lidar[:3] + [Packet(0.0, 7502, bytes(data))] + lidar[3:])
    np.testing.assert_array_equal(again.xyz, clean.xyz)
