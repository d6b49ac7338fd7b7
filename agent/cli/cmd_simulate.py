"""``edge-agent simulate --out DRIVE.mcap``: a simulated drive with exact ground truth."""

from __future__ import annotations

import time

import click

from agent.cli._common import emit_json, json_option


@click.command(name="simulate", short_help="Simulate a street drive (LiDAR, GNSS, IMU, camera) to an MCAP.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Drive MCAP to write.")
@click.option("--duration", type=float, default=20.0, show_default=True, help="Seconds of drive.")
@click.option(
    "--lidar",
    type=click.Choice(["vlp16", "vlp32c", "hdl32e"]),
    default="vlp16",
    show_default=True,
    help="Simulated Velodyne model.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Scene layout seed (same seed, same bytes)."
)
@click.option("--camera/--no-camera", default=True, show_default=True, help="Render forward camera frames.")
@json_option
def command(out: str, duration: float, lidar: str, seed: int, camera: bool, as_json: bool) -> None:
    """Simulate a drive through a street in Munich (buildings, poles, parked cars) at about
    10 m/s with a left turn: Velodyne data and position packets (exact packet format),
    NMEA GGA/RMC at 10 Hz, GNSS fixes, IMU at 100 Hz, 640x360 JPEG frames at 10 Hz and
    ignition on/off power events.
    Deterministic for a seed."""
    from agent.errors import RecordingError
    from agent.recording import drive_info
    from sensors.simulator import simulate_drive

    if not duration > 0:
        raise RecordingError(f"--duration must be positive, not {duration:g}")
    t0 = time.perf_counter()
    simulate_drive(out=out, duration=duration, lidar=lidar, seed=seed, camera=camera)
    wall = time.perf_counter() - t0
    info = drive_info(out)
    counts = {c["bus_type"]: c["messages"] for c in info["channels"]}
    if as_json:
        emit_json(
            {
                "out": out,
                "duration_s": duration,
                "lidar": lidar,
                "seed": seed,
                "camera": camera,
                "wall_s": round(wall, 3),
                "size_bytes": info["size_bytes"],
                "messages": counts,
            }
        )
        return
    click.echo(
        f"simulated {duration:g} s ({lidar}, seed {seed}) in {wall:.1f} s: {out} "
        f"({info['size_bytes'] / 1e6:.1f} MB; " + ", ".join(f"{v:,} {k}" for k, v in counts.items()) + ")"
    )
