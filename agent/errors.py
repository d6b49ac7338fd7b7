"""Exceptions of the agent package. The CLI turns these (and the other packages' base
errors) into one ``ERROR: ...`` line on stderr and an exit code."""

from __future__ import annotations


class AgentError(Exception):
    """Base of every error the agent reports to a user. ``exit_code`` follows DESIGN.md:
    1 when something checked does not hold, 2 on bad usage or bad input."""

    exit_code = 2


class ConfigError(AgentError):
    """A configuration file or value is invalid; ``where`` names the file and field."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"{where}: {reason}")


class CheckFailed(AgentError):
    """What a command checks (verification, a benchmark target given as a check) failed."""

    exit_code = 1


class MissingDependency(AgentError):
    """An optional library is needed for this feature and is not installed."""

    def __init__(self, package: str, feature: str) -> None:
        self.package = package
        super().__init__(f"{feature} needs the optional package '{package}': pip install {package}")


class BusError(AgentError):
    """The message bus cannot be used: bad endpoint, socket not open, bind/connect failed."""


class MessageDecodeError(BusError):
    """Bytes received on the bus are not a valid message; ``reason`` says what is wrong."""

    def __init__(self, reason: str, msg_type: int | None = None) -> None:
        self.reason = reason
        self.msg_type = msg_type
        where = f"message type {msg_type}: " if msg_type is not None else ""
        super().__init__(f"cannot decode bus message: {where}{reason}")


class RecordingError(AgentError):
    """A drive recording cannot be written, read or imported (bad file, bad source, bad option)."""


class KeyStoreError(AgentError):
    """A device key cannot be created, loaded or used. Messages never carry key material."""


class KeyNotAvailable(KeyStoreError):
    """The key URI names a backend this device does not have (e.g. ``atecc://``, ``tpm://``)."""


class WrongPassphrase(KeyStoreError):
    """The passphrase does not open the encrypted key file."""


class ProvenanceError(AgentError):
    """A chunk, Flow or dataset is malformed or cannot be built."""


class StoreError(AgentError):
    """The on-device store cannot do what was asked (bad state, I/O failure)."""


class StateError(StoreError):
    """A state change would move backwards (states only move forward)."""


class StoreFullError(StoreError):
    """The disk budget is reached and the policy refuses new data; ``reason`` says why."""

    def __init__(self, reason: str, used: int, budget: int) -> None:
        self.reason = reason
        self.used = used
        self.budget = budget
        super().__init__(f"store full ({used} of {budget} bytes used): {reason}")


class FleetError(AgentError):
    """The fleet link cannot be used: broker unreachable, bad credentials/TLS, bad job, no key."""


class JobRejected(FleetError):
    """A job document was refused before anything it asks was done. ``tell`` says whether the
    sender can be told (a REJECTED update on the job's topic) or the document is dropped."""

    def __init__(self, reason: str, job_id: str | None = None, tell: bool = False) -> None:
        self.reason = reason
        self.job_id = job_id
        self.tell = tell
        super().__init__(f"job {job_id or '?'} rejected: {reason}")


class ChainError(AgentError):
    """The chain (iDAO) side failed: node, contracts, transactions. Exit code 1: the mint or
    query did not happen; subclasses carry what explains it."""

    exit_code = 1


class ChainIdMismatch(ChainError):
    """The node serves another chain than the configuration names."""

    def __init__(self, expected: int, actual: int, rpc_url: str) -> None:
        self.expected, self.actual, self.rpc_url = expected, actual, rpc_url
        super().__init__(f"chain id mismatch: config expects {expected}, node at {rpc_url} serves {actual}")


class RpcUnavailable(ChainError):
    """The JSON-RPC node could not be reached within the retry budget."""


class InsufficientFunds(ChainError):
    """The sending account cannot pay for a transaction's gas (and value)."""

    def __init__(self, address: str, needed_wei: int, balance_wei: int) -> None:
        self.address, self.needed_wei, self.balance_wei = address, needed_wei, balance_wei
        super().__init__(f"account {address} has {balance_wei} wei, needs at least {needed_wei} wei for gas: fund it")


class TransactionReverted(ChainError):
    """A transaction (or its gas estimate) reverted; ``reason`` is the decoded revert."""

    def __init__(self, action: str, reason: str, tx_hash: str | None = None) -> None:
        self.action, self.reason, self.tx_hash = action, reason, tx_hash
        where = f" (tx {tx_hash})" if tx_hash else ""
        super().__init__(f"{action} reverted: {reason}{where}")


class InvalidDataset(ChainError):
    """A dataset given to the chain side cannot be read or is malformed (bad input, exit 2)."""

    exit_code = 2


class DatasetMismatch(InvalidDataset):
    """A dataset's stated root does not match the root recomputed from its flows: refused
    before any transaction."""

    def __init__(self, dataset_id: str, stated: str, recomputed: str) -> None:
        self.dataset_id, self.stated, self.recomputed = dataset_id, stated, recomputed
        super().__init__(f"dataset {dataset_id}: root {stated} does not match its flows (recomputed {recomputed})")
