"""Voxel downsampling against Open3D's ``voxel_down_sample`` on real clouds: same voxels,
same centroids (within 1e-6 m; in practice bit for bit), same attribute means."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.kernels.voxel import assign_ids, voxel_downsample
from tests.pipeline._clouds import nuscenes, ouster_scans, stacked, velodyne_scans

o3d = pytest.importorskip("open3d")


def _open3d(xyz: np.ndarray, voxel: float, attrs: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz.astype(np.float64)))
    if attrs is not None:
        cols = np.zeros((len(xyz), 3))
        cols[:, : attrs.shape[1]] = attrs
        pc.colors = o3d.utility.Vector3dVector(cols)
    down = pc.voxel_down_sample(voxel)
    cols = np.asarray(down.colors)[:, : attrs.shape[1]] if attrs is not None else np.zeros((len(down.points), 0))
    return np.asarray(down.points), cols


def _sorted(points: np.ndarray, *others: np.ndarray) -> tuple[np.ndarray, ...]:
    order = np.lexsort(points.T[::-1])
    return (points[order],) + tuple(o[order] for o in others)


def _check(xyz: np.ndarray, voxel: float, attrs: np.ndarray | None = None) -> None:
    cent, amean, counts, ids = voxel_downsample(xyz, voxel, attrs)
    ref, ref_attrs = _open3d(xyz, voxel, attrs)
    assert len(cent) == len(ref)
    assert counts.sum() == len(xyz)
    a, b = _sorted(cent, amean), _sorted(ref, ref_attrs)
    assert np.abs(a[0] - b[0]).max() < 1e-6
    if attrs is not None:
        assert np.abs(a[1] - b[1]).max() < 1e-6
    # every point's voxel id names a centroid within its voxel's reach
    assert np.all(np.abs(cent[ids] - xyz).max(axis=1) <= voxel + 1e-9)


@pytest.mark.fixtures
@pytest.mark.parametrize("voxel", [0.05, 0.2, 1.0])
def test_nuscenes_sweep_matches_open3d(voxel: float) -> None:
    a = nuscenes()
    _check(np.ascontiguousarray(a[:, :3]), voxel, attrs=np.ascontiguousarray(a[:, 3:5], dtype=np.float64))


@pytest.mark.fixtures
def test_stacked_sweeps_match_open3d() -> None:
    xyz = stacked(np.ascontiguousarray(nuscenes()[:, :3]))
    _check(xyz, 0.05)


@pytest.mark.fixtures
def test_velodyne_scans_match_open3d() -> None:
    scans = velodyne_scans()
    xyz = np.concatenate([s.xyz for s in scans])
    attrs = np.stack([np.concatenate([s.intensity for s in scans]),
                      np.concatenate([s.ring for s in scans]).astype(np.float64)], axis=1)
    _check(xyz, 0.1, attrs)


@pytest.mark.fixtures
def test_ouster_scan_matches_open3d() -> None:
    _check(ouster_scans()[0].xyz, 0.05)


def test_float64_input_and_single_voxel() -> None:
    xyz = np.array([[0.0, 0.0, 0.0], [0.01, 0.02, 0.03], [0.02, 0.0, 0.01]])
    cent, _, counts, ids = voxel_downsample(xyz, 1.0)
    assert len(cent) == 1 and counts[0] == 3 and (ids == 0).all()
    assert np.allclose(cent[0], xyz.mean(axis=0))


def test_first_occurrence_order_and_ids() -> None:
    xyz = np.array([[5.0, 0, 0], [0.0, 0, 0], [5.1, 0, 0], [0.1, 0, 0], [10.0, 0, 0]], dtype=np.float32)
    cent, _, counts, ids = voxel_downsample(xyz, 1.0)
    assert list(ids) == [0, 1, 0, 1, 2]
    assert list(counts) == [2, 2, 1]
    assert np.allclose(cent[:, 0], [5.05, 0.05, 10.0])


@pytest.mark.parametrize("key_bits", [63, 30])  # (key, id) pairs in a growing table; packed entries
def test_hash_table_ids_are_dense_in_first_occurrence_order(key_bits: int) -> None:
    keys = np.random.default_rng(1).permutation(200_000).astype(np.int64) * 5003
    ids, nv = assign_ids(np.concatenate([keys, keys[::-1]]), key_bits)
    assert nv == 200_000
    assert (ids[:200_000] == np.arange(200_000)).all()
    assert (ids[200_000:] == np.arange(200_000)[::-1]).all()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="positive"):
        voxel_downsample(np.zeros((3, 3)), 0.0)
    with pytest.raises(ValueError, match="too small"):
        voxel_downsample(np.array([[0.0, 0, 0], [1e6, 0, 0]]), 1e-3)
    with pytest.raises(ValueError, match="NaN or infinite"):
        voxel_downsample(np.array([[0.0, 0, 0], [np.nan, 1, 1]], dtype=np.float32), 0.5)
    with pytest.raises(ValueError, match="NaN or infinite"):
        voxel_downsample(np.array([[0.0, 0, 0], [np.inf, 1, 1]]), 0.5)
    with pytest.raises(ValueError, match=r"\(N, 3\)"):
        voxel_downsample(np.zeros((3, 2)), 1.0)
    cent, attrs, counts, ids = voxel_downsample(np.zeros((0, 3)), 1.0)
    assert cent.shape == (0, 3) and attrs.shape == (0, 0) and len(counts) == 0 and len(ids) == 0


def test_reused_table_memory_gives_the_same_result_in_any_order_and_thread() -> None:
    # The hash table's memory is kept per thread between calls: a small cloud after a large
    # one (a larger, dirty buffer) and a call from another thread must not change anything.
    import threading

    rng = np.random.default_rng(7)
    small = rng.uniform(-5, 5, (2_000, 3)).astype(np.float32)
    large = rng.uniform(-50, 50, (200_000, 3))
    first = voxel_downsample(small, 0.5)
    voxel_downsample(large, 0.05)
    again = voxel_downsample(small, 0.5)
    out: list = []
    t = threading.Thread(target=lambda: out.append(voxel_downsample(small, 0.5)))
    t.start()
    t.join()
    for res in (again, out[0]):
        for a, b in zip(first, res):
            assert np.array_equal(a, b)
    ids, nv = assign_ids(np.unique(large[:, 0].view(np.int64) & 0xFFFFFF))
    assert nv == len(ids) and (ids == np.arange(nv)).all()
