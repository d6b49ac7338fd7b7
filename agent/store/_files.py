"""Crash-safe file writes: temporary name, fsync, rename, directory fsync."""

from __future__ import annotations

import os
from pathlib import Path

TMP_MARK = ".tmp-"


def tmp_name(path: Path) -> Path:
    """The temporary name a file is written under before its rename (recognisable at recovery)."""
    return path.with_name(f".{path.name}{TMP_MARK}{os.getpid()}")


def is_tmp(name: str) -> bool:
    return name.startswith(".") and TMP_MARK in name


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_files_atomically(files: list[tuple[Path, bytes]]) -> None:
    """Write each file under a temporary name and fsync it, then rename all and fsync their
    directories once. On any error the temporary files are removed and the error re-raised;
    a crash leaves only temporary names, which recovery removes."""
    written: list[tuple[Path, Path]] = []
    try:
        for path, data in files:
            tmp = tmp_name(path)
            written.append((tmp, path))
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                view = memoryview(data)
                while view:
                    n = os.write(fd, view)
                    view = view[n:]
                os.fsync(fd)
            finally:
                os.close(fd)
        for tmp, path in written:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in written:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
        raise
    for d in {p.parent for p, _ in files}:
        fsync_dir(d)


def remove_quietly(path: Path) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
