"""Upload sinks: where sealed datasets go (STYLE.md habit 4: a Protocol and a registry).

A sink copies a sealed dataset directory somewhere and returns its URL. ``put`` must be
idempotent (the state machine calls it again after a crash between the copy and the
``uploaded`` commit) and must only report success once the copy is complete and durable.
Only the local-directory sink exists today; remote object stores register here later.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from agent.errors import AgentError


class UploadError(AgentError):
    """An upload sink could not take a dataset (retried at the next tick)."""


class UploadSink(Protocol):
    """Takes a sealed dataset directory; returns the URL it now lives at."""

    name: str

    def put(self, session: str, directory: Path) -> str: ...


class LocalDirSink:
    """Copies datasets to ``<root>/<session>/`` (files fsynced, then the directory renamed
    into place, so a half-copied dataset never looks complete). URL: ``file://...``."""

    name = "local"

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def put(self, session: str, directory: Path) -> str:
        dst = self.root / session
        if (dst / "manifest.cose").exists():
            return dst.resolve().as_uri()  # already there (a retry after a crash)
        tmp = self.root / f".{session}.partial"
        try:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(directory, tmp)
            for dirpath, _dirs, names in os.walk(tmp):
                for n in names:
                    fd = os.open(os.path.join(dirpath, n), os.O_RDONLY)
                    try:
                        os.fsync(fd)
                    finally:
                        os.close(fd)
            os.replace(tmp, dst)
            fd = os.open(self.root, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise UploadError(f"upload of {session} to {self.root} failed: {exc}") from None
        return dst.resolve().as_uri()


SinkFactory = Callable[[str, Path], UploadSink]


def _local(target: str, state_dir: Path) -> UploadSink:
    root = Path(target) if target else state_dir / "uploads"
    return LocalDirSink(root if root.is_absolute() else state_dir / root)


SINKS: dict[str, SinkFactory] = {"local": _local}


def make_sink(kind: str, target: str, state_dir: Path) -> UploadSink:
    """The sink ``kind`` (``local``) for ``target`` (a directory; default STATE/uploads)."""
    if kind not in SINKS:
        raise AgentError(f"unknown upload sink {kind!r}; sinks: {', '.join(SINKS)}")
    return SINKS[kind](target, state_dir)
