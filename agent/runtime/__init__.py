"""The agent at run time: sources → bus messages → pipeline → signed chunks → Flows →
sealed datasets → upload → DAT, driven by one state machine that survives restarts.

- :class:`Agent` (:mod:`agent.runtime._agent`): opens the store, fleet client and chain,
  resumes what a crash left, runs a message source through capture and worker threads
  with the backpressure policy of :class:`RuntimeConfig`, and shuts down within a bound.
- :class:`Pipeline`: the data path (messages → chunk specs), no threads and no files.
- :class:`UploadSink` / :data:`SINKS`: where sealed datasets go (a local directory today).
- :mod:`agent.runtime._outputs`: per dataset GeoJSON track and tiles, PNG map, PLY cloud.

Names load lazily: ``agent.config`` imports :class:`RuntimeConfig` without numpy or numba.
"""

from __future__ import annotations

import importlib
from typing import Any

_WHERE = {
    "RuntimeConfig": "agent.runtime._config",
    "SourcesConfig": "agent.runtime._config",
    "UploadConfig": "agent.runtime._config",
    "Agent": "agent.runtime._agent",
    "RunSummary": "agent.runtime._agent",
    "Pipeline": "agent.runtime._pipeline",
    "PipelineStats": "agent.runtime._pipeline",
    "LocalDirSink": "agent.runtime._sinks",
    "SINKS": "agent.runtime._sinks",
    "UploadSink": "agent.runtime._sinks",
    "make_sink": "agent.runtime._sinks",
    "write_outputs": "agent.runtime._outputs",
    "read_status": "agent.runtime._status",
}

__all__ = [
    "SINKS",
    "Agent",
    "LocalDirSink",
    "Pipeline",
    "PipelineStats",
    "RunSummary",
    "RuntimeConfig",
    "SourcesConfig",
    "UploadConfig",
    "UploadSink",
    "make_sink",
    "read_status",
    "write_outputs",
]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'agent.runtime' has no attribute {name!r}")
