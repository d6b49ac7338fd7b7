"""The range-image outlier filter (pipeline.kernels.ring_outliers): the expected kept set on a
synthetic scan with known ghosts, its window semantics, and agreement with the exact k-NN
filter on real scans."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.kernels.outliers import statistical_outlier_mask
from pipeline.kernels.ring_outliers import ring_knn_mean_distance, ring_outlier_mask


def _wall_scan(rings: int = 16, cols: int = 900, r_m: float = 10.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One rotation inside a cylinder of radius ``r_m`` (VLP-16 like: 2 degree beams, 0.4
    degree columns), in scan order (column by column, every beam per column)."""
    az = np.repeat(np.radians(np.arange(cols) * 360.0 / cols), rings)
    el = np.tile(np.radians(np.linspace(-15.0, 15.0, rings)), cols)
    ring = np.tile(np.arange(rings), cols)
    t = np.repeat(np.arange(cols) * 1e-4, rings) + ring * 1e-6
    xyz = np.stack([r_m * np.cos(az), r_m * np.sin(az), r_m * np.tan(el)], axis=1)
    return xyz, ring, t


def test_ghosts_removed_wall_kept() -> None:
    xyz, ring, t = _wall_scan()
    ghosts = [1000, 5003, 9010]  # single returns far in front of the wall (dust, rain)
    xyz[ghosts] *= 0.25
    keep = ring_outlier_mask(xyz, ring, t, 20, 2.0)
    assert not keep[ghosts].any()
    assert keep.sum() == len(xyz) - len(ghosts)  # every wall point kept
    # the exact filter decides the same on this cloud
    assert np.array_equal(keep, statistical_outlier_mask(xyz, 20, 2.0))


def test_duplicates_removed_like_open3d() -> None:
    xyz, ring, t = _wall_scan()
    xyz[16 * 10:16 * 40:16] = xyz[16 * 25]  # 30 returns of beam 0 stacked on one spot
    keep = ring_outlier_mask(xyz, ring, t, 20, 2.0)
    assert not keep[16 * 25]  # its 20 nearest (itself included) all sit on it: mean 0
    assert not keep[16 * 10:16 * 40:16].any()
    assert keep[1::16].sum() > 800  # beam 1 beside them stays (its stacked neighbours are not all it sees)


def test_window_is_the_range_image_neighbourhood() -> None:
    # 3 rings of 5 points on a line, 1 m apart along the ring; rings 100 m apart: with one
    # neighbour ring searched and a reach of 1 column, a point sees itself, its two ring
    # neighbours and the 3 nearest columns of each adjacent ring
    xyz = np.zeros((15, 3))
    ring = np.repeat(np.arange(3), 5)
    t = np.tile(np.arange(5, dtype=np.float64), 3)
    xyz[:, 0] = t
    xyz[:, 2] = ring * 100.0
    mean = ring_knn_mean_distance(xyz, ring.astype(np.int64), t, 3, 1, 1)
    assert mean[1] == pytest.approx(2.0 / 3.0)  # itself, 1 m left, 1 m right
    assert mean[0] == pytest.approx((0.0 + 1.0 + 100.0) / 3.0)  # itself, x+1 on its ring, the ring above at x=0
    # no neighbour ring searched: ring ends see only their own ring (2 points within reach 1)
    mean0 = ring_knn_mean_distance(xyz, ring.astype(np.int64), t, 3, 0, 1)
    assert mean0[0] == pytest.approx(0.5)


def test_worker_thread_gives_the_same_result() -> None:
    xyz, ring, t = _wall_scan(16, 2500)  # 40 000 points: above PARALLEL_MIN
    xyz[::997] *= 0.3
    one = ring_knn_mean_distance(xyz, ring.astype(np.int64), t, 20, 1, 20, threads=1)
    two = ring_knn_mean_distance(xyz, ring.astype(np.int64), t, 20, 1, 20, threads=2)
    assert np.array_equal(one, two)
    assert np.array_equal(ring_outlier_mask(xyz, ring, t, 20, 2.0, threads=2), ~np.isin(np.arange(len(xyz)),
                                                                                         np.arange(0, len(xyz), 997)))


def test_input_checks() -> None:
    xyz, ring, t = _wall_scan(4, 10)
    with pytest.raises(ValueError):
        ring_outlier_mask(xyz, ring, t, 0, 2.0)
    with pytest.raises(ValueError):
        ring_outlier_mask(xyz, ring[:-1], t, 20, 2.0)
    bad = xyz.copy()
    bad[3] = np.nan
    with pytest.raises(ValueError):
        ring_outlier_mask(bad, ring, t, 20, 2.0)
    assert ring_outlier_mask(xyz[:0], ring[:0], t[:0], 20, 2.0).shape == (0,)


@pytest.mark.fixtures
def test_agrees_with_exact_knn_on_real_scans() -> None:
    from pipeline.kernels.crop import range_mask, valid_mask
    from tests.pipeline._clouds import ouster_scans, velodyne_scans

    for scans, agree_min in ((velodyne_scans(), 0.995), (ouster_scans(), 0.985)):
        s = scans[1]
        xyz = np.ascontiguousarray(s.xyz)
        idx = np.flatnonzero(valid_mask(xyz, 1e-6) & range_mask(xyz, 0.5, 200.0))
        exact = statistical_outlier_mask(xyz[idx], 20, 2.0)
        ring = ring_outlier_mask(xyz[idx], s.ring[idx], s.time[idx], 20, 2.0, 1)
        assert (exact == ring).mean() >= agree_min
        # most points the exact filter removes, this one removes too
        assert (~exact & ~ring).sum() >= 0.7 * (~exact).sum()
