"""Idao wiring: the device key from agent.keys, resuming after a crash, and the CLI's exit
codes and one-line errors (a real process, the embedded chain)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.chain import ChainConfig, Idao
from tests.chain.conftest import FAST, dataset

ROOT = Path(__file__).resolve().parents[2]


class Crash(Exception):
    pass


def test_device_key_comes_from_the_key_store(tmp_path: Path):
    from agent.keys import FileKeyStore, keys_dir

    ident = FileKeyStore(keys_dir(tmp_path)).init()
    with Idao.open(ChainConfig(**FAST), tmp_path) as idao:
        assert idao.client.address == ident["evm_address"]
        res = idao.mint(dataset(900))
        assert res.owner == ident["evm_address"]
    assert not (tmp_path / "keys" / "evm.key").exists()  # no second, unrelated key made


def test_resume_finishes_what_a_crash_left_pending(tmp_path: Path):
    a, b = dataset(901), dataset(902)

    def crash(stage, step, stx):
        if (stage, step) == ("stored", "addProof"):
            raise Crash

    with Idao.open(ChainConfig(**FAST), tmp_path, device_key=bytes(range(1, 33))) as idao:
        with pytest.raises(Crash):
            idao.mint(a, hook=crash)
        assert idao.outbox.count("tx") == 1
        done = idao.resume([a, b])  # b has nothing pending: untouched
        assert [r.dataset_id for r in done] == [a.dataset_id]
        assert idao.outbox.count("tx") == 0
        assert idao.client.call(idao.token.functions.tokenIdByHash(b.root)) == 0


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", "from agent.cli import main; main()", *args], cwd=cwd,
                          capture_output=True, text=True, check=False, timeout=120, env=env)


def test_cli_on_the_embedded_chain(tmp_path: Path):
    ds = dataset(903)
    (tmp_path / "ds.json").write_text(json.dumps(ds.to_json()))
    r = _cli("chain", "--state-dir", str(tmp_path / "s"), "mint", "ds.json", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["root"] == ds.root_hex and out["token_id"] == 1 and not out["already_minted"]
    r = _cli("chain", "--state-dir", str(tmp_path / "s"), "mint", "ds.json", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr  # a new embedded chain each run: minted afresh, no stale outbox
    assert json.loads(r.stdout)["token_id"] == 1
    bad = ds.to_json()
    bad["root"] = "0x" + "ab" * 32
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    r = _cli("chain", "--state-dir", str(tmp_path / "s"), "mint", "bad.json", cwd=tmp_path)
    assert r.returncode == 2
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("ERROR: dataset drive-0903: root 0xabab")
    r = _cli("verifier", "sign", "ds.json", "--key", "v.key", "--file-id", "3", "--json", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.startswith("ERROR: ") and "no such EVM key file" in r.stderr
    addr = _cli("verifier", "address", "--key", "v.key", "--create", cwd=tmp_path).stdout.strip()
    r = _cli("verifier", "sign", "ds.json", "--key", "v.key", "--file-id", "3", "--json", cwd=tmp_path)
    proof = json.loads(r.stdout)
    assert proof["signer"] == addr and proof["data"] == {"id": 3, "score": 100, "fileUrl": ds.metadata_url,
                                                         "proofUrl": ds.metadata_url + "#proof"}
    r = _cli("chain", "settle", "1", "lots", cwd=tmp_path)
    assert r.returncode == 2 and "not an amount" in r.stderr
