"""Firmware bridge link: frames/s decoded from the serial byte stream, ours beside references.

The stream is one minute of what the MCU sends in a drive: NMEA from a log (the ``--input``
file, else the Munich fixture, else synthetic sentences) in 8-64-byte UART chunks, 100 Hz IMU,
PPS, heartbeat and power records, encoded as wire frames (``00 ‖ COBS ‖ 00``), about 7,000
frames. Rows, each best of repeated runs over at least a second:

- ``COBS decode``: our pure-Python, block-slicing ``_cobs.decode`` against the ``cobs`` package's
  C ``cobs.decode`` on the same encoded frames (frames/s, ratio ours/reference).
- ``CRC-32C``: our table-driven Python CRC (the fallback) against the ``crc32c`` package
  (hardware CRC instructions), MB/s. The bridge uses the package when it is installed.
- ``link decode``: :class:`FrameDecoder.feed` on the stream in 4 KiB reads (split on
  delimiters, COBS, CRC, header, record parse, counters) against the same pipeline written
  plainly over the reference libraries (``bytes.split`` + ``cobs.decode`` + ``crc32c`` +
  ``struct`` + the record classes), frames/s.
- ``bridge dispatch``: decode plus :class:`BridgeCore` (NMEA line assembly, time fit, building
  bus messages; publishing left out), frames/s; no reference.
- ``pty end to end``: the firmware simulator writing the stream unpaced to a real pty and the
  bridge reading it with pyserial and dispatching, frames/s (both ends share the CPU).

No JIT is involved, so there is no warm-up row.
"""

from __future__ import annotations

import math
import os
import random
import struct
import time
from pathlib import Path

from bench._harness import Row, measure, ratio_row

SUITE = "bridge"
SECONDS = 60
_ROOT = Path(__file__).resolve().parents[1]
_FIXTURES = Path(os.environ.get("EDGE_AGENT_FIXTURES", _ROOT.parent / "shared" / "fixtures"))


def _nmea_source(input: str | None) -> Path | None:
    if input:
        return Path(input)
    p = _FIXTURES / "gnss" / "munich_drive_2014.nmea"
    return p if p.exists() else None


def _synthetic_nmea(seconds: int) -> list[tuple[float, bytes]]:
    out = []
    for s in range(seconds):
        hh, mm, ss = 12, 40 + (22 + s) // 60, (22 + s) % 60
        body = f"GPRMC,{hh:02d}{mm:02d}{ss:02d}.00,A,4810.8509,N,01133.9095,E,008.5,171.1,010409,002.0,E,A"
        cs = 0
        for ch in body.encode():
            cs ^= ch
        line = f"${body}*{cs:02X}\r\n".encode()
        out.append((1_238_589_622.0 + s, line * 6))
    return out


def build_stream(nmea: Path | None, seconds: int = SECONDS, seed: int = 1) -> tuple[bytes, list[bytes], int]:
    """(wire bytes, the encoded frames without delimiters, frame count) of ``seconds`` of MCU output."""
    from firmware_bridge.records import GnssBytes, Heartbeat, ImuSample, Power, PowerReason, Pps, encode_frame
    from firmware_bridge.simulator import nmea_cycles

    cycles = nmea_cycles(nmea)[:seconds] if nmea is not None else _synthetic_nmea(seconds)
    rng = random.Random(seed)
    events: list[tuple[float, object]] = []
    t0 = cycles[0][0]
    offset = 0
    for utc, data in cycles:
        events.append((utc, Pps(round((utc - t0 + 0.5) * 1e6 * 1.00005), int(utc - t0) + 1)))
        pos = 0
        while pos < len(data):
            chunk = data[pos : pos + rng.randint(8, 64)]
            events.append((utc + 0.08 + pos / 960, GnssBytes(offset, chunk)))
            offset += len(chunk)
            pos += len(chunk)
        events.append((utc + 0.5, Heartbeat(int((utc - t0) * 1000), (1, 4, 2), 0, 0, 0, 0)))
        if int(utc - t0) % 5 == 0:
            events.append((utc + 0.5001, Power(True, PowerReason.STATUS, 12_500)))
    for i in range(len(cycles) * 100):
        t = i / 100
        events.append((t0 - 0.49 + t, ImuSample((0.001, -0.002, 0.05 * math.sin(t)), (0.02, -0.01, 9.81), 35.0)))
    events.sort(key=lambda e: e[0])
    frames = [encode_frame(rec, i & 0xFFFF, round((t - t0 + 0.5) * 1e6 * 1.00005))  # type: ignore[arg-type]
              for i, (t, rec) in enumerate(events)]
    return b"".join(frames), [f[1:-1] for f in frames], len(frames)


def _reference_decode(wire: bytes) -> int:
    """The plain pipeline over the reference libraries (C COBS, hardware CRC)."""
    from cobs import cobs
    from crc32c import crc32c

    from firmware_bridge.records import HEADER, RECORDS, MsgType

    n = 0
    unpack = struct.unpack_from
    for chunk in wire.split(b"\x00"):
        if not chunk:
            continue
        try:
            body = cobs.decode(chunk)
        except cobs.DecodeError:
            continue
        if len(body) < 18 or unpack("<I", body, len(body) - 4)[0] != crc32c(body[:-4]):
            continue
        typ = HEADER.unpack_from(body)[1]
        RECORDS[MsgType(typ)].read(memoryview(body)[14:-4])
        n += 1
    return n


def run(input: str | None = None, meta: str | None = None) -> list[Row]:
    from firmware_bridge import _cobs
    from firmware_bridge._crc32c import IMPLEMENTATION, crc32c, crc32c_py
    from firmware_bridge.bridge import BridgeCore
    from firmware_bridge.link import FrameDecoder

    rows: list[Row] = []
    wire, encoded, n = build_stream(_nmea_source(input))
    case = f"{n} frames, {len(wire) / 1e3:.0f} kB"

    def ours_cobs() -> None:
        for e in encoded:
            _cobs.decode(e)

    try:
        from cobs import cobs as ref_cobs
    except ImportError:
        ref_cobs = None
    ref_t = None
    if ref_cobs is not None:
        ref_t, _ = measure(lambda: [ref_cobs.decode(e) for e in encoded])
    t, _ = measure(ours_cobs)
    rows.append(ratio_row(SUITE, case, "COBS decode", "frames/s", n / t, None if ref_t is None else n / ref_t,
                          "cobs (C)" if ref_t else None))

    bodies = [_cobs.decode(e) for e in encoded]
    size = sum(len(b) for b in bodies)
    t_py, _ = measure(lambda: [crc32c_py(b) for b in bodies], min_seconds=0.5)
    t_ext, _ = measure(lambda: [crc32c(b) for b in bodies], min_seconds=0.5)
    rows.append(ratio_row(SUITE, f"{len(bodies)} frame bodies", "CRC-32C (python table)", "MB/s", size / t_py / 1e6,
                          size / t_ext / 1e6 if IMPLEMENTATION == "crc32c-package" else None,
                          "crc32c package" if IMPLEMENTATION == "crc32c-package" else None))

    def ours_link() -> int:
        dec = FrameDecoder()
        got = 0
        for i in range(0, len(wire), 4096):
            got += len(dec.feed(wire[i : i + 4096]))
        assert dec.stats.frames_ok == n, dec.stats
        return got

    t, _ = measure(ours_link)
    ref = None
    if ref_cobs is not None:
        assert _reference_decode(wire) == n
        ref, _ = measure(lambda: _reference_decode(wire))
    rows.append(ratio_row(SUITE, case, "link decode", "frames/s", n / t, None if ref is None else n / ref,
                          "cobs+crc32c plain loop" if ref else None))

    def dispatch() -> int:
        dec = FrameDecoder()
        core = BridgeCore()
        msgs = 0
        for i in range(0, len(wire), 4096):
            for item in dec.feed(wire[i : i + 4096]):
                msgs += len(core.handle(item, 0))
        return msgs

    t, msgs = measure(dispatch)
    rows.append(Row(SUITE, case, "bridge dispatch", "frames/s", n / t))
    rows.append(Row(SUITE, case, "bridge dispatch", "bus msgs/s", msgs / t))

    nmea = _nmea_source(input)
    if nmea is not None:
        rows.append(_pty_row(nmea))
    return rows


def _pty_row(nmea: Path) -> Row:
    import logging

    from firmware_bridge.bridge import Bridge
    from firmware_bridge.link import SerialLink
    from firmware_bridge.simulator import FirmwareSimulator

    quiet = logging.getLogger("firmware_bridge")
    level = quiet.level
    quiet.setLevel(logging.WARNING)  # the bridge's boot and stats lines are not benchmark output
    try:
        return _pty_runs(nmea, Bridge, SerialLink, FirmwareSimulator)
    finally:
        quiet.setLevel(level)


def _pty_runs(nmea: Path, Bridge, SerialLink, FirmwareSimulator) -> Row:  # type: ignore[no-untyped-def]
    best = math.inf
    frames = 0
    for _ in range(2):
        with FirmwareSimulator(nmea, None, max_seconds=SECONDS, speed=0.0, keep_log=False) as sim:
            link = SerialLink.open(sim.port)
            bridge = Bridge(link, lambda m: None, stats_interval=1e9)
            t0 = time.perf_counter()
            sim.start()
            bridge.run(until=lambda sim=sim, link=link: sim.finished.is_set() and link.stats.bytes_in >= sim.bytes_written)
            best = min(best, time.perf_counter() - t0)
            frames = link.stats.frames_ok
            link.close()
    return Row(SUITE, f"{frames} frames over a pty", "pty end to end", "frames/s", frames / best)
