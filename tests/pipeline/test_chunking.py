"""Chunker: tile and window keys, closing, lateness, batch-size independence."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.chunking import Chunker, ChunkingConfig, tile_bounds, tile_xy, window_index
from pipeline.errors import ChunkingError

T0 = 1_700_000_000.0  # absolute UTC seconds


def _drive(n=4000, seed=0, duration=45.0):
    rng = np.random.default_rng(seed)
    t = T0 + np.sort(rng.uniform(0, duration, n))
    lat = 48.137 + np.cumsum(rng.normal(0, 2e-5, n))
    lon = 11.575 + np.cumsum(rng.normal(0, 2e-5, n))
    return t, lat, lon


def _run(t, lat, lon, batch, streams=("lidar",), **kw):
    ch = Chunker(**kw)
    out = []
    for i in range(0, len(t), batch):
        for s in streams:
            out += ch.feed(s, t[i : i + batch], lat[i : i + batch], lon[i : i + batch],
                           {"row": np.arange(i, min(i + batch, len(t)))})
    return out + ch.flush(), ch


def _sig(chunks):
    """Per stream, in emission order (how streams interleave depends on how they were fed)."""
    chunks = sorted(chunks, key=lambda c: c.stream)  # stable: keeps each stream's order
    return [(c.stream, c.tile, c.window_start, c.window_end, c.indices.tolist(), c.payload["row"].tolist(), c.bbox)
            for c in chunks]


def test_known_tiles_and_bounds():
    # Marienplatz, Munich, at z17; and the tile's bounds contain it
    x, y = tile_xy(np.array([48.137393]), np.array([11.575448]), 17)
    assert (int(x[0]), int(y[0])) == (69750, 45487)
    w, s, e, n = tile_bounds(17, 69750, 45487)
    assert w <= 11.575448 < e and s <= 48.137393 < n
    assert math.isclose((e - w) * 111_320 * math.cos(math.radians(48.137)), 204, rel_tol=0.02)
    # corners of the world and the antimeridian
    x, y = tile_xy(np.array([89.9, -89.9, 0.0]), np.array([-180.0, 179.999999, 180.0]), 3)
    assert x.tolist() == [0, 7, 0] and y.tolist() == [0, 7, 4]


def test_windows_are_absolute_utc():
    assert window_index(np.array([T0 + 9.999, T0 + 10.0]), 10.0).tolist() == [T0 / 10, T0 / 10 + 1]
    a, _ = _run(*_drive(seed=1), batch=500, window_s=10.0)
    assert all(c.window_start % 10.0 == 0 and c.window_end - c.window_start == 10.0 for c in a)
    assert all(c.window_start <= c.t_min and c.t_max < c.window_end for c in a)


@pytest.mark.parametrize("batch", [1, 7, 333, 4000])
def test_same_chunks_whatever_the_batch_size(batch):
    t, lat, lon = _drive()
    ref, _ = _run(t, lat, lon, batch=len(t), streams=("lidar", "camera"))
    got, _ = _run(t, lat, lon, batch=batch, streams=("lidar", "camera"))
    assert _sig(got) == _sig(ref)


def test_every_point_once_and_chunks_never_mix_streams_tiles_or_windows():
    t, lat, lon = _drive(seed=2)
    chunks, ch = _run(t, lat, lon, batch=250, streams=("a", "b"), zoom=18, window_s=5.0)
    for s in ("a", "b"):
        idx = np.concatenate([c.indices for c in chunks if c.stream == s])
        assert sorted(idx.tolist()) == list(range(len(t)))
    for c in chunks:
        x, y = tile_xy(lat[c.indices], lon[c.indices], 18)
        assert set(zip(x.tolist(), y.tolist())) == {(c.x, c.y)}
        assert (window_index(t[c.indices], 5.0) == int(c.window_start // 5.0)).all()
        assert np.array_equal(c.payload["row"], c.indices)  # payload rows follow their points
        assert c.bbox == (lat[c.indices].min(), lon[c.indices].min(), lat[c.indices].max(), lon[c.indices].max())
    assert ch.stats.chunks == len(chunks) and ch.stats.late == 0


def test_windows_close_when_the_watermark_passes_end_plus_lateness():
    ch = Chunker(zoom=17, window_s=10.0, lateness_s=2.0)
    one = np.array([48.1]), np.array([11.5])
    assert ch.feed("s", [T0 + 1.0], *one) == []
    assert ch.feed("s", [T0 + 11.5], *one) == []  # window 0 still open (lateness)
    closed = ch.feed("s", [T0 + 12.0], *one)
    assert len(closed) == 1 and closed[0].window_start == T0 and closed[0].indices.tolist() == [0]
    # a point for the closed window is late: dropped and counted, not a second chunk
    assert ch.feed("s", [T0 + 5.0], *one) == []
    assert ch.stats.late == 1
    rest = ch.flush()
    assert [c.indices.tolist() for c in rest] == [[1, 2]]
    # a point within the lateness allowance still joins its window
    ch2 = Chunker(window_s=10.0, lateness_s=2.0)
    ch2.feed("s", [T0 + 10.5, T0 + 9.0], np.array([48.1, 48.1]), np.array([11.5, 11.5]))
    assert sorted(len(c) for c in ch2.flush()) == [1, 1] and ch2.stats.late == 0


def test_bad_input():
    ch = Chunker()
    with pytest.raises(ChunkingError, match="differ in length"):
        ch.feed("s", [T0, T0], [48.0], [11.0, 11.0])
    with pytest.raises(ChunkingError, match="finite"):
        ch.feed("s", [math.nan], [48.0], [11.0])
    with pytest.raises(ChunkingError, match="rows"):
        ch.feed("s", [T0], [48.0], [11.0], {"xyz": np.zeros((2, 3))})
    with pytest.raises(ValueError):
        Chunker(window_s=0.0)
    assert Chunker.from_config(ChunkingConfig(zoom=15)).zoom == 15


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 60), st.floats(-0.01, 0.01), st.floats(-0.01, 0.01)), max_size=60),
       st.integers(1, 10), st.floats(0, 3))
def test_batch_independence_with_out_of_order_times(points, batch, lateness):
    if not points:
        return
    arr = np.array(points)
    t, lat, lon = T0 + arr[:, 0], 48.0 + arr[:, 1], 11.0 + arr[:, 2]
    ref, rc = _run(t, lat, lon, batch=len(t), window_s=5.0, lateness_s=lateness, zoom=16)
    got, gc = _run(t, lat, lon, batch=batch, window_s=5.0, lateness_s=lateness, zoom=16)
    assert _sig(got) == _sig(ref) and rc.stats.late == gc.stats.late
    assert sum(len(c) for c in ref) + rc.stats.late == len(t)


def _exact_row(lat: float, zoom: int) -> int:
    """Reference tile row with no libm at all: bisection over the edges, each decided exactly."""
    from pipeline.chunking import _north_of_edge

    lo, hi = 0, (1 << zoom) - 1  # the row is the number of edges lat is not north of, minus 1
    while lo < hi:  # smallest row r whose south edge (r + 1) the point is north of
        mid = (lo + hi) // 2
        if _north_of_edge(lat, mid + 1, zoom):
            hi = mid
        else:
            lo = mid + 1
    return lo


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 24), st.floats(0.0, 1.0), st.integers(-4, 4))
def test_tile_rows_at_edges_are_decided_exactly(zoom, where, ulps):
    """Points a few ulps either side of a tile edge get the row that exact arithmetic gives, so
    a libm that differs in the last bit of tan/asinh cannot move them."""
    n = 1 << zoom
    k = min(n - 1, max(1, round(where * n)))
    edge = math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * k / n))))
    lat = edge
    for _ in range(abs(ulps)):
        lat = math.nextafter(lat, 90.0 if ulps > 0 else -90.0)
    _, y = tile_xy(np.array([lat]), np.array([0.0]), zoom)
    assert int(y[0]) == _exact_row(lat, zoom)
    assert int(y[0]) in (k - 1, k)


def test_decimal_tan_and_sinh_agree_with_libm():
    from decimal import Decimal

    from pipeline.chunking import _dsinh, _dtan

    for x in (-1.48, -0.7, 0.0, 1e-9, 0.3, 1.2, 1.4844):
        assert math.isclose(float(_dtan(Decimal(x))), math.tan(x), rel_tol=1e-14, abs_tol=1e-300)
    for x in (-3.1, 0.0, 0.5, 3.14159):
        assert math.isclose(float(_dsinh(Decimal(x))), math.sinh(x), rel_tol=1e-14, abs_tol=1e-300)


def test_tile_rows_far_from_edges_unchanged():
    """The exact path only runs next to edges: elsewhere rows are the plain formula's floor."""
    rng = np.random.default_rng(3)
    lat = rng.uniform(-85, 85, 20000)
    _, y = tile_xy(lat, np.zeros_like(lat), 17)
    fy = (1.0 - np.arcsinh(np.tan(np.radians(lat))) / math.pi) / 2.0 * (1 << 17)
    assert np.array_equal(y, np.floor(fy).astype(np.int64))
    assert all(_exact_row(float(a), 17) == int(b) for a, b in zip(lat[:200], y[:200], strict=True))
