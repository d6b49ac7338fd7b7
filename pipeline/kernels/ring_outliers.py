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
from typing import Any

import numpy as np
from numba import njit

from pipeline.kernels.outliers import statistical_threshold


@njit(cache=True, nogil=True)
def _ring_index(xyz: np.ndarray, ring: np.ndarray, t: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The points sorted by ring, stable (each ring's points stay in scan order): per ring its
    ``[start[r], start[r + 1])``, per point its position ``pos`` in that order, and the sorted
    times and coordinates ``(M, 4)`` (x, y, z, t)."""
    n = xyz.shape[0]
    nr = 0
    for i in range(n):
        nr = max(nr, int(ring[i]) + 1)
    start = np.zeros(nr + 1, dtype=np.int64)
    for i in range(n):
        start[int(ring[i]) + 1] += 1
    for r in range(nr):
        start[r + 1] += start[r]
    fill = start[:nr].copy()
    pos = np.empty(n, dtype=np.int64)
    sp = np.empty((n, 4))
    for i in range(n):
        r = int(ring[i])
        j = fill[r]
        pos[i] = j
        fill[r] += 1
        sp[j, 0] = xyz[i, 0]
        sp[j, 1] = xyz[i, 1]
        sp[j, 2] = xyz[i, 2]
        sp[j, 3] = t[i]
    return start, pos, sp, ring.astype(np.int64)


@njit(cache=True, nogil=True)
def _ring_query(start: np.ndarray, pos: np.ndarray, sp: np.ndarray, ring: np.ndarray, k: int, ring_reach: int,
                col_reach: int, lo_i: int, hi_i: int, out: np.ndarray) -> None:
    """``out[i]`` for the points ``lo_i <= i < hi_i`` (no GIL: two threads fill two halves)."""
    nr = start.shape[0] - 1
    best = np.empty(max(k, 1))
    for i in range(lo_i, hi_i):
        r0 = ring[i]
        p = pos[i]
        x, y, z, ti = sp[p, 0], sp[p, 1], sp[p, 2], sp[p, 3]
        cnt = 0
        worst = np.inf
        # own ring first, then the nearer rings, each from its column outwards: the k-th
        # distance is small early and most later candidates are rejected at one comparison
        for rk in range(2 * ring_reach + 1):
            r = r0 + ((rk + 1) // 2 if rk % 2 else -(rk // 2))
            if r < 0 or r >= nr:
                continue
            lo, hi = start[r], start[r + 1]
            if hi == lo:
                continue
            if r == r0:
                c = p
            else:  # the column of time ti on ring r: first position with a time >= ti
                a, b = lo, hi
                while a < b:
                    m = (a + b) // 2
                    if sp[m, 3] < ti:
                        a = m + 1
                    else:
                        b = m
                c = a
            for qk in range(2 * col_reach + 1):
                q = c + ((qk + 1) // 2 if qk % 2 else -(qk // 2))
                if q < lo or q >= hi:
                    continue
                dx = sp[q, 0] - x
                dy = sp[q, 1] - y
                dz = sp[q, 2] - z
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


_POOL: Any = None
PARALLEL_MIN = 16_384  # points above which the second half runs on a worker thread


def ring_knn_mean_distance(xyz: np.ndarray, ring: np.ndarray, t: np.ndarray, k: int, ring_reach: int,
                           col_reach: int, threads: int = 2) -> np.ndarray:
    """Mean distance of each point to its ``k`` nearest neighbours (itself included) among
    its range-image neighbourhood (see the module docstring). ``ring`` ``(N,)`` integers,
    ``t`` ``(N,)`` per-point firing times, both in scan order. With ``threads=2`` and a
    large scan, half the points are searched on a worker thread (the kernel releases the
    GIL); the result does not depend on it."""
    global _POOL
    n = xyz.shape[0]
    out = np.zeros(n)
    if n == 0:
        return out
    start, pos, sp, ring64 = _ring_index(xyz, ring, t)
    k = max(int(k), 1)
    args = (start, pos, sp, ring64, k, int(ring_reach), int(col_reach))
    if threads < 2 or n < PARALLEL_MIN:
        _ring_query(*args, 0, n, out)
        return out
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(1, thread_name_prefix="ring-outliers")
    half = n // 2
    fut = _POOL.submit(_ring_query, *args, half, n, out)
    _ring_query(*args, 0, half, out)
    fut.result()
    return out


def ring_outlier_mask(xyz: np.ndarray, ring: np.ndarray, t: np.ndarray, nb_neighbors: int, std_ratio: float,
                      ring_reach: int = 1, col_reach: int | None = None, threads: int = 2) -> np.ndarray:
    """Keep-mask ``(N,)`` of the range-image statistical outlier filter (module docstring).
    ``col_reach`` defaults to ``nb_neighbors``; ``threads=2`` searches half the points of a
    large scan on a worker thread. Points must be finite and in scan order."""
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
                                  max(0, reach), threads)
    thr = statistical_threshold(mean, float(std_ratio))
    return (mean > 0) & (mean < thr)
