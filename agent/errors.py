"""Exceptions of the agent package. The CLI turns these (and the other packages' base
errors) into one ``ERROR: ...`` line on stderr and an exit code."""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent reports to a user. ``exit_code`` follows DESIGN.md:
    1 when something checked does not hold, 2 on bad usage or bad input."""

    exit_code = 2


class ConfigError(AgentError):
    """A configuration file or value is invalid; ``where`` names the file and field."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


class CheckFailed(AgentError):
    """What a command checks (verification, a benchmark target given as a check) failed."""

    exit_code = 1


class MissingDependency(AgentError):
    """An optional library is needed for this feature and is not installed."""

    def __init__(self, package: str, feature: str) -> None:
        self.package = package
        super().__init__(f"{feature} needs the optional package '{package}': pip install {package}")


class BusError(AgentError):
    """The message bus cannot be used: bad endpoint, socket not open, bind/connect failed."""


class MessageDecodeError(BusError):
    """Bytes received on the bus are not a valid message; ``reason`` says what is wrong."""

    def __init__(self, reason: str, msg_type: int | None = None) -> None:
        self.reason = reason
        self.msg_type = msg_type
        where = f"message type {msg_type}: " if msg_type is not None else ""
        super().__init__(f"cannot decode bus message: {where}{reason}")


class RecordingError(AgentError):
    """A drive recording cannot be written, read or imported (bad file, bad source, bad option)."""
