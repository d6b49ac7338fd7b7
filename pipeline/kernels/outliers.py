"""Statistical outlier removal with an exact k-nearest-neighbour search (numba KD-tree).

Semantics follow Open3D's ``PointCloud.remove_statistical_outlier(nb_neighbors, std_ratio)``:
for each point, the mean Euclidean distance to its ``k`` nearest neighbours **counting the
point itself** (Open3D queries its own KD-tree with the cloud's points); over the points
whose mean is positive, the mean ``mu`` and the sample standard deviation ``sigma``
(Bessel's correction, divided by the count of all points minus one, as Open3D does); a
point is kept when ``0 < mean_i < mu + std_ratio * sigma``. A point whose ``k`` neighbours
all sit on it (duplicates) has mean 0 and is removed, exactly like Open3D.

The KD-tree splits at the median of each node's widest coordinate (leaves of at most 16
points); a query descends to its leaf, then visits the far sides whose splitting plane is
nearer than the current k-th neighbour. Queries run in tree order, so consecutive queries
share cache lines.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LEAF_SIZE = 16


@njit(cache=True)
def _swap(pts: np.ndarray, perm: np.ndarray, i: int, j: int) -> None:
    for k in range(3):
        t = pts[i, k]
        pts[i, k] = pts[j, k]
        pts[j, k] = t
    t2 = perm[i]
    perm[i] = perm[j]
    perm[j] = t2


@njit(cache=True)
def _select(pts: np.ndarray, perm: np.ndarray, lo: int, hi: int, kth: int, d: int) -> None:
    """Reorder rows ``[lo, hi)`` so row ``kth`` holds the value it would have if sorted by
    coordinate ``d``, with no larger value before it and no smaller after (quickselect,
    median-of-three pivot, Hoare partition)."""
    left = lo
    right = hi - 1
    while right > left:
        mid = (left + right) // 2
        # median of three to the middle
        if pts[mid, d] < pts[left, d]:
            _swap(pts, perm, mid, left)
        if pts[right, d] < pts[left, d]:
            _swap(pts, perm, right, left)
        if pts[right, d] < pts[mid, d]:
            _swap(pts, perm, right, mid)
        pivot = pts[mid, d]
        i = left
        j = right
        while i <= j:
            while pts[i, d] < pivot:
                i += 1
            while pts[j, d] > pivot:
                j -= 1
            if i <= j:
                _swap(pts, perm, i, j)
                i += 1
                j -= 1
        if kth <= j:
            right = j
        elif kth >= i:
            left = i
        else:
            return


@njit(cache=True)
def build_kdtree(xyz: np.ndarray, leaf_size: int = LEAF_SIZE
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A balanced KD-tree over ``xyz`` ``(N, 3)``: each node splits at the median of its
    widest coordinate (leaves of at most ``leaf_size`` points).

    Returns ``(perm, pts, node_range, node_child, node_dim, node_split)``: the points in
    tree order (``pts = xyz[perm]`` as float64), per node its ``[start, end)`` in that order,
    its two children (-1 for a leaf), the split coordinate and value (left coordinates
    <= value <= right coordinates)."""
    n = xyz.shape[0]
    perm = np.arange(n, dtype=np.int64)
    cap = 2 * n + 1  # every split leaves both sides non-empty: at most 2N - 1 nodes
    node_range = np.empty((cap, 2), dtype=np.int64)
    node_child = np.full((cap, 2), -1, dtype=np.int64)
    node_dim = np.zeros(cap, dtype=np.int64)
    node_split = np.zeros(cap)
    pts = np.empty((n, 3))
    for i in range(n):
        for k in range(3):
            pts[i, k] = np.float64(xyz[i, k])
    stack = np.empty(cap, dtype=np.int64)
    node_range[0, 0] = 0
    node_range[0, 1] = n
    nn = 1
    sp = 0
    stack[sp] = 0
    sp += 1
    while sp > 0:
        sp -= 1
        node = stack[sp]
        lo = node_range[node, 0]
        hi = node_range[node, 1]
        if hi - lo <= leaf_size:
            continue
        b0, b1, b2 = np.inf, np.inf, np.inf
        b3, b4, b5 = -np.inf, -np.inf, -np.inf
        for i in range(lo, hi):
            x, y, z = pts[i, 0], pts[i, 1], pts[i, 2]
            b0 = min(b0, x)
            b1 = min(b1, y)
            b2 = min(b2, z)
            b3 = max(b3, x)
            b4 = max(b4, y)
            b5 = max(b5, z)
        ext0, ext1, ext2 = b3 - b0, b4 - b1, b5 - b2
        d = 0
        ext = ext0
        if ext1 > ext:
            d, ext = 1, ext1
        if ext2 > ext:
            d, ext = 2, ext2
        if not ext > 0:
            continue  # all points equal: one (large) leaf
        i = (lo + hi) // 2
        _select(pts, perm, lo, hi, i, d)  # median row at i: rows before <=, rows after >=
        split = pts[i, d]
        left = nn
        right = nn + 1
        nn += 2
        node_child[node, 0] = left
        node_child[node, 1] = right
        node_dim[node] = d
        # the plane between the sides: left coordinates <= plane <= right coordinates
        node_split[node] = split
        node_range[left, 0], node_range[left, 1] = lo, i
        node_range[right, 0], node_range[right, 1] = i, hi
        stack[sp] = left
        stack[sp + 1] = right
        sp += 2
    return (perm, pts, node_range[:nn].copy(), node_child[:nn].copy(), node_dim[:nn].copy(),
            node_split[:nn].copy())


@njit(cache=True)
def knn_mean_distance(xyz: np.ndarray, k: int) -> np.ndarray:
    """Mean distance of each point to its ``k`` nearest neighbours, itself included
    (``min(k, N)`` neighbours when the cloud is smaller)."""
    n = xyz.shape[0]
    out = np.zeros(n)
    if n == 0:
        return out
    k = min(k, n)
    perm, pts, rng, child, dim, split = build_kdtree(xyz, LEAF_SIZE)
    best = np.empty(k)
    stack = np.empty(rng.shape[0] + 2, dtype=np.int64)  # never deeper than the node count
    bound = np.empty(rng.shape[0] + 2)
    for q in range(n):  # queries in tree order: neighbours share the cache
        x, y, z = pts[q, 0], pts[q, 1], pts[q, 2]
        cnt = 0
        worst = np.inf
        stack[0] = 0
        bound[0] = 0.0
        sp = 1
        while sp > 0:
            sp -= 1
            node = stack[sp]
            if bound[sp] >= worst:
                continue
            # descend to a leaf, pushing the far children with their plane distance
            while child[node, 0] >= 0:
                d = dim[node]
                diff = (x if d == 0 else (y if d == 1 else z)) - split[node]
                if diff < 0:
                    near, far = child[node, 0], child[node, 1]
                else:
                    near, far = child[node, 1], child[node, 0]
                d2 = diff * diff
                if d2 < worst:
                    stack[sp] = far
                    bound[sp] = d2
                    sp += 1
                node = near
            for i in range(rng[node, 0], rng[node, 1]):
                dx = pts[i, 0] - x
                dy = pts[i, 1] - y
                dz = pts[i, 2] - z
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
        out[perm[q]] = s / cnt
    return out


@njit(cache=True)
def statistical_threshold(mean_dist: np.ndarray, std_ratio: float) -> float:
    """``mu + std_ratio * sigma`` over the positive mean distances (Open3D's statistics)."""
    n = mean_dist.shape[0]
    total = 0.0
    for i in range(n):
        if mean_dist[i] > 0:
            total += mean_dist[i]
    mu = total / n
    sq = 0.0
    for i in range(n):
        if mean_dist[i] > 0:
            sq += (mean_dist[i] - mu) * (mean_dist[i] - mu)
    sigma = math.sqrt(sq / (n - 1)) if n > 1 else 0.0
    return mu + std_ratio * sigma


def statistical_outlier_mask(xyz: np.ndarray, nb_neighbors: int, std_ratio: float) -> np.ndarray:
    """Keep-mask ``(N,)`` of the statistical outlier filter (see the module docstring).
    Points must be finite (drop invalid returns first)."""
    if nb_neighbors < 1:
        raise ValueError(f"nb_neighbors must be at least 1, not {nb_neighbors}")
    if not std_ratio > 0:
        raise ValueError(f"std_ratio must be positive, not {std_ratio}")
    xyz = np.ascontiguousarray(xyz)
    if len(xyz) == 0:
        return np.zeros(0, dtype=bool)
    if not np.isfinite(xyz).all():
        raise ValueError("points with NaN or infinite coordinates: drop them first (crop.valid_mask)")
    mean = knn_mean_distance(xyz, int(nb_neighbors))
    thr = statistical_threshold(mean, float(std_ratio))
    return (mean > 0) & (mean < thr)
