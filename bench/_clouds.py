"""Point clouds the pipeline suites run on: the nuScenes sweep, decoded Velodyne and Ouster
scans, ten jittered copies of the sweep stacked, or a file given with ``--input``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(os.environ.get("EDGE_AGENT_FIXTURES", _ROOT.parent / "shared" / "fixtures"))


def single_thread() -> None:
    """One thread for every library measured (numba, Open3D's OpenMP)."""
    import numba

    numba.set_num_threads(1)
    try:
        import open3d as o3d

        o3d.utility.set_max_threads(1)
    except (ImportError, AttributeError):
        pass


def _nuscenes() -> np.ndarray | None:
    found = sorted((FIXTURES / "camera" / "nuscenes").glob("LIDAR_TOP__*.pcd.bin"))
    if not found:
        return None
    return np.ascontiguousarray(np.fromfile(found[0], dtype=np.float32).reshape(-1, 5)[:, :3])


def _decoded(pcap: Path, meta: Path | None = None) -> np.ndarray | None:
    if not pcap.exists() or (meta is not None and not meta.exists()):
        return None
    from agent.cli.cmd_decode import decode_source

    scans = decode_source(str(pcap), meta=str(meta) if meta else None)[2]
    if not scans:
        return None
    full = max(scans, key=len)  # the fullest rotation
    return np.ascontiguousarray(full.xyz)


def stacked(xyz: np.ndarray, copies: int = 10, sigma: float = 0.01, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([xyz + rng.normal(0, sigma, xyz.shape).astype(xyz.dtype) for _ in range(copies)])


def clouds(input: str | None = None) -> Iterator[tuple[str, np.ndarray]]:
    """``(case name, xyz (N, 3))`` for each available cloud (only ``input`` when given)."""
    if input:
        from pipeline._cloudio import load_cloud

        yield Path(input).name, load_cloud(input).xyz
        return
    nus = _nuscenes()
    if nus is not None:
        yield f"nuScenes sweep ({len(nus) / 1e3:.0f}k)", nus
    vel = _decoded(FIXTURES / "lidar" / "velodyne" / "vlp16_county_fair.pcap")
    if vel is not None:
        yield f"VLP-16 scan ({len(vel) / 1e3:.0f}k)", vel
    ous = _decoded(FIXTURES / "lidar" / "ouster" / "OS-1-128_v2.3.0_1024x10_lb_n3.pcap",
                   FIXTURES / "lidar" / "ouster" / "OS-1-128_v2.3.0_1024x10.json")
    if ous is not None:
        yield f"OS-1-128 scan ({len(ous) / 1e3:.0f}k)", ous
    if nus is not None:
        big = stacked(nus)
        yield f"nuScenes x10 jittered ({len(big) / 1e3:.0f}k)", big
