"""WGS84 transforms against pyproj (geodetic ↔ ECEF) and pymap3d (ENU): below 1 mm
anywhere on Earth from -500 m to 10 km, poles and antimeridian included."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.georef.frames import (
    ecef_to_enu,
    ecef_to_geodetic,
    enu_to_ecef,
    enu_to_geodetic,
    geodetic_to_ecef,
    geodetic_to_enu,
    rpy_matrix,
)

pyproj = pytest.importorskip("pyproj")
pymap3d = pytest.importorskip("pymap3d")

_TO_ECEF = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
_TO_GEO = pyproj.Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)
MM = 1e-3

lats = st.one_of(st.floats(-90.0, 90.0), st.sampled_from([90.0, -90.0, 89.9999999, -89.9999999, 0.0]))
lons = st.one_of(st.floats(-180.0, 180.0), st.sampled_from([180.0, -180.0, 179.9999999, -179.9999999, 0.0]))
heights = st.floats(-500.0, 10_000.0)


def _ground_metres(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Distance on the surface of two geodetic positions (small differences), metres."""
    return np.linalg.norm(geodetic_to_ecef(lat1, lon1, np.zeros_like(lat1))
                          - geodetic_to_ecef(lat2, lon2, np.zeros_like(lat2)), axis=1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(lats, lons, heights), min_size=1, max_size=40))
def test_geodetic_ecef_matches_pyproj(points) -> None:
    lat, lon, h = (np.array(c, dtype=np.float64) for c in zip(*points))
    ours = geodetic_to_ecef(lat, lon, h)
    ref = np.stack(_TO_ECEF.transform(lon, lat, h), axis=1)
    assert np.abs(ours - ref).max() < MM
    # inverse on pyproj's ECEF: the position error measured on the ground and in height
    geo = ecef_to_geodetic(np.ascontiguousarray(ref))
    rlon, rlat, rh = _TO_GEO.transform(ref[:, 0], ref[:, 1], ref[:, 2])
    assert np.abs(geo[:, 2] - rh).max() < MM
    assert np.abs(geo[:, 2] - h).max() < MM
    assert _ground_metres(geo[:, 0], geo[:, 1], np.asarray(rlat), np.asarray(rlon)).max() < MM
    # and the round trip lands on the same ECEF point
    back = geodetic_to_ecef(geo[:, 0], geo[:, 1], geo[:, 2])
    assert np.abs(back - ref).max() < MM


@settings(max_examples=200, deadline=None)
@given(lats, lons, heights, st.lists(st.tuples(st.floats(-5000, 5000), st.floats(-5000, 5000),
                                               st.floats(-500, 5000)), min_size=1, max_size=20))
def test_enu_matches_pymap3d(lat0, lon0, h0, offsets) -> None:
    enu = np.array(offsets, dtype=np.float64)
    ecef = enu_to_ecef(enu, lat0, lon0, h0)
    rx, ry, rz = pymap3d.enu2ecef(enu[:, 0], enu[:, 1], enu[:, 2], lat0, lon0, h0)
    assert np.abs(ecef - np.stack([rx, ry, rz], axis=1)).max() < MM
    back = ecef_to_enu(ecef, lat0, lon0, h0)
    assert np.abs(back - enu).max() < MM
    re, rn, ru = pymap3d.ecef2enu(ecef[:, 0], ecef[:, 1], ecef[:, 2], lat0, lon0, h0)
    assert np.abs(back - np.stack([re, rn, ru], axis=1)).max() < MM
    geo = enu_to_geodetic(enu, lat0, lon0, h0)
    again = geodetic_to_enu(geo[:, 0], geo[:, 1], geo[:, 2], lat0, lon0, h0)
    assert np.abs(again - enu).max() < MM


def test_known_points() -> None:
    # equator / prime meridian, the poles, the antimeridian
    geo = np.array([[0.0, 0.0, 0.0], [90.0, 0.0, 0.0], [-90.0, 0.0, 100.0], [0.0, 180.0, 0.0]])
    ecef = geodetic_to_ecef(geo[:, 0], geo[:, 1], geo[:, 2])
    assert np.allclose(ecef[0], [6378137.0, 0, 0], atol=1e-9)
    assert np.allclose(ecef[1], [0, 0, 6356752.314245], atol=1e-6)
    assert np.allclose(ecef[2], [0, 0, -6356852.314245], atol=1e-6)
    assert np.allclose(ecef[3], [-6378137.0, 0, 0], atol=1e-6)
    back = ecef_to_geodetic(ecef)
    assert np.allclose(back[:, 0], geo[:, 0], atol=1e-12)
    assert np.allclose(back[:, 2], geo[:, 2], atol=1e-6)
    assert abs(abs(back[3, 1]) - 180.0) < 1e-12


def test_rpy_matrix_is_a_rotation_with_the_stated_order() -> None:
    r = rpy_matrix(0.1, -0.2, 0.3)
    assert np.allclose(r @ r.T, np.eye(3), atol=1e-12) and math.isclose(np.linalg.det(r), 1.0)
    # yaw only: x forward turns towards y left
    assert np.allclose(rpy_matrix(0, 0, math.pi / 2) @ [1, 0, 0], [0, 1, 0], atol=1e-12)
    # pitch only (nose down positive about y): x forward goes to -z
    assert np.allclose(rpy_matrix(0, math.pi / 2, 0) @ [1, 0, 0], [0, 0, -1], atol=1e-12)
