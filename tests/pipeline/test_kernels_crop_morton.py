"""Crop masks, the configured filter chain, Morton keys and the radix argsort."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from pipeline.georef.frames import rpy_matrix
from pipeline.kernels import FilterConfig, filter_points
from pipeline.kernels.crop import body_mask, box_mask, range_mask, valid_mask
from pipeline.kernels.morton import (
    decode_morton,
    encode_morton,
    morton_keys,
    morton_sort,
    quantize,
    radix_argsort,
)
from tests.pipeline._clouds import velodyne_scans


def test_valid_and_range_masks() -> None:
    xyz = np.array([[0, 0, 0], [np.nan, 1, 1], [1, np.inf, 0], [3, 4, 0], [0.1, 0, 0], [300, 0, 0]],
                   dtype=np.float32)
    assert valid_mask(xyz, 1e-6).tolist() == [False, False, False, True, True, True]
    assert range_mask(xyz, 0.5, 200.0).tolist() == [False, False, False, True, False, False]
    assert range_mask(xyz, 5.0, 5.0).tolist() == [False, False, False, True, False, False]  # |p| = 5 inclusive


def test_box_and_body_masks() -> None:
    xyz = np.array([[0.0, 0, 0], [2, 0, 0], [np.nan, 0, 0], [1, 1, 1]])
    lo, hi = np.array([-1.0, -1, -1]), np.array([1.0, 1, 1])
    assert box_mask(xyz, lo, hi, True).tolist() == [True, False, False, True]
    assert box_mask(xyz, lo, hi, False).tolist() == [False, True, True, False]
    # sensor 1.9 m up, turned 90 degrees left: a point 1 m ahead of the sensor is at vehicle y = +1
    rot = rpy_matrix(0, 0, np.pi / 2)
    t = np.array([0.0, 0.0, 1.9])
    pts = np.array([[1.0, 0, -1.0], [1.0, 0, 0.5], [5.0, 0, -1.0]])
    keep = body_mask(pts, rot, t, np.array([-2.5, -1.1, 0.0]), np.array([2.5, 1.1, 1.85]))
    assert keep.tolist() == [False, True, True]


@pytest.mark.fixtures
def test_filter_chain_on_a_real_scan() -> None:
    scan = velodyne_scans()[-1]
    xyz = np.concatenate([scan.xyz, np.array([[np.nan, 0, 0], [0, 0, 0], [0.2, 0.1, -0.5]], dtype=np.float32)])
    cfg = FilterConfig(min_range_m=0.5, max_range_m=100.0, outlier_neighbors=10, outlier_std_ratio=2.0)
    res = filter_points(xyz, cfg, np.eye(3), np.array([0.0, 0.0, 1.9]))
    assert res.removed["invalid"] == 2
    assert not res.keep[-3:].any()
    assert res.removed["outliers"] > 0
    assert res.keep.sum() == len(xyz) - sum(res.removed.values())
    r = np.linalg.norm(xyz[res.keep], axis=1)
    assert r.min() >= 0.5 and r.max() <= 100.0


def test_filter_config_validation() -> None:
    with pytest.raises(ValidationError, match="max_range_m"):
        FilterConfig(min_range_m=10, max_range_m=5)
    with pytest.raises(ValidationError, match="body_box"):
        FilterConfig(body_box=(1, 0, 0, 0, 1, 1))


def test_morton_round_trip_and_order() -> None:
    rng = np.random.default_rng(0)
    q = rng.integers(0, 2**21, size=(5000, 3))
    q[:3] = [[0, 0, 0], [2**21 - 1] * 3, [1, 0, 0]]
    keys = encode_morton(q)
    assert keys.dtype == np.uint64 and int(keys.max()) < 2**63
    assert (decode_morton(keys) == q).all()
    assert int(keys[1]) == 2**63 - 1 and int(keys[2]) == 1
    assert int(encode_morton(np.array([[0, 1, 0]]))[0]) == 2 and int(encode_morton(np.array([[0, 0, 1]]))[0]) == 4
    # Z-order: the key of a cell is below every key of the next octant at each level
    k = encode_morton(np.array([[1, 1, 1], [2, 0, 0]]))
    assert k[0] < k[1]


def test_radix_argsort_is_a_stable_sort() -> None:
    rng = np.random.default_rng(2)
    for keys in (rng.integers(0, 2**63, 10_000, dtype=np.uint64),
                 rng.integers(0, 50, 10_000).astype(np.uint64),  # many ties: stability matters
                 np.zeros(5, dtype=np.uint64), np.zeros(0, dtype=np.uint64)):
        order = radix_argsort(keys)
        assert (order == np.argsort(keys, kind="stable")).all()


def test_quantize_and_sort_points() -> None:
    xyz = np.array([[0.26, 0, 0], [0.0, 0, 0], [-5, 0, 0], [1e9, 0, 0]])
    q = quantize(xyz, np.zeros(3), 0.1)
    assert q[:, 0].tolist() == [2, 0, 0, 2**21 - 1]  # clipped at both ends
    order, sorted_keys = morton_sort(xyz, np.zeros(3), 0.1)
    assert (np.diff(sorted_keys.astype(np.float64)) >= 0).all()
    assert (sorted_keys == morton_keys(xyz, np.zeros(3), 0.1)[order]).all()
