"""``edge-agent fleet`` as a user runs it: real processes against a real broker and device."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.fleet.jobs import load_signing_key
from tests.fleet.conftest import ROOT, Broker

pytestmark = pytest.mark.timeout(90)


def cli(*args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "import sys; from agent.cli import main; sys.exit(main())", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_keys_send_list_watch(tmp_path: Path, broker_password: Broker, device_factory: Any) -> None:
    b = broker_password
    key_file = tmp_path / "fleet.key"
    r = cli("fleet", "keys", "init", "--out", str(key_file), "--json")
    assert r.returncode == 0, r.stderr
    pub = json.loads(r.stdout)["public_key"]
    key = load_signing_key(key_file)
    assert key.verify_key.encode().hex() == pub
    assert cli("fleet", "keys", "init", "--out", str(key_file)).returncode == 2  # exists, no --force

    dev = device_factory(b, key)
    dev.start()
    # broker address and credentials from a config file, the key from an option
    cfg = tmp_path / "fleet.yaml"
    cfg.write_text(yaml.safe_dump({"fleet": {"host": "127.0.0.1", "port": b.port, "username": b.username,
                                             "password": b.password, "fleet_key_file": str(key_file)}}))
    r = cli("fleet", "send", "dev-1", "set-config", "--param", "lidar.min_range_m=1.25", "--wait",
            "--config", str(cfg), "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["state"] == "SUCCEEDED" and [u["state"] for u in out["updates"]] == ["QUEUED", "IN_PROGRESS", "SUCCEEDED"]
    assert yaml.safe_load(dev.config.read_text())["lidar"]["min_range_m"] == 1.25

    # a job that fails on the device: exit 1, one ERROR line
    r = cli("fleet", "send", "dev-1", "set_config", "--param", "lidar.return_mode=sideways", "--wait",
            "--config", str(cfg), "--timeout", "15")
    assert r.returncode == 1 and "FAILED" in r.stderr and r.stderr.count("ERROR:") == 1

    # options instead of the config file; wrong password: exit 2 with a clear line
    r = cli("fleet", "list", "--host", "127.0.0.1", "--port", str(b.port), "--username", "device",
            "--password", "nope", "--json")
    assert r.returncode == 2 and "ERROR: cannot connect" in r.stderr
    r = cli("fleet", "list", "--config", str(cfg), "--json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert [(x["device_id"], x["online"]) for x in rows] == [("dev-1", True)]
    r = cli("fleet", "watch", "--once", "--config", str(cfg))
    assert r.returncode == 0 and "DEVICE" in r.stdout and "dev-1" in r.stdout and " yes " in r.stdout

    # unknown job type and bad --param: bad usage
    assert cli("fleet", "send", "dev-1", "format_disk", "--config", str(cfg)).returncode == 2
    assert cli("fleet", "send", "dev-1", "mint", "--param", "novalue", "--config", str(cfg)).returncode == 2
