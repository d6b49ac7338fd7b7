"""``edge-agent keys``: the device identity (Ed25519 device key, secp256k1 EVM key)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from agent.cli._common import emit_json, json_option
from agent.errors import KeyStoreError


def _passphrase(env: str | None) -> bytes | None:
    if env is None:
        return None
    value = os.environ.get(env)
    if not value:
        raise KeyStoreError(f"environment variable {env} (the passphrase) is not set or empty")
    return value.encode()


def _store_uri(state_dir: str | None, uri: str | None) -> str:
    from agent.keys import keys_dir

    if uri:
        return uri
    if state_dir is None:
        from agent.config import load_config

        state_dir = str(load_config().state_dir)
    return str(keys_dir(Path(state_dir)))


_state_opt = click.option("--state-dir", type=click.Path(file_okay=False), default=None,
                          help="State directory (keys go to STATE_DIR/keys). Default: the config's state_dir.")
_uri_opt = click.option("--keystore", "uri", default=None,
                        help="Key store URI instead of STATE_DIR/keys: file:///DIR (atecc://, tpm:// are "
                             "recognised but not available on this device).")
_pass_opt = click.option("--passphrase-env", metavar="VAR", default=None,
                         help="Name of an environment variable holding the passphrase (Argon2id + XSalsa20-Poly1305).")


@click.group(name="keys")
def command() -> None:
    """Device identity: create and show the device keys.

    The Ed25519 device key signs chunks, Flows and datasets; the secp256k1 key is the
    device's EVM account. Key files are mode 0600, optionally sealed with a passphrase.
    """


def _show(ident: dict, as_json: bool) -> None:
    if as_json:
        emit_json(ident)
        return
    click.echo(f"device id        {ident['device_id']}")
    click.echo(f"ed25519 public   {ident['ed25519_public_key']}")
    click.echo(f"evm address      {ident['evm_address']}")
    click.echo(f"encrypted        {'yes' if ident['encrypted'] else 'no'}")
    if "keystore" in ident:
        click.echo(f"key store        {ident['keystore']}")


@command.command(name="init")
@_state_opt
@_uri_opt
@_pass_opt
@click.option("--force", is_flag=True, help="Replace existing keys (a new device identity).")
@json_option
def init_cmd(state_dir: str | None, uri: str | None, passphrase_env: str | None, force: bool, as_json: bool) -> None:
    """Create the device keys (refuses to replace existing keys without --force)."""
    from agent.keys import open_keystore

    ks = open_keystore(_store_uri(state_dir, uri), _passphrase(passphrase_env))
    ks.init(overwrite=force)
    _show(ks.identity(), as_json)


@command.command(name="show")
@_state_opt
@_uri_opt
@_pass_opt
@click.option("--check", is_flag=True, help="Also load the secrets (needs the passphrase) and check they match.")
@json_option
def show_cmd(state_dir: str | None, uri: str | None, passphrase_env: str | None, check: bool, as_json: bool) -> None:
    """Show the public parts: device id, Ed25519 public key, EVM address."""
    from agent.keys import open_keystore

    ks = open_keystore(_store_uri(state_dir, uri), _passphrase(passphrase_env))
    ident = ks.identity()
    if check:
        ks.device_signer()
        ks.evm_key()
        ident["checked"] = True
    _show(ident, as_json)
