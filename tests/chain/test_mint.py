"""Exactly-once minting on the embedded chain: crashes at every point between steps, and
bad input refused with one clear error."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from web3 import Web3

from agent.chain import ChainClient, ChainConfig, DatasetRef, Minter
from agent.errors import ChainError, ChainIdMismatch, DatasetMismatch, InsufficientFunds, TransactionReverted
from agent.store.outbox import Outbox
from tests.chain.conftest import Env, dataset, key

_n = itertools.count(100)


class Crash(Exception):
    """Stands for the process dying at a hook point."""


def minter(env: Env, outbox: Outbox, hook=None, who: str = "alice") -> Minter:
    c = env.client(who)
    return Minter(c, c.contract("DataRegistry", env.registry_address), c.contract("DataAnchoringToken", env.token_address),
                  outbox, env.verifier, hook=hook)


def classes_for(env: Env, ds: DatasetRef) -> int:
    """How many classes carry this dataset's root (must be 0 or 1), counted over all classes."""
    n = env.token.functions.classCount().call()
    return sum(bytes(env.token.functions.classOf(i).call()[1]) == ds.root for i in range(1, n + 1))


def test_mint_then_mint_again_is_the_same_token(env: Env, tmp_path: Path):
    ds = dataset(next(_n))
    with Outbox(tmp_path / "o.db") as ob:
        first = minter(env, ob).mint(ds)
        assert not first.already_minted and set(first.sent) == {"addFile", "addProof", "requestReward"}
        again = minter(env, ob).mint(ds)
        assert again.already_minted and again.token_id == first.token_id and again.sent == {}
        assert ob.count("tx") == 0 and ob.count("tx", state="done") == 3
    for h in first.sent.values():  # EIP-1559 transactions
        tx = env.w3.eth.get_transaction(h)
        assert tx["type"] == 2 and tx["maxFeePerGas"] >= tx["maxPriorityFeePerGas"] > 0
    alice = env.client("alice").address
    assert env.token.functions.balanceOf(alice, first.token_id).call() == 1000
    assert env.token.functions.uri(first.token_id).call() == ds.metadata_url
    assert classes_for(env, ds) == 1


@pytest.mark.parametrize("stage", ["stored", "sent"])
@pytest.mark.parametrize("step", ["addFile", "addProof", "requestReward"])
def test_crash_at_any_point_never_double_mints_nor_loses_the_mint(env: Env, tmp_path: Path, step: str, stage: str):
    ds = dataset(next(_n))
    seen: dict[str, str] = {}

    def die(at_stage: str, at_step: str, stx) -> None:
        if (at_stage, at_step) == (stage, step):
            seen["hash"] = stx.tx_hash
            raise Crash

    alice = env.client("alice")
    nonce0 = alice.nonce()
    with Outbox(tmp_path / "o.db") as ob:
        with pytest.raises(Crash):
            minter(env, ob, die).mint(ds)
        assert ob.count("tx") == 1  # the interrupted step is pending with its signed bytes
    with Outbox(tmp_path / "o.db") as ob:  # "after the restart": a new process, same outbox
        res = minter(env, ob).mint(ds)
        assert res.sent[step] == seen["hash"]  # the very same transaction, resent or found
        assert ob.count("tx") == 0
    assert classes_for(env, ds) == 1
    assert env.token.functions.balanceOf(alice.address, res.token_id).call() == 1000
    assert alice.nonce() - nonce0 == 3  # three transactions in all, none twice


def test_interrupted_mint_finished_by_someone_else_is_not_repeated(env: Env, tmp_path: Path):
    """A stored requestReward whose work another account did meanwhile is closed, not sent."""
    ds = dataset(next(_n))

    def die(stage, step, stx):
        if (stage, step) == ("stored", "requestReward"):
            raise Crash

    with Outbox(tmp_path / "o.db") as ob:
        with pytest.raises(Crash):
            minter(env, ob, die).mint(ds)
        fid = env.registry.functions.fileIdByHash(ds.root).call()
        env.client("bob").transact(env.client("bob").contract("DataRegistry", env.registry_address)
                                   .functions.requestReward(fid, 1), "requestReward")
        nonce = env.client("alice").nonce()
        res = minter(env, ob).mint(ds)
        assert res.already_minted and env.client("alice").nonce() == nonce
        assert ob.count("tx") == 0
    assert classes_for(env, ds) == 1


def test_root_not_matching_its_flows_is_refused_before_any_transaction(env: Env, tmp_path: Path):
    good = dataset(next(_n))
    bad = DatasetRef(good.dataset_id, bytes(Web3.keccak(text="forged")), good.metadata_url, good.flow_roots)
    nonce = env.client("alice").nonce()
    with Outbox(tmp_path / "o.db") as ob, pytest.raises(DatasetMismatch, match="does not match its flows"):
        minter(env, ob).mint(bad)
    assert env.client("alice").nonce() == nonce
    assert env.registry.functions.fileIdByHash(bad.root).call() == 0


def test_wrong_chain_id_is_one_clear_error(env: Env):
    with pytest.raises(ChainIdMismatch, match=r"config expects 52924, node at embedded serves \d+"):
        ChainClient(env.w3, key("alice"), ChainConfig(chain_id=52924))


def test_unfunded_account_is_one_clear_error_and_sends_nothing(env: Env, tmp_path: Path):
    ds = dataset(next(_n))
    with Outbox(tmp_path / "o.db") as ob, pytest.raises(InsufficientFunds, match="has 0 wei, needs at least"):
        minter(env, ob, who="stranger").mint(ds)
    assert env.client("stranger").nonce() == 0
    assert env.registry.functions.fileIdByHash(ds.root).call() == 0


def test_a_transaction_reverted_when_mined_is_one_clear_error(env: Env, tmp_path: Path):
    """Two usage txs each fine alone, signed before either is mined: the second reverts."""
    ds = dataset(next(_n))
    c = env.client("carol")
    with Outbox(tmp_path / "o.db") as ob:
        tid = minter(env, ob, who="carol").mint(ds).token_id
    token = c.contract("DataAnchoringToken", env.token_address)
    n = c.nonce("pending")
    first = c.sign(token.functions.recordUsage(tid, 600, "a"), "recordUsage", nonce=n)
    second = c.sign(token.functions.recordUsage(tid, 600, "b"), "recordUsage", nonce=n + 1)
    c.broadcast(first)
    c.broadcast(second)
    c.require_success(c.wait(first), token.functions.recordUsage(tid, 600, "a"), "recordUsage")
    with pytest.raises(TransactionReverted, match=r"recordUsage reverted: ERC1155InsufficientBalance\(.*\) \(tx 0x"):
        c.require_success(c.wait(second), token.functions.recordUsage(tid, 600, "b"), "recordUsage")
    assert env.token.functions.balanceOf(c.address, tid).call() == 400
    with pytest.raises(TransactionReverted, match="ERC1155InsufficientBalance"):  # caught before sending
        c.transact(token.functions.recordUsage(tid, 401, "c"), "recordUsage")


def test_outbox_done_but_chain_reset_does_the_steps_again(tmp_path: Path):
    """A dev chain reset to the same addresses: the chain, not the outbox, decides."""
    from agent.chain import Verifier, deploy, embedded_web3, fund

    ds = dataset(next(_n))
    dev, ver = key("reset device"), Verifier(key("reset verifier"))
    tokens = []
    for _ in range(2):  # two fresh chains, same deployer key: same contract addresses
        w3, _t = embedded_web3()
        fund(w3, Verifier(dev).address, 10**20)
        c = ChainClient(w3, dev, ChainConfig())
        dep = deploy(c, 1000, "p", [ver.address])
        with Outbox(tmp_path / "o.db") as ob:
            m = Minter(c, c.contract("DataRegistry", dep.registry), c.contract("DataAnchoringToken", dep.token),
                       ob, ver)
            res = m.mint(ds)
            assert not res.already_minted and ob.count("tx") == 0
            tokens.append((dep.registry, res.token_id))
    assert tokens[0] == tokens[1]


def test_url_taken_by_another_dataset_is_one_clear_error(env: Env, tmp_path: Path):
    a = dataset(next(_n))
    b = DatasetRef.build("other", a.metadata_url, [bytes(Web3.keccak(text="other flow"))])
    with Outbox(tmp_path / "o.db") as ob:
        minter(env, ob).mint(a)
        nonce = env.client("alice").nonce()
        with pytest.raises(ChainError, match=f"URL {a.metadata_url} is registered \\(file \\d+\\) with another hash"):
            minter(env, ob).mint(b)
        assert env.client("alice").nonce() == nonce
