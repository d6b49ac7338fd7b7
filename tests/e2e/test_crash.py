"""The real drive replayed with the agent SIGKILLed twice in the middle and restarted on the
same state directory: the same dataset root as an uninterrupted run, and one DAT.

The chain must outlive the agent process, so this test uses a ganache node (tests/chain's
fixture; chain state in its database directory) over JSON-RPC instead of the embedded
py-evm chain, which lives only as long as its process."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from agent.verify import verify_path
from tests.e2e.conftest import ROOT, agent_cmd, env, run_agent, write_config


def _chunks_committed(state: Path) -> int:
    try:
        doc = json.loads((state / "status.json").read_text())
    except (FileNotFoundError, ValueError):
        return 0
    return sum(doc.get("chunks", {}).values())


def _kill_when(cmd: list[str], state: Path, chunks: int, timeout: float = 60) -> int:
    """Start the agent, SIGKILL it once the store holds ``chunks`` chunks; returns how many."""
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env(), cwd=ROOT)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            n = _chunks_committed(state)
            if n >= chunks:
                p.kill()
                p.wait(10)
                return n
            if p.poll() is not None:
                pytest.fail(f"the agent ended before {chunks} chunks: {p.stderr.read().decode()[-3000:]}")  # type: ignore[union-attr]
            time.sleep(0.02)
        pytest.fail("the agent did not commit chunks in time")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
    raise AssertionError  # unreachable


def test_sigkill_twice_same_root_one_dat(real_drive: Path, tmp_path: Path) -> None:
    from agent.chain._devnode import Ganache, ensure_node_modules
    from agent.keys import keys_dir, open_keystore

    try:
        ensure_node_modules()
    except Exception as exc:  # noqa: BLE001
        pytest.skip(f"ganache is not available: {exc}")
    state = tmp_path / "state"
    ks = open_keystore(keys_dir(state))
    ks.init()
    node = Ganache(tmp_path / "ganache-db", [ks.evm_key().secret_bytes()])
    node.start()
    try:
        cfg = write_config(tmp_path / "agent.yaml",
                           chain={"backend": "rpc", "rpc_url": node.url, "verifier_key_file": "verifier.key",
                                  "poll_interval_s": 0.1})
        run_agent("chain", "--config", str(cfg), "--state-dir", str(state), "deploy")
        # a clean copy of the identity and deployment for the uninterrupted run below
        twin = tmp_path / "twin"
        shutil.copytree(state, twin)
        replay = agent_cmd("--log-level", "WARNING", "replay", str(real_drive), "--config", str(cfg),
                           "--state-dir", str(state), "--speed", "400")
        first = _kill_when(replay, state, 40)
        second = _kill_when(replay, state, first + 60)
        assert 40 <= first < second
        s = run_agent("replay", str(real_drive), "--config", str(cfg), "--state-dir", str(state), "--speed", "400")
        assert s["resumed"]["replay"]["committed"], "the third start resumed the replay"
        assert s["chunks_skipped"] >= second  # chunks committed before the kills were not made twice
        (ds,) = s["datasets"]
        assert ds["state"] == "anchored" and ds["token_id"] == 1
        assert verify_path(ds["path"]).ok and verify_path(state / "store").ok
        n_chunks = len(list((Path(ds["path"]) / "chunks").glob("*.cose")))
        assert n_chunks == s["chunks"] + s["chunks_skipped"]

        # The same drive, same identity and config, never interrupted: the same root, and the
        # chain already holds its DAT (found by its integrity hash: nothing minted again).
        u = run_agent("replay", str(real_drive), "--config", str(cfg), "--state-dir", str(twin), "--speed", "max")
        (uds,) = u["datasets"]
        assert uds["root"] == ds["root"] and uds["id"] == ds["id"]
        assert uds["token_id"] == 1

        from agent.chain import Idao
        from agent.config import load_config

        with Idao.open(load_config(cfg).chain, state) as idao:
            assert idao.client.call(idao.token.functions.classCount()) == 1  # one DAT in all
            assert idao.client.call(idao.token.functions.tokenIdByHash(bytes.fromhex(ds["root"]))) == 1
    finally:
        node.stop()
