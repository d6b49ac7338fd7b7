"""One MQTT connection over paho-mqtt 2: TLS, credentials, persistent session, reconnect with
backoff, MQTT 5 with a fallback to 3.1.1 when the broker refuses the protocol version."""

from __future__ import annotations

import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from agent.errors import FleetError
from agent.fleet._config import FleetConfig

log = logging.getLogger(__name__)

# CONNACK "Unsupported protocol version" (MQTT 5 reason 0x84; paho maps a 3.1.1 broker's rc 1 to it)
_UNSUPPORTED_PROTOCOL = 0x84


def _nodelay(client: mqtt.Client) -> None:
    """Small QoS 1 packets and their acks must not wait for Nagle + delayed ACK (~40 ms each)."""
    sock = client.socket()
    try:
        raw = getattr(sock, "_sock", sock)  # paho may wrap TLS sockets
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


class MqttLink:
    """A paho client with the settings of a :class:`FleetConfig`.

    ``subscriptions`` are (re)made on every successful connect. Callbacks run on paho's
    network thread: ``on_message(topic, payload)``, ``on_published(mid, ok)``,
    ``on_state(connected)``. Call :meth:`tick` from the owner's loop: it performs the
    protocol fallback, which needs a new paho client.
    """

    def __init__(self, cfg: FleetConfig, client_id: str, *, persistent: bool = True,
                 will: tuple[str, bytes] | None = None,
                 subscriptions: list[tuple[str, int]] | None = None,
                 on_message: Callable[[str, bytes], None] | None = None,
                 on_published: Callable[[int, bool], None] | None = None,
                 on_state: Callable[[bool], None] | None = None) -> None:
        self.cfg = cfg
        self.client_id = client_id
        self.persistent = persistent
        self.will = will
        self.subscriptions = list(subscriptions or [])
        self._on_message = on_message
        self._on_published = on_published
        self._on_state = on_state
        self.protocol = mqtt.MQTTv311 if cfg.protocol == "3.1.1" else mqtt.MQTTv5
        self._connected = threading.Event()
        self._downgrade = threading.Event()
        self._subscribed = threading.Event()
        self._sub_mid: int | None = None
        self.last_error: str | None = None
        self.connects = 0
        self.client = self._build()
        self._started = False

    # -- lifecycle ------------------------------------------------------------------------------
    def _build(self) -> mqtt.Client:
        cfg = self.cfg
        v5 = self.protocol == mqtt.MQTTv5
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            protocol=self.protocol,
            clean_session=None if v5 else not self.persistent,
        )
        client.max_inflight_messages_set(100)
        client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
        password = cfg.password if cfg.password is not None else os.environ.get("EDGE_FLEET_PASSWORD")
        if cfg.username is not None:
            client.username_pw_set(cfg.username, password)
        if cfg.tls:
            if cfg.ca_file is None:
                raise FleetError("fleet.tls needs fleet.ca_file")
            try:
                client.tls_set(ca_certs=str(cfg.ca_file),
                               certfile=str(cfg.cert_file) if cfg.cert_file else None,
                               keyfile=str(cfg.key_file) if cfg.key_file else None,
                               cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
            except (OSError, ssl.SSLError) as exc:
                raise FleetError(f"TLS set-up failed: {exc}") from None
        if self.will is not None:
            client.will_set(self.will[0], self.will[1], qos=1, retain=True)
        client.on_connect = self._cb_connect
        client.on_disconnect = self._cb_disconnect
        client.on_message = self._cb_message
        client.on_publish = self._cb_publish
        client.on_subscribe = self._cb_subscribe
        return client

    def start(self) -> None:
        """Connect in the background (retried with backoff until it succeeds)."""
        props = None
        clean: Any = mqtt.MQTT_CLEAN_START_FIRST_ONLY
        if self.protocol == mqtt.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.cfg.session_expiry_s if self.persistent else 0
            clean = not self.persistent
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s,
                                  clean_start=clean, properties=props)
        self.client.loop_start()
        self._started = True

    def stop(self) -> None:
        if self._started:
            try:
                self.client.disconnect()
            finally:
                self.client.loop_stop()
            self._started = False
        self._connected.clear()

    def wait_connected(self, timeout: float) -> bool:
        end = timeout
        step = 0.05
        waited = 0.0
        while waited < end:
            if self._connected.wait(step):
                return True
            waited += step
            self.tick()
        return self._connected.is_set()

    def wait_ready(self, timeout: float) -> bool:
        """Wait until connected and the broker acknowledged this connection's subscriptions
        (a message sent to them after this returns is delivered)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._subscribed.wait(0.05):
                return True
            self.tick()
        return self._subscribed.is_set()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def tick(self) -> None:
        """Fall back to MQTT 3.1.1 once the broker has refused MQTT 5."""
        if self._downgrade.is_set():
            self._downgrade.clear()
            log.warning("broker refused MQTT 5: reconnecting with MQTT 3.1.1")
            self.client.loop_stop()
            try:
                self.client.disconnect()
            except Exception:  # noqa: BLE001 - the socket is already gone
                pass
            self.protocol = mqtt.MQTTv311
            self.client = self._build()
            self.start()

    # -- I/O --------------------------------------------------------------------------------------
    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> mqtt.MQTTMessageInfo:
        return self.client.publish(topic, payload, qos=qos, retain=retain)

    def subscribe(self, topic: str, qos: int = 1) -> None:
        self.subscriptions.append((topic, qos))
        if self.connected:
            self.client.subscribe(topic, qos)

    # -- paho callbacks (network thread) ----------------------------------------------------------
    def _cb_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        code = getattr(reason, "value", reason)
        if reason.is_failure if hasattr(reason, "is_failure") else code != 0:
            self.last_error = str(reason)
            if code == _UNSUPPORTED_PROTOCOL and self.protocol == mqtt.MQTTv5 and self.cfg.protocol == "auto":
                self._downgrade.set()
            log.warning("broker refused connection: %s", reason)
            return
        self.connects += 1
        self.last_error = None
        _nodelay(client)
        self._subscribed.clear()
        if self.subscriptions:
            _, self._sub_mid = client.subscribe(list(self.subscriptions))
        else:
            self._subscribed.set()
        self._connected.set()
        if self._on_state:
            self._on_state(True)

    def _cb_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        was = self._connected.is_set()
        self._connected.clear()
        self._subscribed.clear()
        if was and self._on_state:
            self._on_state(False)

    def _cb_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._on_message:
            self._on_message(msg.topic, msg.payload)

    def _cb_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: Any, props: Any) -> None:
        if mid == self._sub_mid:
            self._subscribed.set()

    def _cb_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        if self._on_published:
            ok = not (reason.is_failure if hasattr(reason, "is_failure") else False)
            self._on_published(mid, ok)
