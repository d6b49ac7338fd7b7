"""A web3 client for one account: retries with backoff, EIP-1559 fees, nonces, signed raw
transactions that can be stored and resent unchanged, receipts with timeouts.

Backends are picked by name from :data:`BACKENDS` (embedded py-evm, JSON-RPC); tests and
the benchmark use both through the same client.
"""

from __future__ import annotations

import ast
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from eth_account import Account
from web3 import Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3RPCError

from agent.chain._artifacts import artifact, decode_revert
from agent.chain._config import ChainConfig
from agent.errors import ChainError, ChainIdMismatch, InsufficientFunds, RpcUnavailable, TransactionReverted

log = logging.getLogger(__name__)
T = TypeVar("T")


def _connection_errors() -> tuple[type[BaseException], ...]:
    import requests

    return (requests.exceptions.ConnectionError, requests.exceptions.Timeout, ConnectionError, TimeoutError)


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction as stored in the outbox: resending ``raw`` is the same tx."""

    raw: str
    tx_hash: str
    nonce: int
    sender: str
    action: str

    def as_payload(self) -> dict[str, Any]:
        return {"raw": self.raw, "hash": self.tx_hash, "nonce": self.nonce, "from": self.sender, "action": self.action}


def _revert_data(exc: ContractLogicError) -> str | None:
    data = exc.data
    if isinstance(data, dict):
        data = data.get("data") or next(iter(data.values()), None)
    if isinstance(data, str) and data.startswith("0x"):
        return data
    return None


def _revert_errors() -> tuple[type[BaseException], ...]:
    """What a revert raises: web3's ContractLogicError, or eth-tester's TransactionFailed
    (its provider does not convert custom errors; the raw bytes come as their repr)."""
    try:
        from eth_tester.exceptions import TransactionFailed
    except ImportError:
        return (ContractLogicError,)
    return (ContractLogicError, TransactionFailed)


REVERTS = _revert_errors()


def _reason(exc: BaseException) -> str:
    if not isinstance(exc, ContractLogicError) and isinstance(exc, REVERTS):
        text = str(exc.args[0] if exc.args else exc).removeprefix("execution reverted: ")
        if text.startswith(("b'", 'b"')):
            try:
                return decode_revert(ast.literal_eval(text))
            except (ValueError, SyntaxError):
                return text
        return text or "reverted without data"
    if isinstance(exc, ContractLogicError):
        data = _revert_data(exc)
        if data and len(data) >= 10:
            return decode_revert(data)
        msg = str(exc.message or exc)
        return msg.removeprefix("execution reverted: ").removeprefix("execution reverted") or "reverted without data"
    return str(exc)


class ChainClient:
    """One account on one chain. ``rpc`` wraps every node call with retries and backoff;
    an unreachable node is retried for ``rpc_retry_total_s`` before :class:`RpcUnavailable`."""

    def __init__(self, w3: Web3, private_key: bytes, cfg: ChainConfig, endpoint: str = "embedded") -> None:
        self.w3 = w3
        self.cfg = cfg
        self.endpoint = endpoint
        self.account = Account.from_key(private_key)
        self.chain_id: int = self.rpc(lambda: w3.eth.chain_id, "eth_chainId")
        if cfg.chain_id is not None and cfg.chain_id != self.chain_id:
            raise ChainIdMismatch(cfg.chain_id, self.chain_id, endpoint)

    @property
    def address(self) -> str:
        return self.account.address

    # ------------------------------------------------------------------ node calls

    def rpc(self, fn: Callable[[], T], what: str) -> T:
        """Call the node; connection failures are retried with exponential backoff."""
        errors = _connection_errors()
        deadline = time.monotonic() + self.cfg.rpc_retry_total_s
        delay = self.cfg.backoff_initial_s
        attempt = 0
        while True:
            try:
                return fn()
            except errors as exc:
                attempt += 1
                if time.monotonic() + delay > deadline:
                    raise RpcUnavailable(f"{what}: node at {self.endpoint} unreachable for "
                                         f"{self.cfg.rpc_retry_total_s:g} s ({type(exc).__name__})") from None
                log.warning("%s: node unreachable (%s), retry %d in %.2f s", what, type(exc).__name__, attempt, delay)
                time.sleep(delay * (0.8 + 0.4 * random.random()))
                delay = min(delay * 2, self.cfg.backoff_max_s)

    def contract(self, name: str, address: str) -> Any:
        return self.w3.eth.contract(address=Web3.to_checksum_address(address), abi=artifact(name)["abi"])

    def call(self, fn: Any, what: str | None = None) -> Any:
        """A view call; a revert becomes :class:`ChainError` with the decoded reason."""
        label = what or getattr(fn, "fn_name", "call")
        try:
            return self.rpc(lambda: fn.call(), label)
        except REVERTS as exc:
            raise ChainError(f"{label}: {self._tester_reason(fn, {'value': 0}) or _reason(exc)}") from None

    def _tester_reason(self, fn: Any, tx: dict[str, Any], block: Any = "latest") -> str | None:
        """eth-tester's provider turns a custom error's bytes into text (it reads them as
        Error(string)); ask the tester itself for the raw bytes and decode them properly."""
        tester = getattr(self.w3.provider, "ethereum_tester", None)
        if tester is None:
            return None
        from eth_tester.exceptions import TransactionFailed

        try:
            to = getattr(fn, "address", None)
            data = fn.data_in_transaction if to is None else fn._encode_transaction_data()
            call = {"from": self.address, "data": data, "value": tx.get("value", 0), "gas": 30_000_000}
            if to is not None:
                call["to"] = to
            tester.call(call, block)
        except TransactionFailed as exc:
            raw = exc.args[0] if exc.args else None
            if isinstance(raw, Exception) and raw.args:
                raw = raw.args[0]
            if isinstance(raw, str) and raw.startswith(("b'", 'b"')):
                raw = ast.literal_eval(raw)  # py-evm hands the bytes over as their repr
            if isinstance(raw, bytes):
                return decode_revert(raw)
        except Exception:  # noqa: BLE001 - best effort: the caller falls back to the provider's text
            return None
        return None

    def balance(self, address: str | None = None) -> int:
        return self.rpc(lambda: self.w3.eth.get_balance(address or self.address), "eth_getBalance")

    # ------------------------------------------------------------------ transactions

    def fees(self) -> dict[str, int]:
        """EIP-1559 fields (legacy gasPrice when the chain has no base fee)."""
        block = self.rpc(lambda: self.w3.eth.get_block("latest"), "eth_getBlockByNumber")
        base = block.get("baseFeePerGas")
        if base is None:
            return {"gasPrice": self.rpc(lambda: self.w3.eth.gas_price, "eth_gasPrice")}
        if self.cfg.priority_fee_gwei is not None:
            tip = int(self.cfg.priority_fee_gwei * 10**9)
        else:
            try:
                tip = self.rpc(lambda: self.w3.eth.max_priority_fee, "eth_maxPriorityFeePerGas")
            except (Web3RPCError, ValueError, NotImplementedError):
                tip = 10**9
        return {"maxPriorityFeePerGas": tip, "maxFeePerGas": int(base * self.cfg.max_fee_multiplier) + tip}

    def sign(self, fn: Any, action: str, value: int = 0, nonce: int | None = None) -> SignedTx:
        """Estimate (a revert is reported before anything is sent), price, check funds, sign."""
        tx: dict[str, Any] = {"from": self.address, "value": value}
        fees = self.fees()
        price = fees.get("maxFeePerGas", fees.get("gasPrice", 0))
        have = self.balance()
        if have < value + 21_000 * price:  # cannot pay even the cheapest tx: say so before estimating
            raise InsufficientFunds(self.address, value + 21_000 * price, have)
        try:
            gas = self.rpc(lambda: fn.estimate_gas(tx), f"estimate {action}")
        except REVERTS as exc:
            raise TransactionReverted(action, self._tester_reason(fn, tx) or _reason(exc)) from None
        except Web3RPCError as exc:
            if "insufficient funds" in str(exc).lower():
                raise InsufficientFunds(self.address, value, self.balance()) from None
            raise ChainError(f"{action}: gas estimate failed: {exc}") from None
        tx["gas"] = int(gas * self.cfg.gas_limit_multiplier)
        tx.update(fees)
        need = tx["gas"] * price + value
        if have < need:
            raise InsufficientFunds(self.address, need, have)
        if nonce is None:
            nonce = self.rpc(lambda: self.w3.eth.get_transaction_count(self.address, "pending"), "eth_getTransactionCount")
        tx["nonce"] = nonce
        tx["chainId"] = self.chain_id
        built = fn.build_transaction(tx)
        signed = self.account.sign_transaction(built)
        return SignedTx("0x" + bytes(signed.raw_transaction).hex(), "0x" + bytes(signed.hash).hex(), nonce,
                        self.address, action)

    def broadcast(self, stx: SignedTx) -> None:
        """Send the signed bytes. A node that already has (or mined) them is fine."""
        try:
            self.rpc(lambda: self.w3.eth.send_raw_transaction(stx.raw), f"send {stx.action}")
        except (Web3RPCError, ValueError) as exc:
            if self.receipt(stx.tx_hash) is not None or self._known(stx.tx_hash):
                return
            text = str(exc).lower()
            if "insufficient funds" in text:
                raise InsufficientFunds(self.address, 0, self.balance()) from None
            raise ChainError(f"{stx.action}: node refused tx {stx.tx_hash}: {exc}") from None

    def _known(self, tx_hash: str) -> bool:
        try:
            self.rpc(lambda: self.w3.eth.get_transaction(tx_hash), "eth_getTransactionByHash")
            return True
        except TransactionNotFound:
            return False

    def receipt(self, tx_hash: str) -> Any | None:
        try:
            return self.rpc(lambda: self.w3.eth.get_transaction_receipt(tx_hash), "eth_getTransactionReceipt")
        except TransactionNotFound:
            return None

    def wait(self, stx: SignedTx, timeout_s: float | None = None) -> Any:
        """Poll for the receipt; resend the same bytes now and then (a restarted node may have
        lost its pool). Raises :class:`ChainError` on timeout: the tx stays resendable."""
        timeout = self.cfg.receipt_timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        next_resend = time.monotonic() + self.cfg.rebroadcast_s
        while True:
            rec = self.receipt(stx.tx_hash)
            if rec is not None:
                return rec
            now = time.monotonic()
            if now > deadline:
                raise ChainError(f"{stx.action}: no receipt for {stx.tx_hash} within {timeout:g} s "
                                 "(kept in the outbox; resent on the next run)")
            if now >= next_resend:
                if self.nonce("latest") <= stx.nonce:
                    self.broadcast(stx)
                next_resend = now + self.cfg.rebroadcast_s
            time.sleep(self.cfg.poll_interval_s)

    def nonce(self, block: str = "latest") -> int:
        return self.rpc(lambda: self.w3.eth.get_transaction_count(self.address, block), "eth_getTransactionCount")

    def require_success(self, rec: Any, fn: Any, action: str, value: int = 0) -> Any:
        """A mined receipt with status 0 becomes :class:`TransactionReverted` with the reason
        (the call replayed at the block before)."""
        if rec["status"] == 1:
            return rec
        reason = "reverted"
        try:
            fn.call({"from": self.address, "value": value}, block_identifier=rec["blockNumber"] - 1)
        except REVERTS as exc:
            reason = self._tester_reason(fn, {"value": value}, rec["blockNumber"] - 1) or _reason(exc)
        except Exception:  # noqa: BLE001 - the replay is best effort; the revert itself is certain
            pass
        raise TransactionReverted(action, reason, "0x" + bytes(rec["transactionHash"]).hex())

    def transact(self, fn: Any, action: str, value: int = 0) -> Any:
        """Sign, send, wait, check: for actions that need no exactly-once bookkeeping."""
        stx = self.sign(fn, action, value)
        self.broadcast(stx)
        return self.require_success(self.wait(stx), fn, action, value)


# ---------------------------------------------------------------------- backends

def embedded_web3() -> tuple[Web3, Any]:
    """py-evm in process (eth-tester); returns (web3, tester) with funded, unlocked accounts."""
    from eth_tester import EthereumTester, PyEVMBackend
    from web3 import EthereumTesterProvider

    tester = EthereumTester(PyEVMBackend())
    return Web3(EthereumTesterProvider(tester)), tester


def rpc_web3(url: str, timeout_s: float) -> Web3:
    from web3 import HTTPProvider

    # Our own retry loop (ChainClient.rpc) decides how long to wait for the node.
    return Web3(HTTPProvider(url, request_kwargs={"timeout": timeout_s}, exception_retry_configuration=None))


def fund(w3: Web3, to: str, wei: int) -> None:
    """Embedded chain: pay ``wei`` from the tester's first unlocked account."""
    tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": to, "value": wei})
    w3.eth.wait_for_transaction_receipt(tx)


BACKENDS: dict[str, Callable[[ChainConfig], tuple[Web3, str]]] = {
    "embedded": lambda cfg: (embedded_web3()[0], "embedded"),
    "rpc": lambda cfg: (rpc_web3(str(cfg.rpc_url), cfg.rpc_timeout_s), str(cfg.rpc_url)),
}
