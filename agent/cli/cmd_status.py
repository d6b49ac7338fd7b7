"""``edge-agent status``: what the running agent is doing (from its status file)."""

from __future__ import annotations

import click

from agent.cli._common import emit_json, json_option


@click.command("status")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="Agent config (for state_dir and runtime.status_file).")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None, help="State directory of the agent.")
@json_option
def command(config_path: str | None, state_dir: str | None, as_json: bool) -> None:
    """Show the agent's state, queue depth, drops, rates, chunks, Flows, datasets (with
    their upload and anchor state), pending mints, store size and last GNSS fix, read from
    STATE/status.json (rewritten atomically by the daemon every tick). Exit 1 when no agent
    is running on that state directory."""
    from agent.cli._common import fail
    from agent.config import load_config
    from agent.runtime._status import read_status

    cfg = load_config(config_path)
    doc = read_status(state_dir or cfg.state_dir, cfg.runtime.status_file)
    if as_json:
        emit_json(doc)
    else:
        click.echo(f"agent {doc.get('device')} pid {doc.get('pid')}: {doc.get('state')}"
                   f"{'' if doc['alive'] else ' (not running)'}; updated {doc['age_s']:.1f} s ago")
        click.echo(f"  queue {doc.get('queue_depth')}/{doc.get('queue_capacity')}, drops {doc.get('drops')}")
        click.echo(f"  rates/s {({k: round(v, 1) for k, v in (doc.get('rates') or {}).items()})}")
        click.echo(f"  chunks {doc.get('chunks')}, Flows {doc.get('flows')}, store {doc.get('store_bytes', 0) / 1e6:.1f} MB")
        click.echo(f"  datasets {doc.get('datasets')}, pending mints {doc.get('pending_mints')}")
        click.echo(f"  last fix {doc.get('last_fix')}")
        if doc.get("metrics_port"):
            click.echo(f"  metrics http://127.0.0.1:{doc['metrics_port']}/metrics")
    if not doc["alive"]:
        fail("the agent is not running", 1)
