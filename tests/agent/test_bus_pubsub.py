"""The ZeroMQ bus over real sockets: every transport, filtering, lifecycle, drops."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import zmq

from agent.bus import BusConfig, Publisher, Subscriber
from agent.bus.messages import GnssFix, ImuSample, LidarPacket, MessageType, NmeaSentence
from agent.config import load_config
from agent.errors import BusError, MessageDecodeError


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(params=["inproc", "ipc", "tcp"])
def endpoint(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "inproc":
        return f"inproc://bus-test-{time.monotonic_ns()}"
    if request.param == "ipc":
        return f"ipc://{tmp_path}/bus.sock"
    return f"tcp://127.0.0.1:{_free_port()}"


def test_round_trip_over_every_transport(endpoint: str) -> None:
    with Publisher(endpoint) as pub, Subscriber(endpoint) as sub:
        pub.wait_for_subscriber()
        sent = [LidarPacket(port=2368, data=bytes([i]) * 1206, source="vlp16") for i in range(50)]
        sent.append(NmeaSentence(text="$GPGGA,1*00", source="gnss0"))
        for m in sent:
            assert pub.publish(m)
        got = [sub.recv(timeout_ms=2000) for _ in sent]
    assert got == sent  # publish stamped seq/publisher into `sent`, so they must match too
    assert [m.seq for m in got[:50]] == list(range(1, 51))
    assert got[-1].seq == 1  # a sequence per message type
    assert sub.stats.received == 51 and sub.stats.dropped == 0


def test_subscriber_filters_by_type() -> None:
    ep = f"inproc://bus-filter-{time.monotonic_ns()}"
    with Publisher(ep) as pub, Subscriber(ep, [MessageType.GNSS_FIX]) as sub:
        pub.wait_for_subscriber()
        for i in range(20):
            pub.publish(ImuSample(gyro=(0.0, 0.0, float(i)), accel=(0.0, 0.0, 9.8)))
            pub.publish(GnssFix(lat_deg=48.0 + i, lon_deg=11.0))
        got = []
        while (m := sub.recv(timeout_ms=300)) is not None:
            got.append(m)
    assert [type(m) for m in got] == [GnssFix] * 20
    assert [m.lat_deg for m in got] == [48.0 + i for i in range(20)]
    assert sub.stats.dropped == 0  # filtered types are not drops: sequences are per type


def test_many_publishers_connect_to_one_binding_subscriber(tmp_path: Path) -> None:
    ep = f"ipc://{tmp_path}/many.sock"
    with Subscriber(ep, bind=True) as sub, Publisher(ep, bind=False) as a, Publisher(ep, bind=False) as b:
        # a binding SUB attaches new peers (and sends them its subscriptions) only inside an
        # API call, so keep it polling while the publishers wait
        deadline = time.monotonic() + 5
        while (a.subscriptions < 1 or b.subscriptions < 1) and time.monotonic() < deadline:
            assert sub.recv(timeout_ms=10) is None
            for p in (a, b):
                try:
                    p.wait_for_subscriber(timeout_s=0.01)
                except BusError:
                    pass
        assert a.subscriptions and b.subscriptions
        for i in range(10):
            a.publish(NmeaSentence(text=f"a{i}", source="a"))
            b.publish(NmeaSentence(text=f"b{i}", source="b"))
        got = [sub.recv(timeout_ms=2000) for _ in range(20)]
    assert sorted(m.text for m in got) == sorted([f"a{i}" for i in range(10)] + [f"b{i}" for i in range(10)])
    assert {m.publisher for m in got} == {a.publisher_id, b.publisher_id}
    assert sub.stats.dropped == 0


def test_slow_subscriber_never_blocks_the_publisher_and_counts_drops(tmp_path: Path) -> None:
    """A subscriber that takes 5 ms per message; the publisher sends 1000 messages at 2 kHz.
    It must keep its pace (PUB drops at the HWM) and the subscriber's drop count must equal
    the gaps in the sequence numbers it received."""
    ep = f"ipc://{tmp_path}/slow.sock"
    n, rate_hz, work_s = 1000, 2000.0, 0.005
    seqs: list[int] = []
    done = threading.Event()
    with Publisher(ep, send_hwm=20) as pub, Subscriber(ep, recv_hwm=20) as sub:
        pub.wait_for_subscriber()

        def consume() -> None:
            while not done.is_set():
                m = sub.recv(timeout_ms=100)
                if m is None:
                    continue
                seqs.append(m.seq)
                if m.seq > n:  # an end marker
                    return
                time.sleep(work_s)

        t = threading.Thread(target=consume)
        t.start()
        payload = bytes(1206)
        t0 = time.perf_counter()
        for i in range(n):
            pub.publish(LidarPacket(port=2368, data=payload))
            # pace to rate_hz: a blocked publisher would fall behind this schedule
            wait = t0 + (i + 1) / rate_hz - time.perf_counter()
            if wait > 0:
                time.sleep(wait)
        elapsed = time.perf_counter() - t0
        # end markers (seq n+1, n+2, ...) until one gets through the drained queue
        deadline = time.monotonic() + 10
        while t.is_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
            pub.publish(LidarPacket(port=2368, data=payload))
        done.set()
        t.join(5)
    # a publisher held back by the consumer would need about (n - 40) * 5 ms = 4.8 s
    assert elapsed < 2.5, f"publisher slowed to {n / elapsed:.0f} msg/s for {rate_hz:.0f} nominal"
    assert seqs and seqs[-1] > n, "no end marker arrived"
    gaps = sum(b - a - 1 for a, b in zip(seqs, seqs[1:]))
    assert gaps > 0, "nothing was dropped: the test did not exercise the high-water mark"
    assert sub.stats.dropped == gaps == (seqs[-1] - seqs[0] + 1) - len(seqs)
    assert sub.stats.dropped_by_type == {"LIDAR_PACKET": gaps}
    assert sub.stats.received == len(seqs) < n


def test_lossless_publisher_waits_for_a_full_subscriber_and_keeps_sequence(tmp_path: Path) -> None:
    """lossless=True (replay): at the high-water mark ZeroMQ refuses the send instead of
    dropping; publish waits, and a refused send (stall timeout) uses up no sequence number."""
    ep = f"ipc://{tmp_path}/nodrop.sock"
    payload = bytes(1206)
    with Publisher(ep, send_hwm=5, lossless=True, stall_timeout_s=0.2) as pub, \
            Subscriber(ep, recv_hwm=5) as sub:
        pub.wait_for_subscriber()
        sent = 0
        with pytest.raises(BusError, match="took no message for 0.2 s"):
            for _ in range(10_000):  # nobody reads: the queues fill, then the send is refused
                pub.publish(LidarPacket(port=2368, data=payload))
                sent += 1
        assert 0 < sent < 10_000 and pub.sent == sent
        got = []
        while (m := sub.recv(timeout_ms=300)) is not None:
            got.append(m.seq)
        assert got == list(range(1, sent + 1)), "a message was dropped at the high-water mark"
        # the refused message took no sequence number: the next one continues the stream
        assert pub.publish(LidarPacket(port=2368, data=payload))
        m = sub.recv(timeout_ms=2000)
        assert m is not None and m.seq == sent + 1
        assert sub.stats.dropped == 0 and sub.stats.received == sent + 1

        # a slow reader (a thread here) gets everything while the publisher waits for it
        n = 3000
        seqs: list[int] = []

        def consume() -> None:
            while len(seqs) < n:
                m = sub.recv(timeout_ms=5000)
                if m is None:
                    return
                seqs.append(m.seq)
                if len(seqs) % 200 == 0:
                    time.sleep(0.01)

        t = threading.Thread(target=consume)
        t.start()
        for _ in range(n):
            assert pub.publish(LidarPacket(port=2368, data=payload))
        t.join(30)
    assert seqs == list(range(sent + 2, sent + 2 + n))
    assert pub.waits > 0, "the publisher never waited: the test did not reach the high-water mark"
    assert sub.stats.dropped == 0


def test_default_publisher_drops_at_the_high_water_mark_without_waiting(tmp_path: Path) -> None:
    """Live capture: the same non-reading subscriber makes the default publisher drop, not wait."""
    ep = f"ipc://{tmp_path}/drop.sock"
    with Publisher(ep, send_hwm=5) as pub, Subscriber(ep, recv_hwm=5) as sub:
        pub.wait_for_subscriber()
        t0 = time.perf_counter()
        for _ in range(5000):
            assert pub.publish(LidarPacket(port=2368, data=bytes(1206)))
        assert time.perf_counter() - t0 < 5
        got = 0
        while sub.recv(timeout_ms=300) is not None:
            got += 1
        assert 0 < got < 5000 and pub.waits == 0


def test_malformed_frames_are_counted_or_raised() -> None:
    ep = f"inproc://bus-junk-{time.monotonic_ns()}"
    ctx = zmq.Context.instance()
    raw = ctx.socket(zmq.PUB)
    raw.bind(ep)
    try:
        with Subscriber(ep) as sub, Subscriber(ep, strict=True) as strict:
            time.sleep(0.1)  # inproc subscriptions settle synchronously; margin for safety
            raw.send_multipart([b"GNSS_FIX", b"not a message"])
            raw.send_multipart([b"GNSS_FIX", NmeaSentence(text="x").encode()])
            raw.send_multipart([b"NMEA_SENTENCE", NmeaSentence(text="ok").encode()])
            m = sub.recv(timeout_ms=2000)
            assert isinstance(m, NmeaSentence) and m.text == "ok"
            assert sub.stats.decode_errors == 2 and sub.stats.received == 1
            with pytest.raises(MessageDecodeError, match="truncated header"):
                strict.recv(timeout_ms=2000)
            with pytest.raises(MessageDecodeError, match="topic GNSS_FIX carries a NMEA_SENTENCE body"):
                strict.recv(timeout_ms=2000)
    finally:
        raw.close(0)


def test_lifecycle_and_endpoint_errors(tmp_path: Path) -> None:
    pub = Publisher(f"inproc://bus-life-{time.monotonic_ns()}")
    with pytest.raises(BusError, match="is not open"):
        pub.publish(NmeaSentence(text="x"))
    pub.open()
    pub.close()
    assert not pub.is_open
    with pytest.raises(BusError, match="scheme must be one of"):
        Publisher("udp://127.0.0.1:5")
    port = _free_port()
    with Publisher(f"tcp://127.0.0.1:{port}"):
        with pytest.raises(BusError, match=f"cannot bind bus endpoint tcp://127.0.0.1:{port}"):
            Publisher(f"tcp://127.0.0.1:{port}").open()
    with Publisher(f"inproc://bus-lonely-{time.monotonic_ns()}") as lonely:
        with pytest.raises(BusError, match="no subscriber"):
            lonely.wait_for_subscriber(timeout_s=0.1)


def test_config_section_and_factories(tmp_path: Path) -> None:
    cfg = load_config(overrides={"bus.endpoint": f"ipc://{tmp_path}/cfg.sock", "bus.send_hwm": 5})
    assert isinstance(cfg.bus, BusConfig) and cfg.bus.send_hwm == 5
    with Publisher.from_config(cfg.bus) as pub, Subscriber.from_config(cfg.bus, [MessageType.NMEA_SENTENCE]) as sub:
        assert pub.send_hwm == 5
        pub.wait_for_subscriber()
        pub.publish(NmeaSentence(text="hello"))
        assert sub.recv(timeout_ms=2000).text == "hello"
    from agent.errors import ConfigError

    with pytest.raises(ConfigError, match="bus.endpoint"):
        load_config(overrides={"bus.endpoint": "udp://x"})
    with pytest.raises(ConfigError, match="bus.send_hwm"):
        load_config(overrides={"bus.send_hwm": 0})


def test_pump_a_gnss_source_onto_the_bus(tmp_path: Path) -> None:
    from agent.bus import pump
    from sensors.gnss import NmeaFileSource, with_checksum

    log = tmp_path / "drive.nmea"
    lines = []
    for i in range(3):
        lines.append(with_checksum(f"GPGGA,1200{i:02d},4807.038,N,01131.000,E,5,12,0.6,545.4,M,46.9,M,1.0,0001"))
        lines.append(with_checksum(f"GPRMC,1200{i:02d},A,4807.038,N,01131.000,E,1.0,90.0,010724,,,F"))
    log.write_text("# a comment\n" + "\n".join(lines) + "\n")
    ep = f"ipc://{tmp_path}/pump.sock"
    with Publisher(ep) as pub, Subscriber(ep, [MessageType.GNSS_FIX]) as sub, NmeaFileSource(log, source_id="g") as src:
        pub.wait_for_subscriber()
        assert pump(src, pub.publish) == 9  # 6 sentences + 3 fixes
        fixes = [sub.recv(timeout_ms=2000) for _ in range(3)]
    assert [f.fix_type.name for f in fixes] == ["RTK_FLOAT"] * 3 and [f.seq for f in fixes] == [1, 2, 3]
