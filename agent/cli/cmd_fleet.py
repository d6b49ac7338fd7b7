"""``edge-agent fleet``: the fleet manager's side of the MQTT link (keys, send jobs, watch)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from agent.cli._common import emit_json, json_option
from agent.errors import CheckFailed, FleetError


def _broker_options(f: Any) -> Any:
    opts = [
        click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Agent configuration YAML; its fleet section gives the defaults of the options below."),
        click.option("--host", default=None, help="Broker host (default: fleet.host, 127.0.0.1)."),
        click.option("--port", type=int, default=None, help="Broker port (default: fleet.port, 1883)."),
        click.option("--username", default=None, help="Broker user name."),
        click.option("--password", default=None, envvar="EDGE_FLEET_PASSWORD",
                     help="Broker password (or EDGE_FLEET_PASSWORD)."),
        click.option("--ca", "ca_file", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="CA certificate: connect with TLS and verify the broker against it."),
        click.option("--cert", "cert_file", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Client certificate for mutual TLS."),
        click.option("--key", "key_file", type=click.Path(exists=True, dir_okay=False), default=None,
                     help="Private key of --cert."),
        click.option("--protocol", type=click.Choice(["auto", "5", "3.1.1"]), default=None,
                     help="MQTT version (auto: 5, falling back to 3.1.1)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


def _fleet_config(kw: dict[str, Any]) -> Any:
    from agent.config import load_config

    cfg = load_config(kw.pop("config_path", None)).fleet
    over = {k: v for k, v in kw.items() if v is not None and k in
            ("host", "port", "username", "password", "ca_file", "cert_file", "key_file", "protocol")}
    if over.get("ca_file"):
        over["tls"] = True
    return cfg.model_copy(update=over) if over else cfg


def _parse_params(pairs: tuple[str, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for p in pairs:
        key, sep, raw = p.partition("=")
        if not sep or not key:
            raise FleetError(f"--param {p!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(raw)  # numbers, booleans, lists; anything else is a string
        except ValueError:
            out[key] = raw
    return out


@click.group(name="fleet")
def command() -> None:
    """The fleet manager's side: create the fleet signing key, send signed jobs to devices and
    follow them, watch devices (online, last seen, queue depth, GNSS fix, datasets).

    Devices obey only jobs signed by a key listed in their fleet.trusted_keys.

    \b
    edge-agent fleet keys init --out fleet/fleet_ed25519.key
    edge-agent fleet send edge-dev-0001 start_capture --wait
    edge-agent fleet send edge-dev-0001 set_config --param lidar.min_range_m=0.5 --wait
    edge-agent fleet watch
    """


@command.group(name="keys")
def keys() -> None:
    """The fleet signing key (Ed25519)."""


@keys.command(name="init")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Agent configuration YAML (fleet.fleet_key_file is the default --out).")
@click.option("--out", "out", type=click.Path(dir_okay=False), default=None, help="Key file to create (hex seed, mode 0600).")
@click.option("--force", is_flag=True, help="Replace an existing key (devices trusting the old one stop obeying).")
@json_option
def keys_init(config_path: str | None, out: str | None, force: bool, as_json: bool) -> None:
    """Create the fleet signing key and print its public key for the devices' fleet.trusted_keys."""
    from agent.config import load_config
    from agent.fleet.jobs import create_signing_key

    path = Path(out) if out else load_config(config_path).fleet.fleet_key_file
    key = create_signing_key(path, overwrite=force)
    pub = key.verify_key.encode().hex()
    if as_json:
        emit_json({"key_file": str(path), "public_key": pub})
    else:
        click.echo(f"fleet key written to {path}\npublic key (add to fleet.trusted_keys on devices):\n{pub}")


@keys.command(name="show")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None)
@click.option("--key-file", type=click.Path(dir_okay=False), default=None, help="Fleet key file (default: fleet.fleet_key_file).")
@json_option
def keys_show(config_path: str | None, key_file: str | None, as_json: bool) -> None:
    """Print the public key of the fleet signing key."""
    from agent.config import load_config
    from agent.fleet.jobs import load_signing_key

    path = Path(key_file) if key_file else load_config(config_path).fleet.fleet_key_file
    pub = load_signing_key(path).verify_key.encode().hex()
    emit_json({"key_file": str(path), "public_key": pub}) if as_json else click.echo(pub)


@command.command(name="send")
@click.argument("device")
@click.argument("job")
@click.option("--param", "params", multiple=True, metavar="KEY=VALUE",
              help="Job parameter (repeatable); VALUE is read as JSON when it parses, else as text. "
                   "For set_config, KEY is a dotted config key (lidar.min_range_m=0.5).")
@click.option("--key-file", type=click.Path(dir_okay=False), default=None, help="Fleet signing key (default: fleet.fleet_key_file).")
@click.option("--ttl", type=int, default=600, show_default=True, help="Seconds until the job expires.")
@click.option("--job-timeout", type=float, default=None, help="Seconds the device may run the job before TIMED_OUT.")
@click.option("--wait", is_flag=True, help="Follow the job's updates to a final state.")
@click.option("--timeout", type=float, default=120.0, show_default=True, help="With --wait: give up after this many seconds.")
@_broker_options
@json_option
def send(device: str, job: str, params: tuple[str, ...], key_file: str | None, ttl: int, job_timeout: float | None,
         wait: bool, timeout: float, as_json: bool, **broker: Any) -> None:
    """Sign JOB for DEVICE and publish it; with --wait, follow it to a final state.

    JOB is one of start_capture, stop_capture, seal_dataset, mint, set_config, flush_uploads,
    collect_diagnostics, restart. Exit 0 when the job SUCCEEDED, 1 when it FAILED, was
    REJECTED or TIMED_OUT (also when --timeout passes without a final state).
    """
    from agent.fleet.jobs import load_signing_key
    from agent.fleet.manager import FleetClient

    cfg = _fleet_config(broker)
    key = load_signing_key(Path(key_file) if key_file else cfg.fleet_key_file)
    job = job.replace("-", "_")
    with FleetClient(cfg, key) as fc:
        if wait and not as_json:
            fc.on_update = lambda u: click.echo(
                f"{time.strftime('%H:%M:%S')} {u['state']:<11} "
                + (f"{100 * u['progress']:.0f}% " if u.get("progress") is not None else "")
                + (json.dumps(u['details']) if u.get("details") else ""), err=True)
        doc, follower = fc.send(device, job, _parse_params(params), ttl_s=ttl, timeout_s=job_timeout, follow=wait)
        if not wait:
            emit_json({"job_id": doc["job_id"], "sent": True}) if as_json else click.echo(doc["job_id"])
            return
        assert follower is not None
        final = follower.wait(timeout)
    state = final["state"] if final else "TIMED_OUT"
    if as_json:
        emit_json({"job_id": doc["job_id"], "state": state, "final": final, "updates": follower.history})
    else:
        click.echo(f"{doc['job_id']} {state}")
    if state != "SUCCEEDED":
        reason = "" if final else f" (no final state in {timeout} s)"
        if final and final.get("details"):
            reason = f": {json.dumps(final['details'])}"
        raise CheckFailed(f"job {doc['job_id']} {state}{reason}")


def _view(broker: dict[str, Any], settle: float) -> Any:
    from agent.fleet.manager import FleetView

    view = FleetView(_fleet_config(broker)).start()
    time.sleep(settle)  # retained status arrives right after subscribing
    return view


@command.command(name="list")
@click.option("--settle", type=float, default=1.0, show_default=True, help="Seconds to collect retained status.")
@_broker_options
@json_option
def list_(settle: float, as_json: bool, **broker: Any) -> None:
    """Devices known to the broker (retained status), online or not."""
    from agent.fleet.manager import render_table

    view = _view(broker, settle)
    try:
        rows = view.snapshot()
    finally:
        view.close()
    emit_json(rows) if as_json else click.echo(render_table(rows))


@command.command(name="watch")
@click.option("--once", is_flag=True, help="Print the table once and exit.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between refreshes.")
@click.option("--settle", type=float, default=1.0, show_default=True, help="With --once: seconds to collect first.")
@_broker_options
@json_option
def watch(once: bool, interval: float, settle: float, as_json: bool, **broker: Any) -> None:
    """A live table of devices: online, last seen, queue depth, outbox, GNSS fix, datasets.

    Refreshes in place on a terminal; --json prints one JSON array per refresh.
    """
    from agent.fleet.manager import render_table

    view = _view(broker, settle if once else 0.3)
    tty = sys.stdout.isatty()
    try:
        while True:
            rows = view.snapshot()
            if as_json:
                emit_json(rows)
            else:
                text = render_table(rows)
                if tty and not once:
                    click.echo("\x1b[H\x1b[2J" + time.strftime("%H:%M:%S ") + f"{len(rows)} device(s)\n" + text)
                else:
                    click.echo(text)
            if once:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        pass
    finally:
        view.close()
