"""iDAO on chain: the Data Anchoring Token and registry contracts, the web3 client, the
exactly-once minting state machine and the verifier role.

web3 and eth-tester load only when this package is imported (the CLI imports it lazily).
"""

from agent.chain._client import BACKENDS, ChainClient, SignedTx, embedded_web3, fund, rpc_web3
from agent.chain._config import ChainConfig
from agent.chain._dataset import DatasetRef, merkle_root
from agent.chain._deploy import MINTER_ROLE, VERIFIER_ROLE, Deployment, allow_verifier, deploy
from agent.chain._idao import ETH, Idao
from agent.chain._keys import EvmKeySource, KeyFile, write_key
from agent.chain._mint import Minter, MintResult
from agent.chain._verifier import Proof, ProofData, ProofSource, Verifier

__all__ = [
    "BACKENDS", "ChainClient", "ChainConfig", "DatasetRef", "Deployment", "ETH", "EvmKeySource", "Idao",
    "KeyFile", "MINTER_ROLE", "MintResult", "Minter", "Proof", "ProofData", "ProofSource", "SignedTx",
    "VERIFIER_ROLE", "Verifier", "allow_verifier", "deploy", "embedded_web3", "fund", "merkle_root",
    "rpc_web3", "write_key",
]
