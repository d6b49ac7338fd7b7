"""Statistical outlier removal: ours (numba KD-tree, exact k-NN) against Open3D's
``PointCloud.remove_statistical_outlier``, same clouds, same run, one thread each
(Open3D's OpenMP limited with ``open3d.utility.set_max_threads(1)``).

Clouds as in the voxel suite (or ``--input``); k = 20 neighbours, std ratio 2.0.
Rows: throughput in million points per second with ``ratio`` = ours / Open3D (higher is
better); a check row with the number of points whose keep/drop decision differs (0 expected,
ties with the threshold aside). The first call (JIT or cache load) is its own row.
"""

from __future__ import annotations

import time

import numpy as np

from bench._harness import Row, measure, ratio_row

SUITE = "outlier"
K = 20
RATIO = 2.0


def run(input: str | None = None, meta: str | None = None) -> list[Row]:
    """Rows for each cloud (or ``input``); ``meta`` is unused."""
    from bench._clouds import clouds, single_thread
    from pipeline.kernels.outliers import statistical_outlier_mask

    single_thread()
    try:
        import open3d as o3d
    except ImportError:
        o3d = None
    rows: list[Row] = []
    first = True
    for name, xyz in clouds(input):
        if first:
            t0 = time.perf_counter()
            statistical_outlier_mask(xyz[:1000], K, RATIO)
            rows.append(Row(SUITE, "first call", "JIT or cache load", "s", time.perf_counter() - t0, better="lower"))
            first = False
        rows += _case(name, xyz, o3d)
    return rows


def _case(name: str, xyz: np.ndarray, o3d) -> list[Row]:  # type: ignore[no-untyped-def]
    from pipeline.kernels.outliers import statistical_outlier_mask

    n = len(xyz)
    t_ours, keep = measure(lambda: statistical_outlier_mask(xyz, K, RATIO), min_seconds=0.5)
    if o3d is None:
        return [Row(SUITE, name, "throughput", "Mpts/s", n / t_ours / 1e6)]
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(xyz.astype(np.float64)))
    t_ref, (_, ind) = measure(lambda: pc.remove_statistical_outlier(nb_neighbors=K, std_ratio=RATIO),
                              min_seconds=0.5)
    ref = np.zeros(n, dtype=bool)
    ref[np.asarray(ind)] = True
    return [
        ratio_row(SUITE, name, "throughput", "Mpts/s", n / t_ours / 1e6, n / t_ref / 1e6,
                  "open3d remove_statistical_outlier"),
        Row(SUITE, name, "decisions differing", "points", float((keep != ref).sum()), better="lower"),
    ]
