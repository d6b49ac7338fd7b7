"""``edge-agent run --config FILE``: the live daemon."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path

import click

from agent.cli._common import emit_json, json_option

log = logging.getLogger(__name__)


@click.command("run")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Device profile, e.g. configs/rpi4-vlp16.yaml (/etc/edge-agent/PROFILE.yaml under systemd).")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="State directory (default: the configuration's state_dir).")
@click.option("--lidar", default=None, help="Override runtime.sources.lidar (udp://HOST:PORT or a pcap).")
@click.option("--gnss", default=None, help="Override runtime.sources.gnss (serial device, pty, gpsd://, NMEA file).")
@json_option
def command(config_path: str, state_dir: str | None, lidar: str | None, gnss: str | None, as_json: bool) -> None:
    """Run the agent on live sensors until SIGTERM/SIGINT (or until every source ends).

    Sources come from runtime.sources in the config. On SIGTERM the agent stops capture,
    drains what it has, seals the dataset, uploads it and mints its DAT, all within
    runtime.shutdown_timeout_s; what does not fit (e.g. a slow chain) is resumed at the next
    start. Its status is in STATE/status.json (edge-agent status) and on the Prometheus
    endpoint runtime.metrics_port. Under systemd: deploy/edge-agent.service."""
    from agent.config import load_config
    from agent.errors import ConfigError
    from agent.runtime._agent import Agent
    from agent.runtime._sources import bus_messages, camera_messages, gnss_messages, lidar_messages

    cfg = load_config(config_path)
    src = cfg.runtime.sources
    lidar = lidar or src.lidar
    gnss = gnss or src.gnss
    if not lidar and not gnss and not cfg.cameras and not src.bus:
        raise ConfigError(config_path, "runtime.sources: no lidar and no gnss source configured")
    meta = Path(src.lidar_meta).read_text() if src.lidar_meta else None
    agent = Agent(cfg, state_dir=state_dir, config_path=config_path, lidar_meta=meta)
    stop = threading.Event()
    closers: list[object] = []

    def on_signal(signum: int, _frame: object) -> None:
        log.info("signal %d: flushing, sealing, stopping (bound %.0f s)", signum, cfg.runtime.shutdown_timeout_s)
        stop.set()
        agent.request_stop("sigterm" if signum == signal.SIGTERM else "sigint")
        for c in closers:  # unblock sockets and serial reads
            try:
                c.close()  # type: ignore[attr-defined]
            except Exception:  # noqa: BLE001
                pass

    for s in (signal.SIGTERM, signal.SIGINT):
        signal.signal(s, on_signal)

    def on_restart() -> None:  # a fleet restart job, acknowledged: stop as on SIGTERM, then exit 75
        log.info("fleet restart: flushing, sealing, stopping")
        stop.set()
        agent.request_stop("fleet_restart")
        for c in closers:
            try:
                c.close()  # type: ignore[attr-defined]
            except Exception as exc:  # noqa: BLE001 - closing is best effort
                log.debug("closing %r: %s", c, exc)

    agent.on_restart = on_restart
    sources = []
    if lidar:
        sources.append(lidar_messages(lidar, stop, closers))
    if gnss:
        sources.append(gnss_messages(gnss, cfg.runtime.sources.gnss_baud, stop, closers))
    for cam in cfg.cameras:
        sources.append(camera_messages(cam, stop, closers))
    if src.bus:
        sources.append(bus_messages(cfg.bus.endpoint, stop, closers))
    with agent:
        _notify("READY=1")
        summary = agent.run(sources, live=True).as_dict()
        _notify("STOPPING=1")
    if as_json:
        emit_json(summary)
    else:
        click.echo(f"stopped ({summary['stopped_by']}): {summary['chunks']} chunks, {summary['flows']} Flows, "
                   f"{len(summary['datasets'])} datasets; drops {summary['drops']}")
    if summary["stopped_by"] == "fleet_restart":
        from agent.fleet.device import RESTART_EXIT_CODE

        raise SystemExit(RESTART_EXIT_CODE)  # EX_TEMPFAIL: systemd (Restart=on-failure) starts us again
    if summary["stopped_by"].startswith("source_error"):
        # sealed and stopped cleanly, but a source died: exit non-zero so systemd restarts us
        from agent.cli._common import fail

        fail(f"stopped: {summary['stopped_by']}", 1)


def _notify(state: str) -> None:
    """sd_notify without a dependency (Type=notify units; a no-op elsewhere)."""
    from agent.runtime._status import sd_notify

    sd_notify(state)
