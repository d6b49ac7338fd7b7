"""``edge-agent info DRIVE.mcap``: what a drive recording holds."""

from __future__ import annotations

from datetime import datetime, timezone

import click

from agent.cli._common import emit_json, json_option


def _utc(ns: int | None) -> str:
    if ns is None:
        return "-"
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="milliseconds")


@click.command(name="info", short_help="Show a drive recording's channels, counts, duration and sensors.")
@click.argument("drive", type=click.Path(dir_okay=False))
@json_option
def command(drive: str, as_json: bool) -> None:
    """List a drive recording's channels (topic, type, encoding, schema, messages, bytes),
    its time span and duration, the sensors it holds (LiDAR model, rates) and its metadata.
    A recording cut short (power loss) is read up to its last complete message and marked
    truncated."""
    from agent.recording import drive_info

    info = drive_info(drive)
    if as_json:
        emit_json(info)
        return
    click.echo(
        f"{info['path']}: {info['size_bytes']:,} bytes, {info['messages']:,} messages, "
        f"{info['duration_s']:.3f} s ({_utc(info['start_ns'])} to {_utc(info['end_ns'])})"
        + ("  TRUNCATED" if info["truncated"] else "")
    )
    click.echo("channels:")
    for c in info["channels"]:
        click.echo(
            f"  {c['topic']:<34} {c['bus_type'] or '-':<14} {c['message_encoding']:<15} "
            f"{c['schema'] or '-':<25} {c['messages']:>8,} msgs {c['bytes']:>13,} B"
        )
    click.echo("sensors:")
    for s in info["sensors"]:
        extra = f"  model {s['model']}" if "model" in s else ""
        rates = ", ".join(f"{k} {v:g} Hz" for k, v in s["rates_hz"].items() if v)
        click.echo(f"  {s['type']:<7} {s['source']:<16} {rates}{extra}")
    for name, meta in info["metadata"].items():
        click.echo(f"metadata {name}: " + ", ".join(f"{k}={v}" for k, v in meta.items()))
    for w in info["warnings"]:
        click.echo(f"warning: {w}", err=True)
