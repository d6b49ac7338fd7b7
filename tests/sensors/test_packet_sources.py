"""Packet sources on the real captures, on captures the test builds (pcapng, VLAN tags,
IPv4 fragments, both byte orders) and on broken input."""

from __future__ import annotations

import random
import shutil
import socket
import struct
import threading

import pytest

from sensors.errors import SourceError
from sensors.packets import open_packet_source
from sensors.packets._pcap import PcapSource
from tests._fixtures import fixture_file

VLP16 = "lidar/velodyne/vlp16_county_fair.pcap"


def _read(path, ports=None):
    with open_packet_source(path, ports) as src:
        return list(src), src.stats


def test_velodyne_pcap_counts():
    packets, stats = _read(fixture_file(VLP16))
    sizes = [(p.port, len(p.data)) for p in packets]
    assert sizes.count((2368, 1206)) == 84 and sizes.count((8308, 512)) == 16
    assert not stats.truncated and stats.packets == 100
    data_only, _ = _read(fixture_file(VLP16), {2368})
    assert len(data_only) == 84 and all(p.port == 2368 for p in data_only)
    # timestamps are the capture's, in order
    ts = [p.timestamp for p in packets]
    assert ts == sorted(ts) and 1e9 < ts[0] < 2e9


def test_ouster_pcap_fragments_are_reassembled():
    packets, stats = _read(fixture_file("lidar/ouster/OS-1-128_v2.3.0_1024x10_lb_n3.pcap"))
    lidar = [p for p in packets if p.port == 7502]
    imu = [p for p in packets if p.port == 7503]
    assert len(lidar) == 192 and {len(p.data) for p in lidar} == {8448}
    assert len(imu) == 30 and {len(p.data) for p in imu} == {48}
    assert stats.fragments_dropped == 0


def test_empty_pcap_yields_nothing():
    packets, stats = _read(fixture_file("lidar/ouster/empty.pcap"))
    assert packets == [] and not stats.truncated


def test_rosbag2_packets():
    packets, stats = _read(fixture_file("lidar/velodyne/vlp16_rosbag2"))
    assert len(packets) == 603 and stats.frames == 4
    assert {len(p.data) for p in packets} == {1206}


def test_rosbag2_with_empty_serialization_format_is_cdr(tmp_path):
    bag = fixture_file("lidar/velodyne/vlp16_rosbag2")
    copy = tmp_path / "bag"
    shutil.copytree(bag, copy)
    meta = copy / "metadata.yaml"
    meta.chmod(0o644)
    meta.write_text(meta.read_text().replace("serialization_format: cdr", 'serialization_format: ""'))
    packets, _ = _read(copy)
    assert len(packets) == 603


def test_directory_that_is_not_a_bag(tmp_path):
    (tmp_path / "junk.txt").write_text("hello")
    with pytest.raises(SourceError, match="not a ROS 2 bag"):
        open_packet_source(tmp_path)


def test_not_a_capture(tmp_path):
    p = tmp_path / "x.pcap"
    p.write_bytes(b"definitely not a capture file")
    with pytest.raises(SourceError, match="unknown file type"):
        open_packet_source(p)
    with pytest.raises(SourceError, match="no such file"):
        open_packet_source(tmp_path / "missing.pcap")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(SourceError, match="empty file"):
        open_packet_source(tmp_path / "empty")


def test_truncated_at_every_byte_of_the_first_2kb_and_random_later(tmp_path):
    full_path = fixture_file(VLP16)
    raw = full_path.read_bytes()
    full, _ = _read(full_path)
    boundaries = {24}
    pos = 24
    while pos < len(raw):  # record ends: a cut exactly there is a complete (shorter) file
        pos += 16 + struct.unpack_from("<I", raw, pos + 8)[0]
        boundaries.add(pos)
    rng = random.Random(1234)
    cuts = list(range(0, 2048)) + rng.sample(range(2048, len(raw)), 60)
    target = tmp_path / "cut.pcap"
    for cut in cuts:
        target.write_bytes(raw[:cut])
        if cut < 4:
            with pytest.raises(SourceError):
                open_packet_source(target)
            continue
        packets, stats = _read(target)
        assert packets == full[: len(packets)], cut  # a prefix, never altered packets
        assert stats.truncated == (cut not in boundaries), cut


# -- captures built by the test ------------------------------------------------------------

def _ipv4(payload: bytes, ident: int, frag_offset: int = 0, more: bool = False) -> bytes:
    flags = (0x2000 if more else 0) | (frag_offset // 8)
    hdr = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags, 64, 17, 0,
                      bytes([192, 168, 1, 201]), bytes([255, 255, 255, 255]))
    return hdr + payload


def _udp(payload: bytes, dport: int) -> bytes:
    return struct.pack(">HHHH", 2368, dport, 8 + len(payload), 0) + payload


def _ethernet(ip: bytes, vlans: int) -> bytes:
    frame = b"\xff" * 6 + b"\x60\x76\x88\x00\x00\x00"
    for i in range(vlans):
        frame += struct.pack(">HH", 0x8100, 100 + i)
    return frame + b"\x08\x00" + ip


def _frames_for(payload: bytes, dport: int, ident: int, vlans: int, mtu_payload: int | None) -> list[bytes]:
    datagram = _udp(payload, dport)
    if mtu_payload is None or len(datagram) <= mtu_payload:
        return [_ethernet(_ipv4(datagram, ident), vlans)]
    frames = []
    for off in range(0, len(datagram), mtu_payload):
        part = datagram[off : off + mtu_payload]
        frames.append(_ethernet(_ipv4(part, ident, off, off + mtu_payload < len(datagram)), vlans))
    return frames


def _pcapng(frames: list[tuple[float, bytes]], big_endian: bool = False) -> bytes:
    e = ">" if big_endian else "<"

    def block(btype: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        n = 12 + len(body)
        return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)

    shb = block(0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1))
    # interface with nanosecond resolution (if_tsresol = 9)
    opts = struct.pack(e + "HH", 9, 1) + b"\x09\x00\x00\x00" + struct.pack(e + "HH", 0, 0)
    idb = block(1, struct.pack(e + "HHI", 1, 0, 65535) + opts)
    out = shb + idb
    for ts, frame in frames:
        ticks = int(round(ts * 1e9))
        out += block(6, struct.pack(e + "IIIII", 0, ticks >> 32, ticks & 0xFFFFFFFF, len(frame), len(frame)) + frame)
    return out


def _pcap(frames: list[tuple[float, bytes]], big_endian: bool = False, nanos: bool = False) -> bytes:
    e = ">" if big_endian else "<"
    magic = 0xA1B23C4D if nanos else 0xA1B2C3D4
    out = struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    for ts, frame in frames:
        sec = int(ts)
        frac = int(round((ts - sec) * (1e9 if nanos else 1e6)))
        out += struct.pack(e + "IIII", sec, frac, len(frame), len(frame)) + frame
    return out


@pytest.mark.parametrize("container", ["pcapng-le", "pcapng-be", "pcap-be-ns"])
@pytest.mark.parametrize("vlans", [0, 1, 2])
def test_built_captures_round_trip(tmp_path, container, vlans):
    source, _ = _read(fixture_file("lidar/ouster/OS-0-32-U1_v2.2.0_1024x10.pcap"))
    source = source[:12]
    frames: list[tuple[float, bytes]] = []
    for i, p in enumerate(source):
        # fragment the big ones (like the sensor does at MTU 1500), interleave two datagrams
        frames += [(p.timestamp, f) for f in _frames_for(p.data, p.port, 1000 + i, vlans, 1480)]
    frames.append((frames[-1][0], b"\x00" * 10))  # runt frame: skipped, not fatal
    rng = random.Random(7)
    head, tail = frames[:3], frames[3:]
    rng.shuffle(head)  # fragments of one datagram out of order
    frames = head + tail
    if container.startswith("pcapng"):
        blob = _pcapng(frames, big_endian=container.endswith("be"))
    else:
        blob = _pcap(frames, big_endian=True, nanos=True)
    path = tmp_path / "built.cap"
    path.write_bytes(blob)
    got, stats = _read(path)
    assert [(p.port, p.data) for p in got] == [(p.port, p.data) for p in source]
    assert all(abs(a.timestamp - b.timestamp) < 1e-6 for a, b in zip(got, source))
    assert stats.skipped >= 1


def test_lost_fragment_is_counted_not_fatal(tmp_path):
    payload = bytes(range(256)) * 20
    frames = _frames_for(payload, 7502, 42, 0, 1480)
    blob = _pcap([(1.0, f) for f in frames[:-1]] + [(2.0, _ethernet(_ipv4(_udp(b"ok", 2368), 43), 0))])
    path = tmp_path / "lost.pcap"
    path.write_bytes(blob)
    got, stats = _read(path)
    assert [p.data for p in got] == [b"ok"]
    assert stats.fragments_dropped == 1


def test_corrupt_record_length_is_a_clear_error(tmp_path):
    blob = bytearray(_pcap([(1.0, _ethernet(_ipv4(_udp(b"x" * 100, 2368), 1), 0))]))
    struct.pack_into("<I", blob, 24 + 8, 10_000_000)
    path = tmp_path / "bad.pcap"
    path.write_bytes(bytes(blob))
    with pytest.raises(SourceError, match="corrupt record"):
        _read(path)


# -- live UDP ---------------------------------------------------------------------------

def test_udp_source_receives_datagrams():
    from sensors.packets._udp import UdpSource

    with UdpSource("udp://127.0.0.1:0", idle_timeout=1.0, max_packets=50) as src:
        port = src.address[1]
        src.port = port
        sent = [bytes([i]) * (100 + i) for i in range(50)]

        def send():
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                for d in sent:
                    s.sendto(d, ("127.0.0.1", port))

        t = threading.Thread(target=send)
        t.start()
        got = [p.data for p in src]
        t.join()
    assert got == sent
    assert src.rcvbuf > 0 and src.stats.drops == 0


def test_udp_uri_is_validated():
    with pytest.raises(SourceError, match="udp://HOST:PORT"):
        open_packet_source("udp://nohost")
