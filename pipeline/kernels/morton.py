"""Morton (Z-order) keys: 63 bits, 21 per axis, and a radix argsort of them (numba).

Points are quantized ``q = floor((p - origin) / resolution)`` (clipped to 0..2^21-1) and the
bits of x, y, z interleaved (x in bit 0). Sorting by the key groups points of one octree
cell together: what the quantized xyz codec and the tiling want.
"""

from __future__ import annotations

import numpy as np
from numba import njit

BITS = 21
MAX_Q = (1 << BITS) - 1


@njit(cache=True)
def _split3(v: np.uint64) -> np.uint64:
    """Spread the low 21 bits of ``v`` to every third bit."""
    x = v & np.uint64(0x1FFFFF)
    x = (x | (x << np.uint64(32))) & np.uint64(0x1F00000000FFFF)
    x = (x | (x << np.uint64(16))) & np.uint64(0x1F0000FF0000FF)
    x = (x | (x << np.uint64(8))) & np.uint64(0x100F00F00F00F00F)
    x = (x | (x << np.uint64(4))) & np.uint64(0x10C30C30C30C30C3)
    x = (x | (x << np.uint64(2))) & np.uint64(0x1249249249249249)
    return x


@njit(cache=True)
def _compact3(x: np.uint64) -> np.uint64:
    """Inverse of :func:`_split3`."""
    x = x & np.uint64(0x1249249249249249)
    x = (x ^ (x >> np.uint64(2))) & np.uint64(0x10C30C30C30C30C3)
    x = (x ^ (x >> np.uint64(4))) & np.uint64(0x100F00F00F00F00F)
    x = (x ^ (x >> np.uint64(8))) & np.uint64(0x1F0000FF0000FF)
    x = (x ^ (x >> np.uint64(16))) & np.uint64(0x1F00000000FFFF)
    x = (x ^ (x >> np.uint64(32))) & np.uint64(0x1FFFFF)
    return x


@njit(cache=True)
def encode_morton(q: np.ndarray) -> np.ndarray:
    """63-bit keys of integer cells ``q`` ``(N, 3)`` (each 0..2^21-1)."""
    n = q.shape[0]
    out = np.empty(n, dtype=np.uint64)
    for i in range(n):
        out[i] = (_split3(np.uint64(q[i, 0])) | (_split3(np.uint64(q[i, 1])) << np.uint64(1))
                  | (_split3(np.uint64(q[i, 2])) << np.uint64(2)))
    return out


@njit(cache=True)
def decode_morton(keys: np.ndarray) -> np.ndarray:
    """Integer cells ``(N, 3)`` int64 of 63-bit keys."""
    n = keys.shape[0]
    out = np.empty((n, 3), dtype=np.int64)
    for i in range(n):
        k = keys[i]
        out[i, 0] = np.int64(_compact3(k))
        out[i, 1] = np.int64(_compact3(k >> np.uint64(1)))
        out[i, 2] = np.int64(_compact3(k >> np.uint64(2)))
    return out


@njit(cache=True)
def quantize(xyz: np.ndarray, origin: np.ndarray, resolution: float) -> np.ndarray:
    """Cells ``floor((p - origin) / resolution)`` clipped to 0..2^21-1, int64 ``(N, 3)``."""
    n = xyz.shape[0]
    out = np.empty((n, 3), dtype=np.int64)
    for i in range(n):
        for k in range(3):
            v = np.floor((np.float64(xyz[i, k]) - origin[k]) / resolution)
            if v < 0:
                v = 0.0
            elif v > MAX_Q:
                v = MAX_Q
            out[i, k] = np.int64(v)
    return out


@njit(cache=True)
def morton_keys(xyz: np.ndarray, origin: np.ndarray, resolution: float) -> np.ndarray:
    """Morton keys of points: :func:`quantize` then :func:`encode_morton`."""
    return encode_morton(quantize(xyz, origin, resolution))


@njit(cache=True)
def radix_argsort(keys: np.ndarray) -> np.ndarray:
    """Stable argsort of uint64 keys: LSD radix sort, 11-bit digits (6 passes for 63 bits;
    passes whose digit is the same for every key are skipped)."""
    n = keys.shape[0]
    idx = np.arange(n, dtype=np.int64)
    tmp = np.empty(n, dtype=np.int64)
    cur = keys.copy()
    nxt = np.empty(n, dtype=np.uint64)
    counts = np.zeros(2048, dtype=np.int64)
    for p in range(6):
        shift = np.uint64(11 * p)
        counts[:] = 0
        for i in range(n):
            counts[np.int64((cur[i] >> shift) & np.uint64(2047))] += 1
        if n == 0 or counts[np.int64((cur[0] >> shift) & np.uint64(2047))] == n:
            continue  # every key has this digit: the pass would not move anything
        total = 0
        for d in range(2048):
            c = counts[d]
            counts[d] = total
            total += c
        for i in range(n):
            d = np.int64((cur[i] >> shift) & np.uint64(2047))
            j = counts[d]
            counts[d] = j + 1
            nxt[j] = cur[i]
            tmp[j] = idx[i]
        cur, nxt = nxt, cur
        idx, tmp = tmp, idx
    return idx


def morton_sort(xyz: np.ndarray, origin: np.ndarray, resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """``(order, sorted keys)``: the permutation putting points in Morton order."""
    keys = morton_keys(np.ascontiguousarray(xyz), np.asarray(origin, dtype=np.float64), float(resolution))
    order = radix_argsort(keys)
    return order, keys[order]
