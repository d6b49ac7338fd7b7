"""``edge-agent decode SOURCE``: LiDAR packets (pcap, pcapng, ROS 2 bag, udp://) to points."""

from __future__ import annotations

import logging
import sys
import time
from itertools import islice

import click

from agent.cli._common import emit_json, json_option
from agent.errors import AgentError

log = logging.getLogger(__name__)

VELODYNE_PORTS = {2368, 8308}
OUSTER_PORTS = {7502, 7503}
_BATCH = 2048


def _batches(iterable, n):
    it = iter(iterable)
    while batch := list(islice(it, n)):
        yield batch


def decode_source(source: str, meta: str | None = None, cut_angle: float = 0.0, return_mode: str = "auto",
                  max_scans: int | None = None, keep: bool = True, udp_seconds: float | None = None):
    """Decode every scan of ``source``; returns (decoder, source stats, scans, summaries)."""
    from sensors.lidar import make_decoder
    from sensors.packets import open_packet_source

    ports = OUSTER_PORTS if meta else VELODYNE_PORTS
    kwargs = {"return_mode": return_mode}
    if not meta:
        kwargs["cut_angle_deg"] = cut_angle
    decoder = make_decoder(meta=meta, **kwargs)
    scans, summaries = [], []
    deadline = time.monotonic() + udp_seconds if udp_seconds else None
    with open_packet_source(source, ports) as src:
        done = False
        for batch in _batches(src, _BATCH):
            for scan in decoder.feed(batch):
                summaries.append({"index": scan.index, "points": len(scan), "t_start": scan.t_start, "t_end": scan.t_end})
                if keep:
                    scans.append(scan)
                if max_scans is not None and len(summaries) >= max_scans:
                    done = True
                    break
            if done or (deadline is not None and time.monotonic() > deadline):
                break
        if not done:
            for scan in decoder.flush():
                if max_scans is not None and len(summaries) >= max_scans:
                    break
                summaries.append({"index": scan.index, "points": len(scan), "t_start": scan.t_start, "t_end": scan.t_end})
                if keep:
                    scans.append(scan)
        stats = src.stats
    return decoder, stats, scans, summaries


@click.command(name="decode")
@click.argument("source")
@click.option("--meta", type=click.Path(dir_okay=False), help="Ouster sensor metadata JSON (selects the Ouster decoder).")
@click.option("--out", "out", type=click.Path(dir_okay=False), help="Write points: .npz (all scans, with a scan index), .ply, .pcd, .las or .laz.")
@click.option("--cut-angle", type=click.FloatRange(0, 360, max_open=True), default=0.0, show_default=True, help="Velodyne: azimuth (degrees) where a scan ends.")
@click.option("--return-mode", type=click.Choice(["auto", "strongest", "last", "dual"]), default="auto", show_default=True)
@click.option("--max-scans", type=click.IntRange(min=1), help="Stop after this many scans.")
@click.option("--seconds", type=click.FloatRange(min=0.1), default=10.0, show_default=True, help="udp:// sources: listen this long.")
@json_option
def command(source: str, meta: str | None, out: str | None, cut_angle: float, return_mode: str,
            max_scans: int | None, seconds: float, as_json: bool) -> None:
    """Decode LiDAR packets from SOURCE into scans.

    SOURCE is a pcap or pcapng capture, a ROS 2 bag directory (velodyne_msgs/VelodyneScan,
    sqlite3 or MCAP storage), or udp://HOST:PORT for a live sensor. Velodyne models are
    detected from the packets; Ouster needs --meta. Bad packets are counted, not fatal.
    """
    from sensors.lidar.writers import FORMATS

    if out and not out.lower().endswith(FORMATS):
        raise AgentError(f"--out {out}: unknown format; use one of {', '.join(FORMATS)}")
    t0 = time.perf_counter()
    decoder, stats, scans, summaries = decode_source(
        source, meta, cut_angle, return_mode, max_scans, keep=out is not None,
        udp_seconds=seconds if source.startswith("udp://") else None,
    )
    elapsed = time.perf_counter() - t0
    if out:
        from sensors.lidar.writers import write_points

        write_points(out, scans)
    result = {
        "sensor": decoder.sensor,
        "model": decoder.model,
        "packets": decoder.stats.packets + decoder.stats.other_packets + decoder.stats.bad_packets,
        "bad_packets": decoder.stats.bad_packets,
        "scans": summaries,
    }
    if as_json:
        emit_json(result)
        return
    points = sum(s["points"] for s in summaries)
    click.echo(f"{source}: {decoder.sensor} {decoder.model or '(unknown model)'}")
    click.echo(f"  packets {result['packets']} ({decoder.stats.bad_packets} bad), scans {len(summaries)}, points {points:,} in {elapsed:.2f} s")
    for reason, n in sorted(decoder.stats.reasons.items()):
        click.echo(f"  bad packets: {n} × {reason}")
    if stats.truncated:
        click.echo("  warning: the capture is truncated; decoded what came before the cut", err=True)
    for s in summaries[:20]:
        click.echo(f"  scan {s['index']:>4}: {s['points']:>8,} points  {s['t_start']:.6f} .. {s['t_end']:.6f}")
    if len(summaries) > 20:
        click.echo(f"  ... {len(summaries) - 20} more scans")
    if out:
        click.echo(f"  wrote {out}")
    sys.stdout.flush()
