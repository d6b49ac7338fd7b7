"""``edge-agent verify PATH``: check chunks, Flows and datasets."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from agent.cli._common import emit_json, json_option
from agent.errors import AgentError


@click.command(name="verify")
@click.argument("path", type=click.Path())
@click.option("--key", "key_hex", default=None,
              help="Expected device Ed25519 public key (hex). Default: the dataset's own key, or a lone "
                   "chunk's header key.")
@click.option("--recipient-key", "recipient_file", type=click.Path(dir_okay=False), default=None,
              help="File holding the recipient's X25519 private key (64 hex digits or 32 raw bytes): "
                   "opens an encrypted Flow (.enc) to verify what is inside.")
@json_option
def command(path: str, key_hex: str | None, recipient_file: str | None, as_json: bool) -> None:
    """Verify PATH: a chunk file (<id>.cose with <id>.bin beside, or <id>.chunk), a Flow file,
    an encrypted Flow (<id>.enc, with --recipient-key; without it the check fails), a dataset directory (manifest.cose, flows/, chunks/) or a store directory.

    Checks signatures, payload hashes, per-stream hash chains (gaps and reordering named),
    Merkle roots, inclusion proofs and the dataset root. Exit 0 when everything holds,
    1 when anything fails (each failure named: file and reason), 2 on unreadable input.
    --json prints {"ok", "checked": {counts}, "failures": [{"file", "reason"}]}.
    """
    from agent.verify import verify_path

    key = None
    if key_hex is not None:
        try:
            key = bytes.fromhex(key_hex)
            if len(key) != 32:
                raise ValueError
        except ValueError:
            raise AgentError("--key must be 64 hex digits (an Ed25519 public key)") from None
    recipient = _recipient_key(recipient_file) if recipient_file is not None else None
    report = verify_path(path, key, recipient)
    if as_json:
        emit_json(report.as_dict())
    else:
        counts = ", ".join(f"{v} {k}" for k, v in report.checked.items())
        for f in report.failures:
            click.echo(f"FAIL {f['file']}: {f['reason']}")
        click.echo(("OK " if report.ok else f"FAILED ({len(report.failures)} failures) ") + f"checked: {counts}")
    if not report.ok:
        sys.exit(1)


def _recipient_key(path: str) -> bytes:
    """The X25519 private key in ``path`` (hex or raw); errors never show the file's bytes."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise AgentError(f"--recipient-key {path}: cannot read: {exc.strerror or exc}") from None
    if len(raw) == 32:
        return raw
    try:
        key = bytes.fromhex(raw.decode("ascii").strip())
    except (UnicodeDecodeError, ValueError):
        key = b""
    if len(key) != 32:
        raise AgentError(f"--recipient-key {path}: not an X25519 private key (64 hex digits or 32 raw bytes)")
    return key
