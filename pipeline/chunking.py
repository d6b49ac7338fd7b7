"""Chunking: points of each stream cut by geographic tile and by time window.

**Tiling: slippy-map z/x/y (Web Mercator, as OpenStreetMap and every web map use).** Chosen over
H3 because the keys are exact integers from a closed formula (no library, no approximation),
tiles nest exactly (a z17 tile is four z18 tiles), any map tool shows them, and
``ChunkingConfig.zoom`` sets the size: a z17 tile is 40075 km / 2**17 = 306 m wide at the
equator (cos(latitude) times that elsewhere: about 190 m in Munich). H3's equal-area hexagons
would only matter for statistics across latitudes, which chunks do not need.

**Time windows** are ``floor(t / window_s)`` on absolute UTC seconds, never relative to a run's
start, so the same point lands in the same chunk on every run and on every device.

**Closing.** Per stream, the *watermark* is the latest point time seen. A window closes, and its
chunks are emitted, once the watermark passes ``window end + lateness_s``. A point whose window
has already closed (it came more than ``lateness_s`` late) is dropped and counted in
:attr:`ChunkerStats.late`. Closing is decided point by point in feed order (a running maximum),
so the chunks do not depend on how the points were batched. A stream's chunks come out ordered
by window, then tile x, then tile y (how streams interleave follows the feed calls); :meth:`Chunker.flush` closes everything still open. A chunk holds
one stream only.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from pipeline.errors import ChunkingError

MAX_LAT = 85.0511287798066  # Web Mercator's limit: atan(sinh(pi))


class ChunkingConfig(BaseModel):
    """The chunking section of the agent configuration (``chunking:``)."""

    model_config = ConfigDict(extra="forbid")

    zoom: int = Field(17, ge=0, le=24, description="slippy-map zoom of the tiles (z17: about 300 m at the equator)")
    window_s: float = Field(10.0, gt=0.0, le=86400.0, description="time window, seconds of absolute UTC time")
    lateness_s: float = Field(1.0, ge=0.0, description="how long a window stays open after its end")


def tile_xy(lat: np.ndarray, lon: np.ndarray, zoom: int) -> tuple[np.ndarray, np.ndarray]:
    """Slippy-map tile x, y (int64) of WGS84 degrees at ``zoom`` (latitude clamped to Web
    Mercator's +-85.0511 degrees, longitude wrapped to [-180, 180)).

    Reproducible to the bit on every platform: x uses only IEEE-754 ``+ - * /`` and ``fmod``
    (correctly rounded everywhere). y needs ``tan``/``asinh``, whose last bit differs between
    libms (glibc, musl, numpy's SIMD loops); a point whose float Mercator row lies within
    ``_NEAR_EDGE`` of a tile edge (far more than any libm error, far less than a point's noise)
    is placed by an exact comparison in 50-digit decimal arithmetic instead (:func:`_north_of_edge`).
    A point exactly on an edge belongs to the tile south of it (``floor``)."""
    lat = np.clip(np.asarray(lat, dtype=np.float64), -MAX_LAT, MAX_LAT)
    lon = (np.asarray(lon, dtype=np.float64) + 180.0) % 360.0 - 180.0
    n = 1 << zoom
    x = np.floor((lon + 180.0) / 360.0 * n)
    rad = np.radians(lat)
    fy = (1.0 - np.arcsinh(np.tan(rad)) / math.pi) / 2.0 * n
    y = np.floor(fy)
    edge = np.rint(fy)
    near = np.flatnonzero((np.abs(fy - edge) < _NEAR_EDGE) & (edge > 0) & (edge < n))
    for i in near:
        k = int(edge.flat[i])
        y.flat[i] = k - 1 if _north_of_edge(float(lat.flat[i]), k, zoom) else k
    return np.clip(x, 0, n - 1).astype(np.int64), np.clip(y, 0, n - 1).astype(np.int64)


#: tile rows (fraction of a tile) around an edge where float tan/asinh are not trusted
_NEAR_EDGE = 1e-6
_PI50 = Decimal("3.14159265358979323846264338327950288419716939937511")


def _north_of_edge(lat_deg: float, k: int, zoom: int) -> bool:
    """Whether ``lat_deg`` (the exact binary value) lies strictly north of the edge between tile
    rows ``k - 1`` and ``k``, i.e. ``tan(lat) > sinh(pi * (1 - 2k / 2**zoom))``, decided in
    50-digit decimal arithmetic (libmpdec: the same result on every platform)."""
    with localcontext() as ctx:
        ctx.prec = 50
        return _dtan(Decimal(lat_deg) * _PI50 / 180) > _dsinh(_PI50 * (1 - Decimal(2 * k) / (1 << zoom)))


def _dsinh(x: Decimal) -> Decimal:
    e = x.exp()  # correctly rounded
    return (e - 1 / e) / 2


def _dtan(x: Decimal) -> Decimal:
    """tan by the sin and cos Taylor series (|x| < 1.5 rad here: they converge quickly)."""
    x2, term, s, c, i = x * x, x, Decimal(0), Decimal(0), 1
    while True:  # sin
        s2 = s + term
        if s2 == s:
            break
        s, term, i = s2, -term * x2 / ((i + 1) * (i + 2)), i + 2
    term, i = Decimal(1), 0
    while True:  # cos
        c2 = c + term
        if c2 == c:
            break
        c, term, i = c2, -term * x2 / ((i + 1) * (i + 2)), i + 2
    return s / c


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    """(west, south, east, north) degrees of tile z/x/y."""
    n = 1 << z

    def lat(yy: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * yy / n))))

    return x / n * 360.0 - 180.0, lat(y + 1), (x + 1) / n * 360.0 - 180.0, lat(y)


def window_index(t: np.ndarray, window_s: float) -> np.ndarray:
    """``floor(t / window_s)`` as int64 (t: absolute UTC seconds)."""
    w = np.floor(np.asarray(t, dtype=np.float64) / window_s)
    return np.clip(w, -(2.0**62), 2.0**62).astype(np.int64)  # -inf (nothing seen yet) stays in range


@dataclass
class Chunk:
    """One closed chunk: the points of one stream in one tile and one time window."""

    stream: str
    z: int
    x: int
    y: int
    window_start: float  # UTC seconds
    window_end: float
    indices: np.ndarray  # int64: the points' positions in the stream's feed order
    payload: dict[str, np.ndarray]  # the fed payload rows of these points (same order)
    bbox: tuple[float, float, float, float]  # (min lat, min lon, max lat, max lon) of the points
    t_min: float
    t_max: float

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def tile(self) -> str:
        return f"{self.z}/{self.x}/{self.y}"


@dataclass
class ChunkerStats:
    points: int = 0  # points fed
    late: int = 0  # dropped: their window had closed
    chunks: int = 0  # chunks emitted


@dataclass
class _Open:
    idx: list[np.ndarray] = field(default_factory=list)
    lat: list[np.ndarray] = field(default_factory=list)
    lon: list[np.ndarray] = field(default_factory=list)
    t: list[np.ndarray] = field(default_factory=list)
    payload: list[dict[str, np.ndarray]] = field(default_factory=list)


@dataclass
class _Stream:
    watermark: float = -math.inf
    closed_below: int = -(1 << 62)  # windows below this index are closed
    fed: int = 0
    open: dict[tuple[int, int, int], _Open] = field(default_factory=dict)  # (window, x, y)


class Chunker:
    """Feed points per stream with :meth:`feed`; take closed chunks from its return value and
    from :meth:`flush`. Pure logic: no clocks, no I/O."""

    def __init__(self, zoom: int = 17, window_s: float = 10.0, lateness_s: float = 1.0) -> None:
        cfg = ChunkingConfig(zoom=zoom, window_s=window_s, lateness_s=lateness_s)
        self.zoom, self.window_s, self.lateness_s = cfg.zoom, cfg.window_s, cfg.lateness_s
        self.stats = ChunkerStats()
        self._streams: dict[str, _Stream] = {}

    @classmethod
    def from_config(cls, cfg: ChunkingConfig) -> Chunker:
        return cls(cfg.zoom, cfg.window_s, cfg.lateness_s)

    def feed(self, stream: str, times: np.ndarray, lat: np.ndarray, lon: np.ndarray,
             payload: Mapping[str, np.ndarray] | np.ndarray | None = None) -> list[Chunk]:
        """Add points (absolute UTC ``times`` in seconds, WGS84 degrees); ``payload``: arrays
        (or one array) whose first axis is the points. Returns the chunks this closes."""
        t = np.asarray(times, dtype=np.float64).reshape(-1)
        la = np.asarray(lat, dtype=np.float64).reshape(-1)
        lo = np.asarray(lon, dtype=np.float64).reshape(-1)
        n = len(t)
        pay = self._payload(payload, n)
        if len(la) != n or len(lo) != n:
            raise ChunkingError(f"times, lat and lon differ in length ({n}, {len(la)}, {len(lo)})")
        if n and not (np.isfinite(t).all() and np.isfinite(la).all() and np.isfinite(lo).all()):
            raise ChunkingError("times, lat and lon must be finite")
        st = self._streams.setdefault(stream, _Stream())
        self.stats.points += n
        idx = np.arange(st.fed, st.fed + n, dtype=np.int64)
        st.fed += n
        if not n:
            return []
        win = window_index(t, self.window_s)
        # watermark before each point (running max, continuing the stream's)
        before = np.maximum.accumulate(np.concatenate(([st.watermark], t[:-1])))
        # window index each point's arrival has closed (windows below it are closed)
        closed = np.maximum(window_index(before - self.lateness_s, self.window_s), st.closed_below)
        closed = np.maximum.accumulate(closed)
        late = win < closed
        if late.any():
            self.stats.late += int(late.sum())
        keep = ~late
        x, y = tile_xy(la, lo, self.zoom)
        order = np.lexsort((y[keep], x[keep], win[keep]))
        kept = np.flatnonzero(keep)[order]
        if len(kept):
            kw, kx, ky = win[kept], x[kept], y[kept]
            cuts = np.flatnonzero((np.diff(kw) != 0) | (np.diff(kx) != 0) | (np.diff(ky) != 0)) + 1
            for a, b in zip(np.concatenate(([0], cuts)).tolist(), np.concatenate((cuts, [len(kept)])).tolist()):
                sel = np.sort(kept[a:b])  # feed order within the chunk
                o = st.open.setdefault((int(kw[a]), int(kx[a]), int(ky[a])), _Open())
                o.idx.append(idx[sel])
                o.lat.append(la[sel])
                o.lon.append(lo[sel])
                o.t.append(t[sel])
                o.payload.append({k: v[sel] for k, v in pay.items()})
        st.watermark = max(st.watermark, float(t.max()))
        st.closed_below = max(int(closed[-1]), int(window_index(st.watermark - self.lateness_s, self.window_s)))
        return self._close(stream, st, st.closed_below)

    def flush(self, stream: str | None = None) -> list[Chunk]:
        """Close every open chunk (of ``stream``, or of all streams in name order)."""
        out: list[Chunk] = []
        for name in sorted(self._streams) if stream is None else [stream]:
            st = self._streams.get(name)
            if st is not None:
                out.extend(self._close(name, st, 1 << 62))
        return out

    # -- internals ----------------------------------------------------------------------------

    @staticmethod
    def _payload(payload: Mapping[str, np.ndarray] | np.ndarray | None, n: int) -> dict[str, np.ndarray]:
        if payload is None:
            return {}
        items = {"points": payload} if isinstance(payload, np.ndarray) else dict(payload)
        out = {}
        for k, v in items.items():
            a = np.asarray(v)
            if a.ndim == 0 or a.shape[0] != n:
                raise ChunkingError(f"payload {k!r} has {a.shape[0] if a.ndim else 0} rows, expected {n}")
            out[k] = a
        return out

    def _close(self, stream: str, st: _Stream, below: int) -> list[Chunk]:
        keys = sorted(k for k in st.open if k[0] < below)
        out = []
        for key in keys:
            o = st.open.pop(key)
            w, x, y = key
            la, lo, t = np.concatenate(o.lat), np.concatenate(o.lon), np.concatenate(o.t)
            pay = {k: np.concatenate([p[k] for p in o.payload]) for k in o.payload[0]} if o.payload else {}
            out.append(Chunk(stream, self.zoom, x, y, w * self.window_s, (w + 1) * self.window_s,
                             np.concatenate(o.idx), pay,
                             (float(la.min()), float(lo.min()), float(la.max()), float(lo.max())),
                             float(t.min()), float(t.max())))
        self.stats.chunks += len(out)
        return out
