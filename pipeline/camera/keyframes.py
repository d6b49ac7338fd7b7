"""Camera keyframes by distance travelled along the GNSS track (pure: no I/O, no clocks).

:class:`GnssTrack` keeps the recent fixes with the distance travelled up to each one (an
odometer: haversine between successive fixes, segments slower than ``stationary_speed_mps``
adding nothing so that position noise while parked does not count) and gives the interpolated
:class:`Position` at any time: linear in latitude, longitude (across the antimeridian),
altitude and odometer, circular in course. Between fixes further apart than ``max_gap_s`` there
is no position; past the last fix the position is dead-reckoned from its speed and course for
at most ``max_extrapolation_s`` (a live frame arrives before the next fix).

:class:`KeyframeSelector` says when a frame is due: its odometer is ``every_m`` past the last
keyframe's and ``min_interval_s`` has passed. A due frame that is then rejected (blurred) is
not marked, so the next sharp frame is taken instead.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from typing import NamedTuple

from agent.bus.messages import NO_TIME, GnssFix

EARTH_RADIUS_M = 6371008.8  # mean Earth radius (IUGG), for haversine distances


class Position(NamedTuple):
    """Where the vehicle was at ``utc_ns``."""

    utc_ns: int
    lat_deg: float
    lon_deg: float
    alt_m: float  # above mean sea level; NaN when unknown
    course_deg: float  # course over ground from true north; NaN when unknown
    speed_mps: float  # NaN when unknown
    odometer_m: float  # distance travelled along the track since the first fix kept
    hdop: float = math.nan
    extrapolated: bool = False


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres between two WGS84 points (degrees), on the mean sphere:
    within 0.5 % of the ellipsoidal distance, far below GNSS noise over a few metres."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2.0 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(a)))


def _wrap180(d: float) -> float:
    return (d + 180.0) % 360.0 - 180.0


def _lerp_angle(a: float, b: float, f: float) -> float:
    """Interpolate two angles in degrees the short way round; NaN when either is NaN."""
    if math.isnan(a) or math.isnan(b):
        return a if f < 0.5 else b
    return (a + _wrap180(b - a) * f) % 360.0


def fix_time_ns(fix: GnssFix) -> int:
    """The receiver's UTC time of a fix, or the bus UTC time when the receiver gave none."""
    return fix.fix_utc_ns if fix.fix_utc_ns != NO_TIME else fix.utc_ns


def interpolate(a: Position, b: Position, t_ns: int) -> Position:
    """The position at ``t_ns`` between ``a`` and ``b`` (``a.utc_ns <= t_ns <= b.utc_ns``)."""
    span = b.utc_ns - a.utc_ns
    f = 0.0 if span <= 0 else (t_ns - a.utc_ns) / span
    lon = _wrap180(a.lon_deg + _wrap180(b.lon_deg - a.lon_deg) * f)
    alt = a.alt_m + (b.alt_m - a.alt_m) * f
    if math.isnan(alt):  # one end without altitude: take the other rather than nothing
        alt = a.alt_m if not math.isnan(a.alt_m) else b.alt_m
    spd = a.speed_mps + (b.speed_mps - a.speed_mps) * f
    return Position(
        t_ns,
        a.lat_deg + (b.lat_deg - a.lat_deg) * f,
        lon,
        alt,
        _lerp_angle(a.course_deg, b.course_deg, f),
        spd,
        a.odometer_m + (b.odometer_m - a.odometer_m) * f,
        a.hdop if f < 0.5 else b.hdop,
    )


def dead_reckon(p: Position, t_ns: int) -> Position:
    """``p`` moved on along its course at its speed to ``t_ns`` (held in place when either is
    unknown), on the local sphere."""
    dt = (t_ns - p.utc_ns) / 1e9
    if math.isnan(p.speed_mps) or math.isnan(p.course_deg):
        return p._replace(utc_ns=t_ns, extrapolated=True)
    d = p.speed_mps * dt
    c = math.radians(p.course_deg)
    dlat = math.degrees(d * math.cos(c) / EARTH_RADIUS_M)
    coslat = max(1e-9, math.cos(math.radians(p.lat_deg)))
    dlon = math.degrees(d * math.sin(c) / (EARTH_RADIUS_M * coslat))
    return p._replace(
        utc_ns=t_ns,
        lat_deg=p.lat_deg + dlat,
        lon_deg=_wrap180(p.lon_deg + dlon),
        odometer_m=p.odometer_m + abs(d),
        extrapolated=True,
    )


class GnssTrack:
    """The recent GNSS fixes in time order, with an odometer, answering positions at any time.

    Fixes without a position (no fix, NaN latitude) are ignored; a fix older than the newest one
    is inserted in order (its odometer then counts from its neighbour before it, and the ones
    after it are not recomputed: bus reordering is rare and small). ``max_fixes`` bounds memory
    on a long drive (the oldest are dropped).
    """

    def __init__(
        self,
        *,
        stationary_speed_mps: float = 0.5,
        max_gap_s: float = 5.0,
        max_extrapolation_s: float = 1.0,
        max_fixes: int = 3600,
    ) -> None:
        self.stationary_speed_mps = stationary_speed_mps
        self.max_gap_ns = int(max_gap_s * 1e9)
        self.max_extrapolation_ns = int(max_extrapolation_s * 1e9)
        self.max_fixes = max_fixes
        self._times: list[int] = []
        self._pos: list[Position] = []

    def __len__(self) -> int:
        return len(self._pos)

    def add(self, fix: GnssFix) -> bool:
        """Add one fix; False when it has no usable position or time (ignored)."""
        if not fix.has_fix or math.isnan(fix.lon_deg):
            return False
        t = fix_time_ns(fix)
        if t == NO_TIME:
            return False
        i = bisect.bisect_right(self._times, t)
        if i > 0 and self._times[i - 1] == t:  # the same epoch twice (RMC and GGA): keep the first
            return False
        odo = 0.0
        if i > 0:
            prev = self._pos[i - 1]
            step = haversine_m(prev.lat_deg, prev.lon_deg, fix.lat_deg, fix.lon_deg)
            slow = [s for s in (prev.speed_mps, fix.speed_mps) if not math.isnan(s)]
            parked = bool(slow) and max(slow) < self.stationary_speed_mps
            # no distance across a gap either: the track is not known there
            odo = prev.odometer_m + (0.0 if parked or t - prev.utc_ns > self.max_gap_ns else step)
        p = Position(t, fix.lat_deg, fix.lon_deg, fix.alt_m, fix.course_deg, fix.speed_mps, odo, fix.hdop)
        self._times.insert(i, t)
        self._pos.insert(i, p)
        if len(self._pos) > self.max_fixes:
            del self._times[0], self._pos[0]
        return True

    def extend(self, fixes: Iterable[GnssFix]) -> int:
        """Add many fixes; returns how many were kept."""
        return sum(self.add(f) for f in fixes)

    def position_at(self, t_ns: int) -> Position | None:
        """The interpolated position at ``t_ns``, or None: before the first fix, inside a gap
        longer than ``max_gap_s``, or more than ``max_extrapolation_s`` past the last fix."""
        if not self._pos:
            return None
        i = bisect.bisect_left(self._times, t_ns)
        if i < len(self._times) and self._times[i] == t_ns:
            return self._pos[i]
        if i == 0:
            return None
        a = self._pos[i - 1]
        if i == len(self._pos):
            if t_ns - a.utc_ns > self.max_extrapolation_ns:
                return None
            return dead_reckon(a, t_ns)
        b = self._pos[i]
        if b.utc_ns - a.utc_ns > self.max_gap_ns:
            return None
        return interpolate(a, b, t_ns)


class KeyframeSelector:
    """Decides which frames become keyframes: every ``every_m`` metres of odometer, at least
    ``min_interval_s`` apart. The first positioned frame is always due."""

    def __init__(self, every_m: float = 5.0, min_interval_s: float = 0.5) -> None:
        if every_m <= 0:
            raise ValueError("every_m must be positive")
        self.every_m = every_m
        self.min_interval_ns = int(min_interval_s * 1e9)
        self.last: Position | None = None

    def due(self, p: Position) -> bool:
        """Whether a frame at position ``p`` should become a keyframe."""
        if self.last is None:
            return True
        if abs(p.utc_ns - self.last.utc_ns) < self.min_interval_ns:
            return False
        # a micrometre of slack: a frame exactly N metres on must not miss by rounding
        return p.odometer_m - self.last.odometer_m >= self.every_m - 1e-6

    def mark(self, p: Position) -> None:
        """Record that a keyframe was taken at ``p``."""
        self.last = p


def select_keyframes(
    times_ns: Iterable[int], track: GnssTrack, every_m: float, min_interval_s: float = 0.0
) -> list[int]:
    """Indices of the frames at ``times_ns`` that are keyframes (no blur check): the selection
    on its own, for planning and tests."""
    sel = KeyframeSelector(every_m, min_interval_s)
    out = []
    for i, t in enumerate(times_ns):
        p = track.position_at(t)
        if p is not None and sel.due(p):
            sel.mark(p)
            out.append(i)
    return out
