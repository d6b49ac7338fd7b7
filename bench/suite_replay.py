"""Drive replay: reading a drive MCAP at ``--speed max``, ours against plain ``mcap`` iteration.

Input: a drive MCAP given with ``--input``, else a 10 s simulated drive (VLP-16 with camera,
seed 0) written to a temporary file first (the simulation is not timed; it is reported as its
own row, with the numba JIT warm-up it includes).

Rows:
- ``read``: every message's bytes, file order. Ours: :class:`agent.recording.DriveReader`
  (``raw_messages``). Reference: ``mcap.reader.make_reader(f).iter_messages()`` (the seeking
  reader, chunk indexes, zstd). Messages/s and MB/s of payload; ratio = ours / mcap.
- ``replay max, null sink``: :func:`agent.recording.replay` at speed max into a sink that
  drops messages: read + decode into typed bus messages. Same reference (mcap iteration,
  which does not decode), so the ratio shows the cost of decoding too. Real-time factor =
  drive seconds / wall seconds.
- ``replay max, ZeroMQ``: the same onto a real ``inproc://`` Publisher with one subscriber
  draining it in a thread (encode + send + receive). Real-time factor only.
Each side is the best of repeated calls over at least a second (bench._harness.measure).
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

from bench._harness import Row, measure, ratio_row

SUITE = "replay"


def read_ours(path: str) -> tuple[int, int]:
    from agent.recording import DriveReader

    n = size = 0
    with DriveReader(path) as r:
        for raw in r.raw_messages():
            n += 1
            size += len(raw.data)
    return n, size


def read_reference(path: str) -> tuple[int, int]:
    from mcap.reader import make_reader

    n = size = 0
    with open(path, "rb") as fh:
        for _schema, _channel, message in make_reader(fh).iter_messages():
            n += 1
            size += len(message.data)
    return n, size


def replay_null(path: str):  # type: ignore[no-untyped-def]
    from agent.recording import replay

    return replay(path, lambda m: None, "max")


def replay_zmq(path: str):  # type: ignore[no-untyped-def]
    from agent.bus import Publisher, Subscriber
    from agent.recording import replay

    endpoint = f"inproc://bench-replay-{time.monotonic_ns()}"
    with Publisher(endpoint, send_hwm=1_000_000) as pub, Subscriber(endpoint, recv_hwm=1_000_000) as sub:
        pub.wait_for_subscriber(10)
        done = threading.Event()

        def drain() -> None:
            # Keeps the subscriber's queue drained while we publish (this thread owns the socket).
            while sub.recv_raw(50) is not None or not done.is_set():
                pass

        th = threading.Thread(target=drain, daemon=True)
        th.start()
        stats = replay(path, pub, "max")
        done.set()
        th.join(30)
    return stats


def run(input: str | None = None, meta: str | None = None) -> list[Row]:  # noqa: A002 - harness signature
    rows: list[Row] = []
    tmp = None
    if input is None:
        from sensors.simulator import simulate_drive

        tmp = tempfile.TemporaryDirectory(prefix="bench-replay-")
        path = str(Path(tmp.name) / "sim.mcap")
        t0 = time.perf_counter()
        simulate_drive(out=path, duration=10.0, lidar="vlp16", seed=0, camera=True)
        rows.append(
            Row(
                SUITE,
                "simulate 10 s VLP-16 + camera",
                "wall (incl. JIT warm-up)",
                "s",
                time.perf_counter() - t0,
            )
        )
    else:
        path = input
    try:
        n, size = read_ours(path)
        ref_n, _ = read_reference(path)
        if ref_n != n:
            raise RuntimeError(f"readers disagree: ours {n} messages, mcap {ref_n}")
        t_ours, _ = measure(lambda: read_ours(path))
        t_ref, _ = measure(lambda: read_reference(path))
        case = f"{Path(path).name} ({n:,} msgs, {size / 1e6:.1f} MB)"
        rows.append(
            ratio_row(
                SUITE, f"read: {case}", "messages/s", "msg/s", n / t_ours, n / t_ref, "mcap 1.x iter_messages"
            )
        )
        rows.append(
            ratio_row(
                SUITE,
                f"read: {case}",
                "payload MB/s",
                "MB/s",
                size / 1e6 / t_ours,
                size / 1e6 / t_ref,
                "mcap 1.x iter_messages",
            )
        )
        t_null, st = measure(lambda: replay_null(path))
        rows.append(
            ratio_row(
                SUITE,
                "replay max, null sink (read + decode)",
                "messages/s",
                "msg/s",
                n / t_null,
                n / t_ref,
                "mcap 1.x iter_messages (no decode)",
            )
        )
        rows.append(
            Row(SUITE, "replay max, null sink (read + decode)", "real-time factor", "x", st.drive_s / t_null)
        )
        t_zmq, st = measure(lambda: replay_zmq(path), min_repeats=2)
        rows.append(Row(SUITE, "replay max, ZeroMQ inproc + subscriber", "messages/s", "msg/s", n / t_zmq))
        rows.append(
            Row(SUITE, "replay max, ZeroMQ inproc + subscriber", "real-time factor", "x", st.drive_s / t_zmq)
        )
    finally:
        if tmp is not None:
            tmp.cleanup()
    return rows
