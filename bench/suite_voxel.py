"""Voxel-grid downsampling: ours (numba, one pass of hashed voxel keys) against Open3D's
``PointCloud.voxel_down_sample``, same clouds, same run, one thread each.

Clouds: the nuScenes sweep (HDL-32E), the fullest decoded VLP-16 rotation, an OS-1-128 frame,
and ten jittered copies of the sweep stacked; or the file given with ``--input`` (``.npz``,
``.pcd``, ``.ply``, ``.bin``). Voxel 5 cm (and 20 cm).

Rows per cloud and voxel: throughput in million input points per second, ours with numpy
in and out beside Open3D's call alone on a ready ``PointCloud`` (``ratio`` = ours / Open3D,
higher is better), then Open3D including the numpy → ``Vector3dVector`` conversion a numpy
caller pays; and a check row: the largest centroid difference after sorting both outputs
(0 when the voxel sets and centroids agree; -1 when the voxel counts differ). The first
call (JIT compile or numba cache load) is its own row, outside the timings.
"""

from __future__ import annotations

import time

import numpy as np

from bench._harness import Row, measure, ratio_row

SUITE = "voxel"
VOXELS = (0.05, 0.2)


def _same(ours: np.ndarray, ref: np.ndarray) -> float:
    if len(ours) != len(ref):
        return -1.0
    a = ours[np.lexsort(ours.T[::-1])]
    b = ref[np.lexsort(ref.T[::-1])]
    return float(np.abs(a - b).max()) if len(a) else 0.0


def run(input: str | None = None, meta: str | None = None) -> list[Row]:
    """Rows for each cloud (or ``input``); ``meta`` is unused."""
    from bench._clouds import clouds, single_thread
    from pipeline.kernels.voxel import voxel_downsample

    single_thread()
    try:
        import open3d as o3d
    except ImportError:
        o3d = None
    rows: list[Row] = []
    first = True
    for name, xyz in clouds(input):
        for voxel in VOXELS:
            if first:
                t0 = time.perf_counter()
                voxel_downsample(xyz, voxel)
                rows.append(Row(SUITE, "first call", "JIT or cache load", "s", time.perf_counter() - t0,
                                better="lower"))
                first = False
            rows += _case(f"{name} @ {voxel * 100:g} cm", xyz, voxel, o3d)
    return rows


def _case(case: str, xyz: np.ndarray, voxel: float, o3d) -> list[Row]:  # type: ignore[no-untyped-def]
    from pipeline.kernels.voxel import voxel_downsample

    n = len(xyz)
    t_ours, (cent, *_rest) = measure(lambda: voxel_downsample(xyz, voxel), min_seconds=0.5)
    if o3d is None:
        return [Row(SUITE, case, "throughput", "Mpts/s", n / t_ours / 1e6)]
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz.astype(np.float64)))
    t_ref, down = measure(lambda: pc.voxel_down_sample(voxel), min_seconds=0.5)
    t_conv, _ = measure(lambda: o3d.geometry.PointCloud(o3d.utility.Vector3dVector(
        xyz.astype(np.float64))).voxel_down_sample(voxel), min_seconds=0.5)
    return [
        ratio_row(SUITE, case, "throughput", "Mpts/s", n / t_ours / 1e6, n / t_ref / 1e6,
                  "open3d voxel_down_sample"),
        ratio_row(SUITE, case, "throughput (o3d+conv)", "Mpts/s", n / t_ours / 1e6, n / t_conv / 1e6,
                  "open3d incl. numpy conversion"),
        Row(SUITE, case, "max centroid diff", "m", _same(cent, np.asarray(down.points)), better="lower"),
    ]
