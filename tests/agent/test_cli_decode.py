"""The decode command end to end, as a user runs it: output files, --json, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

import laspy
import numpy as np
import pytest

from tests._fixtures import fixture_file


def run(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "agent", *args], capture_output=True, text=True, timeout=300, check=check)


def test_decode_json_velodyne():
    res = run("decode", str(fixture_file("lidar/velodyne/vlp16_county_fair.pcap")), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["sensor"] == "velodyne" and doc["model"] == "VLP-16"
    assert doc["packets"] == 100 and doc["bad_packets"] == 0
    assert len(doc["scans"]) >= 2
    for s in doc["scans"]:
        assert set(s) == {"index", "points", "t_start", "t_end"}
        assert s["points"] > 1000 and s["t_end"] >= s["t_start"]


@pytest.mark.parametrize("suffix", [".npz", ".ply", ".pcd", ".las", ".laz"])
def test_decode_writes_every_format(tmp_path, suffix):
    out = tmp_path / f"cloud{suffix}"
    res = run("decode", str(fixture_file("lidar/velodyne/hdl32e_with_gps.pcap")), "--out", str(out), "--json")
    assert res.returncode == 0, res.stderr
    total = sum(s["points"] for s in json.loads(res.stdout)["scans"])
    assert total > 10000
    if suffix == ".npz":
        with np.load(out) as z:
            assert len(z["x"]) == total and len(z["scans"]) == len(json.loads(res.stdout)["scans"])
            assert np.all(np.diff(z["scan"].astype(np.int64)) >= 0)
            r = np.sqrt(z["x"] ** 2 + z["y"] ** 2 + z["z"] ** 2)
            assert 0.3 < np.median(r) < 100
    elif suffix in (".las", ".laz"):
        las = laspy.read(out)
        assert len(las.points) == total
        assert abs(float(np.median(las.z))) < 50
    else:
        head = out.read_bytes()[:600]
        count = f"element vertex {total}" if suffix == ".ply" else f"POINTS {total}"
        assert count.encode() in head
    assert not list(tmp_path.glob(".*tmp*"))  # written through a temporary name, nothing left


def test_decode_ouster_needs_matching_meta(tmp_path):
    pcap = fixture_file("lidar/ouster/OS-1-128_v2.3.0_1024x10_lb_n3.pcap")
    good = run("decode", str(pcap), "--meta", str(fixture_file("lidar/ouster/OS-1-128_v2.3.0_1024x10.json")), "--json")
    assert good.returncode == 0, good.stderr
    assert json.loads(good.stdout)["model"].startswith("OS-1")
    bad = run("decode", str(pcap), "--meta", str(fixture_file("lidar/ouster/OS-0-32-U1_v2.2.0_1024x10.json")))
    assert bad.returncode == 2
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: ") and "does not match" in lines[0]


@pytest.mark.parametrize(
    "args, message",
    [
        (["decode", "/nonexistent/capture.pcap"], "no such file"),
        (["decode", "{tmp}"], "not a ROS 2 bag"),
        (["decode", "{tmp}/junk.pcap"], "unknown file type"),
        (["decode", "{pcap}", "--out", "{tmp}/x.xyz"], "unknown format"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, message):
    (tmp_path / "junk.pcap").write_bytes(b"\x00" * 100)
    pcap = str(fixture_file("lidar/velodyne/vlp16_county_fair.pcap"))
    res = run(*[a.format(tmp=tmp_path, pcap=pcap) for a in args])
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: ") and message in lines[0], res.stderr


def test_usage_error_exit_2():
    res = run("decode", "--no-such-option")
    assert res.returncode == 2 and "No such option" in res.stderr


def test_truncated_capture_decodes_what_came_before(tmp_path):
    raw = fixture_file("lidar/velodyne/vlp16_county_fair.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(raw[: len(raw) // 2 + 77])
    res = run("decode", str(cut), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert 0 < doc["packets"] < 100
    assert "truncated" in res.stderr


def test_random_bytes_on_the_data_port_are_counted_not_fatal(tmp_path):
    """Random payloads on UDP 2368 among real packets: counted bad, real scans intact."""
    from tests.sensors.test_packet_sources import _ethernet, _ipv4, _pcap, _udp
    from sensors.packets import open_packet_source

    with open_packet_source(fixture_file("lidar/velodyne/vlp16_county_fair.pcap")) as src:
        real = list(src)
    rng = np.random.default_rng(5)
    frames = []
    for i, p in enumerate(real):
        frames.append((p.timestamp, _ethernet(_ipv4(_udp(p.data, p.port), i), 0)))
        if i % 10 == 0:
            junk = rng.integers(0, 256, size=int(rng.integers(1, 1400)), dtype=np.uint8).tobytes()
            frames.append((p.timestamp, _ethernet(_ipv4(_udp(junk, 2368), 5000 + i), 0)))
    path = tmp_path / "noisy.pcap"
    path.write_bytes(_pcap(frames))
    clean = json.loads(run("decode", str(fixture_file("lidar/velodyne/vlp16_county_fair.pcap")), "--json").stdout)
    noisy = run("decode", str(path), "--json")
    assert noisy.returncode == 0, noisy.stderr
    doc = json.loads(noisy.stdout)
    assert doc["bad_packets"] == 10
    assert [s["points"] for s in doc["scans"]] == [s["points"] for s in clean["scans"]]
