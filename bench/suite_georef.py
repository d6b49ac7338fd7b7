"""WGS84 transforms: ours (numba, one thread) against pyproj (PROJ) and pymap3d (numpy
vectorised) on the same points, same run.

Points: each cloud of the voxel suite (or ``--input``) taken as east/north/up metres around
a Munich origin, turned into ECEF and WGS84 once; then each transform is timed on all of
them: geodetic → ECEF, ECEF → geodetic, ECEF → local ENU. References: pyproj
``Transformer`` EPSG:4979 ↔ EPSG:4978 and a PROJ ``topocentric`` pipeline for ENU;
pymap3d's ``geodetic2ecef``, ``ecef2geodetic``, ``ecef2enu`` on arrays.

Rows: million points per second with ``ratio`` = ours / reference (higher is better), and
the largest difference from the reference in metres (a check, lower is better). A last row
gives the whole per-point georeferencing (pose interpolated at each point's time, lever
arm, yaw, tangent frame) on a simulated 10 Hz GNSS track: ours only, no library does it.
The first call (JIT or cache load) is its own row.
"""

from __future__ import annotations

import time

import numpy as np

from bench._harness import Row, measure, ratio_row

SUITE = "georef"
ORIGIN = (48.15, 11.58, 565.0)


def _deg_to_m(d_lat: np.ndarray, d_lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    return np.hypot(d_lat * 111_320.0, d_lon * 111_320.0 * np.cos(np.radians(lat)))


def run(input: str | None = None, meta: str | None = None) -> list[Row]:
    """Rows for each cloud (or ``input``); ``meta`` is unused."""
    from bench._clouds import clouds, single_thread
    from pipeline.georef.frames import ecef_to_enu, ecef_to_geodetic, enu_to_ecef, geodetic_to_ecef

    single_thread()
    try:
        import pyproj
    except ImportError:
        pyproj = None
    try:
        import pymap3d
    except ImportError:
        pymap3d = None
    rows: list[Row] = []
    first = True
    for name, xyz in clouds(input):
        enu = np.ascontiguousarray(xyz, dtype=np.float64)
        if first:
            t0 = time.perf_counter()
            ecef_to_geodetic(enu_to_ecef(enu[:10], *ORIGIN))
            geodetic_to_ecef(np.zeros(1), np.zeros(1), np.zeros(1))
            ecef_to_enu(enu[:10], *ORIGIN)
            rows.append(Row(SUITE, "first call", "JIT or cache load", "s", time.perf_counter() - t0, better="lower"))
            first = False
        rows += _transforms(name, enu, pyproj, pymap3d)
        rows.append(_full_georef(name, xyz))
    return rows


def _full_georef(name: str, xyz: np.ndarray) -> Row:
    """Per-point georeferencing of the cloud spread over a 0.1 s sweep at 10 m/s."""
    from agent.bus.messages import FixType, GnssFix
    from pipeline.georef import PoseEstimator, georeference
    from pipeline.georef.frames import enu_to_geodetic, rpy_matrix

    t0 = 1_717_236_000.0
    est = PoseEstimator(antenna_xyz=(0.0, 0.0, 1.95))
    for k in range(30):
        lat, lon, hh = enu_to_geodetic(np.array([[k * 1.0, 0.0, 1.95]]), *ORIGIN)[0]
        ns = int((t0 + k * 0.1) * 1e9)
        est.add_fix(GnssFix(source="g", utc_ns=ns, lat_deg=lat, lon_deg=lon, alt_m=hh, geoid_sep_m=0.0,
                            fix_type=FixType.RTK_FIXED, hdop=0.7, speed_mps=10.0, course_deg=90.0, fix_utc_ns=ns))
    track = est.track()
    times = t0 + 1.0 + np.linspace(0.0, 0.1, len(xyz))
    rot, tr = rpy_matrix(0.0, 0.0, 0.0), np.array([0.0, 0.0, 1.9])
    georeference(xyz[:10], times[:10], track, rot, tr)
    t, res = measure(lambda: georeference(xyz, times, track, rot, tr), min_seconds=0.3)
    assert res.valid.all()
    return Row(SUITE, f"{name} sensor→ECEF (pose per point)", "throughput", "Mpts/s", len(xyz) / t / 1e6)


def _transforms(name: str, enu: np.ndarray, pyproj, pymap3d) -> list[Row]:  # type: ignore[no-untyped-def]
    """Rows of the three transforms on the points ``enu`` (around ORIGIN), ours and references."""
    from pipeline.georef.frames import ecef_to_enu, ecef_to_geodetic, enu_to_ecef, geodetic_to_ecef

    rows: list[Row] = []
    n = len(enu)
    ecef = enu_to_ecef(enu, *ORIGIN)
    geo = ecef_to_geodetic(ecef)
    lat, lon, h = (np.ascontiguousarray(geo[:, k]) for k in range(3))
    x, y, z = (np.ascontiguousarray(ecef[:, k]) for k in range(3))

    ours = {
        "geodetic→ECEF": measure(lambda: geodetic_to_ecef(lat, lon, h), min_seconds=0.3),
        "ECEF→geodetic": measure(lambda: ecef_to_geodetic(ecef), min_seconds=0.3),
        "ECEF→ENU": measure(lambda: ecef_to_enu(ecef, *ORIGIN), min_seconds=0.3),
    }
    refs: dict[str, list[tuple[str, float, float]]] = {k: [] for k in ours}
    if pyproj is not None:
        fwd = pyproj.Transformer.from_crs("EPSG:4979", "EPSG:4978", always_xy=True)
        inv = pyproj.Transformer.from_crs("EPSG:4978", "EPSG:4979", always_xy=True)
        topo = pyproj.Transformer.from_pipeline(
            f"+proj=topocentric +ellps=WGS84 +lat_0={ORIGIN[0]} +lon_0={ORIGIN[1]} +h_0={ORIGIN[2]}")
        t, r = measure(lambda: fwd.transform(lon, lat, h), min_seconds=0.3)
        refs["geodetic→ECEF"].append(("pyproj", t, float(np.abs(np.stack(r, 1) - ours["geodetic→ECEF"][1]).max())))
        t, r = measure(lambda: inv.transform(x, y, z), min_seconds=0.3)
        o = ours["ECEF→geodetic"][1]
        err = max(float(_deg_to_m(o[:, 0] - r[1], o[:, 1] - r[0], o[:, 0]).max()), float(np.abs(o[:, 2] - r[2]).max()))
        refs["ECEF→geodetic"].append(("pyproj", t, err))
        t, r = measure(lambda: topo.transform(x, y, z), min_seconds=0.3)
        refs["ECEF→ENU"].append(("pyproj topocentric", t, float(np.abs(np.stack(r, 1) - ours["ECEF→ENU"][1]).max())))
    if pymap3d is not None:
        t, r = measure(lambda: pymap3d.geodetic2ecef(lat, lon, h), min_seconds=0.3)
        refs["geodetic→ECEF"].append(("pymap3d", t, float(np.abs(np.stack(r, 1) - ours["geodetic→ECEF"][1]).max())))
        t, r = measure(lambda: pymap3d.ecef2geodetic(x, y, z), min_seconds=0.3)
        o = ours["ECEF→geodetic"][1]
        err = max(float(_deg_to_m(o[:, 0] - r[0], o[:, 1] - r[1], o[:, 0]).max()), float(np.abs(o[:, 2] - r[2]).max()))
        refs["ECEF→geodetic"].append(("pymap3d", t, err))
        t, r = measure(lambda: pymap3d.ecef2enu(x, y, z, *ORIGIN), min_seconds=0.3)
        refs["ECEF→ENU"].append(("pymap3d", t, float(np.abs(np.stack(r, 1) - ours["ECEF→ENU"][1]).max())))
    for what, (t_ours, _) in ours.items():
        case = f"{name} {what}"
        if not refs[what]:
            rows.append(Row(SUITE, case, "throughput", "Mpts/s", n / t_ours / 1e6))
        for ref_name, t_ref, err in refs[what]:
            rows.append(ratio_row(SUITE, case, "throughput", "Mpts/s", n / t_ours / 1e6, n / t_ref / 1e6, ref_name))
            rows.append(Row(SUITE, case, f"max diff vs {ref_name}", "m", err, better="lower"))
    return rows
