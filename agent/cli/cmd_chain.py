"""``edge-agent chain ...``: the device as an iDAO: deploy, mint a dataset's DAT, use it."""

from __future__ import annotations

import dataclasses
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import click

from agent.cli._common import emit_json, json_option

PROFILES = ("embedded", "local", "lazai-testnet", "lazai-mainnet")


def _wei(text: str) -> int:
    """``123`` (wei), ``1.5eth``, ``20gwei``."""
    t = text.strip().lower()
    scale = 1
    for suffix, factor in (("gwei", 10**9), ("ether", 10**18), ("eth", 10**18), ("wei", 1)):
        if t.endswith(suffix):
            t, scale = t[: -len(suffix)], factor
            break
    try:
        value = Decimal(t) * scale
    except InvalidOperation:
        raise click.BadParameter(f"not an amount: {text!r} (wei, or with eth/gwei)") from None
    if value != value.to_integral_value() or value <= 0:
        raise click.BadParameter(f"amount must be a positive whole number of wei: {text!r}")
    return int(value)


def _settings(ctx: click.Context) -> tuple[Any, Path]:
    """(chain config section, state directory) from the group's options."""
    from agent.config import load_config

    opts = ctx.obj
    path = opts["config"] or (Path(__file__).resolve().parents[2] / "configs" / f"chain-{opts['profile']}.yaml"
                              if opts["profile"] else None)
    cfg = load_config(path)
    return cfg.chain, Path(opts["state_dir"]) if opts["state_dir"] else cfg.state_dir


def _open(ctx: click.Context, deploy_if_missing: bool = False) -> Any:
    from agent.chain import Idao

    chain, state = _settings(ctx)
    return Idao.open(chain, state, deploy_if_missing=deploy_if_missing)


@click.group(name="chain")
@click.option("--config", "config", type=click.Path(dir_okay=False), default=None,
              help="Configuration file (its chain: section is used).")
@click.option("--profile", type=click.Choice(PROFILES), default=None,
              help="Shortcut for configs/chain-PROFILE.yaml.")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None,
              help="State directory (keys, outbox, deployment files); default from the configuration.")
@click.pass_context
def command(ctx: click.Context, config: str | None, profile: str | None, state_dir: str | None) -> None:
    """Data Anchoring Tokens on chain: deploy the contracts, mint one DAT per dataset
    (exactly once, resumable after any failure), show a token, consume quota, settle revenue
    and claim it.

    The default profile is the embedded chain (py-evm in process, deployed at start, gone
    when the command ends): fine for trying mint; show/usage/settle/claim need a persistent
    chain (--profile local with a node, or a LazAI profile with addresses set).
    """
    if config and profile:
        raise click.UsageError("give --config or --profile, not both")
    ctx.obj = {"config": config, "profile": profile, "state_dir": state_dir}


@command.command("deploy")
@json_option
@click.pass_context
def deploy_cmd(ctx: click.Context, as_json: bool) -> None:
    """Deploy DataAnchoringToken and DataRegistry from the device key, grant the registry
    the minter role, allow-list the configured verifier; write the deployment file."""
    with _open(ctx, deploy_if_missing=True) as idao:
        dep = idao.deployment
        out = {"chain_id": dep.chain_id, "token": dep.token, "registry": dep.registry, "deployer": dep.deployer,
               "verifiers": dep.verifiers}
    if as_json:
        emit_json(out)
        return
    click.echo(f"chain {out['chain_id']}: DataAnchoringToken {out['token']}, DataRegistry {out['registry']}")


@command.command("mint")
@click.argument("dataset", type=click.Path(exists=True))
@click.option("--url", default=None, help="File URL to register (default: chain.metadata_url_template).")
@json_option
@click.pass_context
def mint_cmd(ctx: click.Context, dataset: str, url: str | None, as_json: bool) -> None:
    """Mint the DAT of DATASET (a sealed dataset directory with manifest.cose, a dataset
    JSON manifest, or a directory with dataset.json):
    addFile, addProof (signed by the verifier), requestReward. Run it again after any
    failure: it checks the chain first and resends stored transactions, never minting twice.
    A dataset whose root does not match its flows is refused before any transaction."""
    from agent.chain import DatasetRef

    chain, _ = _settings(ctx)
    ds = DatasetRef.load(dataset, chain.metadata_url_template)
    if url:
        ds = dataclasses.replace(ds, metadata_url=url)
    ds.check()  # before connecting: a bad dataset costs nothing
    with _open(ctx) as idao:
        res = idao.mint(ds)
    if as_json:
        emit_json(res.as_dict())
        return
    state = "already minted" if res.already_minted else "minted"
    click.echo(f"{res.dataset_id}: {state} token {res.token_id} (file {res.file_id}) to {res.owner}")


@command.command("show")
@click.argument("token", type=click.IntRange(min=1))
@click.option("--holder", default=None, help="Address whose balance and claimable revenue to show (default: the device).")
@json_option
@click.pass_context
def show_cmd(ctx: click.Context, token: int, holder: str | None, as_json: bool) -> None:
    """Show DAT class TOKEN: metadata, integrity hash, policy, device, supply, revenue."""
    with _open(ctx) as idao:
        info = idao.show(token, holder)
    if as_json:
        emit_json(info)
        return
    click.echo(f"token {token} on chain {info['chain_id']} ({info['token']})")
    for k in ("metadata_uri", "integrity_hash", "policy_uri", "device", "verified", "total_supply", "holder", "balance"):
        click.echo(f"  {k:<15} {info[k]}")
    for asset, r in info["revenue"].items():
        click.echo(f"  revenue {asset}: settled {r['settled']}, claimed {r['claimed']}, claimable {r['claimable']}")


@command.command("usage")
@click.argument("token", type=click.IntRange(min=1))
@click.argument("units", type=click.IntRange(min=1))
@click.option("--metric", default="use", show_default=True, help="What was used (logged in the event).")
@json_option
@click.pass_context
def usage_cmd(ctx: click.Context, token: int, units: int, metric: str, as_json: bool) -> None:
    """Consume UNITS of the device's quota of TOKEN (burns them; emits UsageRecorded)."""
    with _open(ctx) as idao:
        out = idao.usage(token, units, metric)
    emit_json(out) if as_json else click.echo(f"used {units} of token {token} ({metric}): tx {out['tx']}")


@command.command("settle")
@click.argument("token", type=click.IntRange(min=1))
@click.argument("amount")
@click.option("--erc20", default=None, help="Settle in this ERC-20 (approved then pulled) instead of ETH.")
@json_option
@click.pass_context
def settle_cmd(ctx: click.Context, token: int, amount: str, erc20: str | None, as_json: bool) -> None:
    """Pay AMOUNT (wei, or e.g. 0.5eth) of revenue to class TOKEN, shared by its holders pro rata."""
    wei = _wei(amount)
    with _open(ctx) as idao:
        out = idao.settle(token, wei, erc20)
    emit_json(out) if as_json else click.echo(f"settled {wei} to token {token}: tx {out['tx']}")


@command.command("claim")
@click.argument("token", type=click.IntRange(min=1))
@click.option("--erc20", default=None, help="Claim revenue settled in this ERC-20 instead of ETH.")
@json_option
@click.pass_context
def claim_cmd(ctx: click.Context, token: int, erc20: str | None, as_json: bool) -> None:
    """Claim the device's share of the revenue of TOKEN."""
    with _open(ctx) as idao:
        out = idao.claim(token, erc20)
    emit_json(out) if as_json else click.echo(f"claimed {out['amount']} from token {token}: tx {out['tx']}")

