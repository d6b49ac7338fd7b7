"""Over the wire: a real JSON-RPC node (ganache, pinned in contracts/package.json) on a
free loopback port. Deploy, register, prove, mint, use, settle, claim; the node killed and
restarted mid-mint; the node unreachable for a while. One DAT per dataset every time."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from agent.chain import ChainConfig, DatasetRef, Idao, Verifier, write_key
from agent.errors import ChainIdMismatch, InsufficientFunds, RpcUnavailable
from tests.chain._ganache import CHAIN_ID, Ganache
from tests.chain.conftest import FAST, dataset, key

pytestmark = pytest.mark.slow

DEVICE, PAYER, HOLDER, CLI_DEVICE = key("rpc device"), key("rpc payer"), key("rpc holder"), key("rpc cli device")
VERIFIER = Verifier(key("rpc verifier"))
_n = itertools.count(500)


class Crash(Exception):
    pass


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory):
    g = Ganache(tmp_path_factory.mktemp("ganache") / "db", [DEVICE, PAYER, HOLDER, CLI_DEVICE])
    g.start()
    yield g
    g.stop()


@pytest.fixture(scope="module")
def deployed(node: Ganache, tmp_path_factory: pytest.TempPathFactory) -> ChainConfig:
    """Contracts deployed once; returns a config that names them."""
    cfg = ChainConfig(backend="rpc", rpc_url=node.url, chain_id=CHAIN_ID, **FAST)
    with Idao.open(cfg, tmp_path_factory.mktemp("deployer"), device_key=DEVICE, verifier=VERIFIER,
                   deploy_if_missing=True) as idao:
        dep = idao.deployment
    assert VERIFIER.address in dep.verifiers
    return cfg.model_copy(update={"registry_address": dep.registry, "token_address": dep.token})


def open_idao(cfg: ChainConfig, state: Path, key_: bytes = DEVICE) -> Idao:
    return Idao.open(cfg, state, device_key=key_, verifier=VERIFIER)


def classes_with_root(idao: Idao, ds: DatasetRef) -> int:
    t = idao.token.functions
    return sum(bytes(t.classOf(i).call()[1]) == ds.root for i in range(1, t.classCount().call() + 1))


def restart_later(node: Ganache, delay_s: float, kill: bool = False) -> threading.Thread:
    """End the node now (SIGKILL or SIGTERM) and start it again after ``delay_s``."""
    node.kill() if kill else node.stop()

    def later() -> None:
        time.sleep(delay_s)
        node.start()

    th = threading.Thread(target=later, daemon=True)
    th.start()
    return th


def test_deploy_register_prove_mint_use_settle_claim(deployed: ChainConfig, tmp_path: Path):
    ds = dataset(next(_n))
    with open_idao(deployed, tmp_path / "dev") as dev, open_idao(deployed, tmp_path / "payer", PAYER) as payer, \
            open_idao(deployed, tmp_path / "holder", HOLDER) as holder:
        res = dev.mint(ds)
        tid = res.token_id
        assert not res.already_minted and dev.mint(ds).already_minted
        info = dev.show(tid)
        assert (info["integrity_hash"], info["metadata_uri"], info["balance"], info["verified"]) == \
            (ds.root_hex, ds.metadata_url, 1000, True)
        assert dev.usage(tid, 200, "training")["units"] == 200  # 800 left
        dev.client.transact(dev.token.functions.safeTransferFrom(dev.client.address, holder.client.address, tid,
                                                                 200, b""), "transfer")
        payer.settle(tid, 10**18)  # 600 : 200 of 800
        assert dev.claim(tid)["amount"] == 75 * 10**16
        assert holder.claim(tid)["amount"] == 25 * 10**16
        assert dev.claim(tid)["amount"] == 0
        rev = dev.show(tid)["revenue"]["ETH"]
        assert (rev["settled"], rev["claimed"], rev["unclaimed"]) == (10**18, 10**18, 0)


def test_node_killed_and_restarted_mid_mint(node: Ganache, deployed: ChainConfig, tmp_path: Path):
    ds = dataset(next(_n))
    threads = []

    def kill_after_send(stage: str, step: str, stx) -> None:
        if (stage, step) == ("sent", "addProof") and not threads:
            threads.append(restart_later(node, 1.5, kill=True))

    with open_idao(deployed, tmp_path / "dev") as dev:
        nonce0 = dev.client.nonce()
        res = dev.mint(ds, hook=kill_after_send)
        threads[0].join()
        assert threads and not res.already_minted
        assert classes_with_root(dev, ds) == 1
        assert dev.client.nonce() - nonce0 == 3
        assert dev.outbox.count("tx") == 0


def test_process_crash_between_send_and_receipt_and_node_restart(node: Ganache, deployed: ChainConfig,
                                                                   tmp_path: Path):
    ds = dataset(next(_n))
    sent = {}

    def crash(stage: str, step: str, stx) -> None:
        if (stage, step) == ("sent", "requestReward"):
            sent["hash"] = stx.tx_hash
            raise Crash

    with open_idao(deployed, tmp_path / "dev") as dev, pytest.raises(Crash):
        dev.mint(ds, hook=crash)
    node.stop()
    node.start()
    with open_idao(deployed, tmp_path / "dev") as dev:  # the agent restarts with its outbox
        res = dev.mint(ds)
        assert res.sent["requestReward"] == sent["hash"]
        assert classes_with_root(dev, ds) == 1
        assert dev.outbox.count("tx") == 0


def test_rpc_unreachable_for_a_while_then_back(node: Ganache, deployed: ChainConfig, tmp_path: Path):
    ds = dataset(next(_n))
    with open_idao(deployed, tmp_path / "dev") as dev:
        t0 = time.monotonic()
        th = restart_later(node, 3.0)
        res = dev.mint(ds)  # retried with backoff while the node is down
        th.join()
        assert time.monotonic() - t0 >= 2.5
        assert classes_with_root(dev, ds) == 1 and res.token_id > 0


def test_rpc_unreachable_past_the_budget_is_one_clear_error(node: Ganache, deployed: ChainConfig, tmp_path: Path):
    cfg = deployed.model_copy(update={"rpc_retry_total_s": 1.0})
    with open_idao(cfg, tmp_path / "dev") as dev:
        node.stop()
        try:
            with pytest.raises(RpcUnavailable, match="unreachable for 1 s"):
                dev.mint(dataset(next(_n)))
        finally:
            node.start()


def test_wrong_chain_id_and_unfunded_account(deployed: ChainConfig, tmp_path: Path):
    with pytest.raises(ChainIdMismatch, match=f"config expects 52924, node at http://127.0.0.1:\\d+ serves {CHAIN_ID}"):
        open_idao(deployed.model_copy(update={"chain_id": 52924}), tmp_path / "a")
    with open_idao(deployed, tmp_path / "b", key("rpc nobody")) as poor, \
            pytest.raises(InsufficientFunds, match="has 0 wei"):
        poor.mint(dataset(next(_n)))


def test_cli_mint_show_usage_settle_claim(deployed: ChainConfig, tmp_path: Path):
    from agent.cli import cli

    state = tmp_path / "state"
    write_key(state / "keys" / "evm.key", CLI_DEVICE)
    write_key(state / "keys" / "verifier.key", bytes(VERIFIER.account.key))
    conf = tmp_path / "chain.yaml"
    conf.write_text(yaml.safe_dump({"state_dir": str(state), "chain": {
        "backend": "rpc", "rpc_url": deployed.rpc_url, "chain_id": CHAIN_ID, "verifier_key_file": "keys/verifier.key",
        "registry_address": deployed.registry_address, "token_address": deployed.token_address}}))
    ds = dataset(next(_n))
    (tmp_path / "ds.json").write_text(json.dumps(ds.to_json()))
    run = CliRunner().invoke
    base = ["chain", "--config", str(conf)]
    r = run(cli, [*base, "mint", str(tmp_path / "ds.json"), "--json"])
    assert r.exit_code == 0, r.output
    tid = json.loads(r.output)["token_id"]
    r = run(cli, [*base, "show", str(tid), "--json"])
    assert json.loads(r.output)["integrity_hash"] == ds.root_hex
    assert run(cli, [*base, "usage", str(tid), "10", "--metric", "inference"]).exit_code == 0
    assert run(cli, [*base, "settle", str(tid), "990000gwei"]).exit_code == 0  # 990 units left
    r = run(cli, [*base, "claim", str(tid), "--json"])
    assert json.loads(r.output)["amount"] == 990_000 * 10**9
    bad = ds.to_json()
    bad["flow_roots"] = bad["flow_roots"][:-1]
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    r = run(cli, [*base, "mint", str(tmp_path / "bad.json")])
    assert r.exit_code != 0 and "does not match its flows" in str(r.exception)


_KILLED_MINT = """
import os, signal, sys
from pathlib import Path
from agent.chain import ChainConfig, Idao, Verifier
from tests.chain.conftest import dataset, key
cfg = ChainConfig.model_validate_json(sys.argv[1])
n, stage_at, step_at, state = int(sys.argv[2]), sys.argv[3], sys.argv[4], Path(sys.argv[5])

def die(stage, step, stx):
    if (stage, step) == (stage_at, step_at):
        (state / "killed-tx").write_text(stx.tx_hash)
        os.kill(os.getpid(), signal.SIGKILL)  # no finally, no atexit, no flush: a real crash

with Idao.open(cfg, state, device_key=key("rpc device"), verifier=Verifier(key("rpc verifier"))) as dev:
    dev.mint(dataset(n), hook=die)
sys.exit(3)  # not reached when the hook fires
"""


@pytest.mark.parametrize(("stage", "step"), [("sent", "addFile"), ("stored", "addProof"), ("sent", "requestReward")])
def test_process_sigkilled_mid_mint_then_resumed_in_a_new_process(deployed: ChainConfig, tmp_path: Path,
                                                                   stage: str, step: str):
    """The agent process dies by SIGKILL between storing/sending a tx and its receipt; a new
    process with the same state directory (durable SQLite outbox) finishes the mint: one DAT,
    three transactions in all, the killed process's tx reused rather than signed again."""
    import os
    import signal
    import subprocess
    import sys

    n = next(_n)
    ds, state = dataset(n), tmp_path / "dev"
    state.mkdir()
    proc = subprocess.run([sys.executable, "-c", _KILLED_MINT, deployed.model_dump_json(), str(n), stage, step,
                           str(state)], check=False, cwd=Path(__file__).parents[2], capture_output=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])})
    assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()[-2000:]
    killed_tx = (state / "killed-tx").read_text()
    with open_idao(deployed, state) as dev:
        nonce_before = dev.client.nonce()
        assert dev.outbox.count("tx") >= 1  # the interrupted step survived the crash on disk
        (res,) = dev.resume([ds])
        assert res.sent[step] == killed_tx  # the same signed bytes, not a second tx
        assert classes_with_root(dev, ds) == 1 and res.token_id > 0
        assert dev.outbox.count("tx") == 0
        # Three steps, three nonces in all, across both processes ("stored" never reached the node).
        later = {"addFile": 3, "addProof": 2, "requestReward": 1}[step] - (stage == "sent")
        assert dev.client.nonce() - nonce_before == later
        again = dev.mint(ds)
        assert again.already_minted and again.token_id == res.token_id
