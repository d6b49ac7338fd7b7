"""``edge-agent bench SUITE``: side-by-side benchmarks (see bench/)."""

from __future__ import annotations

import click

from agent.cli._common import emit_json, json_option
from agent.errors import AgentError


@click.command(name="bench")
@click.argument("suite", required=False)
@click.option("--input", "input_path", type=click.Path(exists=True), help="Run on this file instead of the fixtures.")
@click.option("--meta", type=click.Path(exists=True, dir_okay=False), help="Sensor metadata JSON (Ouster).")
@click.option("--list", "list_only", is_flag=True, help="List the suites and exit.")
@json_option
def command(suite: str | None, input_path: str | None, meta: str | None, list_only: bool, as_json: bool) -> None:
    """Run benchmark suites whose name starts with SUITE (all when omitted), each measured
    beside its reference library in the same run. Rows report ours, the reference and
    their ratio; warm-up (JIT) is its own row."""
    from bench._harness import load_suite, suite_modules

    names = sorted(suite_modules())
    if list_only:
        if as_json:
            emit_json(names)
        else:
            for n in names:
                click.echo(n)
        return
    chosen = [n for n in names if suite is None or n.startswith(suite)]
    if not chosen:
        raise AgentError(f"no benchmark suite matches {suite!r}; suites: {', '.join(names) or 'none'}")
    rows = []
    for name in chosen:
        module = load_suite(name)
        for row in module.run(input=input_path, meta=meta):
            rows.append(row)
            if not as_json:
                ref = "" if row.reference is None else f"  ref {row.reference:,.4g} ({row.reference_name})"
                ratio = "" if row.ratio is None else f"  ratio {row.ratio:.2f} ({row.better} is better)"
                click.echo(f"{row.suite:<16} {row.case:<34} {row.metric:<18} {row.ours:>12,.4g} {row.unit}{ref}{ratio}")
    if as_json:
        emit_json([r.as_dict() for r in rows])
