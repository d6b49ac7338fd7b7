"""Pose from GNSS fixes and IMU: interpolation, heading from course or gyro, lever arm, and
the explicit no-pose states (never a silently wrong pose)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from agent.bus.messages import FixType, GnssFix, ImuSample
from pipeline.errors import NoPoseError
from pipeline.georef import GeorefConfig, Georeferencer, PoseEstimator, PoseStatus, georeference
from pipeline.georef.frames import ecef_to_enu, enu_to_geodetic

ORIGIN = (48.15, 11.58, 600.0)
T0 = 1_717_236_000.0


def _fix(t: float, e: float, n: float, u: float = 0.0, speed: float = 10.0, course: float = 90.0,
         fix_type: FixType = FixType.RTK_FIXED, hdop: float = 0.8) -> GnssFix:
    lat, lon, h = enu_to_geodetic(np.array([[e, n, u]]), *ORIGIN)[0]
    ns = round(t * 1e9)
    return GnssFix(source="g", utc_ns=ns + 30_000_000, lat_deg=lat, lon_deg=lon, alt_m=h - 47.0, geoid_sep_m=47.0,
                   fix_type=fix_type, hdop=hdop, speed_mps=speed, course_deg=course, fix_utc_ns=ns)


def _imu(t: float, wz: float) -> ImuSample:
    return ImuSample(source="i", utc_ns=round(t * 1e9), gyro=(0.0, 0.0, wz), accel=(0.0, 0.0, 9.81))


def _straight(est: PoseEstimator, n: int = 21, hz: float = 10.0, speed: float = 10.0) -> None:
    for k in range(n):
        est.add_fix(_fix(T0 + k / hz, speed * k / hz, 0.0, speed=speed))


def _enu(track, times) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    pos, yaw, status = track.at(np.asarray(times, dtype=np.float64))
    return ecef_to_enu(np.nan_to_num(pos), *ORIGIN), yaw, status


def test_straight_drive_interpolates_between_fixes() -> None:
    est = PoseEstimator()
    _straight(est)
    t = T0 + np.linspace(0.0, 2.0, 57)
    enu, yaw, status = _enu(est.track(), t)
    assert (status == 0).all()
    assert np.abs(enu[:, 0] - 10.0 * (t - T0)).max() < 2e-3  # NMEA-free fixes: mm on a straight line
    assert np.abs(enu[:, 1]).max() < 2e-3
    assert np.abs(yaw).max() < 1e-9  # course 90 deg = east = ENU yaw 0


def test_lever_arm_moves_the_reference_point() -> None:
    est = PoseEstimator(antenna_xyz=(1.0, 0.5, 1.95))
    for k in range(5):  # heading north (course 0): vehicle x = north, y = west
        est.add_fix(_fix(T0 + k * 0.1, 0.0, k * 1.0, 1.95, course=0.0))
    enu, yaw, _ = _enu(est.track(), [T0 + 0.2])
    assert math.isclose(yaw[0], math.pi / 2, abs_tol=1e-9)
    # antenna at (0, 2, 1.95) ENU; lever (1 fwd = north, 0.5 left = west, 1.95 up)
    assert np.allclose(enu[0], [0.5, 1.0, 0.0], atol=1e-6)


def test_heading_from_gyro_when_slow_and_held_without_imu() -> None:
    cfg = {"min_course_speed_mps": 1.0}
    # turning on the spot at 0.5 rad/s with a garbage course (speed 0)
    with_imu = PoseEstimator(**cfg)
    without = PoseEstimator(**cfg)
    with_imu.add_fix(_fix(T0, 0, 0, course=90.0, speed=5.0))  # moving: heading east
    without.add_fix(_fix(T0, 0, 0, course=90.0, speed=5.0))
    for k in range(1, 11):
        for est in (with_imu, without):
            est.add_fix(_fix(T0 + k * 0.1, 0, 0, speed=0.05, course=321.0))
    for k in range(101):
        with_imu.add_imu(_imu(T0 + k * 0.01, 0.5))
    t = T0 + np.array([0.0, 0.35, 0.5, 1.0])
    _, yaw, status = _enu(with_imu.track(), t)
    assert (status == 0).all()
    assert np.allclose(yaw, 0.5 * (t - T0), atol=1e-9)
    _, yaw, status = _enu(without.track(), t)
    assert (status == 0).all() and np.allclose(yaw, 0.0)


def test_imu_carries_heading_between_fixes_in_a_turn() -> None:
    # circle of radius 20 m at 10 m/s: yaw rate 0.5 rad/s; GNSS at 1 Hz, IMU at 100 Hz
    r, v = 20.0, 10.0
    w = v / r
    est = PoseEstimator()
    for k in range(6):
        a = w * k
        est.add_fix(_fix(T0 + k, r * math.sin(a), r * (1 - math.cos(a)), speed=v, course=90.0 - math.degrees(a)))
    for k in range(501):
        est.add_imu(_imu(T0 + k * 0.01, w))
    t = T0 + np.linspace(0, 5, 201)
    enu, yaw, status = _enu(est.track(), t)
    assert (status == 0).all()
    assert np.abs(yaw - w * (t - T0)).max() < 1e-6
    # Hermite through positions and velocities: centimetres on a 20 m circle at 1 Hz
    a = w * (t - T0)
    err = np.hypot(enu[:, 0] - r * np.sin(a), enu[:, 1] - r * (1 - np.cos(a)))
    assert err.max() < 0.05


@pytest.mark.parametrize(("bad", "status"), [
    ({"fix_type": FixType.NO_FIX}, PoseStatus.BAD_FIX),
    ({"fix_type": FixType.ESTIMATED}, PoseStatus.BAD_FIX),
    ({"hdop": 9.0}, PoseStatus.BAD_FIX),
])
def test_lost_or_poor_fix_gives_no_pose(bad: dict, status: PoseStatus) -> None:
    est = PoseEstimator(max_hdop=5.0)
    for k in range(10):
        extra = bad if k == 5 else {}
        est.add_fix(_fix(T0 + k * 0.1, k * 1.0, 0, **extra))
    _, _, st = _enu(est.track(), T0 + np.array([0.45, 0.5, 0.55, 0.65]))
    assert st.tolist() == [status, status, status, 0]


def test_gaps_range_and_heading_states() -> None:
    est = PoseEstimator(max_gap_s=1.0, max_extrapolation_s=0.2)
    est.add_fix(_fix(T0, 0, 0))
    est.add_fix(_fix(T0 + 0.1, 1, 0))
    est.add_fix(_fix(T0 + 2.1, 21, 0))  # 2 s later: a gap
    est.add_fix(_fix(T0 + 2.2, 22, 0))
    _, _, st = _enu(est.track(), T0 + np.array([-0.01, 0.05, 1.0, 2.15, 2.3, 2.5]))
    assert st.tolist() == [PoseStatus.OUT_OF_RANGE, 0, PoseStatus.GAP, 0, 0, PoseStatus.OUT_OF_RANGE]
    # extrapolation past the last fix follows its velocity
    enu, _, _ = _enu(est.track(), [T0 + 2.3])
    assert np.allclose(enu[0, :2], [23.0, 0.0], atol=1e-3)
    # never moving and no IMU: no heading
    still = PoseEstimator()
    for k in range(5):
        still.add_fix(_fix(T0 + k * 0.1, 0, 0, speed=0.0, course=0.0))
    _, _, st = _enu(still.track(), [T0 + 0.2])
    assert st.tolist() == [PoseStatus.NO_HEADING]
    _, _, st = _enu(PoseEstimator().track(), [T0])
    assert st.tolist() == [PoseStatus.NO_FIXES]


def test_strict_georeference_raises_and_lenient_marks_points() -> None:
    geo = Georeferencer(GeorefConfig(max_gap_s=1.0))  # antenna 1.95 m, LiDAR 1.9 m above the ground point
    for k in range(5):
        geo.add(_fix(T0 + k * 0.1, k * 1.0, 0, 1.95))
    xyz = np.array([[1.0, 0, 0], [2.0, 0, 0]], dtype=np.float32)
    times = np.array([T0 + 0.2, T0 + 3.0])
    res = georeference(xyz, times, geo.track, geo.rotation, geo.translation)
    assert res.status.tolist() == [0, PoseStatus.OUT_OF_RANGE]
    assert np.isfinite(res.ecef[0]).all() and np.isnan(res.ecef[1]).all()
    with pytest.raises(NoPoseError, match="outside the time span"):
        georeference(xyz, times, geo.track, geo.rotation, geo.translation, strict=True)
    # the sensor at 1.9 m, heading east: 1 m ahead of it at t = 0.2 s is east 3 m, up 1.9 m
    enu = res.enu(ORIGIN)
    assert np.allclose(enu[0], [3.0, 0.0, 1.9], atol=1e-3)
    geo_ll = res.geodetic()
    assert abs(geo_ll[0, 0] - ORIGIN[0]) < 1e-4


def test_prune_keeps_the_segment_that_reaches_the_cut() -> None:
    est = PoseEstimator()
    _straight(est, n=50)
    for k in range(500):
        est.add_imu(_imu(T0 + k * 0.01, 0.0))
    t = T0 + np.array([2.05, 4.0])
    before, _, _ = _enu(est.track(), t)
    assert est.prune(T0 + 2.05) > 0
    after, _, status = _enu(est.track(), t)
    assert (status == 0).all() and np.allclose(before, after, atol=1e-9)
    _, _, status = _enu(est.track(), [T0 + 1.0])
    assert status.tolist() == [PoseStatus.OUT_OF_RANGE]


def test_prune_keeps_a_held_heading() -> None:
    est = PoseEstimator()  # no IMU: a stopped vehicle keeps the heading it arrived with
    est.add_fix(_fix(T0, 0, 0, speed=5.0, course=0.0))  # northwards
    for k in range(1, 30):
        est.add_fix(_fix(T0 + k * 0.1, 0, 0.5, speed=0.0, course=0.0))
    est.prune(T0 + 2.0)
    _, yaw, status = _enu(est.track(), [T0 + 2.5])
    assert status.tolist() == [0] and math.isclose(yaw[0], math.pi / 2, abs_tol=1e-9)


@pytest.mark.fixtures
def test_real_drive_gyro_agrees_with_course_and_bad_fixes_give_no_pose() -> None:
    """A recorded 9-minute drive (GENIVI log: 1 Hz fixes, 10 Hz gyro): the gyro z rate the
    pose integrates turns the same way and by the same amount as the course over ground,
    and times next to fixes the receiver flagged as lost get no pose."""
    from sensors.gnss import GeniviLogSource
    from tests._fixtures import fixture_file

    with GeniviLogSource(fixture_file("gnss/genivi_rpi_regensburg_2016.log")) as src:
        items = list(src)
    fixes = [m for m in items if isinstance(m, GnssFix)]
    imu = [m for m in items if isinstance(m, ImuSample)]
    assert len(fixes) > 500 and len(imu) > 5000
    est = PoseEstimator(min_course_speed_mps=3.0, max_hdop=10.0)
    for m in items:
        est.add(m)
    track = est.track()
    t = np.array([f.fix_utc_ns * 1e-9 for f in fixes])
    it = np.array([m.utc_ns * 1e-9 for m in imu])
    cum = np.concatenate([[0.0], np.cumsum(0.5 * np.diff(it) * (np.array([m.gyro[2] for m in imu])[1:]
                                                                  + np.array([m.gyro[2] for m in imu])[:-1]))])
    pairs = []
    for a, b in itertools.pairwise(fixes):
        if a.speed_mps > 5 and b.speed_mps > 5 and b.fix_utc_ns - a.fix_utc_ns < 1.5e9:
            d_course = -math.radians((b.course_deg - a.course_deg + 180.0) % 360.0 - 180.0)
            ta, tb = a.fix_utc_ns * 1e-9, b.fix_utc_ns * 1e-9
            pairs.append((d_course, np.interp(tb, it, cum) - np.interp(ta, it, cum)))
    d = np.array(pairs)
    assert len(d) > 200
    assert np.corrcoef(d.T)[0, 1] > 0.85  # same sign convention, same amount
    assert np.degrees(np.median(np.abs(d[:, 0] - d[:, 1]))) < 1.0
    # poses along the drive: most times have one; those beside a lost fix do not
    times = np.linspace(t[0], t[-1], 3000)
    _, _, status = track.at(times)
    assert (status == 0).mean() > 0.85
    bad = ~track.good
    assert bad.any()
    k = np.searchsorted(track.t, times, side="right") - 1
    inside = (k >= 0) & (k < len(track.t) - 1)
    beside_bad = inside & (bad[np.clip(k, 0, None)] | bad[np.clip(k + 1, 0, len(bad) - 1)])
    assert beside_bad.any() and (status[beside_bad] == PoseStatus.BAD_FIX).all()


def test_extrinsics_rotation_and_lever_arm_from_config() -> None:
    from agent.config import load_config

    cfg = load_config(overrides={"georef.lidar": {"xyz": [1.0, 0.0, 2.0], "rpy_deg": [0.0, 10.0, 90.0]},
                                 "georef.antenna_xyz": [0.0, 0.0, 0.0]}).georef
    geo = Georeferencer(cfg)
    for k in range(5):  # heading north at 10 m/s
        geo.add(_fix(T0 + k * 0.1, 0.0, k * 1.0, 0.0, course=0.0))
    # a point 10 m along the sensor's x axis: the sensor looks left (yaw 90) and 10 deg down
    res = georeference(np.array([[10.0, 0.0, 0.0]]), np.array([T0 + 0.2]), geo.track, geo.rotation,
                       geo.translation, strict=True)
    enu = res.enu(ORIGIN)[0]
    # vehicle frame: forward = north, left = west; sensor x → vehicle left, tilted down
    c, s = math.cos(math.radians(10)), math.sin(math.radians(10))
    expected = np.array([-10.0 * c, 2.0 + 1.0, 2.0 - 10.0 * s])  # east, north (2 m travelled + 1 m lever), up
    assert np.allclose(enu, expected, atol=1e-3)
