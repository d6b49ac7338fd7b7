"""Fixtures: an embedded py-evm chain with the contracts deployed once per module, actors
with their own keys, and a ganache node for the over-the-wire tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from web3 import Web3

from agent.chain import ChainClient, ChainConfig, DatasetRef, Verifier, deploy, embedded_web3, fund
from agent.chain._artifacts import artifact

FAST = {"poll_interval_s": 0.05, "backoff_initial_s": 0.05, "backoff_max_s": 0.5, "rpc_retry_total_s": 20.0,
        "receipt_timeout_s": 30.0, "rebroadcast_s": 1.0}


def key(label: str) -> bytes:
    return bytes(Web3.keccak(text=f"edge-agent tests {label}"))


def dataset(n: int, flows: int = 3) -> DatasetRef:
    roots = [Web3.keccak(text=f"flow {n}/{i}") for i in range(flows)]
    return DatasetRef.build(f"drive-{n:04d}", f"ipfs://edge-agent/datasets/drive-{n:04d}", [bytes(r) for r in roots])


@dataclass
class Env:
    w3: Web3
    cfg: ChainConfig
    admin: ChainClient
    verifier: Verifier
    clients: dict[str, ChainClient]
    token: Any
    registry: Any
    token_address: str
    registry_address: str

    def client(self, name: str) -> ChainClient:
        return self.clients[name]

    def at(self, name: str, contract: str, address: str) -> Any:
        return self.clients[name].contract(contract, address)

    def deploy_test(self, name: str, contract: str, *args: Any) -> str:
        art = artifact(contract)
        factory = self.w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"])
        return self.clients[name].transact(factory.constructor(*args), f"deploy {contract}")["contractAddress"]


@pytest.fixture(scope="module")
def env() -> Env:
    w3, _ = embedded_web3()
    cfg = ChainConfig(**FAST)
    clients = {}
    for name in ("admin", "alice", "bob", "carol", "payer"):
        k = key(name)
        fund(w3, Web3.to_checksum_address(Verifier(k).address), 100 * 10**18)
        clients[name] = ChainClient(w3, k, cfg)
    clients["stranger"] = ChainClient(w3, key("stranger (never funded)"), cfg)
    verifier = Verifier(key("verifier"))
    dep = deploy(clients["admin"], 1000, "ipfs://policy", [verifier.address])
    admin = clients["admin"]
    return Env(w3, cfg, admin, verifier, clients, admin.contract("DataAnchoringToken", dep.token),
               admin.contract("DataRegistry", dep.registry), dep.token, dep.registry)
