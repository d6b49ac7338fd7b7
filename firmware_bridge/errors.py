"""Exceptions of the firmware bridge."""


class BridgeError(Exception):
    """Base of the bridge's errors (exit code 2 at the CLI)."""

    exit_code = 2
