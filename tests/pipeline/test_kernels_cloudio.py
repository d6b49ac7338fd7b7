"""The cloud loader reads every supported format, including files written by Open3D and
by ``edge-agent decode``, and refuses bad files with a PipelineError."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline._cloudio import CloudFormatError, load_cloud
from pipeline.errors import PipelineError
from tests.pipeline._clouds import nuscenes, velodyne_scans


@pytest.mark.fixtures
def test_nuscenes_bin() -> None:
    from tests._fixtures import FIXTURES

    path = min((FIXTURES / "camera" / "nuscenes").glob("LIDAR_TOP__*.pcd.bin"))
    cloud = load_cloud(path)
    ref = nuscenes()
    assert (cloud.xyz == ref[:, :3]).all() and (cloud.fields["ring"] == ref[:, 4]).all()


def test_bin_x4(tmp_path) -> None:
    a = np.arange(40, dtype=np.float32).reshape(-1, 4)
    a.tofile(tmp_path / "kitti.bin")
    cloud = load_cloud(tmp_path / "kitti.bin")
    assert (cloud.xyz == a[:, :3]).all() and (cloud.fields["intensity"] == a[:, 3]).all()


@pytest.mark.parametrize("suffix", [".pcd", ".ply"])
@pytest.mark.parametrize("ascii_", [False, True])
def test_open3d_written_files(tmp_path, suffix: str, ascii_: bool) -> None:
    o3d = pytest.importorskip("open3d")
    xyz = np.random.default_rng(0).normal(0, 10, (500, 3))
    path = tmp_path / f"c{suffix}"
    o3d.io.write_point_cloud(str(path), o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz)), write_ascii=ascii_)
    cloud = load_cloud(path)
    assert np.allclose(cloud.xyz, xyz, atol=1e-5 if ascii_ else 0)


@pytest.mark.fixtures
@pytest.mark.parametrize("suffix", [".npz", ".pcd", ".ply"])
def test_decode_writer_files(tmp_path, suffix: str) -> None:
    from sensors.lidar.writers import write_points

    scans = list(velodyne_scans())
    path = tmp_path / f"scans{suffix}"
    write_points(path, scans)
    cloud = load_cloud(path)
    assert np.allclose(cloud.xyz, np.concatenate([s.xyz for s in scans]))


def test_npz_with_xyz(tmp_path) -> None:
    np.savez(tmp_path / "a.npz", xyz=np.ones((4, 3)), intensity=np.arange(4))
    assert load_cloud(tmp_path / "a.npz").fields["intensity"].tolist() == [0, 1, 2, 3]


def test_bad_files(tmp_path) -> None:
    (tmp_path / "a.bin").write_bytes(b"\0" * 7)
    (tmp_path / "b.ply").write_bytes(b"not a ply")
    (tmp_path / "c.pcd").write_text("VERSION .7\nFIELDS x y z\nSIZE 4 4 4\nTYPE F F F\nPOINTS 10\nDATA binary\n")
    np.savez(tmp_path / "d.npz", other=np.ones(3))
    for name, match in [("a.bin", "float32"), ("b.ply", "not a PLY"), ("c.pcd", "truncated"), ("d.npz", "no 'xyz'"),
                        ("e.xyz", "unknown point-cloud format"), ("missing.pcd", "no such file")]:
        with pytest.raises(CloudFormatError, match=match):
            load_cloud(tmp_path / name)
    assert issubclass(CloudFormatError, PipelineError)
