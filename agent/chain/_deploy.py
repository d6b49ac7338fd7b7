"""Deploy the DataAnchoringToken and DataRegistry and wire their roles."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from web3 import Web3

from agent.chain._artifacts import artifact
from agent.chain._client import ChainClient
from agent.errors import ChainError

MINTER_ROLE = Web3.keccak(text="MINTER_ROLE")
VERIFIER_ROLE = Web3.keccak(text="VERIFIER_ROLE")


@dataclass
class Deployment:
    """Where the contracts live on one chain."""

    chain_id: int
    token: str
    registry: str
    deployer: str
    block: int = 0
    verifiers: list[str] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n")
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            return cls(**json.loads(path.read_text()))
        except FileNotFoundError:
            raise ChainError(f"no deployment at {path}: run edge-agent chain deploy, or set "
                             "chain.registry_address and chain.token_address") from None
        except (json.JSONDecodeError, TypeError) as exc:
            raise ChainError(f"{path}: not a deployment file: {exc}") from None


def _deploy_one(client: ChainClient, name: str, *args: Any) -> tuple[str, int]:
    art = artifact(name)
    factory = client.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
    rec = client.transact(factory.constructor(*args), f"deploy {name}")
    return rec["contractAddress"], rec["blockNumber"]


def deploy(client: ChainClient, reward_units: int, policy_uri: str, verifiers: list[str] | None = None) -> Deployment:
    """Deploy both contracts from ``client``'s account (the admin), give the registry the
    minter role and allow-list ``verifiers``."""
    token, block = _deploy_one(client, "DataAnchoringToken", client.address)
    registry, _ = _deploy_one(client, "DataRegistry", client.address, token, reward_units, policy_uri)
    dat = client.contract("DataAnchoringToken", token)
    client.transact(dat.functions.grantRole(MINTER_ROLE, registry), "grant minter role")
    reg = client.contract("DataRegistry", registry)
    allowed = []
    for v in verifiers or []:
        client.transact(reg.functions.grantRole(VERIFIER_ROLE, Web3.to_checksum_address(v)), "allow verifier")
        allowed.append(Web3.to_checksum_address(v))
    return Deployment(client.chain_id, token, registry, client.address, block, allowed)


def allow_verifier(client: ChainClient, registry: str, verifier: str) -> None:
    reg = client.contract("DataRegistry", registry)
    client.transact(reg.functions.grantRole(VERIFIER_ROLE, Web3.to_checksum_address(verifier)), "allow verifier")
