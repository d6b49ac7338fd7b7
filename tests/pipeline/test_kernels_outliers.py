"""Statistical outlier removal against Open3D's ``remove_statistical_outlier`` on real
clouds: the same kept set, except points whose mean neighbour distance ties with the
threshold to rounding; the k-NN search against brute force."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.kernels.outliers import knn_mean_distance, statistical_outlier_mask, statistical_threshold
from tests.pipeline._clouds import nuscenes, ouster_scans, velodyne_scans

o3d = pytest.importorskip("open3d")


def _check(xyz: np.ndarray, k: int, ratio: float) -> None:
    keep = statistical_outlier_mask(xyz, k, ratio)
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz.astype(np.float64)))
    _, ind = pc.remove_statistical_outlier(nb_neighbors=k, std_ratio=ratio)
    ref = np.zeros(len(xyz), dtype=bool)
    ref[np.asarray(ind)] = True
    differ = np.flatnonzero(keep != ref)
    if len(differ):  # only ties with the threshold may differ (summation order)
        mean = knn_mean_distance(np.ascontiguousarray(xyz), k)
        thr = statistical_threshold(mean, ratio)
        assert np.all(np.abs(mean[differ] - thr) <= 1e-9 * thr), differ[:10]
    assert 0 < keep.sum() < len(xyz)  # the filter did remove something, and not everything


@pytest.mark.fixtures
@pytest.mark.parametrize(("k", "ratio"), [(20, 2.0), (8, 1.0), (50, 0.5)])
def test_nuscenes_sweep_matches_open3d(k: int, ratio: float) -> None:
    _check(np.ascontiguousarray(nuscenes()[:, :3]), k, ratio)


@pytest.mark.fixtures
def test_velodyne_scans_match_open3d() -> None:
    _check(np.concatenate([s.xyz for s in velodyne_scans()]), 20, 2.0)


@pytest.mark.fixtures
def test_ouster_scan_matches_open3d() -> None:
    _check(ouster_scans()[0].xyz, 16, 1.5)


def test_knn_matches_brute_force() -> None:
    rng = np.random.default_rng(3)
    # clustered points plus far outliers, with duplicates
    xyz = np.concatenate([rng.normal(0, 1, (800, 3)), rng.normal(40, 0.01, (150, 3)),
                          rng.uniform(-300, 300, (40, 3)), np.zeros((10, 3))])
    for k in (1, 5, 17):
        d = np.sqrt(((xyz[:, None, :] - xyz[None, :, :]) ** 2).sum(-1))
        d.sort(axis=1)
        assert np.allclose(knn_mean_distance(xyz, k), d[:, :k].mean(axis=1), rtol=1e-12, atol=1e-12)


def test_duplicates_are_removed_like_open3d() -> None:
    rng = np.random.default_rng(5)
    xyz = np.concatenate([rng.normal(0, 1, (300, 3)), np.repeat([[0.5, 0.5, 0.5]], 6, axis=0)])
    keep = statistical_outlier_mask(xyz, 5, 2.0)
    assert not keep[-6:].any()  # all 5 neighbours on the point itself: mean 0, dropped
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz))
    _, ind = pc.remove_statistical_outlier(5, 2.0)
    assert set(np.flatnonzero(keep)) == set(np.asarray(ind))


def test_more_neighbours_than_points_and_bad_arguments() -> None:
    xyz = np.array([[0.0, 0, 0], [1.0, 0, 0], [0, 1.0, 0], [10.0, 10, 10]])
    mean = knn_mean_distance(xyz, 10)
    assert np.allclose(mean[0], (0 + 1 + 1 + np.sqrt(300)) / 4)
    with pytest.raises(ValueError, match="nb_neighbors"):
        statistical_outlier_mask(xyz, 0, 1.0)
    with pytest.raises(ValueError, match="std_ratio"):
        statistical_outlier_mask(xyz, 3, 0.0)
    assert statistical_outlier_mask(np.zeros((0, 3)), 3, 1.0).shape == (0,)
    with pytest.raises(ValueError, match="NaN or infinite"):
        statistical_outlier_mask(np.array([[0.0, 0, 0], [np.nan, 0, 0]]), 1, 1.0)
