"""``edge-agent import``: build a drive MCAP from foreign recordings."""

from __future__ import annotations

import click

from agent.cli._common import emit_json, json_option


@click.command(name="import", short_help="Build a drive MCAP from a capture, an NMEA log, video or images.")
@click.option(
    "--lidar",
    "lidar",
    default=None,
    help="LiDAR capture: pcap, pcapng or ROS 2 bag (directory, .db3, .mcap).",
)
@click.option(
    "--lidar-meta",
    default=None,
    type=click.Path(dir_okay=False),
    help="Sensor metadata JSON (Ouster), stored in the drive's metadata.",
)
@click.option(
    "--gnss",
    default=None,
    type=click.Path(),
    help="GNSS log: NMEA 0183, GENIVI (with IMU), or a capture with Velodyne position packets.",
)
@click.option("--camera", default=None, type=click.Path(), help="A video file or a folder of images.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Drive MCAP to write.")
@click.option(
    "--time-offset",
    "offsets",
    multiple=True,
    metavar="SOURCE=SECONDS|align",
    help="Shift a source's clock (lidar, gnss or camera) by SECONDS, or 'align' its first message "
    "to the drive's start (the first LiDAR packet). Repeatable.",
)
@click.option(
    "--camera-fps",
    type=float,
    default=10.0,
    show_default=True,
    help="Frame rate for images whose names carry no time.",
)
@click.option("--camera-id", default=None, help="Camera id (default: from the image names, else camera0).")
@json_option
def command(
    lidar: str | None,
    lidar_meta: str | None,
    gnss: str | None,
    camera: str | None,
    out: str,
    offsets: tuple[str, ...],
    camera_fps: float,
    camera_id: str | None,
    as_json: bool,
) -> None:
    """Build a drive recording from a LiDAR capture, an NMEA log and a video or image
    folder. LiDAR packets keep their bytes exactly; NMEA lines are stored as text and the
    fixes assembled from them as foxglove.LocationFix; images as foxglove.CompressedImage
    (JPEG files unchanged). Example: align an NMEA track recorded on another day with
    --time-offset gnss=align."""
    from agent.errors import RecordingError
    from agent.recording import import_drive
    from agent.recording._import import parse_offsets

    if camera_fps <= 0:
        raise RecordingError(f"--camera-fps must be positive, not {camera_fps:g}")
    stats = import_drive(
        out,
        lidar=lidar,
        lidar_meta=lidar_meta,
        gnss=gnss,
        camera=camera,
        offsets=parse_offsets(list(offsets)),
        camera_id=camera_id,
        camera_fps=camera_fps,
    )
    if as_json:
        emit_json({"out": out, **stats.as_dict()})
        return
    span = ((stats.end_utc_ns or 0) - (stats.start_utc_ns or 0)) / 1e9
    click.echo(
        f"wrote {out}: {stats.lidar_packets:,} LiDAR packets, {stats.nmea_sentences:,} NMEA sentences, "
        f"{stats.gnss_fixes:,} fixes, {stats.camera_frames:,} camera frames over {span:.1f} s"
    )
    for name, off in stats.offsets_s.items():
        if off:
            click.echo(f"  {name} shifted by {off:+.3f} s")
    for w in stats.warnings:
        click.echo(f"warning: {w}", err=True)
