"""Statistical outlier removal over a range-image neighbourhood (scan-ordered LiDAR data).

The same statistic as :mod:`pipeline.kernels.outliers` (Open3D's
``remove_statistical_outlier``: per point the mean distance to its ``k`` nearest
neighbours, itself included; keep ``0 < mean < mu + std_ratio * sigma``), but the
neighbours are searched only among the point's range-image neighbourhood instead of the
whole cloud: the ``col_reach`` points before and after it in scan order on its own ring
and on each of the ``ring_reach`` rings above and below (the points of a ring in scan
order are its columns; on another ring, the column is found by the firing time, which
rises along every ring of a rotation). So a point's ``k`` nearest are taken from at most
``(2 * ring_reach + 1) * (2 * col_reach + 1)`` candidates, found without a tree: about
4-10x cheaper than the exact k-NN, and the neighbours a spinning LiDAR's geometry puts
nearest (adjacent firings and beams) are exactly these.

Where it differs from the exact filter: a neighbour further than the window in scan order
(another object seen at another azimuth, a second pass of the vehicle) is not found, so a
point's mean is at least the exact one; isolated returns (rain, dust, multipath ghosts)
are removed by both. Input must be one rotation (one decoded scan) in scan order.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from pipeline.kernels.outliers import statistical_threshold


@njit(cache=True, nogil=True)
def ring_knn_mean_distance(xyz: np.ndarray, ring: np.ndarray, t: np.ndarray, k: int, ring_reach: int,
                           col_reach: int) -> np.ndarray:
    """Mean distance of each point to its ``k`` nearest neighbours (itself included) among
    its range-image neighbourhood (see the module docstring). ``ring`` ``(N,)`` integers,
    ``t`` ``(N,)`` per-point firing times, both in scan order."""
    n = xyz.shape[0]
    out = np.zeros(n)
    if n == 0:
        return out
    nr = 0
    for i in range(n):
        nr = max(nr, int(ring[i]) + 1)
    # counting sort by ring, stable: each ring's points stay in scan order
    start = np.zeros(nr + 1, dtype=np.int64)
    for i in range(n):
        start[int(ring[i]) + 1] += 1
    for r in range(nr):
        start[r + 1] += start[r]
    fill = start[:nr].copy()
    order = np.empty(n, dtype=np.int64)
    pos = np.empty(n, dtype=np.int64)  # a point's position in the ring-sorted order
    for i in range(n):
        r = int(ring[i])
        order[fill[r]] = i
        pos[i] = fill[r]
        fill[r] += 1
    ts = np.empty(n)
    px = np.empty(n)
    py = np.empty(n)
    pz = np.empty(n)
    for j in range(n):
        i = order[j]
        ts[j] = t[i]
        px[j] = xyz[i, 0]
        py[j] = xyz[i, 1]
        pz[j] = xyz[i, 2]
    best = np.empty(max(k, 1))
    for i in range(n):
        r0 = int(ring[i])
        p = pos[i]
        x, y, z, ti = px[p], py[p], pz[p], ts[p]
        cnt = 0
        worst = np.inf
        for r in range(max(0, r0 - ring_reach), min(nr, r0 + ring_reach + 1)):
            lo, hi = start[r], start[r + 1]
            if hi == lo:
                continue
            if r == r0:
                c = p
            else:  # the column of time ti on ring r: first position with ts >= ti
                a, b = lo, hi
                while a < b:
                    m = (a + b) // 2
                    if ts[m] < ti:
                        a = m + 1
                    else:
                        b = m
                c = a
            for q in range(max(lo, c - col_reach), min(hi, c + col_reach + 1)):
                dx = px[q] - x
                dy = py[q] - y
                dz = pz[q] - z
                d2 = dx * dx + dy * dy + dz * dz
                if cnt < k:
                    j = cnt
                    cnt += 1
                elif d2 < worst:
                    j = k - 1
                else:
                    continue
                while j > 0 and best[j - 1] > d2:  # insertion into the sorted list
                    best[j] = best[j - 1]
                    j -= 1
                best[j] = d2
                if cnt == k:
                    worst = best[k - 1]
        s = 0.0
        for j in range(cnt):
            s += math.sqrt(best[j])
        out[i] = s / cnt
    return out


def ring_outlier_mask(xyz: np.ndarray, ring: np.ndarray, t: np.ndarray, nb_neighbors: int, std_ratio: float,
                      ring_reach: int = 2, col_reach: int | None = None) -> np.ndarray:
    """Keep-mask ``(N,)`` of the range-image statistical outlier filter (module docstring).
    ``col_reach`` defaults to ``nb_neighbors``. Points must be finite and in scan order."""
    if nb_neighbors < 1:
        raise ValueError(f"nb_neighbors must be at least 1, not {nb_neighbors}")
    if not std_ratio > 0:
        raise ValueError(f"std_ratio must be positive, not {std_ratio}")
    xyz = np.ascontiguousarray(xyz)
    if len(xyz) == 0:
        return np.zeros(0, dtype=bool)
    if not (len(ring) == len(t) == len(xyz)):
        raise ValueError("xyz, ring and t must have the same length")
    if not np.isfinite(xyz).all():
        raise ValueError("points with NaN or infinite coordinates: drop them first (crop.valid_mask)")
    reach = int(nb_neighbors if col_reach is None else col_reach)
    mean = ring_knn_mean_distance(xyz, np.ascontiguousarray(ring).astype(np.int64, copy=False),
                                  np.ascontiguousarray(t, dtype=np.float64), int(nb_neighbors), int(ring_reach),
                                  max(0, reach))
    thr = statistical_threshold(mean, float(std_ratio))
    return (mean > 0) & (mean < thr)
