"""Statistical outlier removal with an exact k-nearest-neighbour search (numba KD-tree).

Semantics follow Open3D's ``PointCloud.remove_statistical_outlier(nb_neighbors, std_ratio)``:
for each point, the mean Euclidean distance to its ``k`` nearest neighbours **counting the
point itself** (Open3D queries its own KD-tree with the cloud's points); over the points
whose mean is positive, the mean ``mu`` and the sample standard deviation ``sigma``
(Bessel's correction, divided by the count of all points minus one, as Open3D does); a
point is kept when ``0 < mean_i < mu + std_ratio * sigma``. A point whose ``k`` neighbours
all sit on it (duplicates) has mean 0 and is removed, exactly like Open3D.

The KD-tree splits at the midpoint of the longest side of each node's bounding box (leaves
of at most 16 points); queries run in tree order so neighbouring queries share cache lines.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LEAF_SIZE = 16


@njit(cache=True)
def build_kdtree(xyz: np.ndarray, leaf_size: int = LEAF_SIZE
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A KD-tree over ``xyz`` ``(N, 3)``.

    Returns ``(perm, pts, node_range, node_child, node_box)``: the points in tree order
    (``pts = xyz[perm]`` as float64), per node its ``[start, end)`` in that order, its two
    children (-1 for a leaf) and its bounding box (min xyz, max xyz)."""
    n = xyz.shape[0]
    perm = np.arange(n, dtype=np.int64)
    cap = 2 * n + 1  # every split leaves both sides non-empty: at most 2N - 1 nodes
    node_range = np.empty((cap, 2), dtype=np.int64)
    node_child = np.full((cap, 2), -1, dtype=np.int64)
    node_box = np.empty((cap, 6))
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
        node_box[node, 0], node_box[node, 1], node_box[node, 2] = b0, b1, b2
        node_box[node, 3], node_box[node, 4], node_box[node, 5] = b3, b4, b5
        if hi - lo <= leaf_size:
            continue
        ext0, ext1, ext2 = b3 - b0, b4 - b1, b5 - b2
        d = 0
        ext = ext0
        if ext1 > ext:
            d, ext = 1, ext1
        if ext2 > ext:
            d, ext = 2, ext2
        if not ext > 0:
            continue  # all points equal: one (large) leaf
        split = 0.5 * (node_box[node, d] + node_box[node, 3 + d])
        # partition [lo, hi) so that coordinates < split come first
        i = lo
        j = hi - 1
        while i <= j:
            if pts[i, d] < split:
                i += 1
            else:
                for k in range(3):
                    t = pts[i, k]
                    pts[i, k] = pts[j, k]
                    pts[j, k] = t
                t2 = perm[i]
                perm[i] = perm[j]
                perm[j] = t2
                j -= 1
        if i == lo or i == hi:
            continue  # cannot split (rounding): keep as a leaf
        left = nn
        right = nn + 1
        nn += 2
        node_child[node, 0] = left
        node_child[node, 1] = right
        node_range[left, 0], node_range[left, 1] = lo, i
        node_range[right, 0], node_range[right, 1] = i, hi
        stack[sp] = left
        stack[sp + 1] = right
        sp += 2
    return perm, pts, node_range[:nn].copy(), node_child[:nn].copy(), node_box[:nn].copy()


@njit(cache=True)
def _box_dist2(box: np.ndarray, node: int, x: float, y: float, z: float) -> float:
    d = 0.0
    if x < box[node, 0]:
        d += (box[node, 0] - x) ** 2
    elif x > box[node, 3]:
        d += (x - box[node, 3]) ** 2
    if y < box[node, 1]:
        d += (box[node, 1] - y) ** 2
    elif y > box[node, 4]:
        d += (y - box[node, 4]) ** 2
    if z < box[node, 2]:
        d += (box[node, 2] - z) ** 2
    elif z > box[node, 5]:
        d += (z - box[node, 5]) ** 2
    return d


@njit(cache=True)
def knn_mean_distance(xyz: np.ndarray, k: int) -> np.ndarray:
    """Mean distance of each point to its ``k`` nearest neighbours, itself included
    (``min(k, N)`` neighbours when the cloud is smaller)."""
    n = xyz.shape[0]
    out = np.zeros(n)
    if n == 0:
        return out
    k = min(k, n)
    perm, pts, rng, child, box = build_kdtree(xyz, LEAF_SIZE)
    best = np.empty(k)
    stack = np.empty(rng.shape[0] + 2, dtype=np.int64)  # never deeper than the node count
    for q in range(n):  # queries in tree order: neighbours share the cache
        x, y, z = pts[q, 0], pts[q, 1], pts[q, 2]
        cnt = 0
        worst = np.inf
        sp = 0
        stack[0] = 0
        sp = 1
        while sp > 0:
            sp -= 1
            node = stack[sp]
            if cnt == k and _box_dist2(box, node, x, y, z) >= worst:
                continue
            c0 = child[node, 0]
            if c0 < 0:
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
            else:
                c1 = child[node, 1]
                # visit the nearer child first (pushed last)
                if _box_dist2(box, c0, x, y, z) <= _box_dist2(box, c1, x, y, z):
                    stack[sp] = c1
                    stack[sp + 1] = c0
                else:
                    stack[sp] = c0
                    stack[sp + 1] = c1
                sp += 2
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
    mean = knn_mean_distance(xyz, int(nb_neighbors))
    thr = statistical_threshold(mean, float(std_ratio))
    return (mean > 0) & (mean < thr)
