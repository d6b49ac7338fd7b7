"""Voxel-grid downsampling with centroids (numba, one pass, no sort).

Semantics follow Open3D's ``PointCloud.voxel_down_sample``: the grid starts at
``min_bound = cloud min - voxel/2`` and a point falls in voxel
``floor((p - min_bound) / voxel)`` per axis (computed in float64 exactly as Open3D does);
each occupied voxel yields the mean of its points, summed in input order in float64 and
divided by the count, so the centroids equal Open3D's bit for bit. Extra per-point
attributes (intensity, time, ...) are averaged the same way (Open3D averages colours and
normals). Output order is first occurrence of each voxel in the input (Open3D's order is
its hash map's, i.e. unspecified).

No sort: the three voxel indices are packed into one key (bit widths fitted to the cloud),
each key finds its voxel id in an open-addressing table (linear probing, Fibonacci hashing,
half full at most; key and id packed in one int64 per slot), then one pass in input
order accumulates the per-voxel sums. Bounds and keys read the coordinates as one flat
``x0 y0 z0 x1 ...`` array: those loops vectorise (``xyz[i, k]`` indexing does not), and
the NaN/inf check works on the IEEE bit patterns (integer work, also vectorised).
"""

from __future__ import annotations

import threading

import numpy as np
from numba import njit

# Per thread, the hash table's memory, kept from call to call: 16-32 bytes per point of the
# largest cloud seen (a power of two of int64 slots, at least twice the point count).
_SCRATCH = threading.local()

_EMPTY = np.int64(-1)
_MUL = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: 2^64 / golden ratio


_LANES = 48  # 16 points of 3 coordinates: a block the compiler vectorises


@njit(cache=True)
def _bounds(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-axis min and max (float64) of the flat ``x0 y0 z0 x1 ...`` coordinates.

    48 running minima and maxima over blocks of 16 points (lane ``j`` sees axis ``j % 3``)
    vectorise; reading ``xyz[i, k]`` point by point does not (about 4x slower)."""
    lo = np.empty(_LANES, dtype=flat.dtype)
    hi = np.empty(_LANES, dtype=flat.dtype)
    for j in range(_LANES):
        lo[j] = flat[j % 3]
        hi[j] = flat[j % 3]
    nb = flat.shape[0] // _LANES
    for b in range(nb):
        base = b * _LANES
        for j in range(_LANES):
            v = flat[base + j]
            lo[j] = min(lo[j], v)
            hi[j] = max(hi[j], v)
    out_lo = np.full(3, np.inf)
    out_hi = np.full(3, -np.inf)
    for j in range(_LANES):
        out_lo[j % 3] = min(out_lo[j % 3], np.float64(lo[j]))
        out_hi[j % 3] = max(out_hi[j % 3], np.float64(hi[j]))
    for j in range(nb * _LANES, flat.shape[0]):
        out_lo[j % 3] = min(out_lo[j % 3], np.float64(flat[j]))
        out_hi[j % 3] = max(out_hi[j % 3], np.float64(flat[j]))
    return out_lo, out_hi


@njit(cache=True)
def _count_nonfinite(bits: np.ndarray, exponent: np.integer) -> int:
    """How many IEEE values (as their unsigned bit patterns) are NaN or infinite: all
    exponent bits set. Integer work, so it vectorises (a float test would not)."""
    bad = 0
    for j in range(bits.shape[0]):
        bad += (bits[j] & exponent) == exponent
    return bad


@njit(cache=True)
def _grow_table(tab: np.ndarray) -> np.ndarray:
    """The same entries in a table twice the size (rehashed)."""
    size = tab.shape[0] * 2
    mask = size - 1
    out = np.full((size, 2), _EMPTY, dtype=np.int64)
    for s in range(tab.shape[0]):
        key = tab[s, 0]
        if key != _EMPTY:
            slot = np.int64((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) & mask
            while out[slot, 0] != _EMPTY:
                slot = (slot + 1) & mask
            out[slot, 0] = key
            out[slot, 1] = tab[s, 1]
    return out


@njit(cache=True)
def _keys(flat: np.ndarray, voxel: float, min_bound: np.ndarray, bx: int, by: int) -> np.ndarray:
    """Keys ``ix | iy << bx | iz << (bx + by)`` of the voxel indices
    ``floor((p - min_bound) / voxel)``, computed in float64 exactly as Open3D does (a
    division, not a multiplication by 1/voxel: Open3D's exact indices).

    One loop over the flat coordinates ``x0 y0 z0 x1 ...``: it vectorises, where
    ``xyz[i, k]`` indexing of an (N, 3) array does not (about 5x slower)."""
    n = flat.shape[0] // 3
    keys = np.empty(n, dtype=np.int64)
    m0 = min_bound[0]
    m1 = min_bound[1]
    m2 = min_bound[2]
    s2 = bx + by
    for i in range(n):
        keys[i] = (np.int64(np.floor((np.float64(flat[3 * i]) - m0) / voxel))
                   | (np.int64(np.floor((np.float64(flat[3 * i + 1]) - m1) / voxel)) << bx)
                   | (np.int64(np.floor((np.float64(flat[3 * i + 2]) - m2) / voxel)) << s2))
    return keys




@njit(cache=True)
def _fill_packed(keys: np.ndarray, tab: np.ndarray, ids: np.ndarray, idbits: int, shift: int) -> int:
    """Ids of every key with entries ``key << idbits | id`` in one int64 per slot; the
    table (power of two, at most half full) never grows. (The same loop over a
    ``range(start, stop)`` of a longer array runs about 25 % slower.)"""
    mask = tab.shape[0] - 1
    idmask = (np.int64(1) << idbits) - 1
    nv = 0
    for i in range(keys.shape[0]):
        key = keys[i]
        slot = np.int64((np.uint64(key) * _MUL) >> np.uint64(shift))
        while True:
            e = tab[slot]
            if e == _EMPTY:
                tab[slot] = (key << idbits) | nv
                ids[i] = nv
                nv += 1
                break
            if (e >> idbits) == key:
                ids[i] = e & idmask
                break
            slot = (slot + 1) & mask
    return nv


@njit(cache=True)
def _assign_packed(keys: np.ndarray, idbits: int, buf: np.ndarray) -> tuple[np.ndarray, int, np.ndarray]:
    """Dense ids of ``keys`` in a packed table (at most half full) that lives in ``buf``,
    reused from call to call; a larger buffer is allocated and returned when needed:
    (ids, V, buffer). Freshly allocated tables cost page faults on every call until the
    allocator settles (2-3x slower at first on a 35k-point sweep)."""
    n = keys.shape[0]
    ids = np.empty(n, dtype=np.int64)
    # At most half full: a quarter-full table (twice the memory to clear and to miss in
    # cache) is 13 % slower on 350k points in 17k voxels, faster only when nearly every
    # point has its own voxel (where Open3D is slowest anyway).
    lg = 4
    while (np.int64(1) << lg) < 2 * n:
        lg += 1
    size = np.int64(1) << lg
    if buf.shape[0] < size:
        buf = np.empty(size, dtype=np.int64)
    tab = buf[:size]
    tab[:] = _EMPTY
    nv = _fill_packed(keys, tab, ids, idbits, 64 - lg)
    return ids, nv, buf


@njit(cache=True)
def _fill(keys: np.ndarray, start: int, tab: np.ndarray, ids: np.ndarray, nv: int) -> tuple[int, int]:
    """Insert/look up ``keys[start:]`` until the table is a quarter full; returns (next i, V)."""
    n = keys.shape[0]
    mask = tab.shape[0] - 1
    limit = tab.shape[0] // 4
    i = start
    while i < n:
        key = keys[i]
        slot = np.int64((np.uint64(key) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(40)) & mask
        while True:
            k = tab[slot, 0]
            if k == key:
                ids[i] = tab[slot, 1]
                break
            if k == _EMPTY:
                tab[slot, 0] = key
                tab[slot, 1] = nv
                ids[i] = nv
                nv += 1
                break
            slot = (slot + 1) & mask
        i += 1
        if nv >= limit:
            break
    return i, nv


@njit(cache=True)
def assign_ids(keys: np.ndarray, key_bits: int = 63) -> tuple[np.ndarray, int]:
    """Dense id (0..V-1, in order of first occurrence) of each non-negative key, and V.

    Open addressing with linear probing and Fibonacci hashing. When the key and an id fit
    one int64 together (``key_bits`` + bits of N <= 63, the usual case) the table holds
    packed entries (:func:`_assign_packed`, sized once for the worst case, every point its
    own voxel, at half load); otherwise (key, id) pairs in a table that starts small and doubles."""
    n = keys.shape[0]
    idbits = 1
    while (np.int64(1) << idbits) <= n:
        idbits += 1
    if key_bits + idbits <= 63:
        packed, nv, _ = _assign_packed(keys, idbits, np.empty(0, dtype=np.int64))
        return packed, nv
    ids = np.empty(n, dtype=np.int64)
    size = 1024
    while size < 4 * n and size < 65536:
        size <<= 1
    tab = np.full((size, 2), _EMPTY, dtype=np.int64)
    i, nv = _fill(keys, 0, tab, ids, 0)
    while i < n:
        tab = _grow_table(tab)
        i, nv = _fill(keys, i, tab, ids, nv)
    return ids, nv


@njit(cache=True)
def _accumulate(xyz: np.ndarray, attrs: np.ndarray, ids: np.ndarray, nv: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = xyz.shape[0]
    m = attrs.shape[1]
    sums = np.zeros((nv, 3))
    asums = np.zeros((nv, m))
    counts = np.zeros(nv, dtype=np.int64)
    for i in range(n):  # input order: the same float64 sums as Open3D's
        v = ids[i]
        sums[v, 0] += np.float64(xyz[i, 0])
        sums[v, 1] += np.float64(xyz[i, 1])
        sums[v, 2] += np.float64(xyz[i, 2])
        counts[v] += 1
        for j in range(m):
            asums[v, j] += np.float64(attrs[i, j])
    for v in range(nv):
        c = np.float64(counts[v])
        sums[v, 0] /= c
        sums[v, 1] /= c
        sums[v, 2] /= c
        for j in range(m):
            asums[v, j] /= c
    return sums, asums, counts


@njit(cache=True)
def _downsample(xyz: np.ndarray, attrs: np.ndarray, voxel: float, min_bound: np.ndarray, hi: np.ndarray,
                buf: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    # Three plain loops (keys, ids, sums) run several times faster than one fused loop:
    # each is short and branch-light enough for the CPU to overlap iterations.
    # bit widths of the voxel indices over this cloud (the largest index is the max point's)
    bits = np.empty(3, dtype=np.int64)
    for k in range(3):
        top = np.int64(np.floor((hi[k] - min_bound[k]) / voxel))
        b = 1
        while (np.int64(1) << b) <= top:
            b += 1
        bits[k] = b
    keys = _keys(xyz.reshape(-1), voxel, min_bound, bits[0], bits[1])
    idbits = 1
    while (np.int64(1) << idbits) <= keys.shape[0]:
        idbits += 1
    if bits[0] + bits[1] + bits[2] + idbits <= 63:
        ids, nv, buf = _assign_packed(keys, idbits, buf)
    else:
        ids, nv = assign_ids(keys, bits[0] + bits[1] + bits[2])
    cent, amean, counts = _accumulate(xyz, attrs, ids, nv)
    return cent, amean, counts, ids, buf


def voxel_downsample(xyz: np.ndarray, voxel: float, attrs: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Centroids of the occupied voxels of ``xyz`` ``(N, 3)`` (float32 or float64).

    Returns ``(centroids (V, 3) float64, attribute means (V, M) float64, counts (V,),
    voxel id of each input point (N,))``; ``attrs`` ``(N, M)`` are averaged per voxel.
    Raises ``ValueError`` for a non-finite coordinate (drop those with ``crop.valid_mask``),
    a non-positive voxel, or a grid wider than 2^21 voxels per axis.
    """
    if not voxel > 0:
        raise ValueError(f"voxel size must be positive, not {voxel}")
    xyz = np.ascontiguousarray(xyz)
    if xyz.dtype not in (np.float32, np.float64):
        xyz = xyz.astype(np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"points must be (N, 3), not {xyz.shape}")
    n = xyz.shape[0]
    a = np.zeros((n, 0)) if attrs is None else np.ascontiguousarray(attrs).reshape(n, -1)
    if n == 0:
        return np.zeros((0, 3)), np.zeros((0, a.shape[1])), np.zeros(0, np.int64), np.zeros(0, np.int64)
    flat = xyz.reshape(-1)
    bits = flat.view(np.uint32 if xyz.dtype == np.float32 else np.uint64)
    exponent = np.uint32(0x7F800000) if xyz.dtype == np.float32 else np.uint64(0x7FF0000000000000)
    if _count_nonfinite(bits, exponent):
        raise ValueError("points with NaN or infinite coordinates: drop them first (crop.valid_mask)")
    lo, hi = _bounds(flat)
    min_bound = lo - voxel * 0.5
    span = (hi + voxel * 0.5 - min_bound) / voxel
    if not np.all(np.isfinite(span)) or span.max() >= 2**21 - 1:
        raise ValueError(f"voxel {voxel} m is too small for a cloud spanning {(hi - lo).max():.1f} m "
                         "(at most 2^21 voxels per axis)")
    buf = getattr(_SCRATCH, "table", None)
    cent, amean, counts, ids, buf = _downsample(xyz, a, float(voxel), min_bound, hi,
                                                buf if buf is not None else np.empty(0, dtype=np.int64))
    _SCRATCH.table = buf
    return cent, amean, counts, ids
