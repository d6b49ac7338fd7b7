"""The ``edge-agent`` command line.

Each subcommand lives in its own module ``agent/cli/cmd_<name>.py`` exporting ``command``
(a click command or group); modules are imported only when their command runs, so
``edge-agent --help`` and small commands start fast (numba, web3 and open3d load lazily).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Any

import click

from agent import __version__
from agent.cli._common import error_types, fail
from agent.logs import setup_logging

_PREFIX = "cmd_"


def _command_modules() -> dict[str, str]:
    names = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith(_PREFIX):
            names[info.name[len(_PREFIX) :].replace("_", "-")] = f"{__name__}.{info.name}"
    return names


class LazyGroup(click.Group):
    """A group whose subcommands are discovered by module name and imported on use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(_command_modules()))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None:
            return cmd
        module = _command_modules().get(cmd_name)
        if module is None:
            return None
        return importlib.import_module(module).command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edge-agent")
@click.option("--log-level", default="INFO", show_default=True, help="DEBUG, INFO, WARNING or ERROR.")
@click.option("--log-json/--no-log-json", default=None, help="JSON log lines (default: on when not a terminal and EDGE_AGENT_LOG_JSON=1).")
def cli(log_level: str, log_json: bool | None) -> None:
    """Edge DePIN ingestion agent: LiDAR, GNSS and camera drives into signed, anchored datasets.

    Every command takes --json for machine-readable output and exits 0 on success,
    1 when what it checks fails, 2 on bad usage or bad input.
    """
    setup_logging(log_level, log_json)


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: known errors become one ``ERROR:`` line and an exit code."""
    try:
        return cli.main(args=argv, prog_name="edge-agent", standalone_mode=False)
    except click.exceptions.Abort:
        fail("aborted", 130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        # Bad usage: click's own message, exit 2 (click uses 2 for usage errors too).
        exc.show()
        sys.exit(2)
    except error_types() as exc:  # type: ignore[misc]
        fail(str(exc), getattr(exc, "exit_code", 2))
    except BrokenPipeError:
        sys.exit(0)
    except KeyboardInterrupt:
        fail("interrupted", 130)
