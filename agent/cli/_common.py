"""Helpers shared by the CLI commands: JSON output, error types, failing with one line."""

from __future__ import annotations

import importlib
import json
import sys
from typing import Any, NoReturn

import click

from agent.errors import AgentError

# Base error of each package: the CLI reports these as one line; anything else is a bug.
_ERROR_BASES = (
    "agent.errors:AgentError",
    "sensors.errors:SensorError",
    "pipeline.errors:PipelineError",
    "firmware_bridge.errors:BridgeError",
)


def error_types() -> tuple[type[BaseException], ...]:
    found: list[type[BaseException]] = [AgentError]
    for ref in _ERROR_BASES[1:]:
        module, name = ref.split(":")
        try:
            found.append(getattr(importlib.import_module(module), name))
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"ERROR: {message}", err=True)
    sys.exit(code)


def _default(obj: Any) -> Any:
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "__fspath__"):
        return str(obj)
    if isinstance(obj, bytes):
        return obj.hex()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def emit_json(obj: Any) -> None:
    """One JSON document on stdout."""
    click.echo(json.dumps(obj, default=_default, indent=None, sort_keys=False))


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
