"""Fixture clouds for the kernel tests: the nuScenes sweep and decoded Velodyne/Ouster scans."""

from __future__ import annotations

import functools

import numpy as np

from tests._fixtures import FIXTURES, fixture_file

NUSCENES_GLOB = "camera/nuscenes/LIDAR_TOP__*.pcd.bin"


def nuscenes() -> np.ndarray:
    """(N, 5) float32: x y z intensity ring."""
    found = sorted((FIXTURES / "camera" / "nuscenes").glob("LIDAR_TOP__*.pcd.bin"))
    path = fixture_file(str(found[0].relative_to(FIXTURES))) if found else fixture_file(NUSCENES_GLOB)
    return np.fromfile(path, dtype=np.float32).reshape(-1, 5)


@functools.cache
def velodyne_scans() -> tuple:
    from agent.cli.cmd_decode import decode_source

    path = fixture_file("lidar/velodyne/vlp16_county_fair.pcap")
    return tuple(decode_source(str(path))[2])


@functools.cache
def ouster_scans() -> tuple:
    from agent.cli.cmd_decode import decode_source

    pcap = fixture_file("lidar/ouster/OS-1-128_v2.3.0_1024x10_lb_n3.pcap")
    meta = fixture_file("lidar/ouster/OS-1-128_v2.3.0_1024x10.json")
    return tuple(decode_source(str(pcap), meta=str(meta))[2])


def stacked(xyz: np.ndarray, copies: int = 10, sigma: float = 0.01, seed: int = 0) -> np.ndarray:
    """``copies`` jittered copies of a cloud stacked (a denser, larger cloud)."""
    rng = np.random.default_rng(seed)
    return np.concatenate([xyz + rng.normal(0, sigma, xyz.shape).astype(xyz.dtype) for _ in range(copies)])
