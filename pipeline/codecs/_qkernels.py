"""numba kernels of the quantized XYZ codec (pure functions on arrays).

Scan-order predictor, for point ``i`` of ring ``r`` (ring 0 everywhere when the cloud has no
rings): ``P1``, ``P2`` are the last two points of ring ``r``, all relative to the chunk's centre
``c`` (the sensor position when known). The prediction rotates ``P1`` about the vertical
through ``c`` by the angle from ``P2`` to ``P1`` (the firing step), so along a scan line of
constant range the prediction is exact. The coordinate of larger magnitude (x or y) is coded
first; its true value gives the range scale ``s = v / pred``, and the other horizontal
coordinate and z are then predicted as ``pred * s`` (the point moves along its ray). Only
IEEE-754 +, -, *, / and sqrt are used (correctly rounded everywhere), so encoder and decoder
agree bit for bit on any platform; no transcendental functions.

Rings are coded in scan order as the difference to the ring that followed the previous point's
ring the last time (the firing order repeats column after column, whatever it is). In ring order
(points sorted by ring) the number of points of each ring is coded up front instead, so the
points themselves carry no ring token.

Contexts: the bucketed token of the same component at the previous point of the ring, and for
the second and third components also the bucket of the first component's token.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from pipeline.codecs._entropy import (
    bits_put,
    put_flush,
    put_token,
    rans_get,
    rans_init,
    token_of,
    unzigzag,
    zigzag,
)

NB = 6  # context buckets
C_FIRST = 0  # 3: first point of a ring
C_A = 3  # NB
C_B = C_A + NB  # NB * NB
C_Z = C_B + NB * NB  # NB * NB
C_RING = C_Z + NB * NB  # NB
C_ATTR = C_RING + NB  # NB per attribute
C_MORTON = 0  # Morton mode: NB contexts for key deltas, attributes after


def n_contexts(n_attr: int) -> int:
    return C_ATTR + NB * n_attr


@njit(cache=True, inline="always")
def bucket(tok):
    if tok == 0:
        return 0
    if tok <= 2:
        return 1
    if tok <= 5:
        return 2
    if tok <= 10:
        return 3
    if tok <= 17:
        return 4
    return 5


_BK = np.array([0] + [1] * 2 + [2] * 3 + [3] * 5 + [4] * 7 + [5] * 118, np.int64)  # bucket() as a table


@njit(cache=True, inline="always")
def _rnd(v):
    return np.int64(math.floor(v + 0.5))


@njit(cache=True, inline="always")
def _put(u, c, k, sym, ctx, bbuf, bst):
    tok, nb, ex = token_of(u)
    sym[k] = tok
    ctx[k] = c
    if nb:
        bits_put(bbuf, bst, nb, ex)
    return tok


@njit(cache=True, inline="always")
def _get(c, rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst):
    tok = rans_get(rbuf, rend, rst, c, freq, cum, lut)
    if tok < 16:
        return tok, np.int64(tok)
    nb = 3 + (tok - 16) // 2
    # branch-free read of the extra bits at bit position bst[2] (``bbuf`` is padded by 8 bytes,
    # :func:`~pipeline.codecs._entropy.padded`): the 5 bytes from bst[2] // 8, shifted
    bp = bst[2]
    ex = np.int64(0)
    shift = 0
    left = nb
    while left > 0:  # one pass below 2**35
        take = min(left, 32)
        i = bp >> 3
        w = (np.int64(bbuf[i]) | (np.int64(bbuf[i + 1]) << 8) | (np.int64(bbuf[i + 2]) << 16)
             | (np.int64(bbuf[i + 3]) << 24) | (np.int64(bbuf[i + 4]) << 32))
        ex |= ((w >> (bp & 7)) & ((np.int64(1) << take) - 1)) << shift
        bp += take
        shift += take
        left -= take
    if bp > 8 * bend:
        bst[3] = 1
        bp = 8 * bend
    bst[2] = bp
    return tok, ((np.int64(2) | ((tok - 16) & 1)) << nb) | ex


@njit(cache=True, inline="always")
def _predict(px1, py1, pz1, px2, py2):
    """Rotate (px1, py1) by the angle from (px2, py2) to it; returns float prediction."""
    n12 = math.sqrt((px1 * px1 + py1 * py1) * (px2 * px2 + py2 * py2))
    if n12 > 0.0:
        wr = (px1 * px2 + py1 * py2) / n12
        wi = (py1 * px2 - px1 * py2) / n12
        return px1 * wr - py1 * wi, px1 * wi + py1 * wr, pz1
    return px1, py1, pz1


@njit(cache=True)
def _residuals(q, jprev, jprev2, cx, cy, cz, res):
    """Residuals of every point to its prediction (see the module docstring), in coding order
    (first coordinate, second, z) into ``res`` (n, 3), with the point's previous points on its
    ring ``jprev``, ``jprev2`` (-1: none; a point with no previous one gets the difference to
    the point before it in the cloud). Free of loop-carried dependencies and mostly of
    branches, so the divisions and square roots of many points overlap. Returns the number of
    reversals (see :func:`scan_encode`)."""
    n = q.shape[0]
    rev = 0
    for i in range(n):
        j = jprev[i]
        jj = jprev2[i]
        x = q[i, 0] - cx
        y = q[i, 1] - cy
        z = q[i, 2] - cz
        jr = j if j >= 0 else i
        x1 = np.float64(q[jr, 0] - cx)
        y1 = np.float64(q[jr, 1] - cy)
        z1 = np.float64(q[jr, 2] - cz)
        jjr = jj if jj >= 0 else jr
        x2 = np.float64(q[jjr, 0] - cx)
        y2 = np.float64(q[jjr, 1] - cy)
        n12 = math.sqrt((x1 * x1 + y1 * y1) * (x2 * x2 + y2 * y2))
        ok = jj >= 0 and n12 > 0.0
        d = n12 if ok else 1.0
        wr = (x1 * x2 + y1 * y2) / d
        wi = (y1 * x2 - x1 * y2) / d
        px = x1 * wr - y1 * wi if ok else x1
        py = x1 * wi + y1 * wr if ok else y1
        rev += 1 if (jj >= 0 and (x2 * y1 - y2 * x1) * (x1 * np.float64(y) - y1 * np.float64(x)) < 0.0) else 0
        swap = abs(px) < abs(py)
        va = y if swap else x
        vb = x if swap else y
        pa = py if swap else px
        pb = px if swap else py
        big = abs(pa) >= 1.0
        s = va / (pa if big else 1.0)
        s = min(max(s, 0.25), 4.0) if big else 1.0
        res[i, 0] = va - _rnd(pa)
        res[i, 1] = vb - _rnd(pb * s)
        res[i, 2] = z - _rnd(z1 * s)
    return rev


@njit(cache=True)
def scan_encode(q, ring, nrings, center, attrs, sym, ctx, bbuf, bst, stats, rings_known, jprev, jprev2, res):
    """Tokens of a cloud in scan order. ``q`` (n, 3) int64 quantized; ``ring`` (n,) int64 in
    ``[0, nrings)``; ``attrs`` (n, A) int64 (integer values or float bit patterns). Returns the
    number of tokens written to ``sym``/``ctx``; extra bits go to ``bbuf``, whose length is
    left in ``bst[2]``. ``stats[0]`` counts *reversals*: points that turn back against their
    ring's sense of rotation (a scan line out of azimuth order, where sorting would pay).
    ``rings_known``: the points come sorted by ring (ring order), so the number of points of each
    ring is coded up front instead of a ring per point (one token less per point to decode).
    ``jprev``, ``jprev2`` (n,) and ``res`` (n, 3) int64 are scratch space (the predictions are
    made in a pass of their own, :func:`_residuals`)."""
    n = q.shape[0]
    na = attrs.shape[1]
    last = np.full(nrings, -1, np.int64)
    last2 = np.full(nrings, -1, np.int64)
    nxt = (np.arange(nrings) + 1) % nrings  # the ring that followed each ring last time: firing order
    ptok = np.zeros((nrings, 3 + na), np.int64)
    cx, cy, cz = center[0], center[1], center[2]
    k = 0
    acc = np.int64(0)
    cnt = 0
    pos = 0
    prev_ring = -1
    ring_tok = 0
    for i in range(n):
        r = ring[i]
        jprev[i] = last[r]
        jprev2[i] = last2[r]
        last2[r] = last[r]
        last[r] = i
    rev = _residuals(q, jprev, jprev2, cx, cy, cz, res)
    last[:] = -1
    last2[:] = -1
    if rings_known and nrings > 1:  # points per ring, each as the difference to the previous ring's
        counts = np.zeros(nrings, np.int64)
        for i in range(n):
            counts[ring[i]] += 1
        prev = np.int64(0)
        for r in range(nrings):
            ring_tok, acc, cnt, pos = put_token(zigzag(counts[r] - prev), C_RING + _BK[ring_tok], k, sym, ctx, bbuf,
                                                acc, cnt, pos)
            k += 1
            prev = counts[r]
    for i in range(n):
        r = ring[i]
        if nrings > 1 and not rings_known:
            pred_ring = nxt[prev_ring] if prev_ring >= 0 else 0
            ring_tok, acc, cnt, pos = put_token(zigzag(r - pred_ring), C_RING + _BK[ring_tok], k, sym, ctx, bbuf, acc,
                                                cnt, pos)
            k += 1
            if prev_ring >= 0:
                nxt[prev_ring] = r
            prev_ring = r
        j = last[r]
        if j < 0:
            x = q[i, 0] - cx
            y = q[i, 1] - cy
            z = q[i, 2] - cz
            if i > 0:
                x -= q[i - 1, 0] - cx
                y -= q[i - 1, 1] - cy
                z -= q[i - 1, 2] - cz
            _, acc, cnt, pos = put_token(zigzag(x), C_FIRST, k, sym, ctx, bbuf, acc, cnt, pos)
            _, acc, cnt, pos = put_token(zigzag(y), C_FIRST + 1, k + 1, sym, ctx, bbuf, acc, cnt, pos)
            _, acc, cnt, pos = put_token(zigzag(z), C_FIRST + 2, k + 2, sym, ctx, bbuf, acc, cnt, pos)
            k += 3
        else:
            ta, acc, cnt, pos = put_token(zigzag(res[i, 0]), C_A + _BK[ptok[r, 0]], k, sym, ctx, bbuf, acc, cnt,
                                          pos)
            ba = _BK[ta] * NB
            tb, acc, cnt, pos = put_token(zigzag(res[i, 1]), C_B + ba + _BK[ptok[r, 1]], k + 1, sym, ctx, bbuf,
                                          acc, cnt, pos)
            tz, acc, cnt, pos = put_token(zigzag(res[i, 2]), C_Z + ba + _BK[ptok[r, 2]], k + 2, sym, ctx, bbuf,
                                          acc, cnt, pos)
            ptok[r, 0] = ta
            ptok[r, 1] = tb
            ptok[r, 2] = tz
            k += 3
        for a in range(na):
            pv = attrs[j, a] if j >= 0 else (attrs[i - 1, a] if i > 0 else 0)
            t, acc, cnt, pos = put_token(zigzag(attrs[i, a] - pv), C_ATTR + NB * a + _BK[ptok[r, 3 + a]], k, sym, ctx,
                                         bbuf, acc, cnt, pos)
            ptok[r, 3 + a] = t
            k += 1
        last2[r] = j
        last[r] = i
    bst[2] = put_flush(bbuf, acc, cnt, pos)
    stats[0] = rev
    return k


@njit(cache=True)
def scan_decode(n, nrings, center, na, rbuf, rstart, rend, freq, cum, lut, bbuf, bend, q, ring, attrs, rings_known):
    """Inverse of :func:`scan_encode`; returns an error code (0 = ok). With ``rings_known``,
    the rings come as counts per ring before the points (``ring`` is filled from them)."""
    rst = np.zeros(3, np.int64)
    bst = np.zeros(4, np.int64)
    rans_init(rbuf, rstart, rend, rst)
    last = np.full(nrings, -1, np.int64)
    last2 = np.full(nrings, -1, np.int64)
    nxt = (np.arange(nrings) + 1) % nrings  # the ring that followed each ring last time: firing order
    ptok = np.zeros((nrings, 3 + na), np.int64)
    cx, cy, cz = center[0], center[1], center[2]
    prev_ring = -1
    ring_tok = 0
    if rings_known:  # points per ring, up front: the rings of the sorted points
        if nrings > 1:
            total = np.int64(0)
            prev = np.int64(0)
            for r in range(nrings):
                ring_tok, u = _get(C_RING + _BK[ring_tok], rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst)
                prev += unzigzag(u)
                if prev < 0 or total + prev > n or rst[2] or bst[3]:
                    return 2
                ring[total:total + prev] = r
                total += prev
            if total != n:
                return 2
        else:
            ring[:n] = 0
    for i in range(n):
        r = 0
        if rings_known:
            r = ring[i]
        elif nrings > 1:
            ring_tok, u = _get(C_RING + _BK[ring_tok], rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst)
            r = unzigzag(u) + (nxt[prev_ring] if prev_ring >= 0 else 0)
            if r < 0 or r >= nrings:
                return 2
            if prev_ring >= 0:
                nxt[prev_ring] = r
            prev_ring = r
        ring[i] = r
        j = last[r]
        if j < 0:
            _, ux = _get(C_FIRST, rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst)
            _, uy = _get(C_FIRST + 1, rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst)
            _, uz = _get(C_FIRST + 2, rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst)
            x, y, z = unzigzag(ux), unzigzag(uy), unzigzag(uz)
            if i > 0:
                x += q[i - 1, 0] - cx
                y += q[i - 1, 1] - cy
                z += q[i - 1, 2] - cz
        else:
            x1 = np.float64(q[j, 0] - cx)
            y1 = np.float64(q[j, 1] - cy)
            z1 = np.float64(q[j, 2] - cz)
            jj = last2[r]
            if jj >= 0:
                px, py, pz = _predict(x1, y1, z1, np.float64(q[jj, 0] - cx), np.float64(q[jj, 1] - cy))
            else:
                px, py, pz = x1, y1, z1
            swap = abs(px) < abs(py)
            pa, pb = (py, px) if swap else (px, py)
            ta, ua = _get(C_A + _BK[ptok[r, 0]], rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst)
            va = unzigzag(ua) + _rnd(pa)
            s = 1.0
            if abs(pa) >= 1.0:
                s = va / pa
                if s < 0.25:
                    s = 0.25
                elif s > 4.0:
                    s = 4.0
            ba = _BK[ta] * NB
            tb, ub = _get(C_B + ba + _BK[ptok[r, 1]], rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst)
            tz, uz = _get(C_Z + ba + _BK[ptok[r, 2]], rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst)
            vb = unzigzag(ub) + _rnd(pb * s)
            z = unzigzag(uz) + _rnd(pz * s)
            x, y = (vb, va) if swap else (va, vb)
            ptok[r, 0] = ta
            ptok[r, 1] = tb
            ptok[r, 2] = tz
        q[i, 0] = x + cx
        q[i, 1] = y + cy
        q[i, 2] = z + cz
        for a in range(na):
            pv = attrs[j, a] if j >= 0 else (attrs[i - 1, a] if i > 0 else 0)
            t, u = _get(C_ATTR + NB * a + _BK[ptok[r, 3 + a]], rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst)
            attrs[i, a] = pv + unzigzag(u)
            ptok[r, 3 + a] = t
        last2[r] = j
        last[r] = i
        if rst[2] or bst[3]:
            return 1
    if rst[2] or bst[3] or rst[0] != (1 << 23) or rst[1] != rend:
        return 1
    return 0


@njit(cache=True)
def morton_keys(q, lo):
    """Interleave the 21 low bits of ``q - lo`` per axis (x lowest)."""
    n = q.shape[0]
    out = np.empty(n, np.int64)
    for i in range(n):
        key = np.int64(0)
        a = q[i, 0] - lo[0]
        b = q[i, 1] - lo[1]
        c = q[i, 2] - lo[2]
        for bit in range(21):
            key |= ((a >> bit) & 1) << (3 * bit)
            key |= ((b >> bit) & 1) << (3 * bit + 1)
            key |= ((c >> bit) & 1) << (3 * bit + 2)
        out[i] = key
    return out


@njit(cache=True)
def morton_encode(keys, attrs, sym, ctx, bbuf, bst):
    """Tokens of sorted Morton keys (deltas) and attributes (delta to the previous point);
    the bit stream's length is left in ``bst[2]``."""
    n = keys.shape[0]
    na = attrs.shape[1]
    k = 0
    acc = np.int64(0)
    cnt = 0
    pos = 0
    prev = np.int64(0)
    ptok = np.zeros(1 + na, np.int64)
    for i in range(n):
        t, acc, cnt, pos = put_token(keys[i] - prev, C_MORTON + _BK[ptok[0]], k, sym, ctx, bbuf, acc, cnt, pos)
        ptok[0] = t
        prev = keys[i]
        k += 1
        for a in range(na):
            pv = attrs[i - 1, a] if i > 0 else 0
            t, acc, cnt, pos = put_token(zigzag(attrs[i, a] - pv), NB * (1 + a) + _BK[ptok[1 + a]], k, sym, ctx, bbuf,
                                         acc, cnt, pos)
            ptok[1 + a] = t
            k += 1
    bst[2] = put_flush(bbuf, acc, cnt, pos)
    return k


@njit(cache=True)
def morton_decode(n, na, lo, rbuf, rstart, rend, freq, cum, lut, bbuf, bend, q, attrs):
    rst = np.zeros(3, np.int64)
    bst = np.zeros(4, np.int64)
    rans_init(rbuf, rstart, rend, rst)
    prev = np.int64(0)
    ptok = np.zeros(1 + na, np.int64)
    for i in range(n):
        t, u = _get(C_MORTON + _BK[ptok[0]], rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst)
        ptok[0] = t
        key = prev + u
        prev = key
        a = np.int64(0)
        b = np.int64(0)
        c = np.int64(0)
        for bit in range(21):
            a |= ((key >> (3 * bit)) & 1) << bit
            b |= ((key >> (3 * bit + 1)) & 1) << bit
            c |= ((key >> (3 * bit + 2)) & 1) << bit
        q[i, 0] = a + lo[0]
        q[i, 1] = b + lo[1]
        q[i, 2] = c + lo[2]
        for j in range(na):
            pv = attrs[i - 1, j] if i > 0 else 0
            t, u = _get(NB * (1 + j) + _BK[ptok[1 + j]], rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst)
            attrs[i, j] = pv + unzigzag(u)
            ptok[1 + j] = t
        if rst[2] or bst[3]:
            return 1
    if rst[2] or bst[3] or rst[0] != (1 << 23) or rst[1] != rend:
        return 1
    return 0


@njit(cache=True)
def bounds(q):
    """Per-axis min and max of (n, 3) int64 (numpy's axis-0 reductions are slow on this shape)."""
    lo = np.zeros(3, np.int64)
    hi = np.zeros(3, np.int64)
    if q.shape[0] == 0:
        return lo, hi
    for d in range(3):
        lo[d] = q[0, d]
        hi[d] = q[0, d]
    for i in range(q.shape[0]):
        for d in range(3):
            v = q[i, d]
            lo[d] = min(lo[d], v)
            hi[d] = max(hi[d], v)
    return lo, hi


# -- encoder-side helpers for point orders (any order decodes exactly: these only pick one) ------

@njit(cache=True)
def ring_keys(q, ring, cx, cy, out):
    """Sort keys ``ring << 24 | azimuth`` (a 24-bit pseudo-angle about (cx, cy): monotonic in
    the angle, no trigonometry) as uint64, into ``out`` (n,)."""
    n = q.shape[0]
    for i in range(n):
        dx = np.float64(q[i, 0] - cx)
        dy = np.float64(q[i, 1] - cy)
        s = abs(dx) + abs(dy)
        if s == 0.0:
            s = 1.0
        p = dy / s
        a = (1.0 + p) if dx >= 0 else (3.0 - p)  # [0, 4)
        ang = np.int64(a * (1 << 22))
        ang = min(ang, np.int64((1 << 24) - 1))
        out[i] = np.uint64((ring[i] << 24) | ang)
    return out


@njit(cache=True)
def radix_argsort_into(keys, idx, tmp, cur):
    """Stable argsort of uint64 ``keys`` in the given scratch arrays (n,) int64, int64, uint64
    (``keys`` is overwritten): LSD radix, 11-bit digits, every digit's histogram in one pass,
    passes whose digit is the same for every key skipped. Returns ``idx`` or ``tmp``."""
    n = keys.shape[0]
    counts = np.zeros((6, 2048), np.int64)
    for i in range(n):
        k = keys[i]
        for p in range(6):
            counts[p, np.int64((k >> np.uint64(11 * p)) & np.uint64(2047))] += 1
    for i in range(n):
        idx[i] = i
    src = keys
    dst = cur
    for p in range(6):
        shift = np.uint64(11 * p)
        if n == 0 or counts[p, np.int64((keys[0] >> shift) & np.uint64(2047))] == n:
            continue  # every key has this digit: the pass would not move anything
        total = 0
        for d in range(2048):
            c = counts[p, d]
            counts[p, d] = total
            total += c
        for i in range(n):
            d = np.int64((src[i] >> shift) & np.uint64(2047))
            j = counts[p, d]
            counts[p, d] = j + 1
            dst[j] = src[i]
            tmp[j] = idx[i]
        src, dst = dst, src
        idx, tmp = tmp, idx
    return idx


@njit(cache=True)
def gather(q, ring, mat, perm, q2, r2, m2):
    """``q[perm]``, ``ring[perm]``, ``mat[perm]`` in one pass into ``q2``, ``r2``, ``m2``
    (numpy's fancy indexing of (n, 3) rows is several times slower)."""
    n = perm.shape[0]
    na = mat.shape[1]
    for i in range(n):
        j = perm[i]
        q2[i, 0] = q[j, 0]
        q2[i, 1] = q[j, 1]
        q2[i, 2] = q[j, 2]
        r2[i] = ring[j]
        for a in range(na):
            m2[i, a] = mat[j, a]
    return q2, r2, m2


@njit(cache=True)
def elevation_tan(q, center, stride):
    """``dz / hypot(dx, dy)`` of every ``stride``-th point (large where the point is straight
    above or below the centre)."""
    n = (q.shape[0] + stride - 1) // stride
    out = np.empty(n, np.float64)
    for k in range(n):
        i = k * stride
        dx = np.float64(q[i, 0] - center[0])
        dy = np.float64(q[i, 1] - center[1])
        dz = np.float64(q[i, 2] - center[2])
        h = math.sqrt(dx * dx + dy * dy)
        out[k] = dz / h if h > 0.0 else (1e300 if dz >= 0 else -1e300)
    return out


@njit(cache=True)
def lines_of(q, center, thr):
    """Line per point: the number of thresholds ``thr`` (sorted, in elevation-tangent space)
    at or below the point's elevation tangent (a uniform look-up grid, then a short exact walk)."""
    n = q.shape[0]
    m = thr.shape[0]
    out = np.zeros(n, np.int64)
    if m == 0:
        return out
    grid = 1 << 14
    t0 = thr[0]
    span = thr[m - 1] - t0
    scale = grid / span if span > 0 else 0.0
    lut = np.zeros(grid + 1, np.int64)
    j = 0
    for g in range(grid + 1):
        v = t0 + g / scale if scale > 0 else t0
        while j < m and thr[j] <= v:
            j += 1
        lut[g] = j
    for i in range(n):
        dx = np.float64(q[i, 0] - center[0])
        dy = np.float64(q[i, 1] - center[1])
        dz = np.float64(q[i, 2] - center[2])
        h = math.sqrt(dx * dx + dy * dy)
        t = dz / h if h > 0.0 else (1e300 if dz >= 0 else -1e300)
        if t < t0:
            out[i] = 0
            continue
        if t >= thr[m - 1]:
            out[i] = m
            continue
        g = np.int64((t - t0) * scale)
        g = min(g, np.int64(grid))
        while g > 0 and t0 + g / scale > t:  # float rounding at cell edges: step back
            g -= 1
        line = lut[g]
        while line < m and thr[line] <= t:
            line += 1
        out[i] = line
    return out


@njit(cache=True)
def estimate_bits(sym, ctx, k, nctx):
    """Entropy of ``sym[:k]`` under their contexts (order-0 per context), in bits: what the
    static rANS stream costs, give or take its tables."""
    counts = np.zeros((nctx, 136), np.int64)
    tot = np.zeros(nctx, np.int64)
    for i in range(k):
        counts[ctx[i], sym[i]] += 1
        tot[ctx[i]] += 1
    bits = 0.0
    for c in range(nctx):
        if tot[c] == 0:
            continue
        lt = math.log2(np.float64(tot[c]))
        for s in range(136):
            v = counts[c, s]
            if v:
                bits += v * (lt - math.log2(np.float64(v)))
    return bits


@njit(cache=True)
def quantize_bounds(xyz, step, max_q, q):
    """``floor(v / step + 0.5)`` of (n, 3) floats (any float dtype, exact in float64) into ``q``
    (n, 3) int64, with the per-axis bounds, in one pass. Returns (lo, hi, status): status 1 when
    a value is NaN or infinite, 2 when ``|v / step|`` reaches ``max_q``."""
    n = xyz.shape[0]
    lo = np.zeros(3, np.int64)
    hi = np.zeros(3, np.int64)
    big = np.float64(max_q)
    for i in range(n):
        for d in range(3):
            g = np.floor(np.float64(xyz[i, d]) / step + 0.5)
            if not (abs(g) < big):  # NaN, infinite or too large
                return lo, hi, (1 if not math.isfinite(np.float64(xyz[i, d])) else 2)
            v = np.int64(g)
            q[i, d] = v
            if i == 0 or v < lo[d]:
                lo[d] = v
            if i == 0 or v > hi[d]:
                hi[d] = v
    return lo, hi, 0


@njit(cache=True)
def tan_histogram(t, t_lo, t_hi, t_step):
    """Counts of ``t`` in uniform bins of ``t_step`` from ``t_lo`` (values outside
    ``[t_lo, t_hi]`` are left out)."""
    nb = np.int64((t_hi - t_lo) / t_step) + 1
    out = np.zeros(nb, np.int64)
    for i in range(t.shape[0]):
        v = t[i]
        if v >= t_lo and v <= t_hi:
            k = np.int64((v - t_lo) / t_step)
            out[min(k, nb - 1)] += 1
    return out
