"""Velodyne packet encoding and the simulated spinning LiDAR.

Data packets are the sensor's exact 1206-byte format: 12 blocks of (0xFFEE flag, azimuth in
0.01 degree, 32 records of uint16 distance + uint8 reflectivity), a uint32 timestamp in
microseconds past the hour (time of the packet's first firing), the return mode byte
(0x37 strongest) and the product id byte. Position packets (512 bytes, port 8308) carry the
timestamp at byte 198, the PPS status at 202 and an NMEA ``$GPRMC`` sentence from byte 206.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from sensors.packets import Packet
from sensors.simulator._models import (
    BLOCK_FLAG,
    BLOCKS_PER_PACKET,
    DATA_PACKET_SIZE,
    DATA_PORT,
    POSITION_PACKET_SIZE,
    POSITION_PORT,
    RECORDS_PER_BLOCK,
    RETURN_STRONGEST,
    LidarModel,
)
from sensors.simulator._raycast import cast_rays_binned
from sensors.simulator._scene import Scene
from sensors.simulator._trajectory import Trajectory

RECORD_DTYPE = np.dtype([("distance", "<u2"), ("reflectivity", "u1")])
BLOCK_DTYPE = np.dtype([("flag", "<u2"), ("azimuth", "<u2"), ("records", RECORD_DTYPE, (RECORDS_PER_BLOCK,))])
PACKET_DTYPE = np.dtype(
    [
        ("blocks", BLOCK_DTYPE, (BLOCKS_PER_PACKET,)),
        ("timestamp", "<u4"),
        ("return_mode", "u1"),
        ("product_id", "u1"),
    ]
)
assert PACKET_DTYPE.itemsize == DATA_PACKET_SIZE


def encode_data_packets(
    azimuth_cdeg: np.ndarray,
    distance: np.ndarray,
    reflectivity: np.ndarray,
    toh_us: np.ndarray,
    product_id: int,
    return_mode: int = RETURN_STRONGEST,
) -> list[bytes]:
    """Packets from per-packet arrays: ``azimuth_cdeg`` (P, 12), ``distance`` in the
    model's units and ``reflectivity`` (P, 12, 32), ``toh_us`` (P,)."""
    n = len(toh_us)
    arr = np.zeros(n, dtype=PACKET_DTYPE)
    arr["blocks"]["flag"] = BLOCK_FLAG
    arr["blocks"]["azimuth"] = azimuth_cdeg
    arr["blocks"]["records"]["distance"] = distance
    arr["blocks"]["records"]["reflectivity"] = reflectivity
    arr["timestamp"] = toh_us
    arr["return_mode"] = return_mode
    arr["product_id"] = product_id
    raw = arr.tobytes()
    return [raw[i * DATA_PACKET_SIZE : (i + 1) * DATA_PACKET_SIZE] for i in range(n)]


def encode_position_packet(toh_us: int, nmea: str, pps_locked: bool = True) -> bytes:
    """A 512-byte position packet carrying ``nmea`` (a ``$GPRMC`` sentence)."""
    buf = bytearray(POSITION_PACKET_SIZE)
    buf[198:202] = int(toh_us).to_bytes(4, "little")
    buf[202] = 2 if pps_locked else 0
    text = nmea.encode("ascii")[: POSITION_PACKET_SIZE - 206 - 2] + b"\r\n"
    buf[206 : 206 + len(text)] = text
    return bytes(buf)


def micros_past_hour(t: np.ndarray) -> np.ndarray:
    """Timestamp field: microseconds past the UTC hour, rounded to the nearest µs."""
    us = np.round(np.asarray(t, dtype=np.float64) * 1e6).astype(np.int64)
    return (us % 3_600_000_000).astype(np.uint32)


class SimulatedLidar:
    """A spinning Velodyne on the vehicle roof, ray-cast against the scene.

    Packets follow each other without gaps (the sensor's natural rate); packet ``p``
    starts at ``t0 + p * packet_duration``. ``Packet.timestamp`` is the host receive
    time, a little after the packet's last firing, as a capture would show it.
    """

    def __init__(
        self,
        model: LidarModel,
        scene: Scene,
        trajectory: Trajectory,
        t0: float,
        rpm: float = 600.0,
        mount_height: float = 1.9,
        start_azimuth_deg: float = 0.0,
        position_every: int = 10,
        noise_m: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.model = model
        self.scene = scene
        self.trajectory = trajectory
        self.t0 = t0
        self.deg_per_s = rpm / 60.0 * 360.0
        self.mount_height = mount_height
        self.start_azimuth_deg = start_azimuth_deg
        self.position_every = position_every
        self.noise_m = noise_m
        self.rng = np.random.default_rng(seed + 7919)
        self._elev, self._rot, self._laser, self._offs, self._zoff = model.arrays()
        self.packet_s = model.packet_us * 1e-6
        self.block_s = model.block_us * 1e-6

    def azimuth_deg(self, t_rel: np.ndarray) -> np.ndarray:
        """The encoder angle at ``t_rel`` seconds after the start (0-360)."""
        return np.mod(self.start_azimuth_deg + self.deg_per_s * np.asarray(t_rel), 360.0)

    def sensor_pose(self, t_rel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sensor origin ``(N, 3)`` in the local frame and yaw (rad) at ``t_rel``."""
        p = self.trajectory.poses(np.atleast_1d(t_rel))
        origin = np.stack([p.x, p.y, np.full_like(p.x, self.mount_height)], axis=-1)
        return origin, p.yaw

    def packet_count(self, duration: float) -> int:
        return int(np.floor(duration / self.packet_s))

    def simulate(self, p0: int, p1: int, rmc_at: Callable[[float], str] | None = None) -> Iterator[Packet]:
        """Packets ``p0`` to ``p1 - 1`` (data, with a position packet every
        ``position_every`` data packets when ``rmc_at`` gives the current RMC sentence)."""
        m = self.model
        n = p1 - p0
        if n <= 0:
            return
        t_pkt = np.arange(p0, p1, dtype=np.float64) * self.packet_s  # relative
        t_blk = t_pkt[:, None] + np.arange(BLOCKS_PER_PACKET)[None, :] * self.block_s  # (P, 12)
        t_fire = t_blk[:, :, None] + self._offs[None, None, :]  # (P, 12, 32)
        az_blk = self.azimuth_deg(t_blk)
        beam_az = np.radians(self.azimuth_deg(t_fire)) - self._rot[None, None, :]
        elev = np.broadcast_to(self._elev[None, None, :], t_fire.shape)
        ce = np.cos(elev)
        # Sensor frame: x forward, y left, z up; the azimuth turns clockwise seen from above.
        sx, sy, sz = ce * np.cos(beam_az), -ce * np.sin(beam_az), np.sin(elev)
        flat_t = t_fire.reshape(-1)
        origin, yaw = self.sensor_pose(flat_t)
        cy, syaw = np.cos(yaw), np.sin(yaw)
        sx, sy, sz = sx.reshape(-1), sy.reshape(-1), sz.reshape(-1)
        dirs = np.stack([sx * cy - sy * syaw, sx * syaw + sy * cy, sz], axis=-1)
        # Each beam starts at its own height on the sensor's axis (flat road: sensor z = world z).
        origin[:, 2] += np.broadcast_to(self._zoff[None, None, :], t_fire.shape).reshape(-1)
        mid = origin[len(origin) // 2]
        boxes, brefl, cyls, crefl = self.scene.near(float(mid[0]), float(mid[1]), m.max_range_m + 20.0)
        dist, refl = cast_rays_binned(
            np.ascontiguousarray(origin),
            np.ascontiguousarray(dirs),
            boxes,
            brefl,
            cyls,
            crefl,
            self.scene.ground_reflectivity,
            m.min_range_m,
            m.max_range_m,
        )
        if self.noise_m > 0:
            hit = dist > 0
            dist[hit] += self.rng.normal(0.0, self.noise_m, int(hit.sum()))
        units = np.clip(np.round(dist / m.distance_resolution_m), 0, 65535).astype(np.uint16)
        units = units.reshape(n, BLOCKS_PER_PACKET, RECORDS_PER_BLOCK)
        refl = refl.reshape(n, BLOCKS_PER_PACKET, RECORDS_PER_BLOCK)
        az_c = (np.round(az_blk * 100.0).astype(np.int64) % 36000).astype(np.uint16)
        t_abs = self.t0 + t_pkt
        # Microseconds past the hour from integers: float epoch seconds carry only ~0.2 us.
        us = round(self.t0 * 1e6) + np.round(np.arange(p0, p1) * m.packet_us).astype(np.int64)
        toh = (us % 3_600_000_000).astype(np.uint32)
        datas = encode_data_packets(az_c, units, refl, toh, m.product_id)
        for i, data in enumerate(datas):
            recv = float(t_abs[i] + self.packet_s + 50e-6)
            yield Packet(recv, DATA_PORT, data)
            k = p0 + i
            if (
                rmc_at is not None
                and self.position_every
                and k % self.position_every == self.position_every - 1
            ):
                yield Packet(
                    recv + 20e-6,
                    POSITION_PORT,
                    encode_position_packet(int(micros_past_hour(recv)), rmc_at(recv)),
                )
