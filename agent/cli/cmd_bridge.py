"""``edge-agent bridge``: the firmware bridge process (serial link to the vehicle unit's MCU → bus)."""

from __future__ import annotations

import json
import logging
import signal
import sys
from typing import Any

import click

from agent.cli._common import emit_json, json_option

log = logging.getLogger("agent.cli.bridge")


@click.command(name="bridge")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Agent configuration YAML; its bridge and bus sections give the defaults of the options below.")
@click.option("--port", help="Serial port of the MCU (e.g. /dev/ttyACM0), a pyserial URL, or a file of "
              "captured link bytes to replay (default: bridge.port). Not with --simulate.")
@click.option("--baud", type=int, default=None, help="Baud rate, ignored by USB CDC ports (default: bridge.baud, 921600).")
@click.option("--bus", "bus_endpoint", default=None,
              help="Bus endpoint to publish on (ipc:///run/edge-agent/bus, tcp://127.0.0.1:5555); "
                   "default: the configuration's bus.endpoint, or no bus when that is inproc://.")
@click.option("--connect", is_flag=True, help="Connect to an endpoint bound by a subscriber instead of binding it.")
@click.option("--wait-subscriber", type=float, default=0.0, metavar="SECONDS",
              help="Before reading, wait up to this long for a bus subscriber (no messages lost to a late joiner).")
@click.option("--reconnect/--no-reconnect", default=True, show_default=True,
              help="Reopen the serial port when it fails (a USB CDC MCU re-enumerates when it resets).")
@click.option("--source", default=None, help="Source id stamped on the messages (default: bridge.source, mcu).")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: run until signalled).")
@click.option("--stats-interval", type=float, default=None, help="Seconds between stats logs (default: bridge.stats_interval_s, 10).")
@click.option("--json-stats", is_flag=True, help="Print the stats as one JSON line on stdout every --stats-interval and on exit.")
@click.option("--simulate", "simulate", type=click.Path(exists=True, dir_okay=False), default=None, metavar="NMEA_LOG",
              help="Run the firmware simulator on a pseudo-terminal, streaming this NMEA log (PPS, IMU, power "
                   "as the real MCU would), and bridge it; stops when the log is done.")
@click.option("--sim-imu-log", type=click.Path(exists=True, dir_okay=False), default=None,
              help="GENIVI log whose gyro/accel lines the simulator streams (default: synthetic 100 Hz IMU).")
@click.option("--sim-speed", type=float, default=1.0, show_default=True, help="Simulator pace (1 = real time, 0 = as fast as read).")
@click.option("--sim-seconds", type=float, default=None, help="Simulate only this many seconds of the log.")
@click.option("--sim-drift-ppm", type=float, default=50.0, show_default=True, help="Simulated MCU clock error.")
@json_option
def command(config_path: str | None, port: str | None, baud: int | None, bus_endpoint: str | None, connect: bool,
            wait_subscriber: float, reconnect: bool, source: str | None, duration: float | None, stats_interval: float | None,
            json_stats: bool, simulate: str | None,
            sim_imu_log: str | None, sim_speed: float, sim_seconds: float | None, sim_drift_ppm: float,
            as_json: bool) -> None:
    """Bridge the vehicle unit's microcontroller onto the bus.

    Reads the COBS/CRC-32C framed link (firmware_bridge/PROTOCOL.md) from --port, resynchronising
    after damaged bytes, and publishes NMEA sentences (assembled from the GNSS UART chunks), IMU
    samples, power events and PPS time sync (MCU ticks fitted to GNSS UTC) on the bus. Counters
    (frames ok, CRC errors, decode errors, resyncs, bytes discarded) are logged every
    --stats-interval seconds and on exit; --json prints the final stats as JSON. SIGINT/SIGTERM
    stop it cleanly (exit 0).

    \b
    edge-agent bridge --port /dev/ttyACM0 --bus ipc:///run/edge-agent/bus
    edge-agent bridge --simulate munich.nmea --sim-imu-log genivi.log --sim-speed 0 --json
    """
    from agent.config import load_config
    from firmware_bridge.bridge import Bridge, BridgeCore
    from firmware_bridge.errors import BridgeError
    from firmware_bridge.link import SerialLink

    cfg = load_config(config_path)
    bcfg = cfg.bridge
    if port is None and simulate is None:
        port = bcfg.port
    if (port is None) == (simulate is None):
        raise BridgeError("give exactly one of --port or --simulate (or set bridge.port in the configuration)")
    baud = bcfg.baud if baud is None else baud
    source = bcfg.source if source is None else source
    stats_interval = bcfg.stats_interval_s if stats_interval is None else stats_interval
    endpoint = bus_endpoint
    if endpoint is None:
        endpoint = cfg.bus.endpoint
        if endpoint.startswith("inproc://"):
            endpoint = None  # another process cannot reach an inproc endpoint: nothing to publish to
            log.warning("no --bus given and the configured bus is in-process: messages are counted, not published")

    def emit_stats(doc: dict[str, Any]) -> None:
        if json_stats:
            click.echo(json.dumps(doc, default=str))
            sys.stdout.flush()

    sim = None
    pub = None
    link = None
    try:
        if simulate is not None:
            from firmware_bridge.simulator import FirmwareSimulator

            sim = FirmwareSimulator(simulate, sim_imu_log, speed=sim_speed, max_seconds=sim_seconds,
                                    drift_ppm=sim_drift_ppm, keep_log=False)
            port = sim.port
            log.info("firmware simulator on %s", port)
        if endpoint is not None:
            from agent.bus import Publisher

            pub = Publisher(endpoint, bind=not connect).open()
            if wait_subscriber > 0:
                pub.wait_for_subscriber(wait_subscriber)
        assert port is not None
        stream = _open_port(port, baud)
        link = SerialLink(stream)
        sink = pub if pub is not None else (lambda msg: None)
        serial_port = port
        reopen = None
        if reconnect and simulate is None and hasattr(stream, "in_waiting"):  # a port, not a capture file
            reopen = lambda: _open_port(serial_port, baud)
        bridge = Bridge(link, sink, core=BridgeCore.from_config(bcfg, source=source), stats_interval=stats_interval,
                        on_stats=emit_stats, reopen=reopen, command_timeout=bcfg.command_timeout_s)
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: bridge.stop())
        until = None
        if sim is not None:
            sim.start()
            sim_ref = sim
            until = lambda: sim_ref.finished.is_set() and link.stats.bytes_in >= sim_ref.bytes_written
        stats = bridge.run(duration=duration, until=until)
        if sim is not None and sim.error is not None:
            raise BridgeError(f"firmware simulator failed: {sim.error}")
    finally:
        if link is not None:
            link.close()
        if pub is not None:
            pub.close()
        if sim is not None:
            sim.close()
    if as_json:
        emit_json(stats)


def _open_port(port: str, baud: int) -> Any:
    """A serial port, a pyserial URL, or a regular file of captured link bytes (replayed to its end)."""
    import os
    import stat

    from firmware_bridge.link import open_serial

    try:
        if stat.S_ISREG(os.stat(port).st_mode):
            return open(port, "rb")
    except OSError:
        pass
    return open_serial(port, baud)


