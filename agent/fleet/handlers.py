"""What jobs do: a registry of callables the daemon provides, plus the two handlers whose
work lives here (atomic config change with rollback, diagnostics bundle).

A handler gets the verified :class:`~agent.fleet.jobs.Job` and a ``progress(fraction,
details)`` callback; it returns details for the SUCCEEDED update or raises to FAIL the job.
Returning ``{"restart": True}`` asks the device client to restart the agent once the final
update has been delivered.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import yaml

from agent.errors import ConfigError, FleetError
from agent.fleet.jobs import JOB_TYPES, Job

Progress = Callable[[float, dict[str, Any] | None], None]


class JobHandler(Protocol):
    def __call__(self, job: Job, progress: Progress) -> dict[str, Any] | None: ...


JobHandlers = Mapping[str, JobHandler]
"""Job type → handler. A type without a handler FAILs with "not supported on this device"."""


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)  # the rename itself must survive a power cut
    finally:
        os.close(dfd)


def apply_config(config_path: str | Path, changes: Mapping[str, Any],
                 on_apply: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Set dotted keys (``lidar.min_range_m``) in a YAML config file, atomically.

    The result is validated as a whole with :class:`agent.config.AgentConfig` before anything
    is written; then written to a temp file, fsynced and renamed over the old one. If
    ``on_apply`` (the daemon taking the new config live) raises, the old file is put back the
    same way and the error propagates. Returns the keys changed and the new config digest.
    """
    from agent.config import AgentConfig, load_config

    path = Path(config_path)
    if not changes:
        raise FleetError("set_config: no keys to set")
    old_bytes = path.read_bytes() if path.exists() else b""
    data = yaml.safe_load(old_bytes) or {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), "the top level must be a mapping")
    for dotted, value in changes.items():
        node = data
        keys = str(dotted).split(".")
        for k in keys[:-1]:
            nxt = node.setdefault(k, {})
            if not isinstance(nxt, dict):
                raise ConfigError(str(path), f"{dotted}: {k} is not a section")
            node = nxt
        node[keys[-1]] = value
    AgentConfig.model_validate(data)  # raises pydantic's ValidationError: the job FAILs, file untouched
    new_bytes = yaml.safe_dump(data, sort_keys=False).encode()
    _atomic_write(path, new_bytes)
    try:
        cfg = load_config(path)
        if on_apply is not None:
            on_apply(cfg)
    except BaseException:
        _atomic_write(path, old_bytes)  # roll back
        raise
    return {"changed": sorted(changes), "config_digest": cfg.digest()}


def collect_diagnostics(state_dir: str | Path, *, config_path: str | Path | None = None,
                        log_dirs: list[Path] | None = None, stats: Mapping[str, Any] | None = None,
                        max_file_bytes: int = 8 << 20) -> Path:
    """Write ``diagnostics-<utc>.tar.gz`` into ``state_dir``: the config, logs (the last
    ``max_file_bytes`` of each ``*.log``) and a ``stats.json``. Written then renamed."""
    state = Path(state_dir)
    state.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = state / f"diagnostics-{stamp}-{os.getpid()}.tar.gz"
    tmp = out.with_name("." + out.name + ".tmp")

    def add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(data))

    with tarfile.open(tmp, "w:gz") as tar:
        if config_path is not None and Path(config_path).exists():
            add_bytes(tar, "config.yaml", Path(config_path).read_bytes())
        for d in log_dirs or []:
            for log in sorted(Path(d).glob("*.log")):
                with open(log, "rb") as fh:
                    fh.seek(max(0, log.stat().st_size - max_file_bytes))
                    add_bytes(tar, f"logs/{log.name}", fh.read())
        add_bytes(tar, "stats.json", json.dumps(dict(stats or {}), indent=1, default=str).encode())
    with open(tmp, "rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, out)
    return out


def local_handlers(config_path: str | Path, state_dir: str | Path, *,
                   actions: Mapping[str, JobHandler] | None = None,
                   stats: Callable[[], Mapping[str, Any]] | None = None) -> dict[str, JobHandler]:
    """Handlers for a device client running without the daemon (tests, bench, bring-up).

    ``set_config`` and ``collect_diagnostics`` do their real work. The daemon's actions
    (capture, seal, mint, flush, restart) come from ``actions``; those missing are recorded as
    a line in ``<state_dir>/fleet-actions.jsonl`` so their effect can be observed.
    ``flush_uploads`` takes ``duration_s`` and reports progress while it runs.
    """
    state = Path(state_dir)
    log = state / "fleet-actions.jsonl"

    def record(job: Job, progress: Progress) -> dict[str, Any]:
        state.mkdir(parents=True, exist_ok=True)
        steps = int(max(0.0, float(job.params.get("duration_s", 0))) * 10)
        for i in range(steps):
            time.sleep(0.1)
            if i % 10 == 9:
                progress((i + 1) / steps, None)
        with open(log, "a") as fh:
            fh.write(json.dumps({"job_id": job.job_id, "type": job.type, "params": job.params}) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        out: dict[str, Any] = {"recorded": str(log)}
        if job.type == "restart":
            out["restart"] = True
        return out

    def set_config(job: Job, progress: Progress) -> dict[str, Any]:
        return apply_config(config_path, job.params)

    def diagnostics(job: Job, progress: Progress) -> dict[str, Any]:
        path = collect_diagnostics(state, config_path=config_path, log_dirs=[state / "logs"],
                                   stats=stats() if stats else None)
        return {"bundle": str(path), "bytes": path.stat().st_size}

    table: dict[str, JobHandler] = {t: record for t in JOB_TYPES}
    table["set_config"] = set_config
    table["collect_diagnostics"] = diagnostics
    table.update(actions or {})
    return table
