"""numba kernels of the lossless range-image codec (pure functions on arrays).

A packet layout is: packet-level words (header/footer), ``C`` columns at ``col_off0 +
c * col_stride``, each with column words (azimuth, timestamps, ids, status) and ``P`` pixels at
``pix_offsets[p]`` within the column, of pixel words (range, reflectivity, signal, ...). Words are
little-endian, 1 to 4 bytes, and together cover every byte of the packet, so coding every word
losslessly reproduces the packet byte for byte.

Pixel words form ``P``-row range images (row = channel, column = firing/measurement, across
packets). Predictors, in the word's own units (Velodyne 2 mm, Ouster mm or 8 mm):

- range words: a zero range ("no return") is its own token; any other value is predicted by the
  last non-zero range of the row ``pred_row[p]`` (by default the same row: previous column,
  skipping misses; for a VLP-16 the same laser's firing half a block earlier, the other half of
  the 32 slots);
- other pixel words: the last value of row ``pred_row[p]``;
- packet and column words (series): second-order prediction ``2 a[-1] - a[-2]`` (exact for
  constant fields, counters and clocks), modulo the word size.

Contexts: for pixel words the bucketed tokens of the left neighbour (same row) and of the
neighbour above (row ``up_row[p]``, decoded earlier in the same column: the nearest beam in
elevation), and for non-range words whether the pixel's range
is zero, predicted closely, or jumped; for series words the previous token of the same word.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pipeline.codecs._entropy import (
    RANS_L,
    bits_get,
    extra_bits_of,
    put_flush,
    put_token,
    rans_get,
    rans_init,
    unzigzag,
    value_of,
    zigzag,
)
from pipeline.codecs._qkernels import _BK, NB

RANGE = 1
PLAIN = 0
GATE_TOK = 6  # a range token above this (a jump) puts the pixel's other words in their own contexts
PIX_CTX = 3 * NB * NB


def n_contexts(n_pkt: int, n_col: int, n_pix: int) -> int:
    return (n_pkt + n_col) * NB + n_pix * PIX_CTX


@njit(cache=True, inline="always")
def _rd(row, off, size):
    v = np.int64(0)
    for b in range(size):
        v |= np.int64(row[off + b]) << (8 * b)
    return v


@njit(cache=True, inline="always")
def _wr(row, off, size, v):
    for b in range(size):
        row[off + b] = (v >> (8 * b)) & 0xFF


@njit(cache=True, inline="always")
def _wrap(d, size):
    bits = 8 * size
    d &= (np.int64(1) << bits) - 1
    if d >= (np.int64(1) << (bits - 1)):
        d -= np.int64(1) << bits
    return d


@njit(cache=True, inline="always")
def _series_pred(p1, p2, count, size):
    if count == 0:
        return np.int64(0)
    if count == 1:
        return p1
    return (2 * p1 - p2) & ((np.int64(1) << (8 * size)) - 1)


@njit(cache=True, inline="always")
def _take(c, rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst):
    """Decode one value (array-held coder state: measured faster here than locals)."""
    tok = rans_get(rbuf, rend, rst, c, freq, cum, lut)
    nb = extra_bits_of(tok)
    ex = np.int64(0)
    if nb:
        ex = bits_get(bbuf, bend, bst, nb)
    return tok, value_of(tok, ex)


@njit(cache=True)
def encode_packets(pk, pkt_words, n_cols, col_off0, col_stride, col_words, n_pix, pix_offsets,
                   pix_words, pred_row, up_row, sym, ctx, bbuf, bst):
    """Tokens of packets ``pk`` (n, S) uint8. ``*_words`` rows: (offset, size[, kind, gate])."""
    n = pk.shape[0]
    npw = pkt_words.shape[0]
    ncw = col_words.shape[0]
    nxw = pix_words.shape[0]
    base_c = npw * NB
    base_x = (npw + ncw) * NB
    sp = np.zeros((npw, 3), np.int64)  # prev, prev2, token
    sc = np.zeros((ncw, 3), np.int64)
    last = np.zeros((n_pix, nxw), np.int64)
    ltok = np.zeros((n_pix, nxw), np.int64)
    cur = np.zeros(nxw, np.int64)
    ctok = np.zeros(nxw, np.int64)
    k = 0
    acc = np.int64(0)
    cnt = 0
    pos = 0
    ncol_seen = 0
    for i in range(n):
        row = pk[i]
        for w in range(npw):
            off, size = pkt_words[w, 0], pkt_words[w, 1]
            v = _rd(row, off, size)
            pred = _series_pred(sp[w, 0], sp[w, 1], i, size)
            sp[w, 2], acc, cnt, pos = put_token(zigzag(_wrap(v - pred, size)), w * NB + _BK[sp[w, 2]], k, sym, ctx,
                                                bbuf, acc, cnt, pos)
            k += 1
            sp[w, 1] = sp[w, 0]
            sp[w, 0] = v
        for c in range(n_cols):
            co = col_off0 + c * col_stride
            for w in range(ncw):
                off, size = co + col_words[w, 0], col_words[w, 1]
                v = _rd(row, off, size)
                pred = _series_pred(sc[w, 0], sc[w, 1], ncol_seen, size)
                sc[w, 2], acc, cnt, pos = put_token(zigzag(_wrap(v - pred, size)), base_c + w * NB + _BK[sc[w, 2]], k,
                                                    sym, ctx, bbuf, acc, cnt, pos)
                k += 1
                sc[w, 1] = sc[w, 0]
                sc[w, 0] = v
            ncol_seen += 1
            for p in range(n_pix):
                po = co + pix_offsets[p]
                for w in range(nxw):
                    size = pix_words[w, 1]
                    v = _rd(row, po + pix_words[w, 0], size)
                    cur[w] = v
                    pr = pred_row[p]
                    ur = up_row[p]
                    cb = base_x + w * PIX_CTX + _BK[ltok[pr, w]] * NB + (_BK[ltok[ur, w]] if ur >= 0 else 0)
                    if pix_words[w, 2] == RANGE:
                        if v == 0:
                            u = np.int64(0)
                        else:
                            u = zigzag(_wrap(v - last[pr, w], size)) + 1
                            last[p, w] = v
                    else:
                        g = pix_words[w, 3]
                        if g >= 0:
                            cb += NB * NB * (1 if cur[g] == 0 else (0 if ctok[g] <= GATE_TOK else 2))
                        u = zigzag(_wrap(v - last[pr, w], size))
                        last[p, w] = v
                    t, acc, cnt, pos = put_token(u, cb, k, sym, ctx, bbuf, acc, cnt, pos)
                    k += 1
                    ctok[w] = t
                    ltok[p, w] = t
    bst[2] = put_flush(bbuf, acc, cnt, pos)
    return k


@njit(cache=True)
def decode_packets(n, size_s, pkt_words, n_cols, col_off0, col_stride, col_words, n_pix, pix_offsets,
                   pix_words, pred_row, up_row, rbuf, rend, freq, cum, lut, bbuf, bend, out):
    """Inverse of :func:`encode_packets` into ``out`` (n, S); returns 0 when the streams were
    consumed exactly, 1 on corrupt data."""
    rst = np.zeros(3, np.int64)
    bst = np.zeros(4, np.int64)
    rans_init(rbuf, 0, rend, rst)
    npw = pkt_words.shape[0]
    ncw = col_words.shape[0]
    nxw = pix_words.shape[0]
    base_c = npw * NB
    base_x = (npw + ncw) * NB
    sp = np.zeros((npw, 3), np.int64)
    sc = np.zeros((ncw, 3), np.int64)
    last = np.zeros((n_pix, nxw), np.int64)
    ltok = np.zeros((n_pix, nxw), np.int64)
    cur = np.zeros(nxw, np.int64)
    ctok = np.zeros(nxw, np.int64)
    ncol_seen = 0
    for i in range(n):
        row = out[i]
        for w in range(npw):
            off, size = pkt_words[w, 0], pkt_words[w, 1]
            pred = _series_pred(sp[w, 0], sp[w, 1], i, size)
            t, u = _take(w * NB + _BK[sp[w, 2]], rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst)
            v = (pred + unzigzag(u)) & ((np.int64(1) << (8 * size)) - 1)
            _wr(row, off, size, v)
            sp[w, 2] = t
            sp[w, 1] = sp[w, 0]
            sp[w, 0] = v
        for c in range(n_cols):
            co = col_off0 + c * col_stride
            for w in range(ncw):
                off, size = co + col_words[w, 0], col_words[w, 1]
                pred = _series_pred(sc[w, 0], sc[w, 1], ncol_seen, size)
                t, u = _take(base_c + w * NB + _BK[sc[w, 2]], rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst)
                v = (pred + unzigzag(u)) & ((np.int64(1) << (8 * size)) - 1)
                _wr(row, off, size, v)
                sc[w, 2] = t
                sc[w, 1] = sc[w, 0]
                sc[w, 0] = v
            ncol_seen += 1
            for p in range(n_pix):
                po = co + pix_offsets[p]
                for w in range(nxw):
                    size = pix_words[w, 1]
                    mask = (np.int64(1) << (8 * size)) - 1
                    pr = pred_row[p]
                    ur = up_row[p]
                    cb = base_x + w * PIX_CTX + _BK[ltok[pr, w]] * NB + (_BK[ltok[ur, w]] if ur >= 0 else 0)
                    if pix_words[w, 2] == RANGE:
                        t, u = _take(cb, rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst)
                        if u == 0:
                            v = np.int64(0)
                        else:
                            v = (last[pr, w] + unzigzag(u - 1)) & mask
                            last[p, w] = v
                    else:
                        g = pix_words[w, 3]
                        if g >= 0:
                            cb += NB * NB * (1 if cur[g] == 0 else (0 if ctok[g] <= GATE_TOK else 2))
                        t, u = _take(cb, rbuf, rend, rst, freq, cum, lut, bbuf, bend, bst)
                        v = (last[pr, w] + unzigzag(u)) & mask
                        last[p, w] = v
                    cur[w] = v
                    ctok[w] = t
                    _wr(row, po + pix_words[w, 0], size, v)
                    ltok[p, w] = t
        if rst[2] or bst[3]:
            return 1
    if rst[2] or bst[3] or rst[0] != RANS_L or rst[1] != rend or bst[2] != bend:
        return 1
    return 0
