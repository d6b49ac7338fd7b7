"""A real Mosquitto 2 broker per test on a free loopback port (never the system's 1883),
with its own config file: plain, with a password file (``mosquitto_passwd``) or TLS with a
CA, server and client certificates made here with the openssl CLI. Persistence is on so a
restarted broker keeps sessions and queued messages."""

from __future__ import annotations

import getpass
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from nacl.signing import SigningKey

from agent.fleet import FleetConfig

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certs(d: Path) -> dict[str, Path]:
    """CA, server certificate for 127.0.0.1/localhost, client certificate (ECDSA P-256)."""
    d.mkdir(parents=True, exist_ok=True)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "2",
             "-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=test-ca", cwd=d)
    for name, ext in (("server", ["-extfile", "san.ext"]), ("client", [])):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", f"{name}.key",
                 "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-out", f"{name}.crt", *ext, cwd=d)
    return {k: d / f"{k}" for k in ("ca.crt", "server.crt", "server.key", "client.crt", "client.key")}


class Broker:
    """One mosquitto process; ``kill()`` / ``start()`` restart it on the same port and store."""

    def __init__(self, workdir: Path, mode: str = "plain") -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.mode = mode
        self.username = self.password = None
        self.certs: dict[str, Path] = {}
        self.proc: subprocess.Popen[bytes] | None = None
        # run as whoever runs the tests (as root mosquitto would otherwise drop to user "mosquitto"
        # and lose access to the test's directory)
        lines = [f"user {getpass.getuser()}", f"listener {self.port} 127.0.0.1", "persistence true",
                 f"persistence_location {self.dir}/", "autosave_interval 1",
                 f"log_dest file {self.dir}/mosquitto.log", "log_type all", "max_queued_messages 100000",
                 "max_inflight_messages 100", "set_tcp_nodelay true"]
        if mode == "plain":
            lines.append("allow_anonymous true")
        else:
            self.username, self.password = "device", "s3cret-pass"
            pw = self.dir / "passwd"
            pw.touch(mode=0o600)
            subprocess.run(["mosquitto_passwd", "-b", str(pw), self.username, self.password], check=True,
                           capture_output=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        if mode == "tls":
            self.certs = make_certs(self.dir / "certs")
            lines += [f"cafile {self.certs['ca.crt']}", f"certfile {self.certs['server.crt']}",
                      f"keyfile {self.certs['server.key']}", "require_certificate true"]
        (self.dir / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> None:
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.dir / "mosquitto.conf")],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.proc.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(10)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)

    def fleet_config(self, **over: Any) -> FleetConfig:
        base: dict[str, Any] = {"host": "127.0.0.1", "port": self.port, "reconnect_min_s": 1,
                                "reconnect_max_s": 2, "keepalive_s": 5, "telemetry_interval_s": 0.5}
        if self.username:
            base |= {"username": self.username, "password": self.password}
        if self.mode == "tls":
            base |= {"tls": True, "ca_file": self.certs["ca.crt"], "cert_file": self.certs["client.crt"],
                     "key_file": self.certs["client.key"]}
        base |= over
        return FleetConfig.model_validate(base)


def _broker(tmp_path: Path, mode: str) -> Iterator[Broker]:
    if MOSQUITTO is None:
        if os.environ.get("CI"):
            pytest.fail("mosquitto is not installed (scripts/bootstrap.sh test installs it)")
        pytest.skip("mosquitto is not installed")
    b = Broker(tmp_path / f"broker-{mode}", mode)
    b.start()
    try:
        yield b
    finally:
        b.kill()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    yield from _broker(tmp_path, "plain")


@pytest.fixture
def broker_password(tmp_path: Path) -> Iterator[Broker]:
    yield from _broker(tmp_path, "password")


@pytest.fixture
def broker_tls(tmp_path: Path) -> Iterator[Broker]:
    yield from _broker(tmp_path, "tls")


@pytest.fixture
def fleet_key() -> SigningKey:
    return SigningKey.generate()


class DeviceProcess:
    """``python -m agent.fleet.device`` as a real subprocess with its own config and state."""

    def __init__(self, workdir: Path, broker: Broker, key: SigningKey, device_id: str = "dev-1",
                 event_every: float = 0.0, **fleet_over: Any) -> None:
        self.dir = workdir
        self.device_id = device_id
        self.state = workdir / "state"
        self.config = workdir / "agent.yaml"
        self.event_every = event_every
        fleet = broker.fleet_config(trusted_keys=[key.verify_key.encode().hex()], **fleet_over)
        doc = {"device_id": device_id, "state_dir": str(self.state), "fleet": json.loads(fleet.model_dump_json())}
        workdir.mkdir(parents=True, exist_ok=True)
        self.config.write_text(yaml.safe_dump(doc))
        self.proc: subprocess.Popen[str] | None = None
        self.log = workdir / "device.log"

    def start(self, timeout: float = 20.0) -> None:
        cmd = [sys.executable, "-m", "agent.fleet.device", "--config", str(self.config)]
        if self.event_every:
            cmd += ["--event-every", str(self.event_every)]
        with open(self.log, "ab") as err:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if '"ready": true' not in line:
            raise RuntimeError(f"device did not start: {line!r}\n{self.log.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(15)

    def actions(self) -> list[dict[str, Any]]:
        p = self.state / "fleet-actions.jsonl"
        return [json.loads(x) for x in p.read_text().splitlines()] if p.exists() else []


@pytest.fixture
def device_factory(tmp_path: Path) -> Iterator[Any]:
    made: list[DeviceProcess] = []

    def make(broker: Broker, key: SigningKey, device_id: str = "dev-1", **kw: Any) -> DeviceProcess:
        d = DeviceProcess(tmp_path / f"device-{device_id}-{len(made)}", broker, key, device_id, **kw)
        made.append(d)
        return d

    yield make
    for d in made:
        d.kill()
