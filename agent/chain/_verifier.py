"""The verifier role: check a dataset, then sign LazAI's ProofData with its own key.

Signature layout (LazAI's IDataRegistry): EIP-191 personal sign over
``keccak256(abi.encode(ProofData{uint256 id, uint256 score, string fileUrl, string proofUrl}))``,
i.e. the struct encoded as one dynamic tuple; the registry recovers the signer with
``MessageHashUtils.toEthSignedMessageHash`` and requires the verifier role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from eth_abi import encode
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_utils import keccak

from agent.chain._dataset import DatasetRef
from agent.errors import ChainError

PROOF_DATA_TYPE = "(uint256,uint256,string,string)"
MAX_SCORE = 100


@dataclass(frozen=True)
class ProofData:
    id: int
    score: int
    file_url: str
    proof_url: str

    def as_tuple(self) -> tuple[int, int, str, str]:
        return (self.id, self.score, self.file_url, self.proof_url)

    def digest(self) -> bytes:
        """keccak256(abi.encode(ProofData)) (before the EIP-191 prefix)."""
        return keccak(encode([PROOF_DATA_TYPE], [self.as_tuple()]))


@dataclass(frozen=True)
class Proof:
    signature: bytes
    data: ProofData

    def as_arg(self) -> tuple[bytes, tuple[int, int, str, str]]:
        """The ``Proof`` struct as a contract argument."""
        return (self.signature, self.data.as_tuple())

    def signer(self) -> str:
        return Account.recover_message(encode_defunct(primitive=self.data.digest()), signature=self.signature)


class ProofSource(Protocol):
    """Who proves a dataset for the minting flow: a local :class:`Verifier`, or a remote one."""

    def prove(self, dataset: DatasetRef, file_id: int, file_url: str, proof_url: str) -> Proof: ...


def check_dataset(dataset: DatasetRef) -> int:
    """The score a verifier gives: the root recomputed from the flow roots (raises
    DatasetMismatch), and for a provenance dataset directory the full ``agent.verify`` check
    (signatures, chunk hashes, Merkle roots and inclusion proofs, chains); any failure
    raises :class:`ChainError` naming the first ones."""
    dataset.check()
    if dataset.source is not None:
        from agent.verify import verify_path

        report = verify_path(dataset.source)
        if not report.ok:
            first = "; ".join(f"{f['file']}: {f['reason']}" for f in report.failures[:3])
            raise ChainError(f"dataset {dataset.dataset_id} fails verification "
                             f"({len(report.failures)} failures): {first}")
    return MAX_SCORE


class Verifier:
    """A verifier key that checks datasets and signs proofs."""

    def __init__(self, private_key: bytes) -> None:
        self.account = Account.from_key(private_key)

    @property
    def address(self) -> str:
        return self.account.address

    def sign(self, data: ProofData) -> Proof:
        sig = self.account.sign_message(encode_defunct(primitive=data.digest())).signature
        return Proof(bytes(sig), data)

    def prove(self, dataset: DatasetRef, file_id: int, file_url: str, proof_url: str) -> Proof:
        score = check_dataset(dataset)
        return self.sign(ProofData(file_id, score, file_url, proof_url))
