"""Message bus throughput: our typed Publisher/Subscriber against raw pyzmq, over ``ipc://``.

The work on both sides is moving N payloads from a sending thread to a receiving thread
through a ZeroMQ PUB/SUB pair on an ``ipc://`` socket, two frames per message (topic, body):

- ours: build a :class:`LidarPacket` (1206-byte Velodyne data packet) or a
  :class:`CameraFrame` (100 kB JPEG-sized payload), ``Publisher.publish`` (stamps sequence,
  encodes the header) and ``Subscriber.recv`` (checks the topic, counts gaps, decodes into the
  dataclass);
- raw pyzmq (reference): ``send_multipart([topic, payload])`` / ``recv_multipart()`` of the
  same bytes, no encoding.

High-water marks are set above N so nothing is dropped; socket setup and the subscription
handshake are outside the timing. Rows: messages/s and MB/s (payload bytes) with
``ratio`` = ours / raw (higher is better; 1 - ratio is the encoding overhead), and our encode
and decode cost per message in microseconds. Best of 3 transfers per case.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time

import zmq

from bench._harness import Row, measure, ratio_row

SUITE = "bus"
CASES = [
    ("lidar packet 1206 B", 1206, 20000),
    ("camera frame 100 kB", 100_000, 600),
]
REPEATS = 3


def _payload(size: int) -> bytes:
    return bytes((i * 131) & 0xFF for i in range(size))


def _make(kind_size: int, payload: bytes):  # type: ignore[no-untyped-def]
    from agent.bus.messages import CameraFrame, LidarPacket

    if kind_size < 10_000:
        return lambda: LidarPacket(port=2368, data=payload, source="vlp16")
    return lambda: CameraFrame(camera_id="front", width=1920, height=1080, jpeg=payload, source="front")


def transfer_ours(endpoint: str, size: int, n: int) -> tuple[float, int]:
    """Seconds to move n messages and how many arrived, with our bus."""
    from agent.bus import Publisher, Subscriber

    make = _make(size, _payload(size))
    with Publisher(endpoint, send_hwm=n + 100) as pub, Subscriber(endpoint, recv_hwm=n + 100) as sub:
        pub.wait_for_subscriber()
        got = 0
        t0 = time.perf_counter()

        def send() -> None:
            for _ in range(n):
                pub.publish(make())

        th = threading.Thread(target=send)
        th.start()
        while got < n:
            if sub.recv(timeout_ms=2000) is None:
                break
            got += 1
        dt = time.perf_counter() - t0
        th.join()
    return dt, got


def transfer_raw(endpoint: str, size: int, n: int) -> tuple[float, int]:
    """The same with plain pyzmq PUB/SUB and no encoding."""
    ctx = zmq.Context.instance()
    payload = _payload(size)
    topic = b"LIDAR_PACKET" if size < 10_000 else b"CAMERA_FRAME"
    pub = ctx.socket(zmq.PUB)
    sub = ctx.socket(zmq.SUB)
    try:
        for s in (pub, sub):
            s.setsockopt(zmq.LINGER, 0)
        pub.setsockopt(zmq.SNDHWM, n + 100)
        sub.setsockopt(zmq.RCVHWM, n + 100)
        pub.bind(endpoint)
        sub.setsockopt(zmq.SUBSCRIBE, b"")
        sub.connect(endpoint)
        while True:  # untimed handshake: wait until the subscription reached the publisher
            pub.send_multipart([b"WARMUP", b""])
            if sub.poll(20):
                while sub.poll(50):
                    sub.recv_multipart()
                break
        got = 0
        t0 = time.perf_counter()

        def send() -> None:
            for _ in range(n):
                pub.send_multipart([topic, payload])

        th = threading.Thread(target=send)
        th.start()
        while got < n:
            if not sub.poll(2000):
                break
            sub.recv_multipart()
            got += 1
        dt = time.perf_counter() - t0
        th.join()
    finally:
        pub.close(0)
        sub.close(0)
    return dt, got


def _best(fn, endpoint: str, size: int, n: int) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    best, got = float("inf"), 0
    for _ in range(REPEATS):
        dt, g = fn(endpoint, size, n)
        if dt < best:
            best, got = dt, g
    return best, got


def run(input: str | None = None, meta: str | None = None) -> list[Row]:
    """Run the suite; ``input``/``meta`` are unused (synthetic payloads)."""
    from agent.bus.messages import decode_message

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-bus-") as tmp:
        for i, (case, size, n) in enumerate(CASES):
            ep_ours = f"ipc://{os.path.join(tmp, f'ours{i}.sock')}"
            ep_raw = f"ipc://{os.path.join(tmp, f'raw{i}.sock')}"
            t_ours, got_ours = _best(transfer_ours, ep_ours, size, n)
            t_raw, got_raw = _best(transfer_raw, ep_raw, size, n)
            mps_o, mps_r = got_ours / t_ours, got_raw / t_raw
            rows.append(ratio_row(SUITE, case, "throughput", "msg/s", mps_o, mps_r, "pyzmq raw PUB/SUB"))
            rows.append(ratio_row(SUITE, case, "throughput", "MB/s", mps_o * size / 1e6, mps_r * size / 1e6,
                                  "pyzmq raw PUB/SUB"))
            if got_ours < n or got_raw < n:
                rows.append(Row(SUITE, case, "lost (should be 0)", "msg", float(n - got_ours),
                                float(n - got_raw), "pyzmq raw PUB/SUB"))
            make = _make(size, _payload(size))
            buf = make().encode()
            k = 2000
            t_enc, _ = measure(lambda: [make().encode() for _ in range(k)], min_seconds=0.3)
            t_dec, _ = measure(lambda: [decode_message(buf) for _ in range(k)], min_seconds=0.3)
            rows.append(Row(SUITE, case, "build+encode", "us/msg", t_enc / k * 1e6, better="lower"))
            rows.append(Row(SUITE, case, "decode", "us/msg", t_dec / k * 1e6, better="lower"))
    return rows


if __name__ == "__main__":
    for r in run():
        print(r.as_dict())
