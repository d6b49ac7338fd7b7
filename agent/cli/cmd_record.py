"""``edge-agent record --out DRIVE.mcap``: record the bus to a drive MCAP."""

from __future__ import annotations

import signal

import click

from agent.cli._common import emit_json, json_option


@click.command(name="record", short_help="Record the bus to a drive MCAP.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Drive MCAP to write.")
@click.option(
    "--bus",
    "endpoint",
    default=None,
    help="Bus endpoint to subscribe to; default: the configuration's bus.endpoint.",
)
@click.option(
    "--config",
    "config_path",
    default=None,
    type=click.Path(dir_okay=False),
    help="Agent configuration file (default: the embedded defaults).",
)
@click.option(
    "--duration",
    type=float,
    default=None,
    help="Stop after this many seconds (default: until Ctrl-C/SIGTERM).",
)
@click.option(
    "--bind/--connect",
    default=False,
    show_default=True,
    help="Bind the endpoint (sources connect to the recorder) or connect to a publisher that binds.",
)
@json_option
def command(
    out: str, endpoint: str | None, config_path: str | None, duration: float | None, bind: bool, as_json: bool
) -> None:
    """Record every bus message to OUT until DURATION passes or the process is stopped.
    LiDAR packets are stored byte-exact; chunks are flushed every second so a power cut
    loses at most about a second (the file stays readable up to its last complete message)."""
    from agent.errors import RecordingError
    from agent.recording import record

    if duration is not None and duration <= 0:
        raise RecordingError(f"--duration must be positive, not {duration:g}")
    from agent.config import load_config

    config = load_config(config_path)
    bus, rec = config.bus, config.recording
    # An endpoint given here is checked by the socket (BusError names what is wrong).
    cfg = bus if endpoint is None else bus.model_copy(update={"endpoint": endpoint})
    stop = {"now": False}

    def _stop(*_: object) -> None:
        stop["now"] = True

    old = signal.signal(signal.SIGTERM, _stop)
    old_int = signal.signal(signal.SIGINT, _stop)
    try:
        stats = record(
            cfg.endpoint,
            out,
            duration=duration,
            should_stop=lambda: stop["now"],
            bind=bind,
            flush_interval_s=rec.flush_interval_s,
            chunk_size=rec.chunk_size_bytes,
            compression=rec.compression,
        )
    finally:
        signal.signal(signal.SIGTERM, old)
        signal.signal(signal.SIGINT, old_int)
    if as_json:
        emit_json({"out": out, "endpoint": cfg.endpoint, **stats.as_dict()})
        return
    click.echo(
        f"recorded {stats.messages:,} messages ({stats.bytes / 1e6:.1f} MB) from {cfg.endpoint} "
        f"in {stats.wall_s:.1f} s to {out}" + (f"; {stats.dropped} dropped" if stats.dropped else "")
    )
