"""The simulated vehicle's drive: an analytic path with a speed profile, and WGS84 geodesy.

The vehicle drives along +x (east) at cruise speed, slows for a left turn of radius
``turn_radius``, and continues north. Position, heading, speed, yaw rate and
accelerations are closed-form functions of time, so IMU samples and GNSS fixes are
exactly consistent with each other and with the LiDAR poses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# WGS84
_A = 6378137.0
_F = 1 / 298.257223563
_E2 = _F * (2 - _F)
GRAVITY = 9.80665

# Munich, Ludwigstrasse near the university: a real street running roughly north-south.
MUNICH_ORIGIN = (48.1500, 11.5800, 565.0)  # lat, lon (deg), ellipsoidal height (m)
MUNICH_GEOID_SEPARATION = 47.4  # m, geoid above ellipsoid (EGM96) around Munich


def geodetic_to_ecef(lat: np.ndarray, lon: np.ndarray, h: np.ndarray) -> np.ndarray:
    lat = np.radians(lat)
    lon = np.radians(lon)
    n = _A / np.sqrt(1 - _E2 * np.sin(lat) ** 2)
    return np.stack(
        [
            (n + h) * np.cos(lat) * np.cos(lon),
            (n + h) * np.cos(lat) * np.sin(lon),
            (n * (1 - _E2) + h) * np.sin(lat),
        ],
        axis=-1,
    )


def ecef_to_geodetic(xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bowring's method with a few iterations: sub-millimetre on the Earth's surface."""
    x, y, z = xyz[..., 0], xyz[..., 1], xyz[..., 2]
    lon = np.arctan2(y, x)
    p = np.hypot(x, y)
    lat = np.arctan2(z, p * (1 - _E2))
    for _ in range(5):
        n = _A / np.sqrt(1 - _E2 * np.sin(lat) ** 2)
        h = p / np.cos(lat) - n
        lat = np.arctan2(z, p * (1 - _E2 * n / (n + h)))
    n = _A / np.sqrt(1 - _E2 * np.sin(lat) ** 2)
    h = p / np.cos(lat) - n
    return np.degrees(lat), np.degrees(lon), h


def enu_to_geodetic(
    e: np.ndarray, n: np.ndarray, u: np.ndarray, origin: tuple[float, float, float]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Local east/north/up (m) around ``origin`` (lat, lon, h) to WGS84 lat, lon, h."""
    lat0, lon0, h0 = origin
    o = geodetic_to_ecef(np.asarray(lat0), np.asarray(lon0), np.asarray(h0))
    sl, cl = np.sin(np.radians(lat0)), np.cos(np.radians(lat0))
    so, co = np.sin(np.radians(lon0)), np.cos(np.radians(lon0))
    e, n, u = np.asarray(e, float), np.asarray(n, float), np.asarray(u, float)
    dx = -so * e - sl * co * n + cl * co * u
    dy = co * e - sl * so * n + cl * so * u
    dz = cl * n + sl * u
    return ecef_to_geodetic(np.stack([o[0] + dx, o[1] + dy, o[2] + dz], axis=-1))


@dataclass
class Poses:
    """Vehicle state at given times (arrays), in the local ENU frame."""

    x: np.ndarray
    y: np.ndarray
    yaw: np.ndarray  # rad, 0 = east, counter-clockwise
    speed: np.ndarray  # m/s
    yaw_rate: np.ndarray  # rad/s
    accel: np.ndarray  # m/s^2 along the path


class Trajectory:
    """Speed profile (piecewise constant acceleration) along the L-shaped path."""

    def __init__(
        self,
        cruise: float = 10.0,
        turn_speed: float = 5.0,
        turn_radius: float = 15.0,
        straight: float = 100.0,
        decel: float = 2.0,
    ) -> None:
        self.cruise = cruise
        self.turn_speed = turn_speed
        self.radius = turn_radius
        self.straight = straight
        self.arc = np.pi * turn_radius / 2
        t_brake = (cruise - turn_speed) / decel
        s_brake = (cruise + turn_speed) / 2 * t_brake
        t1 = (straight - s_brake) / cruise
        t2 = t1 + t_brake
        t3 = t2 + self.arc / turn_speed
        t4 = t3 + t_brake
        # (t start, s start, v start, acceleration)
        self._seg = np.array(
            [
                [0.0, 0.0, cruise, 0.0],
                [t1, straight - s_brake, cruise, -decel],
                [t2, straight, turn_speed, 0.0],
                [t3, straight + self.arc, turn_speed, decel],
                [t4, straight + self.arc + s_brake, cruise, 0.0],
            ]
        )
        self.turn_times = (t2, t3)

    @property
    def corner_x(self) -> float:
        """x of street 2's centreline."""
        return self.straight + self.radius

    def arc_length(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(s, v, a) at times ``t`` (seconds since the start)."""
        t = np.asarray(t, dtype=np.float64)
        i = np.clip(np.searchsorted(self._seg[:, 0], t, side="right") - 1, 0, len(self._seg) - 1)
        t0, s0, v0, a = (self._seg[i, k] for k in range(4))
        dt = t - t0
        return s0 + v0 * dt + 0.5 * a * dt * dt, v0 + a * dt, a

    def poses(self, t: np.ndarray) -> Poses:
        s, v, a = self.arc_length(t)
        L, R = self.straight, self.radius
        theta = np.clip((s - L) / R, 0.0, np.pi / 2)
        on_arc = (s > L) & (s < L + self.arc)
        after = s >= L + self.arc
        x = np.where(s <= L, s, L + R * np.sin(theta))
        y = np.where(s <= L, 0.0, R * (1 - np.cos(theta)))
        y = np.where(after, R + (s - L - self.arc), y)
        x = np.where(after, L + R, x)
        yaw = theta
        yaw_rate = np.where(on_arc, v / R, 0.0)
        return Poses(
            x=np.asarray(x, float),
            y=np.asarray(y, float),
            yaw=np.asarray(yaw, float),
            speed=np.asarray(v, float),
            yaw_rate=np.asarray(yaw_rate, float),
            accel=np.broadcast_to(np.asarray(a, float), np.shape(x)).copy(),
        )

    def imu(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Body-frame (x forward, y left, z up) specific force (m/s^2) and angular rate (rad/s)."""
        p = self.poses(t)
        n = np.size(t)
        acc = np.stack([p.accel, p.speed * p.yaw_rate, np.full(n, GRAVITY)], axis=-1)
        gyr = np.stack([np.zeros(n), np.zeros(n), p.yaw_rate], axis=-1)
        return acc, gyr
