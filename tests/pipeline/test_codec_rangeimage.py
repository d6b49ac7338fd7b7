"""Lossless range-image codec: byte-exact packet streams on every LiDAR fixture, raw fields
against the decoders, random packets (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.codecs import codec_of, make_codec
from pipeline.codecs.rangeimage import RangeImageCodec, layout_for, ouster_layout, raw_fields, velodyne_layout
from sensors.packets import Packet
from tests.pipeline._codec_fixtures import PACKET_FIXTURES, packets, scans


@pytest.mark.parametrize("name", sorted(PACKET_FIXTURES))
def test_packet_stream_round_trips_byte_exact(name):
    pk, meta = packets(name)
    layout = layout_for(pk, meta)
    codec = RangeImageCodec()
    blob = codec.encode(pk, layout)
    assert codec_of(blob) == "rangeimage"
    out = codec.decode(blob)
    assert len(out.packets) == len(pk)
    for a, b in zip(pk, out.packets):
        assert a.data == b.data
        assert a.port == b.port
        assert np.float64(a.timestamp).tobytes() == np.float64(b.timestamp).tobytes()
    data_bytes = sum(len(p.data) for p in pk if len(p.data) == layout.size)
    assert len(blob) < 0.75 * data_bytes, "a range image of real returns must compress"


@pytest.mark.parametrize("name", ["vlp16-pcap", "hdl32e-pcap"])
def test_velodyne_raw_fields_are_the_decoded_returns(name):
    pk, _ = packets(name)
    layout = layout_for(pk)
    out = RangeImageCodec().decode(RangeImageCodec().encode(pk, layout))
    fields = raw_fields(out.data, layout)
    dist = fields.pixels["distance"]
    assert dist.shape == (32, len(out.data) * 12)
    assert set(np.unique(fields.columns["flag"]).tolist()) <= {0xEEFF, 0xDDFF, 0xCCFF, 0xBBFF}
    assert fields.columns["azimuth"].max() < 36000
    # the decoder keeps every non-zero distance (single return, no min range): same count
    # and the same multiset of ranges (2 mm units)
    sc = scans(name)
    pts = sum(len(s) for s in sc)
    slots = 16 if layout.name.endswith("VLP-16") else 32
    nz = int((dist[:slots] > 0).sum() + (dist[slots:] > 0).sum()) if slots == 16 else int((dist > 0).sum())
    assert pts == nz


def test_ouster_raw_range_image_matches_decoder_images():
    pk, meta = packets("os1-128-lb")
    layout = ouster_layout(meta)
    out = RangeImageCodec().decode(RangeImageCodec().encode(pk, layout))
    fields = raw_fields(out.data, layout)
    rng = (fields.pixels["range"] & 0x7FFF).astype(np.int64) * 8  # RNG15: 8 mm units
    mid = fields.columns["measurement_id"].astype(np.int64)
    sc = scans("os1-128-lb")
    full = [s for s in sc if s.extras["valid_columns"].all()]
    assert full, "the capture has a complete frame"
    from sensors.lidar.ouster._metadata import load_metadata

    m = load_metadata(meta)
    frame = fields.packet["frame_id"].repeat(layout.n_cols)
    s = full[0]
    cols = np.flatnonzero(frame == s.index)
    staggered = np.zeros((m.pixels_per_column, m.columns_per_frame), np.int64)
    staggered[:, mid[cols]] = rng[:, cols]
    shifts = np.asarray(m.pixel_shift_by_row)
    destaggered = np.stack([np.roll(staggered[r], shifts[r]) for r in range(len(shifts))])
    assert np.array_equal(destaggered, s.extras["range"].astype(np.int64))


def test_plain_bytes_and_other_packets_keep_their_place():
    layout = velodyne_layout("VLP-16")
    rng = np.random.default_rng(3)
    stream = [rng.integers(0, 256, 1206, dtype=np.uint8).tobytes() for _ in range(3)]
    stream.insert(1, b"position packet")
    stream.append(b"")
    out = RangeImageCodec().decode(RangeImageCodec().encode(stream, layout))
    assert [p.data for p in out.packets] == stream
    assert all(p.timestamp == 0.0 and p.port == 0 for p in out.packets)


def test_registry_builds_it():
    assert isinstance(make_codec("rangeimage"), RangeImageCodec)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(min_size=1206, max_size=1206), min_size=0, max_size=4),
       st.sampled_from([None, "VLP-16", "HDL-32E", "VLS-128"]))
def test_any_velodyne_sized_bytes_round_trip(payloads, model):
    layout = velodyne_layout(model)
    pk = [Packet(1.7e9 + i * 1e-3, 2368, p) for i, p in enumerate(payloads)]
    out = RangeImageCodec().decode(RangeImageCodec().encode(pk, layout))
    assert [p.data for p in out.packets] == payloads
    assert [p.timestamp for p in out.packets] == [p.timestamp for p in pk]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 3), st.integers(0, 2**32 - 1), st.sampled_from([1, 16, 256]))
def test_any_ouster_sized_bytes_round_trip(n, seed, spread):
    """Random packets of the OS-0-32 layout (large: drawn from a seed), from near-constant
    (spread 1) to uniformly random bytes."""
    _, meta = packets("os0-32")
    layout = ouster_layout(meta)
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, layout.size)
    payloads = [((base + rng.integers(0, spread, layout.size)) % 256).astype(np.uint8).tobytes() for _ in range(n)]
    out = RangeImageCodec().decode(RangeImageCodec().encode(payloads, layout))
    assert [p.data for p in out.packets] == payloads


@pytest.mark.parametrize("name", ["vlp16-pcap", "vlp16-rosbag2", "os0-32"])
def test_decoding_the_decoded_packets_gives_the_same_scans(name):
    """End to end: the LiDAR decoder sees no difference between original and decoded packets."""
    from sensors.lidar import make_decoder

    pk, meta = packets(name)
    out = RangeImageCodec().decode(RangeImageCodec().encode(pk, layout_for(pk, meta)))

    def decode(stream):
        dec = make_decoder(meta=meta)
        return list(dec.feed(stream)) + list(dec.flush())

    a, b = decode(pk), decode(out.packets)
    assert len(a) == len(b) > 0
    for sa, sb in zip(a, b):
        for field in ("x", "y", "z", "intensity", "ring", "azimuth", "time", "return_type"):
            assert np.array_equal(getattr(sa, field), getattr(sb, field)), field
