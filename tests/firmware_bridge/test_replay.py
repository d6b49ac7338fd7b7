"""The bridge over a captured byte file (the link's other input), and its config factory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from agent.bus import ImuSample as BusImu
from agent.bus import NmeaSentence, PowerEvent, TimeSync
from agent.config import load_config
from firmware_bridge._config import BridgeConfig
from firmware_bridge.bridge import Bridge, BridgeCore
from firmware_bridge.link import SerialLink
from firmware_bridge.records import (
    Boot,
    GnssBytes,
    ImuSample,
    Power,
    PowerReason,
    Pps,
    ResetReason,
    encode_frame,
)

RMC = b"$GPRMC,124022.00,A,4810.8509,N,01133.9095,E,008.5,171.1,010409,002.0,E,A*3B\r\n"
GGA = b"$GPGGA,124022.00,4810.8509,N,01133.9095,E,1,04,23.9,-0704.5,M,0046.3,M,,*41\r\n"


def _capture() -> bytes:
    """Two seconds of link bytes: boot, ignition, PPS + RMC/GGA each second, IMU; with noise."""
    frames = [encode_frame(Boot((1, 0, 0), ResetReason.POWER_ON), 0, 0),
              encode_frame(Power(True, PowerReason.IGNITION_ON, 12_000), 1, 10)]
    seq, offset = 2, 0
    for s in range(2):
        edge = 500_000 + s * 1_000_000
        rmc = RMC.replace(b"124022", f"1240{22 + s:02d}".encode())
        cs = 0
        for ch in rmc[1 : rmc.index(b"*")]:
            cs ^= ch
        rmc = rmc[: rmc.index(b"*") + 1] + f"{cs:02X}".encode() + b"\r\n"
        frames.append(encode_frame(Pps(edge, s + 1), seq, edge + 200))
        seq += 1
        data = rmc + GGA
        for i in range(0, len(data), 40):  # the RMC is cut across two chunks
            chunk = data[i : i + 40]
            frames.append(encode_frame(GnssBytes(offset, chunk), seq, edge + 100_000 + i * 1000))
            offset += len(chunk)
            seq += 1
        for k in range(10):
            frames.append(encode_frame(ImuSample((0.0, 0.0, 0.125), (0.0, 0.0, 9.75), 30.0), seq, edge + k * 100_000))
            seq += 1
    return b"\x13\x37garbage" + b"".join(frames[:5]) + b"noise\x00" + b"".join(frames[5:])


def test_bridge_reads_a_capture_file_to_its_end(tmp_path: Path) -> None:
    cap = tmp_path / "link.bin"
    cap.write_bytes(_capture())
    got: list = []
    with SerialLink(open(cap, "rb"), read_size=64) as link:
        stats = Bridge(link, got.append, stats_interval=60).run()
    assert stats["link"]["frames_ok"] == 2 + 2 * (1 + 4 + 10)
    assert stats["link"]["decode_errors"] + stats["link"]["crc_errors"] == 1  # "noise"; the leading bytes are a late join
    assert [m.text[3:6] for m in got if isinstance(m, NmeaSentence)] == ["RMC", "GGA", "RMC", "GGA"]
    syncs = [m for m in got if isinstance(m, TimeSync)]
    assert [s.pps_utc_ns // 10**9 for s in syncs] == [1_238_589_622, 1_238_589_623]
    assert sum(isinstance(m, BusImu) for m in got) == 20 and isinstance(got[0], PowerEvent)
    imu = [m for m in got if isinstance(m, BusImu)]
    # Second second's samples are on the fitted line: sample k at edge + k·100 ms.
    assert imu[-1].utc_ns == 1_238_589_623 * 10**9 + 900_000_000


def test_cli_replays_a_capture_file(tmp_path: Path) -> None:
    cap = tmp_path / "link.bin"
    cap.write_bytes(_capture())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    r = subprocess.run([sys.executable, "-c", "from agent.cli import main; main()", "bridge", "--port", str(cap), "--json"],
                       check=False, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["link"]["frames_ok"] == 32 and doc["published"]["TIME_SYNC"] == 2
    assert "messages are counted, not published" in r.stderr  # the default bus is in-process


def test_core_from_config() -> None:
    cfg = BridgeConfig(timesync_window=4, outlier_s=0.5, source="mcu-front")
    core = BridgeCore.from_config(cfg)
    assert core.clock.window == 4 and core.clock.outlier == 0.5 and core.source == "mcu-front"
    assert load_config().bridge == BridgeConfig()  # configs/default.yaml states the model's defaults
