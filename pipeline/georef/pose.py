"""Vehicle pose at any time from GNSS fixes (and IMU yaw rate where present).

Model: the vehicle's reference point (on the ground below the vehicle origin) moves on a
cubic Hermite curve through the fixes (position and velocity from speed and course at
each fix; linear where a velocity is missing), heading is the course over ground while
the vehicle moves at ``min_course_speed_mps`` or faster, and is carried by the integrated
gyro z rate between fixes and while slow (the integration's drift is spread linearly over
each segment so the heading stays continuous at fixes). Without an IMU the heading of a
slow vehicle is held (it is assumed to be stopped). Roll and pitch are taken as zero.

The pose is refused with a :class:`PoseStatus` (never guessed) when: there are no fixes,
a bracketing fix is lost or too poor (fix type not accepted, HDOP above the limit, no
position or height), two fixes are further apart than ``max_gap_s``, the time lies before
the first fix or more than ``max_extrapolation_s`` after the last one, or no heading is
known yet.

Antenna lever arm: the fix is the antenna's position; the reference point is the antenna
minus the rotated lever arm. Times are UTC seconds (float64): the receiver's fix time
(``fix_utc_ns``) when known, else the message's ``utc_ns``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
from numba import njit

from pipeline.errors import NoPoseError
from pipeline.georef._config import GeorefConfig
from pipeline.georef.frames import ecef_to_geodetic, enu_rotation, geodetic_to_ecef


class PoseStatus(IntEnum):
    """Why a time has (OK) or has no pose."""

    OK = 0
    NO_FIXES = 1
    OUT_OF_RANGE = 2  # before the first fix, or past the last one beyond the extrapolation limit
    GAP = 3  # bracketing fixes too far apart
    BAD_FIX = 4  # a bracketing fix is lost or too poor (fix type, HDOP, no position)
    NO_HEADING = 5  # not yet moved fast enough for a course and no IMU to carry the heading


REASONS = {
    PoseStatus.NO_FIXES: "no GNSS fixes",
    PoseStatus.OUT_OF_RANGE: "outside the time span of the fixes",
    PoseStatus.GAP: "gap between GNSS fixes too long",
    PoseStatus.BAD_FIX: "GNSS fix lost or too poor (fix type / HDOP)",
    PoseStatus.NO_HEADING: "no heading yet (vehicle not moving and no IMU)",
}


@dataclass
class PoseTrack:
    """Fix-time samples and a yaw table: everything the per-point kernels need.

    ``t`` (K,) fix times; ``ref_ecef`` (K, 3) reference point; ``vel_ecef`` (K, 3) its
    velocity (NaN when unknown); ``lat``/``lon`` (K,) degrees (tangent frames); ``good`` (K,)
    fix usable; ``yaw_t``/``yaw`` (M,) ENU yaw (rad, 0 = east, counter-clockwise,
    unwrapped; NaN where unknown) at fix and IMU times."""

    t: np.ndarray
    ref_ecef: np.ndarray
    vel_ecef: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    good: np.ndarray
    yaw_t: np.ndarray
    yaw: np.ndarray
    max_gap_s: float
    max_extrapolation_s: float

    def __len__(self) -> int:
        return len(self.t)

    def at(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ref_ecef (N, 3), yaw (N,), status (N,) uint8)`` at UTC ``times``."""
        times = np.ascontiguousarray(times, dtype=np.float64)
        return pose_kernel(times, self.t, self.ref_ecef, self.vel_ecef, self.good, self.yaw_t, self.yaw,
                           self.max_gap_s, self.max_extrapolation_s)

    def vehicle_to_ecef(self, times: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(origin (N, 3), rotation (N, 3, 3), status)``: vehicle-frame → ECEF transforms."""
        origin, yaw, status = self.at(times)
        rot = np.full((len(origin), 3, 3), np.nan)
        ok = status == 0
        if ok.any():
            geo = ecef_to_geodetic(np.ascontiguousarray(origin[ok]))
            for j, i in enumerate(np.flatnonzero(ok)):
                r = enu_rotation(geo[j, 0], geo[j, 1]).T
                c, s = math.cos(yaw[i]), math.sin(yaw[i])
                rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
                rot[i] = r @ rz
        return origin, rot, status


@njit(cache=True)
def _locate(arr: np.ndarray, t: float, hint: int) -> int:
    """Index k with ``arr[k] <= t < arr[k+1]`` (-1 before the first, len-1 at/after the last);
    ``hint`` is tried first (times of a scan are nearly sorted)."""
    n = arr.shape[0]
    if 0 <= hint < n - 1 and arr[hint] <= t < arr[hint + 1]:
        return hint
    lo = 0
    hi = n
    while lo < hi:  # first index with arr[i] > t
        mid = (lo + hi) // 2
        if arr[mid] <= t:
            lo = mid + 1
        else:
            hi = mid
    return lo - 1


@njit(cache=True)
def _yaw_at(yaw_t: np.ndarray, yaw: np.ndarray, t: float, hint: int) -> tuple[float, int]:
    m = yaw_t.shape[0]
    j = _locate(yaw_t, t, hint)
    if j < 0:
        return np.nan, 0
    if j >= m - 1:
        return yaw[m - 1], m - 1
    u = (t - yaw_t[j]) / (yaw_t[j + 1] - yaw_t[j])
    return yaw[j] + u * (yaw[j + 1] - yaw[j]), j


@njit(cache=True)
def _pose_one(t: float, ft: np.ndarray, ref: np.ndarray, vel: np.ndarray, good: np.ndarray,
              max_gap: float, max_extra: float, k: int, out: np.ndarray) -> int:
    """Reference point at ``t`` into ``out`` (3,); returns a PoseStatus value."""
    n = ft.shape[0]
    if n == 0:
        return 1
    if k < 0:
        return 2
    if k >= n - 1:  # at or past the last fix
        dt = t - ft[n - 1]
        if dt > max_extra or not good[n - 1]:
            return 2 if good[n - 1] else 4
        if dt == 0.0 or not math.isfinite(vel[n - 1, 0]):
            if dt > 0.0:
                return 2  # no velocity to extrapolate with
            for c in range(3):
                out[c] = ref[n - 1, c]
            return 0
        for c in range(3):
            out[c] = ref[n - 1, c] + dt * vel[n - 1, c]
        return 0
    if not (good[k] and good[k + 1]):
        if t == ft[k] and good[k]:
            for c in range(3):
                out[c] = ref[k, c]
            return 0
        return 4
    h = ft[k + 1] - ft[k]
    if h > max_gap:
        return 3
    u = (t - ft[k]) / h
    if math.isfinite(vel[k, 0]) and math.isfinite(vel[k + 1, 0]):
        u2 = u * u
        u3 = u2 * u
        h00 = 2 * u3 - 3 * u2 + 1
        h10 = u3 - 2 * u2 + u
        h01 = -2 * u3 + 3 * u2
        h11 = u3 - u2
        for c in range(3):
            out[c] = h00 * ref[k, c] + h10 * h * vel[k, c] + h01 * ref[k + 1, c] + h11 * h * vel[k + 1, c]
    else:
        for c in range(3):
            out[c] = ref[k, c] + u * (ref[k + 1, c] - ref[k, c])
    return 0


@njit(cache=True)
def pose_kernel(times: np.ndarray, ft: np.ndarray, ref: np.ndarray, vel: np.ndarray, good: np.ndarray,
                yaw_t: np.ndarray, yaw: np.ndarray, max_gap: float, max_extra: float
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reference point, yaw and status at each time (see :class:`PoseTrack`)."""
    n = times.shape[0]
    pos = np.full((n, 3), np.nan)
    yw = np.full(n, np.nan)
    status = np.zeros(n, dtype=np.uint8)
    k = 0
    j = 0
    buf = np.empty(3)
    for i in range(n):
        t = times[i]
        k = _locate(ft, t, k) if ft.shape[0] > 0 else -1
        s = _pose_one(t, ft, ref, vel, good, max_gap, max_extra, k, buf)
        if s == 0:
            y, j = _yaw_at(yaw_t, yaw, t, j)
            if not math.isfinite(y):
                s = 5
            else:
                yw[i] = y
                pos[i, 0], pos[i, 1], pos[i, 2] = buf[0], buf[1], buf[2]
        status[i] = s
    return pos, yw, status


@njit(cache=True)
def georef_kernel(xyz: np.ndarray, times: np.ndarray, rot_ext: np.ndarray, t_ext: np.ndarray,
                  ft: np.ndarray, ref: np.ndarray, vel: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                  good: np.ndarray, yaw_t: np.ndarray, yaw: np.ndarray, max_gap: float, max_extra: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Sensor-frame points at their own times → ECEF (NaN and a status where no pose).

    Per point: p_vehicle = R_ext p + t_ext; ENU at the vehicle = Rz(yaw(t)) p_vehicle;
    ECEF = ref(t) + R_enu→ecef · ENU, with the tangent frame of the segment's mid latitude
    and longitude (it turns by at most segment length / Earth radius: < 0.5 mm at 100 m
    range for 30 m between fixes)."""
    n = xyz.shape[0]
    out = np.full((n, 3), np.nan)
    status = np.zeros(n, dtype=np.uint8)
    k = 0
    j = 0
    seg = -2
    r = np.empty((3, 3))
    buf = np.empty(3)
    nf = ft.shape[0]
    for i in range(n):
        t = times[i]
        k = _locate(ft, t, k) if nf > 0 else -1
        s = _pose_one(t, ft, ref, vel, good, max_gap, max_extra, k, buf)
        if s != 0:
            status[i] = s
            continue
        y, j = _yaw_at(yaw_t, yaw, t, j)
        if not math.isfinite(y):
            status[i] = 5
            continue
        if k != seg:
            seg = k
            if k >= nf - 1:
                r = enu_rotation(lat[nf - 1], lon[nf - 1])
            else:
                dl = lon[k + 1] - lon[k]
                if dl > 180.0:
                    dl -= 360.0
                elif dl < -180.0:
                    dl += 360.0
                r = enu_rotation(0.5 * (lat[k] + lat[k + 1]), lon[k] + 0.5 * dl)
        px = np.float64(xyz[i, 0])
        py = np.float64(xyz[i, 1])
        pz = np.float64(xyz[i, 2])
        vx = rot_ext[0, 0] * px + rot_ext[0, 1] * py + rot_ext[0, 2] * pz + t_ext[0]
        vy = rot_ext[1, 0] * px + rot_ext[1, 1] * py + rot_ext[1, 2] * pz + t_ext[1]
        vz = rot_ext[2, 0] * px + rot_ext[2, 1] * py + rot_ext[2, 2] * pz + t_ext[2]
        c = math.cos(y)
        sn = math.sin(y)
        e = c * vx - sn * vy
        nn = sn * vx + c * vy
        u = vz
        for a in range(3):
            out[i, a] = buf[a] + r[0, a] * e + r[1, a] * nn + r[2, a] * u
    return out, status


def _unwrap_to(prev: float, angle: float) -> float:
    """``angle`` shifted by whole turns to lie within pi of ``prev``."""
    return angle + 2 * math.pi * round((prev - angle) / (2 * math.pi))


class PoseEstimator:
    """Collects fixes and IMU samples, then builds a :class:`PoseTrack`.

    Plain arguments (see :class:`GeorefConfig` for their meaning); :meth:`from_config`
    builds one from configuration."""

    def __init__(self, *, antenna_xyz: tuple[float, float, float] = (0.0, 0.0, 0.0),
                 accepted_fix_types: tuple[int, ...] = (1, 2, 3, 4, 5), max_hdop: float = 5.0,
                 max_gap_s: float = 1.5, max_extrapolation_s: float = 0.15, min_course_speed_mps: float = 1.0,
                 use_imu: bool = True, max_imu_gap_s: float = 0.25) -> None:
        self.antenna = np.asarray(antenna_xyz, dtype=np.float64)
        self.accepted = frozenset(int(v) for v in accepted_fix_types)
        self.max_hdop = max_hdop
        self.max_gap_s = max_gap_s
        self.max_extrapolation_s = max_extrapolation_s
        self.min_course_speed = min_course_speed_mps
        self.use_imu = use_imu
        self.max_imu_gap_s = max_imu_gap_s
        self._fixes: list[tuple[float, float, float, float, bool, float, float]] = []
        self._seed: tuple[float, float] | None = None  # (fix time, yaw) kept across prune()
        self._imu: list[tuple[float, float]] = []

    @classmethod
    def from_config(cls, cfg: GeorefConfig) -> PoseEstimator:
        return cls(antenna_xyz=cfg.antenna_xyz, accepted_fix_types=tuple(cfg.accepted_fix_types),
                   max_hdop=cfg.max_hdop, max_gap_s=cfg.max_gap_s, max_extrapolation_s=cfg.max_extrapolation_s,
                   min_course_speed_mps=cfg.min_course_speed_mps, use_imu=cfg.use_imu,
                   max_imu_gap_s=cfg.max_imu_gap_s)

    def add_fix(self, fix) -> None:  # type: ignore[no-untyped-def]
        """Take one :class:`agent.bus.messages.GnssFix`."""
        t_ns = fix.fix_utc_ns if fix.fix_utc_ns not in (None, -1) and fix.fix_utc_ns > 0 else fix.utc_ns
        sep = fix.geoid_sep_m if math.isfinite(fix.geoid_sep_m) else 0.0
        h = fix.alt_m + sep
        # an unknown HDOP (NaN) does not disqualify a fix; a known one above the limit does
        good = (int(fix.fix_type) in self.accepted and math.isfinite(fix.lat_deg) and math.isfinite(fix.lon_deg)
                and math.isfinite(h) and not (math.isfinite(fix.hdop) and fix.hdop > self.max_hdop))
        self._fixes.append((t_ns * 1e-9, fix.lat_deg, fix.lon_deg, h, good, fix.speed_mps, fix.course_deg))

    def add_imu(self, sample) -> None:  # type: ignore[no-untyped-def]
        """Take one :class:`agent.bus.messages.ImuSample` (gyro z = yaw rate, vehicle z up)."""
        self._imu.append((sample.utc_ns * 1e-9, float(sample.gyro[2])))

    def add(self, msg) -> None:  # type: ignore[no-untyped-def]
        """Take any bus message; fixes and IMU samples are used, the rest ignored."""
        from agent.bus.messages import GnssFix, ImuSample

        if isinstance(msg, GnssFix):
            self.add_fix(msg)
        elif isinstance(msg, ImuSample):
            self.add_imu(msg)

    def prune(self, before: float) -> int:
        """Forget fixes and IMU samples older than ``before`` (UTC s), keeping the last fix
        before it so the segment reaching ``before`` still interpolates. A live pipeline
        calls this as scans are done, so :meth:`track` stays cheap. Returns how many went."""
        fixes = sorted(self._fixes, key=lambda f: f[0])
        keep_from = 0
        for i, f in enumerate(fixes):
            if f[0] < before:
                keep_from = i
        n_old = len(self._fixes) + len(self._imu)
        if keep_from > 0:  # the heading there may rest on history about to go: keep it as a seed
            tr = self.track()
            i = int(np.searchsorted(tr.t, fixes[keep_from][0]))
            if i < len(tr.t) and math.isfinite(tr.yaw[np.searchsorted(tr.yaw_t, tr.t[i])]):
                self._seed = (float(tr.t[i]), float(tr.yaw[np.searchsorted(tr.yaw_t, tr.t[i])]))
        self._fixes = fixes[keep_from:]
        t_keep = self._fixes[0][0] if self._fixes else before
        self._imu = [s for s in self._imu if s[0] >= t_keep - self.max_imu_gap_s]
        return n_old - len(self._fixes) - len(self._imu)

    # ---- building the track ---------------------------------------------------------------

    def _gyro_integral(self) -> tuple[np.ndarray, np.ndarray] | None:
        if not self.use_imu or len(self._imu) < 2:
            return None
        imu = np.array(sorted(self._imu))
        t, w = imu[:, 0], imu[:, 1]
        cum = np.concatenate([[0.0], np.cumsum(0.5 * (w[1:] + w[:-1]) * np.diff(t))])
        return t, cum

    def _imu_covers(self, imu_t: np.ndarray, a: float, b: float) -> bool:
        if imu_t[0] > a + 1e-9 or imu_t[-1] < b - 1e-9:
            return False
        i0 = max(0, int(np.searchsorted(imu_t, a)) - 1)
        i1 = min(len(imu_t), int(np.searchsorted(imu_t, b)) + 1)
        seg = imu_t[i0:i1]
        return len(seg) >= 2 and float(np.diff(seg).max(initial=0.0)) <= self.max_imu_gap_s

    def track(self) -> PoseTrack:
        """The pose track of everything added so far."""
        fixes = sorted(self._fixes, key=lambda f: f[0])
        # one record per fix time (a duplicate epoch keeps the last)
        uniq: dict[float, tuple] = {}
        for f in fixes:
            uniq[f[0]] = f
        fixes = [uniq[k] for k in sorted(uniq)]
        k = len(fixes)
        t = np.array([f[0] for f in fixes], dtype=np.float64)
        lat = np.array([f[1] for f in fixes], dtype=np.float64)
        lon = np.array([f[2] for f in fixes], dtype=np.float64)
        h = np.array([f[3] for f in fixes], dtype=np.float64)
        good = np.array([f[4] for f in fixes], dtype=np.bool_)
        speed = np.array([f[5] for f in fixes], dtype=np.float64)
        course = np.array([f[6] for f in fixes], dtype=np.float64)
        gyro = self._gyro_integral()
        # heading at the good fixes
        yaw = np.full(k, np.nan)
        moving = good & np.isfinite(speed) & np.isfinite(course) & (speed >= self.min_course_speed)
        prev = -1
        for i in range(k):
            if not good[i]:
                continue
            if prev < 0 and self._seed is not None and t[i] == self._seed[0] and not moving[i]:
                yaw[i] = self._seed[1]
            elif moving[i]:
                y = math.radians(90.0 - course[i])
                yaw[i] = y if prev < 0 or not math.isfinite(yaw[prev]) else _unwrap_to(yaw[prev], y)
            elif prev >= 0 and math.isfinite(yaw[prev]):
                if gyro is not None and self._imu_covers(gyro[0], t[prev], t[i]):
                    yaw[i] = yaw[prev] + float(np.interp(t[i], *gyro) - np.interp(t[prev], *gyro))
                elif gyro is None:
                    yaw[i] = yaw[prev]  # no IMU: a slow vehicle is taken as stopped
            prev = i
        # before the first heading: integrate the gyro backwards where it covers
        if gyro is not None:
            first = next((i for i in range(k) if math.isfinite(yaw[i])), None)
            if first is not None:
                for i in range(first - 1, -1, -1):
                    if good[i] and math.isfinite(yaw[i + 1]) and self._imu_covers(gyro[0], t[i], t[i + 1]):
                        yaw[i] = yaw[i + 1] - float(np.interp(t[i + 1], *gyro) - np.interp(t[i], *gyro))
        # yaw table: fix times, plus IMU times inside segments the IMU covers (drift spread)
        yt: list[np.ndarray] = [t]
        yv: list[np.ndarray] = [yaw]
        if gyro is not None:
            gt, gc = gyro
            for i in range(k - 1):
                if not (math.isfinite(yaw[i]) and math.isfinite(yaw[i + 1])):
                    continue
                lo, hi = np.searchsorted(gt, t[i], side="right"), np.searchsorted(gt, t[i + 1], side="left")
                if hi <= lo or not self._imu_covers(gt, t[i], t[i + 1]):
                    continue
                ts = gt[lo:hi]
                g0 = np.interp(t[i], gt, gc)
                total = np.interp(t[i + 1], gt, gc) - g0
                frac = (ts - t[i]) / (t[i + 1] - t[i])
                yt.append(ts)
                yv.append(yaw[i] + (gc[lo:hi] - g0) + frac * (yaw[i + 1] - yaw[i] - total))
        yaw_t = np.concatenate(yt)
        yaw_v = np.concatenate(yv)
        order = np.argsort(yaw_t, kind="stable")
        yaw_t, yaw_v = yaw_t[order], yaw_v[order]
        # reference point and velocity in ECEF
        ant = geodetic_to_ecef(lat, lon, h) if k else np.zeros((0, 3))
        ref = np.full((k, 3), np.nan)
        vel = np.full((k, 3), np.nan)
        for i in range(k):
            if not good[i]:
                continue
            r = enu_rotation(lat[i], lon[i])  # rows: e, n, u in ECEF
            y = yaw[i] if math.isfinite(yaw[i]) else 0.0
            c, s = math.cos(y), math.sin(y)
            a = self.antenna
            lever_enu = np.array([c * a[0] - s * a[1], s * a[0] + c * a[1], a[2]])
            ref[i] = ant[i] - r.T @ lever_enu
            if math.isfinite(speed[i]) and math.isfinite(course[i]):
                cr = math.radians(course[i])
                ve = np.array([speed[i] * math.sin(cr), speed[i] * math.cos(cr), 0.0])
                vel[i] = r.T @ ve
        return PoseTrack(t=t, ref_ecef=ref, vel_ecef=vel, lat=lat, lon=lon, good=good, yaw_t=yaw_t, yaw=yaw_v,
                         max_gap_s=self.max_gap_s, max_extrapolation_s=self.max_extrapolation_s)


def raise_for_status(status: np.ndarray, times: np.ndarray) -> None:
    """Raise :class:`NoPoseError` for the first time without a pose (if any)."""
    bad = np.flatnonzero(status != 0)
    if len(bad):
        i = int(bad[0])
        raise NoPoseError(float(times[i]), REASONS[PoseStatus(int(status[i]))], count=len(bad))
