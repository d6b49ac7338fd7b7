"""``edge-agent replay DRIVE.mcap``: the whole agent on a recorded drive (chunks, Flows,
dataset, DAT), or, with ``--bus-only``, just publish the recording onto the bus."""

from __future__ import annotations

import click

from agent.cli._common import emit_json, json_option


@click.command(name="replay", short_help="Run the whole agent on a drive recording (or only publish it: --bus-only).")
@click.argument("drive", type=click.Path(dir_okay=False))
@click.option(
    "--speed",
    default=None,
    help="Playback speed: 1 = recorded timing, 2 = twice as fast, max = as fast as possible "
    "(default: max for the agent, 1 with --bus-only).",
)
@click.option("--bus-only", is_flag=True, help="Only publish the recording on the bus (implied by --bus).")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="Agent state directory (default: the configuration's state_dir). A replay of the same "
              "drive into the same state dir after a crash resumes it.")
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
    speed: str | None,
    bus_only: bool,
    state_dir: str | None,
    endpoint: str | None,
    config_path: str | None,
    wait_subscriber: float,
    as_json: bool,
) -> None:
    """Run the whole agent on DRIVE: decode, georeference, filter, chunk, sign, Flows, seal
    the dataset, upload it, mint its DAT (the configuration's chain; embedded by default),
    verify it and print the numbers. A progress bar shows on stderr (off with --json or
    when stderr is not a terminal). Exit 1 when the dataset does not verify.

    With --bus-only (or --bus): publish every message of DRIVE on the bus in recorded
    order, at recorded speed or as fast as possible. A recording cut short replays up to
    its last complete message (with a warning). Replay loses nothing: where live capture
    would drop messages for a subscriber whose queue is full, replay waits for it (a
    subscriber that takes nothing for 30 s stops the replay with an error)."""
    if not (bus_only or endpoint):
        _run_agent(drive, speed or "max", config_path, state_dir, as_json)
        return
    speed = speed or "1"
    from agent.bus import Publisher
    from agent.recording import parse_speed, replay

    factor = parse_speed(speed)
    from agent.config import load_config

    bus = load_config(config_path).bus
    # An endpoint given here is checked by the socket (BusError names what is wrong).
    cfg = bus if endpoint is None else bus.model_copy(update={"endpoint": endpoint})
    # Linger on close: the last messages may still sit in ZeroMQ's queue when replay ends.
    # lossless: a recording is replayed whole, waiting for slow subscribers (XPUB_NODROP).
    with Publisher(cfg.endpoint, send_hwm=cfg.send_hwm, linger_ms=max(cfg.linger_ms, 5000), lossless=True) as pub:
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


def _paced(messages, factor):  # type: ignore[no-untyped-def]
    """Messages at ``factor`` times their recorded pace (by their UTC stamps)."""
    import time

    t0 = w0 = None
    for m in messages:
        if t0 is None:
            t0, w0 = m.utc_ns, time.perf_counter()
        delay = w0 + (m.utc_ns - t0) / 1e9 / factor - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        yield m


def _run_agent(drive: str, speed: str, config_path: str | None, state_dir: str | None, as_json: bool) -> None:
    import sys
    from pathlib import Path

    from agent.cli._agentrun import print_summary, run_agent
    from agent.cli._common import fail
    from agent.config import load_config
    from agent.recording import drive_info, drive_metadata, iter_drive, parse_speed
    from agent.runtime._agent import drive_id

    factor = parse_speed(speed)
    meta = drive_metadata(drive)  # a broken file fails here: one line, exit 2
    lidar_meta = meta.get("lidar", {}).get("meta_json")
    cfg = load_config(config_path)
    show = not as_json and sys.stderr.isatty()
    total = _duration(drive_info(drive)) if show else None  # reads the file once more: only for the bar
    messages = iter_drive(drive)
    if factor is not None:
        messages = _paced(messages, factor)
    state = Path(state_dir) if state_dir else Path(cfg.state_dir)
    summary = run_agent(cfg, messages, state, source_id=drive_id(drive), total_s=total,
                        progress=show, lidar_meta=lidar_meta, config_path=config_path)
    summary["drive"] = drive
    if as_json:
        emit_json(summary)
    else:
        print_summary(summary, f"replay {drive}")
    if not summary["verified"] and summary["datasets"]:
        fail("verification of the sealed dataset failed", 1)


def _duration(info) -> float | None:  # type: ignore[no-untyped-def]
    d = info if isinstance(info, dict) else getattr(info, "__dict__", {})
    for key in ("duration_s", "drive_s", "duration"):
        if isinstance(d.get(key), (int, float)):
            return float(d[key])
    return None
