"""The simulated drive: one trajectory, one scene, and every sensor's output in time order."""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

from sensors.simulator import _nmea
from sensors.simulator._models import LidarModel, get_model
from sensors.simulator._scene import Scene, make_street_scene
from sensors.simulator._trajectory import (
    MUNICH_GEOID_SEPARATION,
    MUNICH_ORIGIN,
    Trajectory,
    enu_to_geodetic,
)
from sensors.simulator._velodyne import SimulatedLidar

DEFAULT_START_UTC = 1717236000.0  # 2024-06-01T10:00:00Z: fixed so a seed gives the same bytes
MONO_BASE_NS = 1_000_000_000_000  # simulated monotonic clock at the drive's start
GNSS_LATENCY_S = 0.03  # receiver output delay after the fix epoch
LIDAR_MOUNT_HEIGHT = 1.9
GNSS_ANTENNA_HEIGHT = 1.95


KINDS = ("lidar", "nmea", "fix", "imu", "camera", "power")


class SimEvent(NamedTuple):
    """One sensor output: ``t`` UTC seconds; ``kind`` is lidar | nmea | fix | imu | camera | power."""

    t: float
    kind: str
    payload: Any


@dataclass(frozen=True)
class Fix:
    """A GNSS fix as the receiver reports it (the antenna position)."""

    epoch: float  # UTC of the fix
    lat: float
    lon: float
    alt_msl: float
    geoid_sep: float
    speed_mps: float
    course_deg: float
    fix_quality: int = 4
    sats: int = 14
    hdop: float = 0.7


@dataclass(frozen=True)
class Imu:
    gyro: tuple[float, float, float]
    accel: tuple[float, float, float]


@dataclass(frozen=True)
class Power:
    """The vehicle unit's supply: ``kind`` is ignition_on, voltage or ignition_off."""

    kind: str
    ignition: bool
    supply_v: float


@dataclass(frozen=True)
class Frame:
    camera_id: str
    width: int
    height: int
    jpeg: bytes
    index: int


@dataclass
class DriveSimulation:
    """A deterministic simulated drive (same seed, same bytes).

    Ground truth for tests: :attr:`scene` (surfaces), :attr:`trajectory` (vehicle pose at
    any time), :meth:`lidar_pose` (sensor origin and yaw at UTC times) and :attr:`origin`
    (WGS84 of the scene frame's origin). Frames: scene x east, y north, z up from the road;
    the LiDAR sits ``LIDAR_MOUNT_HEIGHT`` above the vehicle reference point (on the ground
    below the GNSS antenna), axes aligned with the vehicle (x forward, y left, z up).
    """

    duration: float = 20.0
    lidar: str = "vlp16"
    seed: int = 0
    camera: bool = True
    start_utc: float = DEFAULT_START_UTC
    origin: tuple[float, float, float] = MUNICH_ORIGIN
    rpm: float = 600.0
    gnss_hz: float = 10.0
    imu_hz: float = 100.0
    camera_hz: float = 10.0
    camera_size: tuple[int, int] = (640, 360)
    lidar_noise_m: float = 0.0
    model: LidarModel = field(init=False)
    trajectory: Trajectory = field(init=False)
    scene: Scene = field(init=False)
    sensor: SimulatedLidar = field(init=False)
    _rmc_cache: tuple[int, str] = field(init=False, default=(-1, ""), repr=False)

    def __post_init__(self) -> None:
        if not (self.duration > 0 and math.isfinite(self.duration)):
            from sensors.errors import SensorError

            raise SensorError(
                f"simulation duration must be a positive number of seconds, not {self.duration}"
            )
        self.model = get_model(self.lidar)
        self.trajectory = Trajectory()
        s_end = float(self.trajectory.arc_length(np.array([self.duration]))[0][0])
        street2 = max(0.0, s_end - self.trajectory.straight - self.trajectory.arc) + self.model.max_range_m
        self.scene = make_street_scene(self.seed, self.trajectory.corner_x, street2)
        rng = np.random.default_rng(self.seed)
        self.sensor = SimulatedLidar(
            self.model,
            self.scene,
            self.trajectory,
            self.start_utc,
            rpm=self.rpm,
            mount_height=LIDAR_MOUNT_HEIGHT,
            start_azimuth_deg=float(rng.uniform(0, 360)),
            noise_m=self.lidar_noise_m,
            seed=self.seed,
        )

    # ---- ground truth ----------------------------------------------------------------------

    def lidar_pose(self, utc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sensor origin ``(N, 3)`` in the scene frame and yaw (rad) at UTC times."""
        return self.sensor.sensor_pose(np.asarray(utc, dtype=np.float64) - self.start_utc)

    def to_scene(self, xyz: np.ndarray, utc: np.ndarray) -> np.ndarray:
        """Points in the LiDAR frame at their UTC times → scene frame."""
        origin, yaw = self.lidar_pose(utc)
        c, s = np.cos(yaw), np.sin(yaw)
        x, y, z = (np.asarray(xyz[:, k], dtype=np.float64) for k in range(3))
        return np.stack(
            [origin[:, 0] + x * c - y * s, origin[:, 1] + x * s + y * c, origin[:, 2] + z], axis=1
        )

    def fix_at(self, epoch: float) -> Fix:
        p = self.trajectory.poses(np.array([epoch - self.start_utc]))
        lat, lon, h = enu_to_geodetic(p.x, p.y, np.array([GNSS_ANTENNA_HEIGHT]), self.origin)
        course = (90.0 - math.degrees(float(p.yaw[0]))) % 360.0  # from north, clockwise
        return Fix(
            epoch=epoch,
            lat=float(lat[0]),
            lon=float(lon[0]),
            alt_msl=float(h[0]) - MUNICH_GEOID_SEPARATION,
            geoid_sep=MUNICH_GEOID_SEPARATION,
            speed_mps=float(p.speed[0]),
            course_deg=course,
        )

    def metadata(self) -> dict[str, str]:
        """Facts about the drive for the recording's metadata (all values strings)."""
        return {
            "simulator": "edge-agent street simulator",
            "seed": str(self.seed),
            "lidar_model": self.model.name,
            "lidar_rpm": f"{self.rpm:g}",
            "duration_s": f"{self.duration:g}",
            "start_utc": f"{self.start_utc:.6f}",
            "origin_lat_lon_h": ",".join(f"{v:.9f}" for v in self.origin),
            "lidar_mount_xyz_rpy": f"0,0,{LIDAR_MOUNT_HEIGHT},0,0,0",
            "gnss_antenna_xyz": f"0,0,{GNSS_ANTENNA_HEIGHT}",
            "camera_mount_xyz": "1.0,0,1.5",
            "camera_intrinsics_fx_fy_cx_cy": "420,420,{:g},{:g}".format(*(v / 2 for v in self.camera_size)),
            "imu_mount_xyz_rpy": "0,0,0,0,0,0",
            "vehicle_frame": "x forward, y left, z up; origin on the road below the GNSS antenna; "
            "mounts are x,y,z (m), roll,pitch,yaw (rad) in it",
        }

    # ---- sensor streams --------------------------------------------------------------------

    def _rmc_at(self, t: float) -> str:
        k = math.floor((t - self.start_utc) * self.gnss_hz + 1e-9)
        if self._rmc_cache[0] != k:
            epoch = self.start_utc + k / self.gnss_hz
            f = self.fix_at(epoch)
            self._rmc_cache = (k, _nmea.rmc(epoch, f.lat, f.lon, f.speed_mps, f.course_deg))
        return self._rmc_cache[1]

    def rmc_at(self, t: float) -> str:
        """The newest ``$GNRMC`` sentence at UTC ``t`` (what position packets carry)."""
        return self._rmc_at(t)

    def lidar_packets(self, start: float = 0.0, seconds: float | None = None, position: bool = True) -> list:
        """The LiDAR's packets (``sensors.packets.Packet``) from ``start`` seconds into the
        drive for ``seconds`` (default: to the end), with position packets unless ``position``
        is False. Same bytes as in :meth:`events`."""
        p0 = self.sensor.packet_count(start)
        end = self.duration if seconds is None else min(self.duration, start + seconds)
        p1 = max(p0, self.sensor.packet_count(end))
        return list(self.sensor.simulate(p0, p1, self._rmc_at if position else None))

    def _lidar_events(self, chunk: int = 150) -> Iterator[SimEvent]:
        total = self.sensor.packet_count(self.duration)
        for p0 in range(0, total, chunk):
            for pkt in self.sensor.simulate(p0, min(total, p0 + chunk), self._rmc_at):
                yield SimEvent(pkt.timestamp, "lidar", pkt)

    def _gnss_events(self) -> Iterator[SimEvent]:
        n = int(math.floor(self.duration * self.gnss_hz + 1e-9))
        for k in range(n):
            epoch = self.start_utc + k / self.gnss_hz
            f = self.fix_at(epoch)
            t = epoch + GNSS_LATENCY_S
            yield SimEvent(
                t,
                "nmea",
                _nmea.gga(epoch, f.lat, f.lon, f.alt_msl, f.geoid_sep, f.fix_quality, f.sats, f.hdop),
            )
            yield SimEvent(t + 1e-4, "nmea", _nmea.rmc(epoch, f.lat, f.lon, f.speed_mps, f.course_deg))
            yield SimEvent(t + 2e-4, "fix", f)

    def _imu_events(self) -> Iterator[SimEvent]:
        n = int(math.floor(self.duration * self.imu_hz + 1e-9))
        t_rel = np.arange(n) / self.imu_hz
        acc, gyr = self.trajectory.imu(t_rel)
        for k in range(n):
            yield SimEvent(
                self.start_utc + float(t_rel[k]),
                "imu",
                Imu(gyro=tuple(float(v) for v in gyr[k]), accel=tuple(float(v) for v in acc[k])),
            )

    def _camera_events(self) -> Iterator[SimEvent]:
        from sensors.simulator._camera import CameraRenderer

        w, h = self.camera_size
        cam = CameraRenderer(self.scene, w, h, seed=self.seed)
        n = int(math.floor(self.duration * self.camera_hz + 1e-9))
        for k in range(n):
            t_rel = (k + 0.5) / self.camera_hz  # exposure mid-way between GNSS epochs
            p = self.trajectory.poses(np.array([t_rel]))
            jpeg = cam.jpeg(float(p.x[0]), float(p.y[0]), float(p.yaw[0]))
            yield SimEvent(self.start_utc + t_rel, "camera", Frame("cam_front", w, h, jpeg, k))

    def _power_events(self) -> Iterator[SimEvent]:
        """Ignition on just before the first sample, the supply voltage once a second, and
        ignition off after the last: the session a dataset spans."""
        yield SimEvent(self.start_utc - 0.5, "power", Power("ignition_on", True, 13.9))
        for k in range(int(math.floor(self.duration)) + 1):
            if k < self.duration:
                yield SimEvent(
                    self.start_utc + k + 0.25, "power", Power("voltage", True, round(14.1 - 0.01 * k, 3))
                )
        yield SimEvent(self.start_utc + self.duration + 0.5, "power", Power("ignition_off", False, 12.6))

    def events(self, kinds: set[str] | None = None) -> Iterator[SimEvent]:
        """Every sensor output of the drive in time order (``kinds`` picks streams among
        lidar, nmea, fix, imu, camera, power)."""
        want = set(KINDS) if kinds is None else set(kinds)
        if not self.camera:
            want.discard("camera")
        streams: list[Iterator[SimEvent]] = []
        if "lidar" in want:
            streams.append(self._lidar_events())
        if want & {"nmea", "fix"}:
            streams.append(e for e in self._gnss_events() if e.kind in want)
        if "imu" in want:
            streams.append(self._imu_events())
        if "camera" in want:
            streams.append(self._camera_events())
        if "power" in want:
            streams.append(self._power_events())
        return heapq.merge(*streams, key=lambda e: e.t)

    def mono_ns(self, t: float) -> int:
        """The simulated monotonic clock at UTC ``t``."""
        return MONO_BASE_NS + int(round((t - self.start_utc) * 1e9))
