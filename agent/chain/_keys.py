"""The device's EVM key behind a small interface, until agent/keys provides one.

A key file holds one secp256k1 private key as hex (``0x`` optional), mode 0600.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Protocol

from agent.errors import ConfigError


class EvmKeySource(Protocol):
    """Anything that yields the 32-byte private key of an EVM account."""

    def private_key(self) -> bytes: ...


class KeyFile:
    """A hex key file; ``create`` makes a fresh key (written then fsynced then renamed)."""

    def __init__(self, path: str | Path, create: bool = False) -> None:
        self.path = Path(path)
        self.create = create

    def private_key(self) -> bytes:
        if not self.path.exists():
            if not self.create:
                raise ConfigError(str(self.path), "no such EVM key file")
            write_key(self.path, secrets.token_bytes(32))
        text = self.path.read_text().strip()
        raw = text.removeprefix("0x")
        try:
            key = bytes.fromhex(raw)
        except ValueError:
            raise ConfigError(str(self.path), "not a hex private key") from None
        if len(key) != 32:
            raise ConfigError(str(self.path), f"a private key is 32 bytes, found {len(key)}")
        return key


def write_key(path: Path, key: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("0x" + key.hex() + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
