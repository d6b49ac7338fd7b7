"""MQTT 5 → 3.1.1 fallback. Mosquitto 2 speaks both versions, so a small TCP front end plays a
3.1.1-only broker: it answers an MQTT 5 CONNECT with the 3.1.1 refusal (CONNACK return code 1,
"unacceptable protocol version") and forwards any other connection to the real broker."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from nacl.signing import SigningKey

from agent.errors import FleetError
from agent.fleet.manager import FleetClient, SharedConsumer
from tests.fleet.conftest import Broker
from tests.fleet.test_broker import in_process_device, states

pytestmark = pytest.mark.timeout(60)


def _read_packet(sock: socket.socket) -> bytes:
    head = sock.recv(1)
    if not head:
        raise ConnectionError("closed")
    length, mult, raw = 0, 1, b""
    while True:
        b = sock.recv(1)
        raw += b
        length += (b[0] & 0x7F) * mult
        mult *= 128
        if not b[0] & 0x80:
            break
    body = b""
    while len(body) < length:
        chunk = sock.recv(length - len(body))
        if not chunk:
            raise ConnectionError("closed")
        body += chunk
    return head + raw + body


class V311Front:
    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.refused = 0
        self.forwarded = 0
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._stop = True
        self.sock.close()

    def _accept(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            first = _read_packet(conn)
            # fixed header, remaining length, then protocol name (2 + 4 bytes "MQTT"), then level
            i = 1
            while first[i] & 0x80:
                i += 1
            level = first[i + 1 + 6]
            if level == 5:
                self.refused += 1
                conn.sendall(b"\x20\x02\x00\x01")
                conn.close()
                return
            self.forwarded += 1
            up = socket.create_connection(("127.0.0.1", self.upstream))
            up.sendall(first)
        except (OSError, ConnectionError, IndexError):
            conn.close()
            return

        def pipe(a: socket.socket, b: socket.socket) -> None:
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        threading.Thread(target=pipe, args=(conn, up), daemon=True).start()
        threading.Thread(target=pipe, args=(up, conn), daemon=True).start()


def test_falls_back_to_311_and_works(tmp_path: Path, broker: Broker, fleet_key: SigningKey) -> None:
    front = V311Front(broker.port)
    dev, _ = in_process_device(tmp_path, broker, fleet_key, port=front.port)
    assert dev.start(wait=15)
    try:
        assert dev.link.wait_connected(15)
        assert dev.link.protocol == mqtt.MQTTv311 and front.refused >= 1 and front.forwarded >= 1
        # the fleet side talks MQTT 5 directly to the broker; the device's 3.1.1 session works
        with FleetClient(broker.fleet_config(), fleet_key) as fc:
            _, f = fc.send("dev-1", "start_capture")
            assert f.wait(10)["state"] == "SUCCEEDED"
            assert states(f.history) == ["QUEUED", "IN_PROGRESS", "SUCCEEDED"]
        assert (tmp_path / "dev-1" / "fleet-actions.jsonl").exists()
    finally:
        dev.close()
        front.close()


def test_forced_v5_does_not_fall_back(broker: Broker) -> None:
    front = V311Front(broker.port)
    try:
        with pytest.raises(FleetError, match="(?i)unsupported protocol version"):
            FleetClient(broker.fleet_config(port=front.port, protocol="5")).start(timeout=2)
        assert front.forwarded == 0
    finally:
        front.close()


def test_shared_subscriptions_need_v5(broker: Broker) -> None:
    with pytest.raises(FleetError, match="need MQTT 5"):
        SharedConsumer(broker.fleet_config(protocol="3.1.1"), lambda *a: None)
