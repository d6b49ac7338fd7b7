"""iDAO on chain: the Data Anchoring Token and registry contracts, the web3 client, the
exactly-once minting state machine and the verifier role.

Names load lazily (PEP 562): agent.config imports the ChainConfig section without pulling
in web3 and eth-tester, which load on first use of anything else here.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "ChainConfig": "_config",
    "BACKENDS": "_client", "ChainClient": "_client", "SignedTx": "_client", "embedded_web3": "_client",
    "fund": "_client", "rpc_web3": "_client",
    "DatasetRef": "_dataset", "merkle_root": "_dataset",
    "MINTER_ROLE": "_deploy", "VERIFIER_ROLE": "_deploy", "Deployment": "_deploy", "allow_verifier": "_deploy",
    "deploy": "_deploy",
    "ETH": "_idao", "Idao": "_idao",
    "EvmKeySource": "_keys", "KeyFile": "_keys", "write_key": "_keys",
    "Minter": "_mint", "MintResult": "_mint",
    "Proof": "_verifier", "ProofData": "_verifier", "ProofSource": "_verifier", "Verifier": "_verifier",
}

__all__ = [
    "BACKENDS",
    "ChainClient",
    "ChainConfig",
    "DatasetRef",
    "Deployment",
    "ETH",
    "EvmKeySource",
    "Idao",
    "KeyFile",
    "MINTER_ROLE",
    "MintResult",
    "Minter",
    "Proof",
    "ProofData",
    "ProofSource",
    "SignedTx",
    "VERIFIER_ROLE",
    "Verifier",
    "allow_verifier",
    "deploy",
    "embedded_web3",
    "fund",
    "merkle_root",
    "rpc_web3",
    "write_key",
]


def __getattr__(name: str) -> Any:
    module = _NAMES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
