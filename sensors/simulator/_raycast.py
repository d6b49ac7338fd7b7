"""numba kernels: rays against the ground plane, axis-aligned boxes and vertical cylinders.

Plain functions on arrays (no I/O), compiled once and cached on disk (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

_INF = 1e30


@njit(cache=True)
def _ray_box(ox, oy, oz, dx, dy, dz, b):  # pragma: no cover - compiled
    tmin = -_INF
    tmax = _INF
    o = (ox, oy, oz)
    d = (dx, dy, dz)
    for k in range(3):
        lo = b[k]
        hi = b[k + 3]
        if abs(d[k]) < 1e-12:
            if o[k] < lo or o[k] > hi:
                return _INF
        else:
            t1 = (lo - o[k]) / d[k]
            t2 = (hi - o[k]) / d[k]
            if t1 > t2:
                t1, t2 = t2, t1
            if t1 > tmin:
                tmin = t1
            if t2 < tmax:
                tmax = t2
            if tmin > tmax:
                return _INF
    if tmax < 0.0:
        return _INF
    return tmin if tmin > 0.0 else _INF  # rays starting inside a box see nothing of it


@njit(cache=True)
def _ray_cylinder(ox, oy, oz, dx, dy, dz, c):  # pragma: no cover - compiled
    cx, cy, r, z0, z1 = c[0], c[1], c[2], c[3], c[4]
    best = _INF
    a = dx * dx + dy * dy
    if a > 1e-12:
        fx = ox - cx
        fy = oy - cy
        bq = 2.0 * (fx * dx + fy * dy)
        cq = fx * fx + fy * fy - r * r
        disc = bq * bq - 4.0 * a * cq
        if disc >= 0.0:
            t = (-bq - np.sqrt(disc)) / (2.0 * a)
            if t > 0.0:
                z = oz + t * dz
                if z0 <= z <= z1:
                    best = t
    if abs(dz) > 1e-12:  # caps
        for zc in (z0, z1):
            t = (zc - oz) / dz
            if 0.0 < t < best:
                x = ox + t * dx - cx
                y = oy + t * dy - cy
                if x * x + y * y <= r * r:
                    best = t
    return best


@njit(cache=True)
def cast_rays(
    origins, dirs, boxes, box_refl, cyls, cyl_refl, ground_refl, min_range, max_range
):  # pragma: no cover
    """Range (m, 0 = no return) and reflectivity of the first surface along each ray.

    ``origins`` and ``dirs`` are ``(N, 3)``; ``dirs`` unit vectors."""
    n = origins.shape[0]
    dist = np.zeros(n, np.float64)
    refl = np.zeros(n, np.uint8)
    for i in range(n):
        ox, oy, oz = origins[i, 0], origins[i, 1], origins[i, 2]
        dx, dy, dz = dirs[i, 0], dirs[i, 1], dirs[i, 2]
        best = _INF
        r = np.uint8(0)
        if dz < -1e-12:
            best = -oz / dz
            r = np.uint8(ground_refl)
        for j in range(boxes.shape[0]):
            t = _ray_box(ox, oy, oz, dx, dy, dz, boxes[j])
            if t < best:
                best = t
                r = box_refl[j]
        for j in range(cyls.shape[0]):
            t = _ray_cylinder(ox, oy, oz, dx, dy, dz, cyls[j])
            if t < best:
                best = t
                r = cyl_refl[j]
        if min_range <= best <= max_range:
            dist[i] = best
            refl[i] = r
    return dist, refl


_BINS = 720


@njit(cache=True)
def _azimuth_bins(origins, boxes, cyls):  # pragma: no cover - compiled
    """Objects per azimuth bin as seen from the rays' origins (CSR: start, index), plus
    the objects too close to bin (listed in every bin). Object j < len(boxes) is a box,
    otherwise cylinder j - len(boxes)."""
    cx = 0.5 * (origins[:, 0].min() + origins[:, 0].max())
    cy = 0.5 * (origins[:, 1].min() + origins[:, 1].max())
    spread = 0.5 * np.hypot(
        origins[:, 0].max() - origins[:, 0].min(), origins[:, 1].max() - origins[:, 1].min()
    )
    nb = boxes.shape[0]
    n = nb + cyls.shape[0]
    lo_bin = np.empty(n, np.int64)
    hi_bin = np.empty(n, np.int64)
    bw = 2.0 * np.pi / _BINS
    for j in range(n):
        if j < nb:
            x0, y0, x1, y1 = boxes[j, 0], boxes[j, 1], boxes[j, 3], boxes[j, 4]
        else:
            c = cyls[j - nb]
            x0, y0, x1, y1 = c[0] - c[2], c[1] - c[2], c[0] + c[2], c[1] + c[2]
        qx = max(x0 - cx, 0.0, cx - x1)
        qy = max(y0 - cy, 0.0, cy - y1)
        dmin = np.sqrt(qx * qx + qy * qy)
        if dmin <= 2.0 * spread + 0.5:
            lo_bin[j] = 0
            hi_bin[j] = _BINS - 1
            continue
        ac = np.arctan2(0.5 * (y0 + y1) - cy, 0.5 * (x0 + x1) - cx)
        rmin = 1e9
        rmax = -1e9
        for xx, yy in ((x0, y0), (x0, y1), (x1, y0), (x1, y1)):
            r = np.arctan2(yy - cy, xx - cx) - ac
            while r > np.pi:
                r -= 2.0 * np.pi
            while r <= -np.pi:
                r += 2.0 * np.pi
            rmin = min(rmin, r)
            rmax = max(rmax, r)
        pad = 1.5 * np.arcsin(min(1.0, spread / dmin)) + 2e-3
        lo = np.int64(np.floor((ac + rmin - pad + np.pi) / bw))
        hi = np.int64(np.floor((ac + rmax + pad + np.pi) / bw))
        if hi - lo >= _BINS - 1:
            lo = 0
            hi = _BINS - 1
        lo_bin[j] = lo
        hi_bin[j] = hi
    counts = np.zeros(_BINS + 1, np.int64)
    for j in range(n):
        for b in range(lo_bin[j], hi_bin[j] + 1):
            counts[(b % _BINS) + 1] += 1
    start = np.cumsum(counts)
    fill = start[:-1].copy()
    index = np.empty(start[-1], np.int64)
    for j in range(n):
        for b in range(lo_bin[j], hi_bin[j] + 1):
            k = b % _BINS
            index[fill[k]] = j
            fill[k] += 1
    return start, index


@njit(cache=True)
def cast_rays_binned(
    origins, dirs, boxes, box_refl, cyls, cyl_refl, ground_refl, min_range, max_range
):  # pragma: no cover
    """Same result as :func:`cast_rays`, testing each ray only against the objects in its
    azimuth bin (rays of one short stretch of drive share nearby origins)."""
    n = origins.shape[0]
    dist = np.zeros(n, np.float64)
    refl = np.zeros(n, np.uint8)
    if n == 0:
        return dist, refl
    start, index = _azimuth_bins(origins, boxes, cyls)
    nb = boxes.shape[0]
    bw = 2.0 * np.pi / _BINS
    for i in range(n):
        ox, oy, oz = origins[i, 0], origins[i, 1], origins[i, 2]
        dx, dy, dz = dirs[i, 0], dirs[i, 1], dirs[i, 2]
        best = _INF
        r = np.uint8(0)
        if dz < -1e-12:
            best = -oz / dz
            r = np.uint8(ground_refl)
        k = np.int64(np.floor((np.arctan2(dy, dx) + np.pi) / bw)) % _BINS
        for q in range(start[k], start[k + 1]):
            j = index[q]
            if j < nb:
                t = _ray_box(ox, oy, oz, dx, dy, dz, boxes[j])
                if t < best:
                    best = t
                    r = box_refl[j]
            else:
                t = _ray_cylinder(ox, oy, oz, dx, dy, dz, cyls[j - nb])
                if t < best:
                    best = t
                    r = cyl_refl[j - nb]
        if min_range <= best <= max_range:
            dist[i] = best
            refl[i] = r
    return dist, refl


@njit(cache=True)
def surface_distance(points, boxes, cyls, ground=True):  # pragma: no cover - compiled
    """Distance of each point to the nearest surface: ground (z = 0), box faces, cylinder walls."""
    n = points.shape[0]
    out = np.empty(n, np.float64)
    for i in range(n):
        x, y, z = points[i, 0], points[i, 1], points[i, 2]
        best = abs(z) if ground else 1e30
        for j in range(boxes.shape[0]):
            b = boxes[j]
            # Distance to the box surface: outside, the usual box distance; inside, to the nearest face.
            qx = max(b[0] - x, 0.0, x - b[3])
            qy = max(b[1] - y, 0.0, y - b[4])
            qz = max(b[2] - z, 0.0, z - b[5])
            if qx == 0.0 and qy == 0.0 and qz == 0.0:
                d = min(x - b[0], b[3] - x, y - b[1], b[4] - y, z - b[2], b[5] - z)
            else:
                d = np.sqrt(qx * qx + qy * qy + qz * qz)
            if d < best:
                best = d
        for j in range(cyls.shape[0]):
            c = cyls[j]
            radial = np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2) - c[2]
            if c[3] <= z <= c[4]:
                d = abs(radial)
            else:
                dzc = c[3] - z if z < c[3] else z - c[4]
                d = np.sqrt(max(radial, 0.0) ** 2 + dzc * dzc)
            if d < best:
                best = d
        out[i] = best
    return out
