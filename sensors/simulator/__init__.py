"""Sensor simulator: a procedural street drive with exact ground truth.

A vehicle drives an L-shaped street in Munich (about 10 m/s, slowing for a left turn)
past buildings, lamp poles and parked cars. A spinning Velodyne (VLP-16, VLP-32C or
HDL-32E) is ray-cast against the scene (numba) and emits genuine 1206-byte data packets
and 512-byte position packets; a GNSS receiver emits NMEA GGA/RMC at 10 Hz, an IMU samples
at 100 Hz, a forward camera renders JPEG frames at 10 Hz, and the vehicle unit reports
ignition on, its supply voltage once a second and ignition off. Same seed, same bytes.

- :class:`DriveSimulation`: the drive, its sensor streams (:meth:`DriveSimulation.events`)
  and the ground truth (scene surfaces, poses at any time).
- :func:`simulate_messages`: the drive as bus messages (``agent.bus.messages`` types).
- :func:`simulate_drive`: the drive written to a drive MCAP (or, without ``out``, its messages).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sensors.simulator._drive import DriveSimulation, Fix, Frame, Imu, Power, SimEvent
from sensors.simulator._models import MODELS, LidarModel, get_model
from sensors.simulator._scene import Scene, make_street_scene
from sensors.simulator._trajectory import MUNICH_ORIGIN, Trajectory, enu_to_geodetic
from sensors.simulator._velodyne import encode_data_packets, encode_position_packet


def simulate_messages(
    duration: float = 20.0, lidar: str = "vlp16", seed: int = 0, camera: bool = True, **options: Any
) -> Iterator[Any]:
    """The simulated drive as bus messages in time order (needs the ``agent`` package)."""
    from sensors.simulator._bus import bus_messages

    return bus_messages(DriveSimulation(duration=duration, lidar=lidar, seed=seed, camera=camera, **options))


def simulate_drive(
    duration: float = 20.0,
    lidar: str = "vlp16",
    seed: int = 0,
    camera: bool = True,
    out: str | Path | None = None,
    **options: Any,
) -> Any:
    """Simulate a drive: written to the drive MCAP ``out`` (returns its :class:`Path`), or,
    without ``out``, the bus messages in time order (an iterator, as :func:`simulate_messages`).
    ``options`` go to :class:`DriveSimulation` (``start_utc``, ``rpm``, ``lidar_noise_m``...)."""
    if out is None:
        return simulate_messages(duration=duration, lidar=lidar, seed=seed, camera=camera, **options)
    from agent.recording import DriveWriter
    from sensors.simulator._bus import bus_messages

    sim = DriveSimulation(duration=duration, lidar=lidar, seed=seed, camera=camera, **options)
    with DriveWriter(out, metadata={"drive": sim.metadata()}) as writer:
        for msg in bus_messages(sim):
            writer.write(msg)
    return Path(out)


__all__ = [
    "MODELS",
    "MUNICH_ORIGIN",
    "DriveSimulation",
    "Fix",
    "Frame",
    "Imu",
    "LidarModel",
    "Power",
    "Scene",
    "SimEvent",
    "Trajectory",
    "encode_data_packets",
    "encode_position_packet",
    "enu_to_geodetic",
    "get_model",
    "make_street_scene",
    "simulate_drive",
    "simulate_messages",
]
