"""Quantized XYZ codec for (georeferenced) point clouds, with attributes carried along.

Coordinates are rounded to a grid of ``step`` metres: ``q = floor(v / step + 0.5)``, so every
decoded coordinate ``q * step`` is within ``step / 2`` of the input (1 cm step: 5 mm maximum
error; plus the float64 rounding of the product, under a nanometre at planetary
coordinates). Decoding gives the quantized points exactly.

Two point orders, chosen per chunk (``order="auto"``):

- **scan** (input order kept): a scan-structure predictor (see :mod:`pipeline.codecs._qkernels`)
  from the previous points of the same ring: rotation by the firing step, then the range scale.
  The ``ring`` attribute, when given, picks the scan line; with no ring, one line.
- **ring** (points sorted by ring, then azimuth about the centre): the same predictor after
  re-sorting, for clouds that lost their order (e.g. shuffled) or whose lines are out of
  azimuth order. A cloud without rings gets scan lines inferred from elevation angles
  (:func:`infer_lines`); they are coded (about nothing, sorted) but not returned.
- **morton** (points sorted by Morton key): sorted keys delta-coded; needs nothing of the
  cloud. For clouds without structure.

``auto`` picks one order up front and encodes once: for a cloud with rings, its first 1024
points (xyz and ring) are tokenised in scan and in ring order and the lower token entropy wins
(a few points decide it: the orders differ by a fraction of a percent or by far; ring order
wins where lines are out of azimuth order: shuffled, or merged returns as in the nuScenes sweep,
and on most decoded sweeps by a little). A cloud without rings goes to the ring order on
inferred lines. Only when the result costs more than ``try_other_above_bits`` bits per
point (no scan structure found) are the other orders tried, Morton among them, and the smallest
kept. A reordered cloud decodes in that order; :attr:`QuantizedCloud.permutation`
gives the input index of each decoded point when ``keep_order`` is set (costs about
log2(n) bits per point; otherwise it is ``None`` and ``order`` says which order it is).

Attributes: integer arrays, or float arrays (kept exactly: integral floats as integers,
others by their IEEE bit patterns), each predicted from the previous point of the same ring.
An attribute whose value range exceeds 2**61 is stored zstd-compressed instead.
"""

from __future__ import annotations

import itertools
import json
import math
import struct
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from pipeline.codecs import _container as C
from pipeline.codecs import _entropy as E
from pipeline.codecs import _qkernels as K
from pipeline.errors import CodecError

NAME = "quantized"
MODES = {"scan": 0, "ring": 1, "morton": 2}
MODE_NAMES = {v: k for k, v in MODES.items()}
_META = struct.Struct("<dBHB3q3qII")
_MAX_Q = 1 << 40  # |coordinate / step| bound: keeps every predictor term far from int64 limits
_MAX_RINGS = 4096
_ESTIMATE_POINTS = 1024  # prefix the order estimate codes both ways (its entropy, not a stream)


@dataclass
class QuantizedCloud:
    """A decoded cloud: integer grid coordinates and attributes, in ``order``."""

    q: np.ndarray  # (n, 3) int64, coordinate = q * step
    step: float
    attrs: dict[str, np.ndarray] = field(default_factory=dict)
    order: str = "scan"  # scan (input order), ring, morton
    permutation: np.ndarray | None = None  # decoded point k was input point permutation[k]

    @property
    def xyz(self) -> np.ndarray:
        return self.q.astype(np.float64) * self.step

    def __len__(self) -> int:
        return len(self.q)


def quantize(xyz: np.ndarray, step: float) -> np.ndarray:
    """``floor(v / step + 0.5)`` as int64 (the codec's grid)."""
    return _quantize_bounds(xyz, step)[0]


def _quantize_bounds(xyz: np.ndarray, step: float, scratch: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`quantize` and the per-axis min and max of the result, in one numba pass
    (``scratch``: into the per-thread scratch array, valid until the next encode)."""
    pts = np.asarray(xyz)
    if pts.ndim != 2 or pts.shape[1] != 3:
        raise CodecError(f"{NAME}: xyz must be (n, 3), got {pts.shape}", NAME)
    if pts.dtype.kind != "f":
        pts = pts.astype(np.float64)
    n = len(pts)
    out = _work("q", 3 * n, np.int64).reshape(n, 3) if scratch else np.empty((n, 3), np.int64)
    lo, hi, status = K.quantize_bounds(pts, float(step), _MAX_Q, out)
    q = out
    if status == 1:
        raise CodecError(f"{NAME}: xyz holds NaN or infinite values", NAME)
    if status == 2:
        raise CodecError(f"{NAME}: coordinates too large for step {step} (|v / step| must stay below 2**40)",
                         NAME)
    return q, lo, hi


def _attr_columns(attrs: Mapping[str, np.ndarray], n: int) -> tuple[list[dict], np.ndarray, list[np.ndarray]]:
    """Descriptors, the (n, A) int64 matrix of coded attributes, and the raw (zstd) ones."""
    descs: list[dict] = []
    cols: list[np.ndarray] = []
    raw: list[np.ndarray] = []
    for name, arr in attrs.items():
        a = np.ascontiguousarray(np.asarray(arr))
        if a.shape != (n,):
            raise CodecError(f"{NAME}: attribute {name!r} has shape {a.shape}, expected ({n},)", NAME)
        dt = a.dtype
        if dt.kind in "iub" and dt.itemsize <= 8:
            if dt == np.uint64 and len(a) and int(a.max()) >= 1 << 63:
                v = a.view(np.int64)
            else:
                v = a.astype(np.int64)
            kind = "int"
        elif dt.kind == "f" and dt.itemsize in (4, 8):
            integral = len(a) == 0 or (np.isfinite(a).all() and np.abs(a).max() < 2**52
                                       and bool((a == np.round(a)).all()) and not np.signbit(a[a == 0]).any())
            if integral:
                v, kind = a.astype(np.int64), "intf"
            else:
                v = (a.view(np.int32) if dt.itemsize == 4 else a.view(np.int64)).astype(np.int64)
                kind = "bits"
        else:
            raise CodecError(f"{NAME}: attribute {name!r} has unsupported dtype {dt}", NAME)
        if len(v) and int(v.max()) - int(v.min()) >= 1 << 61:
            descs.append({"name": name, "dtype": dt.str, "kind": "raw"})
            raw.append(a)
            continue
        base = int(v.min()) if len(v) else 0  # coded values in [0, 2**61): no int64 overflow anywhere
        descs.append({"name": name, "dtype": dt.str, "kind": kind, "base": base})
        cols.append(v - np.int64(base))
    mat = np.stack(cols, axis=1) if cols else np.zeros((n, 0), np.int64)
    return descs, np.ascontiguousarray(mat), raw


def _attr_arrays(descs: list[dict], mat: np.ndarray, raw: list[np.ndarray]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    ci = ri = 0
    for d in descs:
        dt = np.dtype(d["dtype"])
        if d["kind"] == "raw":
            out[d["name"]] = raw[ri]
            ri += 1
            continue
        v = mat[:, ci] + np.int64(d["base"])
        ci += 1
        if d["kind"] == "bits":
            out[d["name"]] = (v.astype(np.int32) if dt.itemsize == 4 else v).view(dt).copy()
        elif dt == np.uint64:
            out[d["name"]] = v.view(np.uint64).copy()
        else:
            out[d["name"]] = v.astype(dt)
    return out


def infer_lines(q: np.ndarray, center: np.ndarray, bin_deg: float = 0.05) -> tuple[np.ndarray, int]:
    """Scan lines of a cloud that carries no ring numbers: points grouped by elevation angle
    seen from ``center`` (a spinning LiDAR's beams are peaks of that histogram; cuts go at the
    minima between peaks). Encoder-side only: any grouping decodes exactly, a good one predicts
    well. No trigonometry per point: every point's elevation tangent goes into fine bins (a
    quarter of ``bin_deg``), whose counts are moved to the degree bins; the cuts are applied
    back in tangent space. Elevations beyond +-85 degrees are left out of the histogram.
    Returns (line per point, number of lines)."""
    n = len(q)
    if n == 0:
        return np.zeros(0, np.int64), 1
    c = np.asarray(center, np.int64)
    t = K.elevation_tan(q, c, 1)
    lim = math.tan(math.radians(85.0))
    t_lo = max(float(t.min()), -lim)
    t_hi = min(float(t.max()), lim)
    if not t_lo < t_hi:
        return np.zeros(n, np.int64), 1
    t_step = math.tan(math.radians(bin_deg / 4))
    fine = K.tan_histogram(t, t_lo, t_hi, t_step)
    el = np.degrees(np.arctan(t_lo + (np.arange(len(fine)) + 0.5) * t_step))  # fine bin centres
    lo = math.degrees(math.atan(t_lo))
    idx = np.maximum(((el - lo) / bin_deg).astype(np.int64), 0)
    sm = np.convolve(np.bincount(idx, weights=fine).astype(np.float64), np.ones(5) / 5, "same")
    if len(sm) < 3:
        return np.zeros(n, np.int64), 1
    peak = (sm[1:-1] >= sm[:-2]) & (sm[1:-1] > sm[2:]) & (sm[1:-1] >= max(3.0, 0.0002 * n))
    peaks = np.flatnonzero(peak) + 1
    if len(peaks) < 2:
        return np.zeros(n, np.int64), 1
    cuts = np.array([a + int(np.argmin(sm[a:b])) for a, b in itertools.pairwise(peaks)])
    thr = np.tan(np.radians(lo + cuts * bin_deg))  # bin k starts at elevation lo + k * bin_deg
    return K.lines_of(q, c, np.ascontiguousarray(thr, np.float64)), len(peaks)


def ring_order(q: np.ndarray, ring: np.ndarray, center: np.ndarray, scratch: bool = False) -> np.ndarray:
    """Permutation sorting points by ring, then by azimuth about ``center`` (a pseudo-angle:
    monotonic in the angle, no trigonometry; a stable radix sort that keeps scan-order runs).
    ``scratch``: in per-thread scratch arrays (valid until the next encode)."""
    n = len(q)
    keys = K.ring_keys(q, np.ascontiguousarray(ring, np.int64), int(center[0]), int(center[1]),
                       _work("s4", n, np.uint64) if scratch else np.empty(n, np.uint64))
    if not scratch:
        return K.radix_argsort_into(keys, np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.uint64))
    return K.radix_argsort_into(keys, _work("s1", n, np.int64), _work("s2", n, np.int64), _work("s3", n, np.uint64))


_ZSTD = threading.local()


def _zc(level: int) -> Any:
    """A zstd compressor per thread and level (making one costs more than a small section)."""
    import zstandard

    cache = getattr(_ZSTD, "c", None)
    if cache is None:
        cache = _ZSTD.c = {}
    if level not in cache:
        cache[level] = zstandard.ZstdCompressor(level=level)
    return cache[level]


def _work(name: str, size: int, dtype: Any) -> np.ndarray:
    """A scratch array of ``size`` items, reused per thread (grow-only). Fresh arrays of a few
    MB cost more in first-touch page faults than the encoder spends on the points; nothing
    built from a scratch array may outlive the call that got it (results are copied out)."""
    cache = getattr(_ZSTD, "w", None)
    if cache is None:
        cache = _ZSTD.w = {}
    buf = cache.get(name)
    if buf is None or buf.size < size or buf.dtype != np.dtype(dtype):
        buf = cache[name] = np.empty(max(size, 1024), dtype)
    return buf[:size]


def _scratch(n: int, per_point: int, nrings: int) -> tuple[np.ndarray, ...]:
    """sym, ctx, extra-bit buffer and the scan coder's (n,) (n,) (n, 3) work arrays."""
    m = n * per_point + nrings + 1
    return (_work("sym", m, np.uint8), _work("ctx", m, np.int32), _work("bits", m * 8 + 16, np.uint8),
            _work("j1", n, np.int64), _work("j2", n, np.int64), _work("res", 3 * n, np.int64).reshape(n, 3))


def _gather(q: np.ndarray, ring: np.ndarray, mat: np.ndarray, perm: np.ndarray) -> tuple[np.ndarray, ...]:
    """``q``, ``ring``, ``mat`` in the order ``perm``, into per-thread scratch arrays."""
    n, na = len(perm), mat.shape[1]
    q2 = _work("gq", 3 * n, np.int64).reshape(n, 3)
    r2 = _work("gr", n, np.int64)
    m2 = _work("gm", n * na, np.int64).reshape(n, na)
    K.gather(q, ring, mat, perm, q2, r2, m2)
    return q2, r2, m2


def _entropy_code(sym: np.ndarray, ctx: np.ndarray, k: int, nctx: int) -> tuple[bytes, bytes]:
    """Tables and rANS stream of ``sym[:k]``."""
    levels, freq = E.build_freqs(sym, ctx, k, nctx)
    tab = np.empty(nctx * (E.NTOK + 1), np.uint8)
    tlen = E.write_levels(levels, tab, 0)
    out = _work("rans", 2 * k + 16, np.uint8)
    start = E.rans_encode(sym, ctx, k, freq, E.cumulative(freq), out)
    return _zc(3).compress(tab[:tlen].tobytes()), out[start:].tobytes()


class QuantizedCodec:
    """Quantized XYZ + attributes. ``step`` metres (max error ``step / 2``); ``order``:
    ``auto``, ``scan``, ``ring`` or ``morton``; ``keep_order`` stores the permutation of a
    reordered cloud; ``center``: the sensor position in the cloud's frame (default: per chunk,
    the median point)."""

    name = NAME

    def __init__(self, step: float = 0.01, order: str = "auto", try_other_above_bits: float = 14.0,
                 keep_order: bool = False, zstd_level: int = 3) -> None:
        if not (step > 0 and math.isfinite(step)):
            raise CodecError(f"{NAME}: step must be a positive number of metres, got {step}", NAME)
        if order not in ("auto", *MODES):
            raise CodecError(f"{NAME}: order must be auto, scan, ring or morton, got {order!r}", NAME)
        self.step = float(step)
        self.order = order
        self.try_other_above_bits = float(try_other_above_bits)
        self.keep_order = keep_order
        self.zstd_level = zstd_level
        self.last_mode = ""
        self.last_reversals = 0.0
        self._q = self._lo = self._hi = np.zeros(0, np.int64)

    @property
    def max_error(self) -> float:
        """Largest coordinate error, metres (half the step)."""
        return self.step / 2

    # -- encoding ---------------------------------------------------------------------------------

    def encode(self, xyz: np.ndarray, attrs: Mapping[str, np.ndarray] | None = None,
               center: np.ndarray | None = None) -> bytes:
        """Encode ``xyz`` (n, 3) metres with ``attrs`` (name → (n,) array; ``ring`` drives the
        scan predictor). Returns the framed blob."""
        q, lo, hi = _quantize_bounds(xyz, self.step, scratch=True)
        n = len(q)
        attrs = dict(attrs or {})
        ring_arr = attrs.pop("ring", None)
        ring, nrings, ring_dtype = self._rings(ring_arr, n)
        descs, mat, raw = _attr_columns(attrs, n)
        self._q, self._lo, self._hi = q, lo, hi
        if center is None:
            c = self._center(q, lo, hi)
        else:
            c = quantize(np.asarray(center, dtype=np.float64).reshape(1, 3), self.step)[0]
        if self.order != "auto":
            modes = [self.order]
        elif not ring_dtype:
            modes = ["ring"]  # no rings: inferred lines, sorted (scan order on one line predicts badly)
        else:
            modes = [self._pick_order(q, ring, nrings, c)]
        best: tuple[int, bytes, np.ndarray | None] | None = None
        tried: set[str] = set()
        while modes:
            mode = modes.pop(0)
            tried.add(mode)
            if mode == "ring" and not ring_dtype:  # no rings given: infer scan lines (not decoded as an attribute)
                lines, nlines = infer_lines(q, c)
                got = self._encode_mode(mode, q, lines, nlines, c, mat, raw, descs, ring_dtype)
            else:
                got = self._encode_mode(mode, q, ring, nrings, c, mat, raw, descs, ring_dtype)
            if got is not None and (best is None or len(got[0]) < len(best[1])):
                best = (MODES[mode], got[0], got[1])
            if (self.order == "auto" and not modes and best is not None
                    and len(best[1]) * 8 / max(n, 1) > self.try_other_above_bits):
                modes = [m for m in ("ring", "morton", "scan") if m not in tried]
        if best is None:
            raise CodecError(f"{NAME}: no point order can encode this cloud (extent too large for Morton "
                             "keys and order forced)", NAME)
        self.last_mode = MODE_NAMES[best[0]]
        return C.pack(NAME, best[0], n, len(descs), best[1])

    def _pick_order(self, q: np.ndarray, ring: np.ndarray, nrings: int, c: np.ndarray) -> str:
        """Scan or ring order, by the token entropy of the first points (xyz and ring only) coded
        both ways."""
        m = min(len(q), _ESTIMATE_POINTS)
        qp, rp = q[:m], ring[:m]
        empty = np.zeros((m, 0), np.int64)
        sizes = {}
        for mode in ("scan", "ring"):
            sizes[mode] = self._estimate(mode, qp, rp, nrings, c, empty)
        return "ring" if sizes["ring"] < sizes["scan"] else "scan"

    @staticmethod
    def _center(q: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """The origin when it lies inside the cloud's box (a cloud in its sensor's frame), else
        the median point (a georeferenced cloud: pass the sensor position instead when known)."""
        if not len(q):
            return np.zeros(3, np.int64)
        if (lo <= 0).all() and (hi >= 0).all():
            return np.zeros(3, np.int64)
        return np.median(q[:: max(1, len(q) // 4096)], axis=0).astype(np.int64)

    def _rings(self, ring_arr: np.ndarray | None, n: int) -> tuple[np.ndarray, int, str]:
        if ring_arr is None:
            return np.zeros(n, np.int64), 1, ""
        r = np.asarray(ring_arr)
        if r.shape != (n,):
            raise CodecError(f"{NAME}: ring has shape {r.shape}, expected ({n},)", NAME)
        ri = r.astype(np.int64)
        if n and (ri.min() < 0 or ri.max() >= _MAX_RINGS or not (ri == r).all()):
            raise CodecError(f"{NAME}: ring values must be integers in [0, {_MAX_RINGS})", NAME)
        return np.ascontiguousarray(ri), (int(ri.max()) + 1 if n else 1), r.dtype.str

    def _estimate(self, mode: str, q: np.ndarray, ring: np.ndarray, nrings: int, c: np.ndarray,
                  mat: np.ndarray) -> float:
        """Bits of ``q`` in scan or ring order: the entropy of its tokens plus the raw bits
        (what the rANS stream would cost, without coding it)."""
        if mode == "ring":
            perm = ring_order(q, ring, c, scratch=True)
            q, ring, mat = _gather(q, ring, mat, perm)
        n = len(q)
        sym, ctx, bbuf, j1, j2, res = _scratch(n, 4 + mat.shape[1], nrings)
        bst = np.zeros(3, np.int64)
        k = K.scan_encode(q, ring, nrings, c, mat, sym, ctx, bbuf, bst, np.zeros(1, np.int64), mode == "ring", j1, j2,
                          res)
        return K.estimate_bits(sym, ctx, k, K.n_contexts(mat.shape[1])) + 8.0 * float(bst[2])

    def _encode_mode(self, mode: str, q: np.ndarray, ring: np.ndarray, nrings: int, c: np.ndarray,
                     mat: np.ndarray, raw: list[np.ndarray], descs: list[dict],
                     ring_dtype: str) -> tuple[bytes, np.ndarray | None] | None:
        n = len(q)
        na = mat.shape[1]
        perm: np.ndarray | None = None
        lo, hi = (self._lo, self._hi) if q is self._q else K.bounds(q)
        if mode == "ring":
            perm = ring_order(q, ring, c, scratch=True)
        elif mode == "morton":
            if n and int((hi - lo).max()) >= 1 << 21:
                return None
            keys = K.morton_keys(q, lo)
            perm = np.argsort(keys, kind="stable")
            keys = keys[perm]
        if perm is not None:
            q, ring, mat = _gather(q, ring, mat, perm)
            raw = [a[perm] for a in raw]
        sym, ctx, bbuf, j1, j2, res = _scratch(n, 4 + na, nrings)
        bst = np.zeros(3, np.int64)
        if mode == "morton":
            if nrings > 1:  # the ring rides along as the first attribute
                mat = np.ascontiguousarray(np.concatenate([ring[:, None], mat], axis=1))
            k = K.morton_encode(keys, mat, sym, ctx, bbuf, bst)
            nctx = K.NB * (1 + mat.shape[1])
        else:
            stats = np.zeros(1, np.int64)
            k = K.scan_encode(q, ring, nrings, c, mat, sym, ctx, bbuf, bst, stats, mode == "ring", j1, j2, res)
            self.last_reversals = int(stats[0]) / max(n, 1)
            blen = int(bst[2])
            nctx = K.n_contexts(na)
        if mode == "morton":
            blen = int(bst[2])
        tables, stream = _entropy_code(sym, ctx, k, nctx)
        meta = _META.pack(self.step, MODES[mode], nrings, na, *c.tolist(), *lo.tolist(), len(stream), blen)
        zc = _zc(self.zstd_level)
        info = json.dumps({"attrs": descs, "ring": ring_dtype}, separators=(",", ":")).encode()
        raw_b = zc.compress(b"".join(a.tobytes() for a in raw)) if raw else b""
        perm_b = b""
        if perm is not None and self.keep_order:
            perm_b = zc.compress(perm.astype(np.uint32).tobytes())
        payload = C.sections(meta, info, tables, stream, bbuf[:blen], raw_b, perm_b)
        return payload, perm

    # -- decoding ---------------------------------------------------------------------------------

    def decode(self, blob: bytes | bytearray | memoryview) -> QuantizedCloud:
        """The quantized points and attributes; :class:`CodecError` on any corruption."""

        head, payload = C.unpack(blob, NAME)
        n, mode = head.count, head.flags
        s = C.Sections(payload, NAME)
        meta_b = s.take("meta")
        if len(meta_b) != _META.size or mode not in MODE_NAMES:
            raise CodecError(f"{NAME}: bad meta section", NAME)
        step, mode2, nrings, na, cx, cy, cz, lx, ly, lz, slen, blen = _META.unpack(meta_b)
        try:
            info = json.loads(bytes(s.take("info")))
            descs = info["attrs"]
            ring_dtype = info["ring"]
            kinds = [d["kind"] for d in descs]
            dtypes = [np.dtype(d["dtype"]) for d in descs] + ([np.dtype(ring_dtype)] if ring_dtype else [])
            for d, dt in zip(descs, dtypes):
                if (not isinstance(d["name"], str) or d["kind"] not in ("int", "intf", "bits", "raw")
                        or dt.kind not in "iubf" or dt.itemsize > 8
                        or (d["kind"] != "raw" and not isinstance(d["base"], int))
                        or (d["kind"] == "bits" and (dt.kind != "f" or dt.itemsize not in (4, 8)))):
                    raise ValueError(f"bad descriptor {d!r}")
            if ring_dtype and np.dtype(ring_dtype).kind not in "iu":
                raise ValueError("bad ring dtype")
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise CodecError(f"{NAME}: bad attribute descriptors ({err})", NAME) from None
        if (mode2 != mode or na != sum(k != "raw" for k in kinds) or len(descs) != head.aux
                or not (step > 0 and math.isfinite(step)) or nrings < 1 or nrings > _MAX_RINGS):
            raise CodecError(f"{NAME}: inconsistent header fields", NAME)
        tables_z = s.take("tables")
        stream = np.frombuffer(s.take("stream"), np.uint8)
        bits = np.frombuffer(s.take("bits"), np.uint8)
        raw_b = s.take("raw")
        perm_b = s.take("permutation")
        s.end()
        if len(stream) != slen or len(bits) != blen:
            raise CodecError(f"{NAME}: section lengths disagree with the meta section", NAME)
        # every point costs at least one token of >= 2**-12 probability... but zero-cost tokens
        # exist, so bound n by memory instead: 2**28 points is far beyond any chunk
        if n > 1 << 26:
            raise CodecError(f"{NAME}: point count {n} is implausible", NAME)
        with_ring = mode == MODES["morton"] and nrings > 1
        nctx = K.NB * (1 + na + with_ring) if mode == MODES["morton"] else K.n_contexts(na)
        if nctx > E.MAX_CONTEXTS or n * 3 > (len(stream) + 4) * E.MAX_TOKENS_PER_BYTE:
            raise CodecError(f"{NAME}: counts do not fit the coded stream", NAME)
        tables = np.frombuffer(C.zunpack(tables_z, nctx * (E.NTOK + 1), NAME, "tables"), np.uint8)
        freq, cum, lut, tend, ok = E.read_freqs(tables, 0, len(tables), nctx)
        if not ok or tend != len(tables):
            raise CodecError(f"{NAME}: bad frequency tables", NAME)
        q = np.empty((n, 3), np.int64)
        mat = np.empty((n, na), np.int64)
        ring = np.zeros(n, np.int64)
        if mode == MODES["morton"]:
            mat = np.empty((n, na + with_ring), np.int64)
            err = K.morton_decode(n, na + with_ring, np.array([lx, ly, lz], np.int64), stream, 0, len(stream),
                                  freq, cum, lut, E.padded(bits), len(bits), q, mat)
            if with_ring:
                ring, mat = mat[:, 0].copy(), np.ascontiguousarray(mat[:, 1:])
                if n and (ring.min() < 0 or ring.max() >= nrings):
                    err = 2
        else:
            err = K.scan_decode(n, nrings, np.array([cx, cy, cz], np.int64), na, stream, 0, len(stream), freq,
                                cum, lut, E.padded(bits), len(bits), q, ring, mat,
                                mode == MODES["ring"])
        if err:
            raise CodecError(f"{NAME}: corrupt entropy-coded data (code {err})", NAME)
        raw: list[np.ndarray] = []
        raw_dt = [np.dtype(d["dtype"]) for d in descs if d["kind"] == "raw"]
        if raw_dt:
            rb = C.zunpack(raw_b, n * 8 * len(raw_dt), NAME, "raw attributes")
            if len(rb) != n * sum(d.itemsize for d in raw_dt):
                raise CodecError(f"{NAME}: raw attribute section has the wrong size", NAME)
            off = 0
            for dt in raw_dt:
                raw.append(np.frombuffer(rb, dt, n, off).copy())
                off += n * dt.itemsize
        attrs = _attr_arrays(descs, mat, raw)
        if ring_dtype:
            attrs = {"ring": ring.astype(np.dtype(ring_dtype)), **attrs}
        perm = None
        if len(perm_b):
            pb = C.zunpack(perm_b, n * 4, NAME, "permutation")
            perm = np.frombuffer(pb, np.uint32).astype(np.int64)
            if len(perm) != n or (n and (perm.max() >= n or len(np.unique(perm)) != n)):
                raise CodecError(f"{NAME}: bad permutation", NAME)
        del dtypes
        return QuantizedCloud(q, step, attrs, MODE_NAMES[mode], perm)

    def decode_input_order(self, blob: bytes | bytearray | memoryview) -> QuantizedCloud:
        """Like :meth:`decode`, then put the points back in input order (needs ``keep_order``
        at encoding when the chunk was reordered)."""
        cloud = self.decode(blob)
        if cloud.order == "scan":
            return cloud
        if cloud.permutation is None:
            raise CodecError(f"{NAME}: chunk is in {cloud.order} order and carries no permutation "
                             "(encode with keep_order=True)", NAME)
        inv = np.empty_like(cloud.permutation)
        inv[cloud.permutation] = np.arange(len(inv))
        return QuantizedCloud(cloud.q[inv], cloud.step, {k: v[inv] for k, v in cloud.attrs.items()}, "scan", None)
