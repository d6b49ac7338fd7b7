"""The ``chain`` section of the agent configuration (iDAO on chain)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

_ADDRESS = r"^0x[0-9a-fA-F]{40}$"


class ChainConfig(BaseModel):
    """Which chain, which contracts, which key, and how patient to be with the node.

    ``backend``: ``embedded`` runs py-evm in process and deploys the contracts at start (the
    default: replay and tests; its state lives as long as the process); ``rpc`` talks to a
    JSON-RPC node at ``rpc_url`` (a local node, LazAI testnet 133718, LazAI mainnet 52924).
    ``chain_id``, when set, is checked against the node: a mismatch is one clear error.
    Contract addresses come from here or, when absent, from ``deployment_file`` (written by
    ``edge-agent chain deploy``).
    """

    model_config = ConfigDict(extra="forbid")

    backend: Literal["embedded", "rpc"] = "embedded"
    rpc_url: str | None = Field(None, description="JSON-RPC URL (http:// or https://) for backend rpc")
    chain_id: int | None = Field(None, ge=1, description="expected chain id; checked against the node")
    registry_address: str | None = Field(None, pattern=_ADDRESS)
    token_address: str | None = Field(None, pattern=_ADDRESS)
    deployment_file: Path | None = Field(None, description="JSON with the addresses; default STATE/chain/deployment-<chain id>.json")
    keystore: str | None = Field(None, description="agent.keys key store URI holding the device EVM key; "
                                 "default: STATE/keys when it holds a device identity")
    keystore_passphrase_env: str | None = Field(None, description="environment variable with the key store passphrase")
    key_file: Path = Field(Path("keys/evm.key"), description="fallback device EVM key (hex) when there is no key "
                           "store; relative to state_dir; created on first use")
    verifier_key_file: Path | None = Field(None, description="verifier key (hex) when this device also acts as verifier")
    outbox_file: Path = Field(Path("chain-outbox.db"), description="pending transactions; relative to state_dir")
    # Minting
    reward_units: int = Field(1000, ge=1, description="units of quota minted per dataset (set at deploy)")
    policy_uri: str = Field("ipfs://edge-agent/usage-policy/v1", description="usage policy URI (set at deploy)")
    metadata_url_template: str = Field("edge-agent://{evm_address}/datasets/{dataset_id}",
                                       description="file URL of a provenance dataset ({dataset_id}, {session}, "
                                       "{evm_address}, {device}); the upload sink's URL belongs here")
    proof_url_template: str = Field("{metadata_url}#proof", description="proofUrl written into the verifier's proof")
    # Transactions
    priority_fee_gwei: float | None = Field(None, ge=0, description="EIP-1559 tip; default: the node's suggestion")
    max_fee_multiplier: float = Field(2.0, ge=1.0, description="maxFeePerGas = base fee x this + tip")
    gas_limit_multiplier: float = Field(1.25, ge=1.0)
    receipt_timeout_s: float = Field(120.0, gt=0)
    poll_interval_s: float = Field(0.5, gt=0)
    rebroadcast_s: float = Field(10.0, gt=0, description="resend a still-unknown signed tx this often while waiting")
    rpc_timeout_s: float = Field(10.0, gt=0, description="one HTTP request")
    rpc_retry_total_s: float = Field(300.0, ge=0, description="how long an unreachable node is retried before giving up")
    backoff_initial_s: float = Field(0.25, gt=0)
    backoff_max_s: float = Field(10.0, gt=0)

    @model_validator(mode="after")
    def _rpc_needs_url(self) -> ChainConfig:
        if self.backend == "rpc" and not self.rpc_url:
            raise ValueError("backend rpc needs rpc_url")
        return self
