"""The device as an iDAO on chain: one object that opens the client from configuration,
finds (or, on the embedded chain, deploys) the contracts, mints datasets exactly once and
uses the DAT (show, usage, settle, claim)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from web3 import Web3

from agent.chain._client import BACKENDS, ChainClient, fund
from agent.chain._config import ChainConfig
from agent.chain._dataset import DatasetRef
from agent.chain._deploy import Deployment, deploy
from agent.chain._keys import KeyFile
from agent.chain._mint import Hook, Minter, MintResult
from agent.chain._verifier import ProofSource, Verifier
from agent.errors import ChainError
from agent.store.outbox import Outbox

ETH = "0x" + "00" * 20
EMBEDDED_FUNDING_WEI = 1000 * 10**18


class Idao:
    """Open with :meth:`open`; close (or use as a context manager) to release the outbox."""

    def __init__(self, client: ChainClient, deployment: Deployment, outbox: Outbox,
                 prover: ProofSource | None = None, cfg: ChainConfig | None = None) -> None:
        self.client = client
        self.deployment = deployment
        self.outbox = outbox
        self.prover = prover
        self.cfg = cfg or client.cfg
        self.token = client.contract("DataAnchoringToken", deployment.token)
        self.registry = client.contract("DataRegistry", deployment.registry)

    @classmethod
    def open(cls, cfg: ChainConfig, state_dir: str | Path, *, device_key: bytes | None = None,
             verifier: Verifier | None = None, deploy_if_missing: bool = False) -> Idao:
        """Connect as configured. The embedded chain is new each time: it is funded and the
        contracts are deployed at once (the verifier, if any, allow-listed)."""
        state = Path(state_dir)
        key = device_key if device_key is not None else device_evm_key(cfg, state)
        if verifier is None and cfg.verifier_key_file is not None:
            verifier = Verifier(KeyFile(state / cfg.verifier_key_file, create=True).private_key())
        w3, endpoint = BACKENDS[cfg.backend](cfg)
        if cfg.backend == "embedded":
            if verifier is None:  # the embedded chain runs the whole path: a verifier of its own
                verifier = Verifier(Web3.keccak(text="edge-agent embedded verifier"))
            fund(w3, Account_address(key), EMBEDDED_FUNDING_WEI)
            client = ChainClient(w3, key, cfg, endpoint)
            dep = deploy(client, cfg.reward_units, cfg.policy_uri, [verifier.address])
        else:
            client = ChainClient(w3, key, cfg, endpoint)
            dep = cls._find_deployment(cfg, state, client, verifier, deploy_if_missing)
        if cfg.backend == "embedded":
            # The embedded chain lives as long as the process, and so do its pending txs; a
            # file would outlive the chain and meet the same (deterministic) addresses again.
            outbox = Outbox(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False))
        else:
            state.mkdir(parents=True, exist_ok=True)
            outbox = Outbox(state / cfg.outbox_file)
        return cls(client, dep, outbox, verifier, cfg)

    @staticmethod
    def deployment_path(cfg: ChainConfig, state: Path, chain_id: int) -> Path:
        return state / (cfg.deployment_file or Path("chain") / f"deployment-{chain_id}.json")

    @classmethod
    def _find_deployment(cls, cfg: ChainConfig, state: Path, client: ChainClient, verifier: Verifier | None,
                         deploy_if_missing: bool) -> Deployment:
        if cfg.registry_address and cfg.token_address:
            return Deployment(client.chain_id, Web3.to_checksum_address(cfg.token_address),
                              Web3.to_checksum_address(cfg.registry_address), "")
        path = cls.deployment_path(cfg, state, client.chain_id)
        if path.exists() or not deploy_if_missing:
            dep = Deployment.load(path)
            code = client.rpc(lambda: client.w3.eth.get_code(dep.registry), "eth_getCode")
            if not code:
                raise ChainError(f"{path}: no contract at {dep.registry} on chain {client.chain_id} "
                                 "(node reset? deploy again)")
            return dep
        dep = deploy(client, cfg.reward_units, cfg.policy_uri, [verifier.address] if verifier else [])
        dep.save(path)
        return dep

    def close(self) -> None:
        self.outbox.close()

    def __enter__(self) -> Idao:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ mint

    def minter(self, hook: Hook | None = None) -> Minter:
        if self.prover is None:
            raise ChainError("no verifier: set chain.verifier_key_file (or get a proof from a verifier node)")
        return Minter(self.client, self.registry, self.token, self.outbox, self.prover,
                      self.cfg.proof_url_template, hook)

    def mint(self, dataset: DatasetRef, hook: Hook | None = None) -> MintResult:
        """One DAT for ``dataset``, exactly once."""
        return self.minter(hook).mint(dataset)

    def resume(self, datasets: list[DatasetRef], hook: Hook | None = None) -> list[MintResult]:
        """Finish every dataset with a pending transaction in the outbox (after a crash)."""
        by_id = {d.dataset_id: d for d in datasets}
        pending = {i.payload.get("dataset_id") for i in self.outbox.pending("tx", limit=10000)}
        return [self.mint(by_id[d], hook) for d in sorted(x for x in pending if x in by_id)]

    # ------------------------------------------------------------------ token use

    def show(self, token_id: int, holder: str | None = None) -> dict[str, Any]:
        c = self.client.call(self.token.functions.classOf(token_id), "classOf")
        who = Web3.to_checksum_address(holder) if holder else self.client.address
        assets = self.client.call(self.token.functions.revenueAssets(token_id), "revenueAssets")
        revenue = {}
        for a in assets:
            settled, claimed, unclaimed, _ = self.client.call(self.token.functions.revenueOf(token_id, a), "revenueOf")
            mine = self.client.call(self.token.functions.claimable(token_id, a, who), "claimable")
            revenue["ETH" if int(a, 16) == 0 else a] = {"settled": settled, "claimed": claimed,
                                                       "unclaimed": unclaimed, "claimable": mine}
        return {
            "token_id": token_id,
            "metadata_uri": c[0],
            "integrity_hash": "0x" + bytes(c[1]).hex(),
            "policy_uri": c[2],
            "device": c[3],
            "created_at": c[4],
            "verified": c[5],
            "total_supply": self.client.call(self.token.functions.totalSupply(token_id), "totalSupply"),
            "holder": who,
            "balance": self.client.call(self.token.functions.balanceOf(who, token_id), "balanceOf"),
            "revenue": revenue,
            "token": self.deployment.token,
            "chain_id": self.client.chain_id,
        }

    def usage(self, token_id: int, units: int, metric: str) -> dict[str, Any]:
        rec = self.client.transact(self.token.functions.recordUsage(token_id, units, metric), "recordUsage")
        return self._tx(rec, token_id=token_id, units=units, metric=metric)

    def settle(self, token_id: int, amount: int, erc20: str | None = None) -> dict[str, Any]:
        if erc20 is None:
            rec = self.client.transact(self.token.functions.settleRevenueETH(token_id), "settleRevenueETH", value=amount)
        else:
            erc = self.client.w3.eth.contract(address=Web3.to_checksum_address(erc20), abi=_ERC20_ABI)
            self.client.transact(erc.functions.approve(self.deployment.token, amount), "approve")
            rec = self.client.transact(self.token.functions.settleRevenueERC20(token_id, erc.address, amount),
                                       "settleRevenueERC20")
        return self._tx(rec, token_id=token_id, amount=amount, asset=erc20 or "ETH")

    def claim(self, token_id: int, erc20: str | None = None) -> dict[str, Any]:
        asset = Web3.to_checksum_address(erc20) if erc20 else ETH
        amount = self.client.call(self.token.functions.claimable(token_id, asset, self.client.address), "claimable")
        rec = self.client.transact(self.token.functions.claim(token_id, asset), "claim")
        return self._tx(rec, token_id=token_id, amount=amount, asset=erc20 or "ETH")

    def _tx(self, rec: Any, **fields: Any) -> dict[str, Any]:
        return {**fields, "tx": "0x" + bytes(rec["transactionHash"]).hex(), "block": rec["blockNumber"],
                "gas_used": rec["gasUsed"]}


def device_evm_key(cfg: ChainConfig, state: Path) -> bytes:
    """The device's EVM secret: from the agent.keys key store when there is one (configured,
    or STATE/keys holding a device identity), else from the fallback hex key file."""
    import os

    from agent.keys import FileKeyStore, keys_dir, open_keystore

    passphrase = None
    if cfg.keystore_passphrase_env:
        value = os.environ.get(cfg.keystore_passphrase_env)
        if not value:
            raise ChainError(f"environment variable {cfg.keystore_passphrase_env} (key store passphrase) is not set")
        passphrase = value.encode()
    if cfg.keystore:
        return open_keystore(cfg.keystore, passphrase).evm_key().secret_bytes()
    default = FileKeyStore(keys_dir(state), passphrase)
    if default.exists():
        return default.evm_key().secret_bytes()
    return KeyFile(state / cfg.key_file, create=True).private_key()


def Account_address(key: bytes) -> str:
    from eth_account import Account

    return Account.from_key(key).address


_ERC20_ABI = [
    {"type": "function", "name": "approve", "stateMutability": "nonpayable",
     "inputs": [{"name": "spender", "type": "address"}, {"name": "amount", "type": "uint256"}],
     "outputs": [{"name": "", "type": "bool"}]},
]
