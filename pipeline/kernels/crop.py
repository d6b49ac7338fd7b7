"""Point masks: invalid returns, range and box crops, the vehicle's own body (numba).

Every function returns a boolean keep-mask ``(N,)`` over points ``(N, 3)`` (float32 or
float64), so masks combine with ``&`` and apply to every per-point column at once.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True)
def valid_mask(xyz: np.ndarray, min_range: float = 1e-6) -> np.ndarray:
    """Keep points whose coordinates are all finite and whose range exceeds ``min_range``
    (a zero-distance return decodes to the sensor origin)."""
    n = xyz.shape[0]
    keep = np.empty(n, dtype=np.bool_)
    r2min = min_range * min_range
    for i in range(n):
        x = np.float64(xyz[i, 0])
        y = np.float64(xyz[i, 1])
        z = np.float64(xyz[i, 2])
        keep[i] = math.isfinite(x) and math.isfinite(y) and math.isfinite(z) and x * x + y * y + z * z > r2min
    return keep


@njit(cache=True)
def range_mask(xyz: np.ndarray, min_range: float, max_range: float) -> np.ndarray:
    """Keep points with ``min_range <= |p| <= max_range`` (NaN points are dropped)."""
    n = xyz.shape[0]
    keep = np.empty(n, dtype=np.bool_)
    lo = min_range * min_range
    hi = max_range * max_range
    for i in range(n):
        x = np.float64(xyz[i, 0])
        y = np.float64(xyz[i, 1])
        z = np.float64(xyz[i, 2])
        r2 = x * x + y * y + z * z
        keep[i] = r2 >= lo and r2 <= hi
    return keep


@njit(cache=True)
def box_mask(xyz: np.ndarray, lo: np.ndarray, hi: np.ndarray, inside: bool = True) -> np.ndarray:
    """Points inside the axis-aligned box ``lo <= p <= hi`` (``inside=False``: outside it).
    NaN points are never inside, so they are kept by ``inside=False``; combine with
    :func:`valid_mask` to drop them."""
    n = xyz.shape[0]
    keep = np.empty(n, dtype=np.bool_)
    for i in range(n):
        x = np.float64(xyz[i, 0])
        y = np.float64(xyz[i, 1])
        z = np.float64(xyz[i, 2])
        isin = lo[0] <= x <= hi[0] and lo[1] <= y <= hi[1] and lo[2] <= z <= hi[2]
        keep[i] = isin == inside
    return keep


@njit(cache=True)
def body_mask(xyz: np.ndarray, rotation: np.ndarray, translation: np.ndarray, lo: np.ndarray,
              hi: np.ndarray) -> np.ndarray:
    """Keep points outside the vehicle's body box ``[lo, hi]`` given in the vehicle frame;
    the points are in the sensor frame and ``rotation``/``translation`` (sensor → vehicle)
    carry them there first."""
    n = xyz.shape[0]
    keep = np.empty(n, dtype=np.bool_)
    r = rotation
    t = translation
    for i in range(n):
        x = np.float64(xyz[i, 0])
        y = np.float64(xyz[i, 1])
        z = np.float64(xyz[i, 2])
        vx = r[0, 0] * x + r[0, 1] * y + r[0, 2] * z + t[0]
        vy = r[1, 0] * x + r[1, 1] * y + r[1, 2] * z + t[1]
        vz = r[2, 0] * x + r[2, 1] * y + r[2, 2] * z + t[2]
        keep[i] = not (lo[0] <= vx <= hi[0] and lo[1] <= vy <= hi[1] and lo[2] <= vz <= hi[2])
    return keep
