"""Fleet management over MQTT: the device's client (status, telemetry, events, signed jobs)
and the fleet manager's side (signing and sending jobs, following them, watching devices).

Topics live under ``<topic_root>/<device_id>/`` (default root ``edge/v1``); see
:mod:`agent.fleet.device` and :mod:`agent.fleet.manager`. Heavy imports (paho, pynacl) load
on first use so ``agent.config`` can import :class:`FleetConfig` cheaply.
"""

from __future__ import annotations

import importlib
from typing import Any

from agent.fleet._config import FleetConfig

_LAZY = {
    "DeviceClient": "agent.fleet.device",
    "FleetClient": "agent.fleet.manager",
    "FleetView": "agent.fleet.manager",
    "SharedConsumer": "agent.fleet.manager",
    "SqliteDedupe": "agent.fleet.manager",
    "verify_device_doc": "agent.fleet.manager",
    "Job": "agent.fleet.jobs",
    "JobState": "agent.fleet.jobs",
    "JobVerifier": "agent.fleet.jobs",
    "JobLedger": "agent.fleet.jobs",
    "JOB_TYPES": "agent.fleet.jobs",
    "sign_job": "agent.fleet.jobs",
    "JobHandler": "agent.fleet.handlers",
    "JobHandlers": "agent.fleet.handlers",
    "apply_config": "agent.fleet.handlers",
    "collect_diagnostics": "agent.fleet.handlers",
    "local_handlers": "agent.fleet.handlers",
}

__all__ = ["FleetConfig", *sorted(_LAZY)]  # noqa: PLE0604 - names of the lazy table


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'agent.fleet' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
