"""Keyframes by distance travelled: haversine, track interpolation, odometer, selection."""

from __future__ import annotations

import itertools
import math

import pytest

from agent.bus.messages import NO_TIME, FixType, GnssFix
from pipeline.camera.keyframes import (
    EARTH_RADIUS_M,
    GnssTrack,
    KeyframeSelector,
    haversine_m,
    select_keyframes,
)
from sensors.gnss import NmeaFileSource
from tests._fixtures import fixture_file

S = 1_000_000_000
T0 = 1_700_000_000 * S


def fix(
    t_s: float,
    lat: float,
    lon: float,
    *,
    alt: float = 10.0,
    speed: float = 10.0,
    course: float = 0.0,
    kind: FixType = FixType.GPS,
) -> GnssFix:
    return GnssFix(
        lat_deg=lat,
        lon_deg=lon,
        alt_m=alt,
        fix_type=kind,
        hdop=1.0,
        speed_mps=speed,
        course_deg=course,
        fix_utc_ns=T0 + round(t_s * S),
    )


def north_track(n: int, speed: float = 10.0, lat0: float = 48.0, lon0: float = 11.0) -> GnssTrack:
    """1 Hz fixes driving due north at ``speed`` m/s."""
    tr = GnssTrack()
    dlat = math.degrees(speed / EARTH_RADIUS_M)
    for k in range(n):
        assert tr.add(fix(k, lat0 + k * dlat, lon0, speed=speed))
    return tr


def test_haversine_known_distances() -> None:
    # a degree of latitude on the mean sphere is pi R / 180
    assert haversine_m(0, 0, 1, 0) == pytest.approx(math.pi * EARTH_RADIUS_M / 180, rel=1e-12)
    # a degree of longitude at 60 deg is half that (to within the sphere's chord/arc difference)
    assert haversine_m(60, 0, 60, 1) == pytest.approx(0.5 * math.pi * EARTH_RADIUS_M / 180, rel=1e-4)
    # across the antimeridian: 0.002 deg of longitude at the equator, not 359.998
    assert haversine_m(0, 179.999, 0, -179.999) == pytest.approx(222.4, abs=0.1)
    assert haversine_m(10, 20, 10, 20) == 0.0


def test_interpolation_midpoint_course_and_antimeridian() -> None:
    tr = GnssTrack()
    tr.add(fix(0, 10.0, 179.9998, alt=100.0, course=350.0, speed=10.0))
    tr.add(fix(2, 10.0002, -179.9998, alt=110.0, course=10.0, speed=14.0))
    p = tr.position_at(T0 + 1 * S)
    assert p is not None
    assert p.lat_deg == pytest.approx(10.0001, abs=1e-12)
    assert abs(p.lon_deg) == pytest.approx(180.0, abs=1e-9)  # midway across the antimeridian, not 0
    assert p.alt_m == pytest.approx(105.0)
    assert p.speed_mps == pytest.approx(12.0)
    assert min(p.course_deg, 360 - p.course_deg) == pytest.approx(0.0, abs=1e-9)  # 350 -> 10 passes north
    q = tr.position_at(T0 + S // 2)
    assert q is not None and q.lon_deg == pytest.approx(179.9999, abs=1e-9)
    # the odometer at the midpoint is half the segment
    assert p.odometer_m == pytest.approx(tr.position_at(T0 + 2 * S).odometer_m / 2)  # type: ignore[union-attr]


def test_no_position_before_track_in_gaps_and_long_after() -> None:
    tr = GnssTrack(max_gap_s=5.0, max_extrapolation_s=1.0)
    assert tr.position_at(T0) is None
    tr.add(fix(0, 48.0, 11.0))
    tr.add(fix(1, 48.0001, 11.0))
    tr.add(fix(10, 48.001, 11.0))  # 9 s gap
    assert tr.position_at(T0 - 1) is None
    assert tr.position_at(T0 + S // 2) is not None
    assert tr.position_at(T0 + 5 * S) is None  # inside the gap
    assert tr.position_at(T0 + 10 * S) is not None  # exactly on a fix
    assert tr.position_at(T0 + 11 * S + 1) is None  # beyond the extrapolation limit
    # the gap adds no distance: the track there is unknown
    assert tr.position_at(T0 + 10 * S).odometer_m == pytest.approx(  # type: ignore[union-attr]
        haversine_m(48.0, 11.0, 48.0001, 11.0)
    )


def test_fixes_without_position_or_time_are_ignored() -> None:
    tr = GnssTrack()
    assert not tr.add(fix(0, math.nan, math.nan))
    assert not tr.add(fix(0, 48.0, 11.0, kind=FixType.NO_FIX))
    assert not tr.add(
        GnssFix(lat_deg=48.0, lon_deg=11.0, fix_type=FixType.GPS, fix_utc_ns=NO_TIME, utc_ns=NO_TIME)
    )
    assert tr.add(fix(0, 48.0, 11.0))
    assert not tr.add(fix(0, 48.0, 11.0))  # the same epoch again (RMC then GGA)
    assert len(tr) == 1


def test_dead_reckoning_past_the_last_fix() -> None:
    tr = GnssTrack(max_extrapolation_s=1.0)
    tr.add(fix(0, 0.0, 0.0, speed=20.0, course=90.0))  # due east at 20 m/s on the equator
    p = tr.position_at(T0 + S // 2)
    assert p is not None and p.extrapolated
    assert p.lat_deg == pytest.approx(0.0, abs=1e-12)
    assert haversine_m(0, 0, p.lat_deg, p.lon_deg) == pytest.approx(10.0, rel=1e-6)
    assert p.odometer_m == pytest.approx(10.0, rel=1e-6)


def test_keyframes_every_n_metres_and_min_interval() -> None:
    tr = north_track(21, speed=10.0)  # 20 s, 200 m
    frames = [T0 + k * S // 10 for k in range(200)]  # 10 Hz camera
    every5 = select_keyframes(frames, tr, every_m=5.0)
    # one keyframe per 5 m = per 0.5 s = every 5th frame: 0, 5, 10, ...
    assert every5 == list(range(0, 200, 5))
    # a minimum interval of 1 s caps it at every 10th frame (10 m apart)
    assert select_keyframes(frames, tr, every_m=5.0, min_interval_s=1.0) == list(range(0, 200, 10))
    # 25 m: every 2.5 s
    assert select_keyframes(frames, tr, every_m=25.0) == list(range(0, 200, 25))


def test_parked_vehicle_makes_no_keyframes_from_gnss_noise() -> None:
    tr = GnssTrack(stationary_speed_mps=0.5)
    # 60 s parked with +-2 m of position noise, then driving north at 10 m/s for 10 s
    noise = [0.0, 1.5e-5, -1.2e-5, 1.8e-5, -0.9e-5]
    for k in range(60):
        tr.add(fix(k, 48.0 + noise[k % 5], 11.0 + noise[(k + 2) % 5], speed=0.1))
    dlat = math.degrees(10.0 / EARTH_RADIUS_M)
    for k in range(60, 71):
        tr.add(fix(k, 48.0 + (k - 60) * dlat, 11.0, speed=10.0))
    frames = [T0 + k * S // 2 for k in range(140)]  # 2 Hz for 70 s
    picked = select_keyframes(frames, tr, every_m=20.0)
    parked = [i for i in picked if frames[i] < T0 + 59 * S]
    assert parked == [0]  # only the first frame while parked
    driving = [i for i in picked if frames[i] >= T0 + 60 * S]
    assert 4 <= len(driving) <= 6  # about 100 m / 20 m


def test_selector_waits_for_a_frame_that_is_marked() -> None:
    tr = north_track(5)
    sel = KeyframeSelector(every_m=5.0)
    p0 = tr.position_at(T0)
    assert p0 is not None and sel.due(p0)
    sel.mark(p0)
    p1 = tr.position_at(T0 + S)  # 10 m on
    assert p1 is not None and sel.due(p1)
    # not marked (e.g. rejected as blurry): the next frame is still due
    p2 = tr.position_at(T0 + 11 * S // 10)
    assert p2 is not None and sel.due(p2)
    sel.mark(p2)
    assert not sel.due(tr.position_at(T0 + 12 * S // 10))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="positive"):
        KeyframeSelector(every_m=0)


@pytest.mark.fixtures
def test_keyframes_along_a_real_drive() -> None:
    """The Regensburg drive (1 Hz RMC): keyframes every 50 m along the track with a 10 Hz camera."""
    # every segment counts here (no parked rule), so the geometry below holds exactly
    tr = GnssTrack(max_fixes=10_000, stationary_speed_mps=0.0)
    with NmeaFileSource(fixture_file("gnss/regensburg_drive_geko301_2010.nmea")) as src:
        kept = tr.extend(m for m in src if isinstance(m, GnssFix))
    assert kept > 700
    times = [p.utc_ns for p in tr._pos]
    t_first, t_last = times[0], times[-1]
    frames = list(range(t_first, t_last, S // 10))
    picked = select_keyframes(frames, tr, every_m=50.0)
    pos = [tr.position_at(frames[i]) for i in picked]
    odo = [p.odometer_m for p in pos if p is not None]
    total = tr.position_at(t_last).odometer_m  # type: ignore[union-attr]
    assert total > 5_000  # a drive of several km
    steps = [b - a for a, b in itertools.pairwise(odo)]
    # each step is at least 50 m and overshoots by at most one frame's travel (< 6 m below 200 km/h)
    assert min(steps) >= 50.0
    assert max(steps) < 56.0
    gaps = [(t0, t1) for t0, t1 in itertools.pairwise(times) if t1 - t0 > tr.max_gap_ns]
    assert gaps  # this log has GNSS outages: no distance is counted across them
    # straight-line distance between neighbouring keyframes never exceeds the distance along the track
    for a, b, s in zip(pos, pos[1:], steps, strict=False):
        assert a is not None and b is not None
        if any(a.utc_ns < g1 and g0 < b.utc_ns for g0, g1 in gaps):
            continue
        assert haversine_m(a.lat_deg, a.lon_deg, b.lat_deg, b.lon_deg) <= s + 1e-3  # lat/lon lerp vs arc: µm
    assert len(picked) == pytest.approx(total / 50.0, rel=0.1)
