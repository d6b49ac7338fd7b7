"""``edge-agent replay DRIVE.mcap``: publish a drive recording onto the bus."""

from __future__ import annotations

import click

from agent.cli._common import emit_json, json_option


@click.command(name="replay", short_help="Publish a drive recording onto the bus (recorded speed or max).")
@click.argument("drive", type=click.Path(dir_okay=False))
@click.option(
    "--speed",
    default="1",
    show_default=True,
    help="Playback speed: 1 = recorded timing, 2 = twice as fast, max = as fast as possible.",
)
@click.option(
    "--bus",
    "endpoint",
    default=None,
    help="Bus endpoint to publish on (binds it), e.g. ipc:///tmp/edge-bus.sock for subscribers in other "
    "processes; default: the configuration's bus.endpoint (inproc:// is seen only inside this process).",
)
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Agent configuration file (default: the embedded defaults).",
)
@click.option(
    "--wait-subscriber",
    type=float,
    default=0.0,
    show_default=True,
    help="Seconds to wait for a subscriber before publishing (0: publish at once).",
)
@json_option
def command(
    drive: str,
    speed: str,
    endpoint: str | None,
    config_path: str | None,
    wait_subscriber: float,
    as_json: bool,
) -> None:
    """Publish every message of DRIVE on the bus in recorded order, at recorded speed or
    as fast as possible. A recording cut short replays up to its last complete message
    (with a warning). The bus never blocks a publisher: at --speed max a subscriber in another
    process that falls more than the high-water mark behind loses messages (it counts them
    as drops); use a finite --speed there."""
    from agent.bus import Publisher
    from agent.recording import parse_speed, replay

    factor = parse_speed(speed)
    from agent.config import load_config

    bus = load_config(config_path).bus
    # An endpoint given here is checked by the socket (BusError names what is wrong).
    cfg = bus if endpoint is None else bus.model_copy(update={"endpoint": endpoint})
    # Linger on close: the last messages may still sit in ZeroMQ's queue when replay ends.
    with Publisher(cfg.endpoint, send_hwm=cfg.send_hwm, linger_ms=max(cfg.linger_ms, 5000)) as pub:
        if wait_subscriber > 0:
            pub.wait_for_subscriber(wait_subscriber)
        stats = replay(drive, pub, factor)
    if as_json:
        emit_json({"drive": drive, "endpoint": cfg.endpoint, "speed": speed, **stats.as_dict()})
        return
    click.echo(
        f"replayed {stats.messages:,} messages ({stats.bytes / 1e6:.1f} MB, {stats.drive_s:.2f} s of drive) "
        f"in {stats.wall_s:.2f} s on {cfg.endpoint}"
        + (f": {stats.realtime_factor:.1f}x real time" if stats.wall_s > 0 else "")
    )
    if stats.truncated:
        click.echo("warning: the recording is truncated; replayed up to its last complete message", err=True)
