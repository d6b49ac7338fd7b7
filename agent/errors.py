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
