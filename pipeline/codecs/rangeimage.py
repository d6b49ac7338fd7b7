"""Lossless, sensor-native codec: LiDAR packets as range images of their raw fields.

What goes in is the packet stream itself (every UDP payload with its capture time and port);
what comes out is the same stream, **byte for byte** (Velodyne and Ouster alike): every byte of
a data packet belongs to exactly one field of its :class:`PacketLayout`, every field is coded
losslessly, and packets that do not fit the layout (Velodyne position packets, Ouster IMU
packets, anything of another size) are kept verbatim (zstd) at their place in the stream.
Capture timestamps (float64) and ports come back bit-exact too. Nothing is dropped or
recomputed: the Ouster CRC64 footer is coded as data like any other field.

The returns are coded as range images: row = channel (Velodyne: the 32 slots of a block;
Ouster: the beam), column = firing (Velodyne block) or measurement (Ouster column, staggered as
the sensor sends it), with range in sensor units (Velodyne 2 mm, or 4 mm for models that say
so; Ouster mm, 8 mm in low-bandwidth profiles), reflectivity/signal/near-IR beside it. See
:mod:`pipeline.codecs._rkernels` for the predictors and contexts, :mod:`pipeline.codecs._entropy`
for the coder. :func:`raw_fields` gives the decoded raw fields (range image, reflectivity,
azimuth or timestamp per column, ...) as arrays without going through a LiDAR decoder.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.codecs import _container as C
from pipeline.codecs import _entropy as E
from pipeline.codecs import _rkernels as K
from pipeline.errors import CodecError
from sensors.packets import Packet

NAME = "rangeimage"
_LAYOUT = struct.Struct("<16sIIIIIIIIIIII")
FLAG_TIMES = 1  # capture times and ports stored


@dataclass(frozen=True)
class PacketLayout:
    """Where each field of a data packet sits (see :mod:`pipeline.codecs._rkernels`).

    ``pkt_words`` / ``col_words``: (k, 2) int32 rows (offset, size); ``pix_words``: (k, 4) rows
    (offset within the pixel, size, kind: 1 range / 0 other, index of the pixel's range word or
    -1); ``pix_names``/``col_names``/``pkt_names`` name them for :func:`raw_fields`.
    """

    name: str
    size: int
    pkt_words: np.ndarray
    n_cols: int
    col_off0: int
    col_stride: int
    col_words: np.ndarray
    n_pix: int
    pix_off0: int
    pix_stride: int
    pix_words: np.ndarray
    pred_row: np.ndarray  # (n_pix,) row whose last value predicts this row
    up_row: np.ndarray  # (n_pix,) row giving the "above" context (-1: none)
    pkt_names: tuple[str, ...] = ()
    col_names: tuple[str, ...] = ()
    pix_names: tuple[str, ...] = ()
    pix_offsets: np.ndarray | None = None  # (n_pix,) offsets in the column; default pix_off0 + p * pix_stride

    def __post_init__(self) -> None:
        if self.pix_offsets is None:
            object.__setattr__(self, "pix_offsets",
                               self.pix_off0 + self.pix_stride * np.arange(self.n_pix, dtype=np.int64))

    def check(self) -> None:
        """Every byte of the packet in exactly one word, sizes 1-4: the kernels rely on it."""
        cover = np.zeros(self.size, np.int64)
        ok = 0 < self.size <= 1 << 16 and 0 <= self.n_cols <= 4096 and 0 <= self.n_pix <= 4096

        def mark(off: int, size: int) -> bool:
            if not (1 <= size <= 4 and 0 <= off and off + size <= self.size):
                return False
            cover[off : off + size] += 1
            return True

        for off, size in self.pkt_words[:, :2].tolist():
            ok = ok and mark(off, size)
        for c in range(self.n_cols if ok else 0):
            co = self.col_off0 + c * self.col_stride
            for off, size in self.col_words[:, :2].tolist():
                ok = ok and mark(co + off, size)
            for p in range(self.n_pix):
                po = co + int(self.pix_offsets[p])
                for off, size in self.pix_words[:, :2].tolist():
                    ok = ok and mark(po + off, size)
        nx = len(self.pix_words)
        if ok and nx:
            kinds, gates = self.pix_words[:, 2], self.pix_words[:, 3]
            ok = bool(((kinds == 0) | (kinds == 1)).all() and ((gates >= -1) & (gates < np.arange(nx))).all())
        rows_ok = (self.pred_row.shape == (self.n_pix,) and self.up_row.shape == (self.n_pix,)
                   and self.pix_offsets.shape == (self.n_pix,)
                   and bool(((self.pred_row >= 0) & (self.pred_row < self.n_pix)).all())
                   and bool(((self.up_row >= -1) & (self.up_row < self.n_pix)).all()))
        if not ok or not rows_ok or not (cover == 1).all():
            raise CodecError(f"{NAME}: packet layout {self.name!r} does not cover each byte exactly once", NAME)

    def to_bytes(self) -> bytes:
        head = _LAYOUT.pack(self.name.encode()[:16], self.size, len(self.pkt_words), self.n_cols, self.col_off0,
                            self.col_stride, len(self.col_words), self.n_pix, self.pix_off0, self.pix_stride,
                            len(self.pix_words), 0, 0)
        arrays = [np.ascontiguousarray(a, np.int32).tobytes() for a in (self.pkt_words, self.col_words,
                                                                         self.pix_words, self.pred_row, self.up_row,
                                                                         self.pix_offsets)]
        names = "\n".join(["|".join(self.pkt_names), "|".join(self.col_names), "|".join(self.pix_names)])
        return head + b"".join(arrays) + names.encode()

    @classmethod
    def from_bytes(cls, b: bytes | memoryview) -> PacketLayout:
        b = bytes(b)
        if len(b) < _LAYOUT.size:
            raise CodecError(f"{NAME}: layout section too short", NAME)
        name, size, npk, ncols, co0, cst, ncw, npix, po0, pst, nxw, _, _ = _LAYOUT.unpack_from(b)
        if max(npk, ncw, nxw, npix) > 4096:
            raise CodecError(f"{NAME}: layout section is implausible", NAME)
        need = _LAYOUT.size + 4 * (2 * npk + 2 * ncw + 4 * nxw + 3 * npix)
        if len(b) < need:
            raise CodecError(f"{NAME}: layout section too short", NAME)
        a = np.frombuffer(b, np.int32, 2 * npk + 2 * ncw + 4 * nxw + 3 * npix, _LAYOUT.size).astype(np.int64)
        rows = a[2 * npk + 2 * ncw + 4 * nxw :]
        try:
            pn, cn, xn = b[need:].decode().split("\n")
        except (UnicodeDecodeError, ValueError):
            raise CodecError(f"{NAME}: bad layout names", NAME) from None
        split = (lambda s: tuple(s.split("|")) if s else ())
        layout = cls(name.rstrip(b"\0").decode(errors="replace"), size, a[: 2 * npk].reshape(npk, 2), ncols, co0,
                     cst, a[2 * npk : 2 * npk + 2 * ncw].reshape(ncw, 2), npix, po0, pst,
                     a[2 * npk + 2 * ncw : 2 * npk + 2 * ncw + 4 * nxw].reshape(nxw, 4), rows[:npix].copy(),
                     rows[npix : 2 * npix].copy(), split(pn), split(cn), split(xn), rows[2 * npix :].copy())
        layout.check()
        return layout


def _words(rows: list[tuple[int, ...]], width: int) -> np.ndarray:
    return np.asarray(rows, dtype=np.int64).reshape(len(rows), width)


def _up_rows(elevation: np.ndarray, laser: np.ndarray) -> np.ndarray:
    """For each row, the earlier row (another laser) of nearest elevation, or -1."""
    up = np.full(len(laser), -1, np.int64)
    for p in range(1, len(laser)):
        cand = [q for q in range(p) if laser[q] != laser[p]]
        if cand:
            up[p] = min(cand, key=lambda q: (abs(elevation[laser[q]] - elevation[laser[p]]), -q))
    return up


def velodyne_layout(model: str | None = None, dual: bool = False) -> PacketLayout:
    """Velodyne data packets (1206 bytes, every model): 12 blocks of flag, azimuth and 32
    (distance, reflectivity); timestamp, return mode and product id at the end.

    ``model`` (``VLP-16``, ``HDL-32E``, ... or ``None``) and ``dual`` (return mode 0x39) only
    tune the predictors: which slot predicts which, elevation neighbours, and in dual mode a
    column is a block *pair* (last return, then strongest) so each return of a firing predicts
    the other. Any Velodyne packet codes losslessly with any of these layouts.
    """
    from sensors.lidar.velodyne._models import LAYOUT_16, LAYOUT_32, model_by_name

    m = model_by_name(model) if model else None
    if model and m is None:
        raise CodecError(f"{NAME}: unknown Velodyne model {model!r}", NAME)
    pred = np.arange(32, dtype=np.int64)
    up = np.arange(32, dtype=np.int64) - 1
    if m is not None and m.layout == LAYOUT_16:
        # two firings of the same 16 lasers per block: each predicts from the other half
        pred = np.concatenate([np.arange(16, 32), np.arange(0, 16)]).astype(np.int64)
        up = _up_rows(np.asarray(m.elevation_deg), np.arange(32) % 16)
    elif m is not None and m.layout == LAYOUT_32:
        up = _up_rows(np.asarray(m.elevation_deg), np.arange(32))
    name = f"velodyne-{m.name if m else 'any'}{'-dual' if dual else ''}"
    pkt = _words([(1200, 4), (1204, 1), (1205, 1)], 2)
    pix_words = _words([(0, 2, 1, -1), (2, 1, 0, 0)], 4)
    names = (("timestamp_us", "return_mode", "product_id"), ("flag", "azimuth"), ("distance", "reflectivity"))
    if not dual:
        layout = PacketLayout(name[:16], 1206, pkt, 12, 0, 100, _words([(0, 2), (2, 2)], 2), 32, 4, 3, pix_words,
                              pred, up, *names)
    else:
        offsets = np.concatenate([4 + 3 * np.arange(32), 104 + 3 * np.arange(32)]).astype(np.int64)
        layout = PacketLayout(
            name[:16], 1206, pkt, 6, 0, 200, _words([(0, 2), (2, 2), (100, 2), (102, 2)], 2), 64, 4, 3, pix_words,
            np.concatenate([pred, np.arange(32)]).astype(np.int64),  # strongest from last, same firing
            np.concatenate([up, np.where(up >= 0, up + 32, -1)]).astype(np.int64),
            names[0], ("flag", "azimuth", "flag2", "azimuth2"), names[2], offsets)
    layout.check()
    return layout


# Ouster channel blocks as words (offset, size, kind, range word): every byte once.
_OUSTER_PIXELS: dict[str, tuple[tuple[str, int, int, int, int], ...]] = {
    "LEGACY": (("range", 0, 4, 1, -1), ("reflectivity", 4, 2, 0, 0), ("signal", 6, 2, 0, 0),
               ("nir", 8, 2, 0, 0), ("unused", 10, 2, 0, 0)),
    "RNG19_RFL8_SIG16_NIR16": (("range", 0, 4, 1, -1), ("reflectivity", 4, 1, 0, 0), ("unused", 5, 1, 0, 0),
                               ("signal", 6, 2, 0, 0), ("nir", 8, 2, 0, 0), ("unused2", 10, 2, 0, 0)),
    "RNG19_RFL8_SIG16_NIR16_DUAL": (("range", 0, 3, 1, -1), ("reflectivity", 3, 1, 0, 0), ("range2", 4, 3, 1, -1),
                                    ("reflectivity2", 7, 1, 0, 2), ("signal", 8, 2, 0, 0), ("signal2", 10, 2, 0, 2),
                                    ("nir", 12, 2, 0, 0), ("unused", 14, 2, 0, 0)),
    "RNG15_RFL8_NIR8": (("range", 0, 2, 1, -1), ("reflectivity", 2, 1, 0, 0), ("nir", 3, 1, 0, 0)),
    "RNG15_RFL8_NIR8_DUAL": (("range", 0, 2, 1, -1), ("reflectivity", 2, 1, 0, 0), ("nir", 3, 1, 0, 0),
                             ("range2", 4, 2, 1, -1), ("reflectivity2", 6, 1, 0, 3), ("unused", 7, 1, 0, 3)),
    "FIVE_WORD_PIXEL": (("range", 0, 3, 1, -1), ("reflectivity", 3, 1, 0, 0), ("range2", 4, 3, 1, -1),
                        ("reflectivity2", 7, 1, 0, 2), ("signal", 8, 2, 0, 0), ("signal2", 10, 2, 0, 2),
                        ("nir", 12, 2, 0, 0), ("unused", 14, 2, 0, 0), ("unused2", 16, 4, 0, 0)),
}


def ouster_layout(meta: str | Path | Mapping[str, Any]) -> PacketLayout:
    """Ouster lidar packets of the profile, beams and columns per packet the metadata gives."""
    from sensors.errors import SensorError
    from sensors.lidar.ouster._metadata import load_metadata
    from sensors.lidar.ouster._profiles import LIDAR_PROFILES

    try:
        m = load_metadata(meta)
    except SensorError as err:
        raise CodecError(f"{NAME}: {err}", NAME) from err
    prof = LIDAR_PROFILES.get(m.udp_profile_lidar)
    pix = _OUSTER_PIXELS.get(m.udp_profile_lidar)
    if prof is None or pix is None:
        raise CodecError(f"{NAME}: Ouster profile {m.udp_profile_lidar} is not supported", NAME)
    h, cpp = m.pixels_per_column, m.columns_per_packet
    size = prof.packet_bytes(h, cpp)
    colb = prof.column_bytes(h)
    if prof.legacy:
        pkt: list[tuple[int, int]] = []
        pkt_names: tuple[str, ...] = ()
        col = [(0, 4), (4, 4), (8, 2), (10, 2), (12, 4), (colb - 4, 4)]
        col_names = ("timestamp_lo", "timestamp_hi", "measurement_id", "frame_id", "encoder", "status")
    else:
        pkt = [(0, 2), (2, 2), (4, 3), (7, 4), (11, 1)] + [(o, 4) for o in range(12, 32, 4)]
        pkt += [(size - 32 + o, 4) for o in range(0, 32, 4)]
        pkt_names = ("packet_type", "frame_id", "init_id", "sn_lo", "sn_hi") + tuple(
            f"header{i}" for i in range(5)) + tuple(f"footer{i}" for i in range(8))
        col = [(0, 4), (4, 4), (8, 2), (10, 2)]
        col_names = ("timestamp_lo", "timestamp_hi", "measurement_id", "status")
    layout = PacketLayout(
        f"ouster-{m.udp_profile_lidar}"[:16], size, _words(pkt, 2), cpp, prof.packet_header_bytes, colb,
        _words(col, 2), h, prof.column_header_bytes, prof.channel_bytes,
        _words([p[1:] for p in pix], 4), np.arange(h, dtype=np.int64), np.arange(h, dtype=np.int64) - 1, pkt_names, col_names, tuple(p[0] for p in pix))
    layout.check()
    return layout


@dataclass
class DecodedPackets:
    """What :meth:`RangeImageCodec.decode` returns: the packet stream, exactly as encoded."""

    packets: list[Packet]
    layout: PacketLayout
    data: np.ndarray  # (n data packets, size) uint8: the layout-sized packets, in order

    def __len__(self) -> int:
        return len(self.packets)


@dataclass
class RawFields:
    """Raw fields of layout-sized packets, in sensor units, as arrays.

    ``pixels[name]``: (n_pix, n_packets * n_cols) range images (row = channel/beam, column =
    firing/measurement in packet order); ``columns[name]``: (n_packets * n_cols,) per column
    (Velodyne ``azimuth`` in 0.01 degree, Ouster ``timestamp_lo``/``_hi``, ``measurement_id``);
    ``packet[name]``: (n_packets,) per packet (Velodyne ``timestamp_us``, ``return_mode``).
    With the dual-return Velodyne layout a column is a block pair: 64 rows (the last-return
    block's 32 slots, then the strongest's) and ``azimuth``/``azimuth2`` per pair.
    """

    pixels: dict[str, np.ndarray]
    columns: dict[str, np.ndarray]
    packet: dict[str, np.ndarray]


def raw_fields(data: np.ndarray, layout: PacketLayout) -> RawFields:
    """The raw per-return fields of ``data`` ((n, size) uint8 packets of ``layout``)."""
    data = np.asarray(data, np.uint8).reshape(-1, layout.size)
    n = len(data)

    def word(cols: np.ndarray, size: int) -> np.ndarray:
        v = np.zeros(cols.shape[:-1], np.uint32)
        for b in range(size):
            v |= cols[..., b].astype(np.uint32) << (8 * b)
        return v

    packet = {nm: word(data[:, o : o + s], s) for nm, (o, s) in zip(layout.pkt_names, layout.pkt_words.tolist())}
    cols = np.stack([data[:, layout.col_off0 + c * layout.col_stride : layout.col_off0 + (c + 1) * layout.col_stride]
                     for c in range(layout.n_cols)], axis=1) if layout.n_cols else np.zeros((n, 0, 0), np.uint8)
    columns = {nm: word(cols[:, :, o : o + s], s).reshape(-1)
               for nm, (o, s) in zip(layout.col_names, layout.col_words.tolist())}
    width = int((layout.pix_words[:, 0] + layout.pix_words[:, 1]).max()) if len(layout.pix_words) else 0
    grab = layout.pix_offsets[:, None] + np.arange(width)[None, :]
    pix = cols[:, :, grab]  # (n, n_cols, n_pix, width)
    pixels = {nm: word(pix[..., o : o + s], s).reshape(n * layout.n_cols, layout.n_pix).T.copy()
              for nm, (o, s, _, _) in zip(layout.pix_names, layout.pix_words.tolist())}
    return RawFields(pixels, columns, packet)


def layout_for(packets: Sequence[Packet | bytes], meta: str | Path | Mapping[str, Any] | None = None) -> PacketLayout:
    """The layout for a packet stream: Ouster when ``meta`` is given, else Velodyne with the
    model detected from the data packets (as the decoder does, packet rate included)."""
    if meta is not None:
        return ouster_layout(meta)
    from sensors.lidar.velodyne._decoder import detect_model

    data = [_bytes_of(p) for p in packets[:64]]
    data = [d for d in data if len(d) == 1206][:8]
    m = detect_model(data) if data else None
    return velodyne_layout(m.name if m is not None else None, dual=bool(data) and data[0][1204] == 0x39)


def _bytes_of(p: Packet | bytes | bytearray | memoryview) -> bytes:
    return p.data if isinstance(p, Packet) else bytes(p)


class RangeImageCodec:
    """Lossless packet-stream codec (see the module docstring)."""

    name = NAME

    def __init__(self, zstd_level: int = 3) -> None:
        self.zstd_level = zstd_level

    def encode(self, packets: Sequence[Packet | bytes], layout: PacketLayout) -> bytes:
        """Encode a packet stream. :class:`Packet` items keep their capture time and port;
        plain bytes decode as packets with time 0.0 and port 0."""
        import zstandard

        n = len(packets)
        if n >= 1 << 31:
            raise CodecError(f"{NAME}: too many packets in one blob ({n})", NAME)
        payloads = [_bytes_of(p) for p in packets]
        fits = np.fromiter((len(b) == layout.size for b in payloads), np.bool_, n)
        data_idx = np.flatnonzero(fits)
        other_idx = np.flatnonzero(~fits)
        joined = b"".join(payloads[i] for i in data_idx.tolist())
        data = np.frombuffer(joined, np.uint8).reshape(len(data_idx), layout.size)
        nd = len(data)
        per = len(layout.pkt_words) + layout.n_cols * (len(layout.col_words) + layout.n_pix * len(layout.pix_words))
        ntok = nd * per
        sym = np.empty(ntok + 1, np.uint8)
        ctx = np.empty(ntok + 1, np.int32)
        bbuf = np.empty(ntok * 8 + 16, np.uint8)
        bst = np.zeros(3, np.int64)
        k = K.encode_packets(data, layout.pkt_words, layout.n_cols, layout.col_off0, layout.col_stride,
                             layout.col_words, layout.n_pix, layout.pix_offsets, layout.pix_words,
                             layout.pred_row, layout.up_row, sym, ctx, bbuf, bst)
        blen = int(bst[2])
        nctx = K.n_contexts(len(layout.pkt_words), len(layout.col_words), len(layout.pix_words))
        levels, freq = E.build_freqs(sym, ctx, k, nctx)
        tab = np.empty(nctx * (E.NTOK + 1), np.uint8)
        tlen = E.write_levels(levels, tab, 0)
        out = np.empty(2 * k + 16, np.uint8)
        start = E.rans_encode(sym, ctx, k, freq, E.cumulative(freq), out)
        zc = zstandard.ZstdCompressor(level=self.zstd_level)
        flags = 0
        times = b""
        if n and isinstance(packets[0], Packet):
            flags |= FLAG_TIMES
            ts = np.fromiter((p.timestamp for p in packets), np.float64, n).view(np.int64)  # type: ignore[union-attr]
            ports = np.fromiter((p.port for p in packets), np.uint16, n)  # type: ignore[union-attr]
            dts = np.diff(ts, prepend=np.int64(0))  # bit patterns: exact, wrap-safe
            times = zc.compress(dts.tobytes() + ports.tobytes())
        other = b""
        if len(other_idx):
            lens = np.array([len(payloads[i]) for i in other_idx.tolist()], np.uint32)
            other = zc.compress(other_idx.astype(np.uint32).tobytes() + lens.tobytes()
                                + b"".join(payloads[i] for i in other_idx.tolist()))
        counts = struct.pack("<III", nd, len(other_idx), blen)
        payload = C.sections(counts, C.zpack(layout.to_bytes(), self.zstd_level), C.zpack(tab[:tlen], self.zstd_level), out[start:], bbuf[:blen], times, other)
        return C.pack(NAME, flags, n, nd, payload)

    def decode(self, blob: bytes | bytearray | memoryview) -> DecodedPackets:
        """The packet stream, byte-exact; :class:`CodecError` on any corruption."""

        head, payload = C.unpack(blob, NAME)
        s = C.Sections(payload, NAME)
        cb = s.take("counts")
        if len(cb) != 12:
            raise CodecError(f"{NAME}: bad counts section", NAME)
        nd, no, blen = struct.unpack("<III", cb)
        layout = PacketLayout.from_bytes(C.zunpack(s.take("layout"), 1 << 20, NAME, "layout"))
        tables_z = s.take("tables")
        stream = np.frombuffer(s.take("stream"), np.uint8)
        bits = np.frombuffer(s.take("bits"), np.uint8)
        times = s.take("times")
        other = s.take("other")
        s.end()
        n = head.count
        if (nd != head.aux or nd + no != n or len(bits) != blen or nd * layout.size > 1 << 31
                or no > 1 << 20):
            raise CodecError(f"{NAME}: inconsistent packet counts", NAME)
        nctx = K.n_contexts(len(layout.pkt_words), len(layout.col_words), len(layout.pix_words))
        per = len(layout.pkt_words) + layout.n_cols * (len(layout.col_words) + layout.n_pix * len(layout.pix_words))
        if nctx > E.MAX_CONTEXTS or nd * max(per, 1) > (len(stream) + 4) * E.MAX_TOKENS_PER_BYTE:
            raise CodecError(f"{NAME}: counts do not fit the coded stream", NAME)
        tables = np.frombuffer(C.zunpack(tables_z, nctx * (E.NTOK + 1), NAME, "tables"), np.uint8)
        freq, cum, lut, tend, ok = E.read_freqs(tables, 0, len(tables), nctx)
        if not ok or tend != len(tables):
            raise CodecError(f"{NAME}: bad frequency tables", NAME)
        data = np.zeros((nd, layout.size), np.uint8)
        err = K.decode_packets(nd, layout.size, layout.pkt_words, layout.n_cols, layout.col_off0, layout.col_stride,
                               layout.col_words, layout.n_pix, layout.pix_offsets, layout.pix_words,
                               layout.pred_row, layout.up_row, stream, len(stream), freq, cum, lut, E.padded(bits),
                               len(bits), data)
        if err:
            raise CodecError(f"{NAME}: corrupt entropy-coded data", NAME)
        def unz(b: memoryview, limit: int, what: str) -> bytes:
            return C.zunpack(b, limit, NAME, what)

        ts = np.zeros(n, np.float64)
        ports = np.zeros(n, np.int64)
        if head.flags & FLAG_TIMES:
            tb = unz(times, n * 10, "times")
            if len(tb) != n * 10:
                raise CodecError(f"{NAME}: times section has the wrong size", NAME)
            ts = np.cumsum(np.frombuffer(tb, np.int64, n)).view(np.float64)
            ports = np.frombuffer(tb, np.uint16, n, n * 8).astype(np.int64)
        others: dict[int, bytes] = {}
        if no:
            ob = unz(other, no * (8 + 65535), "other packets")
            if len(ob) < 8 * no:
                raise CodecError(f"{NAME}: other-packets section too short", NAME)
            idx = np.frombuffer(ob, np.uint32, no).tolist()
            lens = np.frombuffer(ob, np.uint32, no, 4 * no).tolist()
            if sum(lens) != len(ob) - 8 * no or any(i >= n for i in idx) or len(set(idx)) != no:
                raise CodecError(f"{NAME}: other-packets section is inconsistent", NAME)
            pos = 8 * no
            for i, ln in zip(idx, lens):
                others[i] = ob[pos : pos + ln]
                pos += ln
        out: list[Packet] = []
        d = 0
        tl, pl = ts.tolist(), ports.tolist()
        for i in range(n):
            if i in others:
                b = others[i]
            else:
                b = data[d].tobytes()
                d += 1
            out.append(Packet(tl[i], pl[i], b))
        return DecodedPackets(out, layout, data)
