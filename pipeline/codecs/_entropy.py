"""Entropy coder kernels: static-model rANS with context-selected tables, plus a raw bit stream.

Pure numba functions on arrays (no I/O), shared by both codecs.

Values to code are non-negative integers ``u`` (signed residuals go through :func:`zigzag`).
Each is split into a *token* (coded with rANS under a context the caller picks) and *extra
bits* written raw to a separate bit stream:

- ``u < 16``: token ``u``, no extra bits;
- else, with ``e`` the index of the top bit (``e >= 4``): token ``16 + 2 (e - 4) + b`` where ``b``
  is the bit below the top one, and the ``e - 1`` low bits go raw.

So a token says the magnitude to within a factor of 1.5, the entropy coder models that, and the
uniformly distributed low bits cost exactly what they are. Tables are per context, built from
the chunk's own token counts (two passes: a static model per chunk, so decoding is one table
look-up per token), stored as one log-scale level byte per token (zstd-compressed by the
caller) and normalised to 2**12 the same way on both sides.

Note for whoever edits these: the helpers here are ``inline="always"`` into the kernels of
``_qkernels``/``_rkernels``, and numba's on-disk cache keys a kernel on its own file only. After
changing this file, clear the codec entries of the numba cache (``NUMBA_CACHE_DIR``, folders
``codecs_*``) or an encoder and decoder compiled at different times may disagree.

rANS: 32-bit state, byte-wise renormalisation, L = 2**23 (as in ryg's ``rans_byte``). The
encoder walks the tokens backwards and writes bytes from the end of its buffer; the decoder
reads forwards. Every read is bounds-checked: corrupt input sets an error flag and decoding
carries on with zeros, so a kernel never reads out of bounds, never loops forever, and the
caller raises :class:`~pipeline.errors.CodecError`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

NTOK = 136  # tokens 0..133 used (u < 2**63)
SCALE_BITS = 12
SCALE = 1 << SCALE_BITS
RANS_L = 1 << 23
# the cheapest token costs -log2(4095/4096) bits: a stream of b bytes holds at most this many
# tokens per byte (decoders bound their allocations by it before trusting any count)
MAX_TOKENS_PER_BYTE = 8 * 2840
MAX_CONTEXTS = 1 << 14


@njit(cache=True, inline="always")
def zigzag(d):
    """Signed → non-negative: 0, -1, 1, -2, ... → 0, 1, 2, 3, ..."""
    return (d << 1) if d >= 0 else ((-d << 1) - 1)


@njit(cache=True, inline="always")
def unzigzag(u):
    return (u >> 1) if (u & 1) == 0 else -((u + 1) >> 1)


def _tables() -> tuple[np.ndarray, np.ndarray]:
    tok = np.zeros(1024, np.int64)
    nbits = np.zeros(1024, np.int64)
    for u in range(1024):
        e = u.bit_length() - 1
        nbits[u] = 0 if u < 16 else e - 1
        tok[u] = u if u < 16 else 16 + 2 * (e - 4) + ((u >> (e - 1)) & 1)
    return tok, nbits


_TOK, _NBITS = _tables()


@njit(cache=True, inline="always")
def token_of(u):
    """(token, number of extra bits, extra bits) of ``u >= 0``."""
    if u < 1024:  # table: no data-dependent branch
        nb = _NBITS[u]
        return _TOK[u], nb, u & ((np.int64(1) << nb) - 1)
    e = 10
    while (u >> (e + 1)) != 0:
        e += 1
    nb = e - 1
    return 16 + 2 * (e - 4) + ((u >> nb) & 1), nb, u & ((np.int64(1) << nb) - 1)


@njit(cache=True, inline="always")
def extra_bits_of(tok):
    if tok < 16:
        return 0
    return 3 + (tok - 16) // 2


@njit(cache=True, inline="always")
def value_of(tok, extra):
    if tok < 16:
        return np.int64(tok)
    nb = 3 + (tok - 16) // 2
    return ((np.int64(2) | ((tok - 16) & 1)) << nb) | extra


# -- raw bit stream (LSB first) -------------------------------------------------------------------

@njit(cache=True, inline="always")
def bits_put(buf, st, nbits, value):
    """Append ``nbits`` (<= 62) low bits of ``value``. ``st`` = [acc, count, byte position]."""
    while nbits > 0:
        take = min(nbits, 32)
        acc = st[0] | ((value & ((np.int64(1) << take) - 1)) << st[1])
        cnt = st[1] + take
        pos = st[2]
        while cnt >= 8:
            buf[pos] = acc & 0xFF
            pos += 1
            acc >>= 8
            cnt -= 8
        st[0] = acc
        st[1] = cnt
        st[2] = pos
        value >>= take
        nbits -= take


@njit(cache=True, inline="always")
def bits_flush(buf, st):
    if st[1] > 0:
        buf[st[2]] = st[0] & 0xFF
        st[2] += 1
        st[0] = 0
        st[1] = 0
    return st[2]


@njit(cache=True, inline="always")
def bits_get(buf, end, st, nbits):
    """Read ``nbits`` (<= 62). ``st`` = [acc, count, byte position, error]. Past ``end``
    reads zeros and sets the error flag."""
    out = np.int64(0)
    shift = 0
    while nbits > 0:
        take = min(nbits, 32)
        acc = st[0]
        cnt = st[1]
        pos = st[2]
        while cnt < take:
            if pos < end:
                acc |= np.int64(buf[pos]) << cnt
                pos += 1
            else:
                st[3] = 1
            cnt += 8
        out |= (acc & ((np.int64(1) << take) - 1)) << shift
        st[0] = acc >> take
        st[1] = cnt - take
        st[2] = pos
        shift += take
        nbits -= take
    return out


# -- tables -----------------------------------------------------------------------------------
# A table is stored as one byte per token: a level L (0 = absent), the token's count being
# about 2**((L - 1) / 2). Both sides turn levels into frequencies with the same integer
# arithmetic (_normalise), so the stored form is small and decoding is deterministic.

_W = np.array([0, 1, 1, 2, 3, 4, 6, 8, 11, 16, 23, 32, 45, 64, 91, 128, 181, 256, 362, 512, 724, 1024, 1448,
               2048, 2896, 4096, 5793, 8192, 11585, 16384, 23170, 32768, 46341, 65536, 92682, 131072, 185364,
               262144, 370728, 524288, 741455, 1048576, 1482910, 2097152, 2965821, 4194304, 5931642, 8388608,
               11863283, 16777216, 23726566, 33554432, 47453133, 67108864, 94906266, 134217728, 189812531,
               268435456, 379625062, 536870912, 759250125, 1073741824, 1518500250, 2147483648], np.int64)
MAX_LEVEL = 63


@njit(cache=True)
def _normalise(levels, freq):
    """Levels (nctx, NTOK) → frequencies summing to SCALE per used context (each used >= 1)."""
    nctx = levels.shape[0]
    for c in range(nctx):
        total = np.int64(0)
        for s in range(NTOK):
            total += _W[levels[c, s]]
        if total == 0:
            continue
        acc = 0
        best = 0
        for s in range(NTOK):
            w = _W[levels[c, s]]
            if w > 0:
                f = (w * SCALE) // total
                f = max(f, 1)
                freq[c, s] = f
                acc += f
                if f > freq[c, best]:
                    best = s
        diff = SCALE - acc
        if freq[c, best] + diff >= 1:
            freq[c, best] += diff
        else:  # many tiny symbols pushed the sum over: take from the largest ones
            while diff < 0:
                big = 0
                for s in range(NTOK):
                    if freq[c, s] > freq[c, big]:
                        big = s
                take = min(-diff, freq[c, big] - 1)
                freq[c, big] -= take
                diff += take


@njit(cache=True)
def build_levels(sym, ctx, n, nctx):
    """Token counts per context → stored levels (uint8)."""
    counts = np.zeros((nctx, NTOK), np.int64)
    for i in range(n):
        counts[ctx[i], sym[i]] += 1
    levels = np.zeros((nctx, NTOK), np.uint8)
    for c in range(nctx):
        for s in range(NTOK):
            k = counts[c, s]
            if k > 0:
                lv = 1 + int(np.floor(2.0 * np.log2(np.float64(k)) + 0.5))
                levels[c, s] = min(lv, MAX_LEVEL)
    return levels


@njit(cache=True)
def freqs_of(levels):
    freq = np.zeros(levels.shape, np.int32)
    _normalise(levels, freq)
    return freq


def build_freqs(sym, ctx, n, nctx):
    """(levels, freq) for ``sym[:n]`` under ``ctx``."""
    levels = build_levels(sym, ctx, n, nctx)
    return levels, freqs_of(levels)


@njit(cache=True)
def write_levels(levels, out, pos):
    """Per context: the used length m, then m level bytes."""
    nctx = levels.shape[0]
    for c in range(nctx):
        m = 0
        for s in range(NTOK):
            if levels[c, s] != 0:
                m = s + 1
        out[pos] = m
        pos += 1
        for s in range(m):
            out[pos] = levels[c, s]
            pos += 1
    return pos


@njit(cache=True)
def read_freqs(buf, pos, end, nctx):
    """Inverse of :func:`write_levels`; returns (freq, cum, lut, position, ok)."""
    levels = np.zeros((nctx, NTOK), np.uint8)
    freq = np.zeros((nctx, NTOK), np.int32)
    cum = np.zeros((nctx, NTOK + 1), np.int32)
    lut = np.empty((nctx, SCALE), np.uint8)  # filled below (a context with no tokens: zeros)
    for c in range(nctx):
        if pos >= end:
            return freq, cum, lut, pos, False
        m = buf[pos]
        pos += 1
        if m > NTOK or pos + m > end:
            return freq, cum, lut, pos, False
        for s in range(m):
            lv = buf[pos]
            pos += 1
            if lv > MAX_LEVEL:
                return freq, cum, lut, pos, False
            levels[c, s] = lv
    _normalise(levels, freq)
    for c in range(nctx):
        for s in range(NTOK):
            cum[c, s + 1] = cum[c, s] + freq[c, s]
        if cum[c, NTOK] == 0:
            lut[c, :] = 0
            continue
        for s in range(NTOK):
            lut[c, cum[c, s]:cum[c, s + 1]] = s  # a run per token (memset), not a store per slot
    return freq, cum, lut, pos, True


@njit(cache=True)
def cumulative(freq):
    nctx = freq.shape[0]
    cum = np.zeros((nctx, NTOK + 1), np.int32)
    for c in range(nctx):
        for s in range(NTOK):
            cum[c, s + 1] = cum[c, s] + freq[c, s]
    return cum


# -- rANS ---------------------------------------------------------------------------------------

@njit(cache=True)
def _enc_tables():
    """Per frequency ``f`` (1..SCALE), the encoder constants of ryg's ``rans_byte``
    (``RansEncSymbol``): a 32-bit reciprocal with its shift (``x // f`` becomes a multiply and a
    shift, exact for ``x < 2**31``) and the bias added to ``cum``."""
    rcp = np.zeros(SCALE + 1, np.int64)
    shift = np.zeros(SCALE + 1, np.int64)
    badj = np.zeros(SCALE + 1, np.int64)
    for f in range(1, SCALE + 1):
        if f < 2:
            rcp[f] = (np.int64(1) << 32) - 1
            shift[f] = 32
            badj[f] = SCALE - 1
        else:
            sh = 0
            while f > (np.int64(1) << sh):
                sh += 1
            rcp[f] = ((np.int64(1) << (sh + 31)) + f - 1) // f
            shift[f] = 32 + sh - 1
    return rcp, shift, badj


@njit(cache=True)
def rans_encode(sym, ctx, n, freq, cum, out):
    """Encode ``sym[:n]`` under their contexts into the end of ``out`` (at least ``2 n + 8``
    bytes); returns the start index of the stream (it runs to ``len(out)``). The state update
    ``x -> (x // f) * SCALE + x % f + cum`` is written as ``x + bias + q * (SCALE - f)`` with
    ``q = x // f`` by reciprocal: the same stream, a shorter dependency chain."""
    rcp, shift, badj = _enc_tables()
    x = np.int64(RANS_L)
    p = out.shape[0]
    for i in range(n - 1, -1, -1):
        c = ctx[i]
        s = sym[i]
        f = np.int64(freq[c, s])
        m = f << (SCALE_BITS + 7)  # x_max = ((RANS_L >> SCALE_BITS) << 8) * f
        # renormalise without a branch: 0, 1 or 2 bytes (x < 2**31, x_max >= 2**19); both
        # bytes are stored always, one not kept is overwritten by a later one
        out[p - 1] = x & 0xFF
        out[p - 2] = (x >> 8) & 0xFF
        nb = np.int64(x >= m) + np.int64(x >= (m << 8))
        p -= nb
        x >>= 8 * nb
        q = (x * rcp[f]) >> shift[f]
        x = x + cum[c, s] + badj[f] + q * (SCALE - f)
    for k in range(4):
        p -= 1
        out[p] = (x >> (8 * k)) & 0xFF
    return p


@njit(cache=True, inline="always")
def rans_init(buf, pos, end, st):
    """``st`` = [state, position, error]."""
    x = np.int64(0)
    for _ in range(4):
        b = 0
        if pos < end:
            b = buf[pos]
        else:
            st[2] = 1
        x = (x << 8) | b
        pos += 1
    st[0] = x
    st[1] = pos


@njit(cache=True, inline="always")
def rans_get(buf, end, st, c, freq, cum, lut):
    x = st[0]
    slot = x & (SCALE - 1)
    s = np.int64(lut[c, slot])
    f = freq[c, s]
    if f == 0:  # a token the table never had: only corrupt input gets here
        st[2] = 1
        f = 1
    x = f * (x >> SCALE_BITS) + slot - cum[c, s]
    pos = st[1]
    while x < RANS_L:
        b = 0
        if pos < end:
            b = buf[pos]
        else:
            st[2] = 1
            x = RANS_L  # stop: corrupt or truncated
        x = (x << 8) | b
        pos += 1
    st[0] = x
    st[1] = pos
    return s


@njit(cache=True, inline="always")
def rans_done(st, end):
    """True when the stream ended exactly as the encoder started it."""
    return st[2] == 0 and st[0] == RANS_L and st[1] == end


# -- the same coder with its state in local variables (the hot loops: no array round trips) ------

@njit(cache=True, inline="always")
def put_bits(buf, acc, cnt, pos, nbits, value):
    """Append ``nbits`` (<= 62) of ``value`` (LSB first, the same stream as :func:`bits_put`);
    ``cnt < 32`` on entry and exit. Returns the new (acc, cnt, pos)."""
    while nbits > 0:
        take = min(nbits, 32)
        acc |= (value & ((np.int64(1) << take) - 1)) << cnt
        cnt += take
        if cnt >= 32:
            buf[pos] = acc & 0xFF
            buf[pos + 1] = (acc >> 8) & 0xFF
            buf[pos + 2] = (acc >> 16) & 0xFF
            buf[pos + 3] = (acc >> 24) & 0xFF
            pos += 4
            acc >>= 32
            cnt -= 32
        value >>= take
        nbits -= take
    return acc, cnt, pos


@njit(cache=True, inline="always")
def put_flush(buf, acc, cnt, pos):
    while cnt > 0:
        buf[pos] = acc & 0xFF
        pos += 1
        acc >>= 8
        cnt -= 8
    return pos


@njit(cache=True, inline="always")
def put_token(u, c, k, sym, ctx, bbuf, acc, cnt, pos):
    """Token of ``u`` under context ``c`` at ``sym[k]``, extra bits to ``bbuf``. Branch-free in
    the common case (``cnt < 8`` on entry and exit, up to 32 extra bits): the five bytes that
    may hold bits are always stored, the position advances by the whole bytes written."""
    tok, nb, ex = token_of(u)
    sym[k] = tok
    ctx[k] = c
    if nb > 32:  # rare: huge values
        acc, cnt, pos = put_bits(bbuf, acc, cnt, pos, nb, ex)
        while cnt >= 8:
            bbuf[pos] = acc & 0xFF
            pos += 1
            acc >>= 8
            cnt -= 8
        return tok, acc, cnt, pos
    acc |= ex << cnt
    cnt += nb
    bbuf[pos] = acc & 0xFF
    bbuf[pos + 1] = (acc >> 8) & 0xFF
    bbuf[pos + 2] = (acc >> 16) & 0xFF
    bbuf[pos + 3] = (acc >> 24) & 0xFF
    bbuf[pos + 4] = (acc >> 32) & 0xFF
    whole = cnt >> 3
    pos += whole
    acc >>= 8 * whole
    cnt &= 7
    return tok, acc, cnt, pos


@njit(cache=True, inline="always")
def get_token(c, rbuf, rend, freq, cum, lut, bbuf, bend, x, rp, acc, cnt, bp, err):
    """Decode one value under context ``c``: returns (token, value, x, rp, acc, cnt, bp, err).
    ``bp`` is the bit position in ``bbuf`` (``acc``/``cnt`` are unused, kept for the call
    shape); ``bbuf`` must be padded with 8 bytes past ``bend`` (:func:`padded`)."""
    slot = x & (SCALE - 1)
    s = np.int64(lut[c, slot])
    f = np.int64(freq[c, s])
    if f == 0:
        err = 1
        f = 1
    x = f * (x >> SCALE_BITS) + slot - cum[c, s]
    while x < RANS_L:
        b = np.int64(0)
        if rp < rend:
            b = np.int64(rbuf[rp])
        else:
            err = 1
            x = RANS_L
        x = (x << 8) | b
        rp += 1
    nb = 0 if s < 16 else 3 + (s - 16) // 2
    v = s
    if nb:
        # branch-free read at bit position ``bp`` (``bbuf`` carries 8 bytes of padding past
        # ``bend``): the 8 bytes from bp // 8, shifted; a second read for more than 32 bits
        ex = np.int64(0)
        shift = 0
        left = nb
        while left > 0:
            take = min(left, 32)
            i = bp >> 3
            w = (np.int64(bbuf[i]) | (np.int64(bbuf[i + 1]) << 8) | (np.int64(bbuf[i + 2]) << 16)
                 | (np.int64(bbuf[i + 3]) << 24) | (np.int64(bbuf[i + 4]) << 32))
            ex |= ((w >> (bp & 7)) & ((np.int64(1) << take) - 1)) << shift
            bp += take
            shift += take
            left -= take
        if bp > 8 * bend:
            err = 1
            bp = 8 * bend
        v = ((np.int64(2) | ((s - 16) & 1)) << nb) | ex
    return s, v, x, rp, acc, cnt, bp, err


def padded(bits: np.ndarray) -> np.ndarray:
    """The bit stream with the 8 bytes of padding :func:`get_token` reads past its end."""
    out = np.zeros(len(bits) + 8, np.uint8)
    out[: len(bits)] = bits
    return out


@njit(cache=True, inline="always")
def rans_start(buf, end):
    """(x, position, err) after reading the 4 state bytes."""
    x = np.int64(0)
    err = 0
    for i in range(4):
        b = np.int64(0)
        if i < end:
            b = np.int64(buf[i])
        else:
            err = 1
        x = (x << 8) | b
    return x, 4, err
