"""A local development node: ganache from contracts/package.json (pinned; ``npm ci`` when
node_modules is missing) on a free loopback port, its state in a directory so a restart
keeps the chain. Used by tests/chain and bench/suite_chain.py; needs node and npm."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from agent.errors import ChainError

CONTRACTS = Path(__file__).resolve().parents[2] / "contracts"
CHAIN_ID = 1337


def ensure_node_modules() -> None:
    """``npm ci`` in contracts/ when its node_modules is missing (pinned by the lockfile)."""
    if (CONTRACTS / "node_modules" / "ganache").exists() and (CONTRACTS / "node_modules" / "solc").exists():
        return
    if shutil.which("npm") is None:
        raise ChainError("npm is not installed: it is needed for ganache and solc (see scripts/bootstrap.sh)")
    subprocess.run(["npm", "ci", "--prefix", str(CONTRACTS), "--no-audit", "--no-fund"], check=True, timeout=600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ganache:
    """start / stop (SIGTERM) / kill (SIGKILL); the same port and database across restarts."""

    def __init__(self, db_path: Path, funded_keys: list[bytes], port: int | None = None) -> None:
        ensure_node_modules()
        self.db_path = db_path
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.funded_keys = funded_keys
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = db_path.parent / f"ganache-{self.port}.log"

    def start(self, timeout_s: float = 60.0) -> None:
        assert self.proc is None, "already running"
        self.db_path.mkdir(parents=True, exist_ok=True)
        cmd = ["node", str(CONTRACTS / "node_modules" / "ganache" / "dist" / "node" / "cli.js"),
               "--server.host", "127.0.0.1", "--server.port", str(self.port),
               "--chain.chainId", str(CHAIN_ID), "--chain.hardfork", "shanghai",
               "--database.dbPath", str(self.db_path), "--logging.quiet"]
        for key in self.funded_keys:
            cmd += ["--wallet.accounts", f"0x{key.hex()},{10**22}"]
        out = open(self.log, "ab")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ChainError(f"ganache exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            if self.ready():
                return
            time.sleep(0.2)
        self.stop()
        raise ChainError(f"ganache did not answer on {self.url} within {timeout_s} s")

    def ready(self) -> bool:
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
        req = urllib.request.Request(self.url, body, {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=1) as r:
                return int(json.loads(r.read())["result"], 16) == CHAIN_ID
        except OSError:
            return False

    def _end(self, sig: int) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None

    def stop(self) -> None:
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        self._end(signal.SIGKILL)
