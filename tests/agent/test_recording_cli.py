"""The recording commands end to end: simulate, info, import, replay, record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.cli import main
from tests._fixtures import fixture_file

ROOT = Path(__file__).resolve().parents[2]


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_simulate_info_replay(tmp_path: Path, capsys) -> None:
    drive = tmp_path / "sim.mcap"
    code, out, _ = run(
        [
            "simulate",
            "--out",
            str(drive),
            "--duration",
            "1",
            "--lidar",
            "hdl32e",
            "--seed",
            "3",
            "--no-camera",
            "--json",
        ],
        capsys,
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["messages"]["LIDAR_PACKET"] > 1500 and "CAMERA_FRAME" not in doc["messages"]
    code, out, _ = run(["info", str(drive), "--json"], capsys)
    assert code == 0
    info = json.loads(out)
    assert [s["model"] for s in info["sensors"] if s["type"] == "lidar"] == ["HDL-32E"]
    assert info["duration_s"] == pytest.approx(2.0, abs=0.01)  # 1 s of sensors, ignition 0.5 s either side
    code, out, _ = run(["info", str(drive)], capsys)
    assert code == 0 and "/lidar/lidar0/packets" in out and "HDL-32E" in out
    code, out, _ = run(
        ["replay", str(drive), "--speed", "max", "--bus", "inproc://cli-replay", "--json"], capsys
    )
    assert code == 0
    assert json.loads(out)["messages"] == sum(doc["messages"].values())


def test_bad_input_exits_2_with_one_line(tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.mcap"
    bad.write_bytes(b"nope")
    for argv in (
        ["info", str(bad)],
        ["replay", str(bad)],
        ["replay", str(bad), "--speed", "slow"],
        ["import", "--out", str(tmp_path / "o.mcap")],
        ["import", "--gnss", str(bad), "--out", str(tmp_path / "o.mcap"), "--time-offset", "gnss=later"],
        ["simulate", "--out", str(tmp_path / "s.mcap"), "--duration", "0"],
    ):
        code, out, err = run(argv, capsys)
        assert code == 2, argv
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ERROR: "), (argv, err)


def test_import_command(tmp_path: Path, capsys) -> None:
    pcap = fixture_file("lidar/velodyne/hdl32e_with_gps.pcap")
    nmea = fixture_file("gnss/regensburg_drive_geko301_2010.nmea")
    video = fixture_file("camera/gopro/max-heromode.mp4")
    out = tmp_path / "imp.mcap"
    code, text, err = run(
        [
            "import",
            "--lidar",
            str(pcap),
            "--gnss",
            str(nmea),
            "--camera",
            str(video),
            "--out",
            str(out),
            "--time-offset",
            "gnss=align",
            "--json",
        ],
        capsys,
    )
    assert code == 0, err
    doc = json.loads(text)
    assert doc["lidar_packets"] >= 100 and doc["nmea_sentences"] > 700 and doc["camera_frames"] > 300
    assert doc["offsets_s"]["gnss"] != 0
    code, text, _ = run(["info", str(out), "--json"], capsys)
    info = json.loads(text)
    cams = [c for c in info["channels"] if c["bus_type"] == "CAMERA_FRAME"]
    assert cams and cams[0]["schema"] == "foxglove.CompressedImage"
    assert 29 < [s for s in info["sensors"] if s["type"] == "camera"][0]["rates_hz"]["CAMERA_FRAME"] < 31


def test_record_command_records_a_live_bus(tmp_path: Path) -> None:
    """The real console command in its own process, recording what this process publishes
    over ipc://, stopped by its --duration."""
    from agent.bus import Publisher
    from sensors.simulator import simulate_messages

    endpoint = f"ipc://{tmp_path}/bus.sock"
    out = tmp_path / "rec.mcap"
    msgs = list(simulate_messages(duration=0.2, seed=1, camera=False))
    env = dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".cache" / "numba"))
    with Publisher(endpoint, send_hwm=100_000) as pub:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from agent.cli import main; main()",
                "record",
                "--out",
                str(out),
                "--bus",
                endpoint,
                "--duration",
                "4",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        try:
            pub.wait_for_subscriber(20)
            for m in msgs:
                pub.publish(m)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, stderr
    doc = json.loads(stdout)
    assert doc["messages"] == len(msgs) and doc["dropped"] == 0
    from agent.recording import iter_drive

    got = list(iter_drive(out))
    assert [m.data for m in got if hasattr(m, "data")] == [m.data for m in msgs if hasattr(m, "data")]


def test_recorder_killed_mid_drive_leaves_a_readable_file(tmp_path: Path) -> None:
    """SIGKILL (as a power cut) after the recorder flushed: what it wrote reads back, marked
    truncated, as a prefix of what was published."""
    import signal
    import time

    from agent.bus import Publisher
    from agent.recording import DriveReader
    from sensors.simulator import simulate_messages

    endpoint = f"ipc://{tmp_path}/bus.sock"
    out = tmp_path / "cut.mcap"
    msgs = list(simulate_messages(duration=0.3, seed=4, camera=False))
    first, second = msgs[: len(msgs) // 2], msgs[len(msgs) // 2 :]
    env = dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".cache" / "numba"))
    with Publisher(endpoint, send_hwm=100_000) as pub:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from agent.cli import main; main()",
                "record",
                "--out",
                str(out),
                "--bus",
                endpoint,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env=env,
        )
        try:
            pub.wait_for_subscriber(20)
            for m in first:
                pub.publish(m)
            time.sleep(2.5)  # the recorder flushes every second, also while idle
            for m in second:
                pub.publish(m)
            time.sleep(0.2)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
        finally:
            if proc.poll() is None:
                proc.kill()
    with DriveReader(out) as reader:
        got = [m for _, _, m in reader.messages()]
        assert reader.stats.truncated
    assert len(first) <= len(got) <= len(msgs)
    for a, b in zip(msgs, got):
        assert type(a) is type(b) and a.utc_ns == b.utc_ns


def test_replay_command_delivers_every_message_to_another_process(tmp_path: Path) -> None:
    """``replay`` and ``record`` as two processes over ipc://: nothing is lost at the end
    (the replaying publisher lingers until its queue is sent before the process exits)."""
    from agent.recording import iter_drive
    from sensors.simulator import simulate_drive

    drive = simulate_drive(duration=2.0, seed=8, camera=True, out=tmp_path / "d.mcap")
    endpoint = f"ipc://{tmp_path}/bus2.sock"
    out = tmp_path / "copy.mcap"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".cache" / "numba"))
    cli = [sys.executable, "-c", "from agent.cli import main; main()"]
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "cwd": ROOT, "env": env}
    rec = ["record", "--out", str(out), "--bus", endpoint, "--duration", "6", "--json"]
    rep = ["replay", str(drive), "--bus", endpoint, "--wait-subscriber", "30", "--speed", "max", "--json"]
    procs = [subprocess.Popen(cli + rec, **pipes), subprocess.Popen(cli + rep, **pipes)]
    try:
        (rec_out, rec_err), (rep_out, rep_err) = (p.communicate(timeout=60) for p in procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert procs[0].returncode == 0, rec_err
    assert procs[1].returncode == 0, rep_err
    sent = list(iter_drive(drive))
    got = list(iter_drive(out))
    assert json.loads(rec_out)["messages"] == len(got) == len(sent) == json.loads(rep_out)["messages"]
    for a, b in zip(sent, got):
        a.seq = b.seq = a.publisher = b.publisher = 0
        assert a.encode() == b.encode()


def test_replay_max_speed_is_lossless_for_a_slow_subscriber_in_another_process(tmp_path: Path) -> None:
    """``replay --speed max`` of 20,000 messages (far past the bus high-water mark) into a
    subscriber in this process that reads slower than replay publishes: every message
    arrives, in order, with its recorded bytes (live capture would drop here)."""
    from agent.bus import Subscriber
    from agent.bus.messages import FixType, GnssFix, LidarPacket
    from agent.recording import DriveWriter

    drive = tmp_path / "big.mcap"
    t0 = 1_700_000_000_000_000_000
    sent = []
    for i in range(20_000):
        data = i.to_bytes(4, "little") * 301 + b"\x00\x00"  # 1206 bytes, each packet distinct
        sent.append(LidarPacket(source="vlp16", port=2368, data=data, utc_ns=t0 + i * 1000, mono_ns=i * 1000))
        if i % 1000 == 0:
            sent.append(GnssFix(source="gnss0", lat_deg=48.1 + i * 1e-7, lon_deg=11.5, alt_m=520.0,
                                fix_type=FixType.RTK_FIXED, utc_ns=t0 + i * 1000 + 1, mono_ns=i * 1000 + 1))
    with DriveWriter(drive) as w:
        for m in sent:
            w.write(m)
    endpoint = f"ipc://{tmp_path}/lossless.sock"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(ROOT / ".cache" / "numba"))
    cmd = [sys.executable, "-c", "from agent.cli import main; main()", "replay", str(drive), "--bus", endpoint,
           "--wait-subscriber", "30", "--speed", "max", "--json"]
    got = []
    with Subscriber(endpoint, recv_hwm=1000) as sub:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, env=env)
        try:
            while len(got) < len(sent):
                m = sub.recv(timeout_ms=30_000)
                if m is None:
                    break
                got.append(m)
                if len(got) % 500 == 0:
                    time.sleep(0.02)  # slower than replay: the publisher's queue fills
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, stderr
    assert json.loads(stdout)["messages"] == len(sent)
    assert len(got) == len(sent) and sub.stats.dropped == 0
    for a, b in zip(sent, got):
        a.seq = b.seq = a.publisher = b.publisher = 0
        assert a.encode() == b.encode()
