"""Quantized XYZ codec: exact quantized round trips and the error bound on every fixture cloud,
in scan order and shuffled, attributes along; random clouds (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from pipeline.codecs import CodecConfig, make_codec
from pipeline.codecs.quantized import QuantizedCodec, quantize
from pipeline.errors import CodecError
from tests.pipeline._clouds import nuscenes
from tests.pipeline._codec_fixtures import scans


def _fixture_clouds():
    out = {}
    a = nuscenes()
    out["nuscenes"] = (a[:, :3], {"intensity": a[:, 3], "ring": a[:, 4].astype(np.uint8)})
    for name in ("vlp16-pcap", "hdl32e-pcap", "vlp16-rosbag2", "os1-128-lb", "os0-32"):
        s = max(scans(name), key=len)
        out[name] = (s.xyz, {"intensity": s.intensity, "ring": s.ring, "time": s.time})
    return out


CLOUD_NAMES = ["nuscenes", "vlp16-pcap", "hdl32e-pcap", "vlp16-rosbag2", "os1-128-lb", "os0-32"]


@pytest.fixture(scope="module")
def clouds():
    return _fixture_clouds()


def _check(codec, xyz, attrs, blob):
    out = codec.decode(blob)
    q = quantize(xyz, codec.step)
    assert len(out) == len(xyz)
    if out.order == "scan":
        perm = np.arange(len(xyz))
    else:
        assert out.permutation is not None
        perm = out.permutation
    assert np.array_equal(out.q, q[perm])
    err = np.abs(out.xyz - np.asarray(xyz, np.float64)[perm])
    assert err.max(initial=0) <= codec.step / 2 + 1e-9
    for k, v in attrs.items():
        assert out.attrs[k].dtype == np.asarray(v).dtype
        assert np.array_equal(out.attrs[k], np.asarray(v)[perm]), k
    return out


@pytest.mark.parametrize("name", CLOUD_NAMES)
@pytest.mark.parametrize("shuffled", [False, True])
def test_fixture_clouds_round_trip(clouds, name, shuffled):
    xyz, attrs = clouds[name]
    if shuffled:
        perm = np.random.default_rng(7).permutation(len(xyz))
        xyz, attrs = xyz[perm], {k: v[perm] for k, v in attrs.items()}
    codec = QuantizedCodec(step=0.01, keep_order=True)
    blob = codec.encode(xyz, attrs)
    out = _check(codec, xyz, attrs, blob)
    if not shuffled:
        assert out.order == "scan" or name == "nuscenes", "scan order stays scan order for decoded scans"
    back = codec.decode_input_order(blob)
    assert np.array_equal(back.q, quantize(xyz, 0.01))


def test_scan_order_beats_morton_on_a_scan_and_structure_is_found_when_shuffled(clouds):
    xyz, attrs = clouds["nuscenes"]
    ring = {"ring": attrs["ring"]}
    sizes = {m: len(QuantizedCodec(order=m).encode(xyz, ring)) for m in ("scan", "ring", "morton")}
    assert min(sizes["scan"], sizes["ring"]) < sizes["morton"]
    bits = len(QuantizedCodec().encode(xyz, ring)) * 8 / len(xyz)
    assert bits < 10.0, bits
    perm = np.random.default_rng(1).permutation(len(xyz))
    codec = QuantizedCodec()
    codec.encode(xyz[perm], {"ring": attrs["ring"][perm]})
    assert codec.last_mode == "ring"
    # without rings the scan lines are inferred from elevation angles, and not decoded
    blob = codec.encode(xyz[perm])
    assert codec.last_mode == "ring" and len(blob) * 8 / len(xyz) < 10.0
    out = codec.decode(blob)
    assert "ring" not in out.attrs
    assert sorted(map(tuple, out.q.tolist())) == sorted(map(tuple, quantize(xyz, 0.01).tolist()))


def test_a_cloud_without_scan_structure_goes_morton():
    rng = np.random.default_rng(4)
    xyz = rng.uniform(0, 5, (20000, 3))
    codec = QuantizedCodec()
    out = codec.decode(codec.encode(xyz))
    assert out.order == "morton" and out.permutation is None
    assert np.array_equal(np.unique(out.q, axis=0), np.unique(quantize(xyz, 0.01), axis=0))
    # with keep_order the permutation counts too: then input order (scan) is the smallest
    assert QuantizedCodec(keep_order=True).decode(QuantizedCodec(keep_order=True).encode(xyz)).order == "scan"


@pytest.mark.parametrize("order", ["scan", "ring", "morton"])
@pytest.mark.parametrize("step", [0.001, 0.01, 0.05])
def test_every_order_and_step(clouds, order, step):
    xyz, attrs = clouds["vlp16-pcap"]
    codec = QuantizedCodec(step=step, order=order, keep_order=True)
    out = _check(codec, xyz, attrs, codec.encode(xyz, attrs))
    assert out.order == order


def test_georeferenced_coordinates_and_center():
    """Large (ECEF-like) coordinates: the error bound holds and the given centre is used."""
    a = nuscenes()
    offset = np.array([4_177_000.0, 855_000.0, 4_727_000.0])
    xyz = a[:, :3].astype(np.float64) + offset
    codec = QuantizedCodec(step=0.01, keep_order=True)
    with_center = codec.encode(xyz, {"ring": a[:, 4].astype(np.uint8)}, center=offset)
    _check(codec, xyz, {"ring": a[:, 4].astype(np.uint8)}, with_center)
    compact = QuantizedCodec(step=0.01).encode(xyz, {"ring": a[:, 4].astype(np.uint8)}, center=offset)
    assert len(compact) * 8 / len(xyz) < 10.0  # no permutation stored


def test_empty_and_bad_inputs():
    codec = QuantizedCodec()
    out = codec.decode(codec.encode(np.zeros((0, 3)), {"intensity": np.zeros(0, np.float32)}))
    assert len(out) == 0 and out.attrs["intensity"].dtype == np.float32
    with pytest.raises(CodecError, match="NaN"):
        codec.encode(np.array([[0.0, np.nan, 1.0]]))
    with pytest.raises(CodecError, match=r"must be \(n, 3\)"):
        codec.encode(np.zeros((3, 2)))
    with pytest.raises(CodecError, match="ring"):
        codec.encode(np.zeros((2, 3)), {"ring": np.array([0.5, 1.0])})
    with pytest.raises(CodecError, match="step"):
        QuantizedCodec(step=0.0)


def test_config_builds_the_codec():
    codec = make_codec("quantized", CodecConfig(xyz_step_m=0.02, xyz_order="morton"))
    assert isinstance(codec, QuantizedCodec) and codec.max_error == 0.01 and codec.order == "morton"
    with pytest.raises(CodecError, match="unknown codec"):
        make_codec("draco")


_coords = hnp.arrays(np.float64, st.tuples(st.integers(0, 60), st.just(3)),
                     elements=st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_coords, st.sampled_from(["auto", "scan", "ring", "morton"]), st.sampled_from([0.001, 0.01, 0.3]),
       st.integers(0, 2**32 - 1))
def test_random_clouds_round_trip(xyz, order, step, seed):
    rng = np.random.default_rng(seed)
    n = len(xyz)
    attrs = {
        "ring": rng.integers(0, 4, n).astype(np.uint16),
        "intensity": rng.random(n).astype(np.float32),
        "time": 1.7e9 + np.sort(rng.random(n)),
        "flags": rng.integers(-(2**40), 2**40, n),
        "huge": rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, n, dtype=np.int64),
    }
    if order == "morton":  # Morton keys need the cloud to fit 2**21 steps per axis
        xyz = xyz * min(1.0, 1e4 * step / 1e4)
    codec = QuantizedCodec(step=step, order=order, keep_order=True)
    _check(codec, xyz, attrs, codec.encode(xyz, attrs))


def test_order_helpers_match_their_numpy_definitions():
    """The numba helpers that pick the point order agree with the plain definitions: lines by
    elevation-tangent thresholds (searchsorted), the ring order sorted by (ring, azimuth)."""
    from pipeline.codecs import _qkernels as K
    from pipeline.codecs.quantized import infer_lines, ring_order

    rng = np.random.default_rng(7)
    q = rng.integers(-5000, 5000, size=(20000, 3)).astype(np.int64)
    q[:5] = 0  # points at the centre: straight "above"
    c = np.zeros(3, np.int64)
    thr = np.sort(rng.normal(0, 0.3, 40))
    d = q.astype(np.float64)
    h = np.hypot(d[:, 0], d[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(h > 0, d[:, 2] / np.where(h > 0, h, 1), np.where(d[:, 2] >= 0, 1e300, -1e300))
    assert np.array_equal(K.lines_of(q, c, thr), np.searchsorted(thr, t, side="right"))
    ring = rng.integers(0, 16, len(q))
    perm = ring_order(q, ring, c)
    assert np.array_equal(np.sort(perm), np.arange(len(q)))
    ang = (np.arctan2(d[perm, 1], d[perm, 0]) + np.pi / 2) % (2 * np.pi)  # the pseudo-angle starts at -90 deg
    same = np.diff(ring[perm]) == 0
    assert (np.diff(ring[perm]) >= 0).all()
    assert (np.diff(ang)[same] >= -1e-6).all()  # azimuth non-decreasing within a ring
    # a 16-beam cloud without rings: the inferred lines are the beams
    beams = np.radians(np.linspace(-15, 15, 16))
    b = rng.integers(0, 16, 30000)
    az = rng.uniform(0, 2 * np.pi, len(b))
    r = rng.uniform(5, 50, len(b))
    pts = np.stack([r * np.cos(beams[b]) * np.cos(az), r * np.cos(beams[b]) * np.sin(az), r * np.sin(beams[b])], 1)
    stray = np.array([[10.0, 0, -5.0], [10.0, 0, 5.0], [0, 10.0, 5.0]])  # beyond the outer beams
    lines, n = infer_lines(quantize(np.concatenate([pts, stray]), 0.01), c)
    assert n == 16
    assert np.array_equal(lines[: len(b)], b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quantize_matches_its_definition(dtype):
    rng = np.random.default_rng(3)
    xyz = (rng.normal(0, 300, size=(5000, 3)) + [4.5e5, 5.4e6, 120]).astype(dtype)
    xyz[:10] = np.round(xyz[:10], 2) + 0.005  # halfway cases
    want = np.floor(xyz.astype(np.float64) / 0.01 + 0.5).astype(np.int64)
    assert np.array_equal(quantize(xyz, 0.01), want)


def test_ring_order_with_more_rings_than_points():
    """Ring order codes the number of points per ring up front: rings without points, and
    more ring numbers than points, come back exactly."""
    xyz = np.array([[1.0, 2, 3], [4, 5, 6], [-1, 2, 0.5], [7, -8, 1], [0.2, 0.3, 0.4]])
    ring = np.array([4000, 3, 3, 0, 4000], np.uint16)
    codec = QuantizedCodec(order="ring", keep_order=True)
    out = codec.decode(codec.encode(xyz, {"ring": ring}))
    assert out.order == "ring" and out.attrs["ring"].dtype == np.uint16
    assert np.array_equal(out.attrs["ring"], np.sort(ring))
    assert np.array_equal(out.q, quantize(xyz, 0.01)[out.permutation])
    assert np.array_equal(out.attrs["ring"], ring[out.permutation])
