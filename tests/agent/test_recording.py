"""Drive recordings: MCAP round trips, Foxglove schemas, import from real captures, replay
on a real ZeroMQ bus, recording the bus, and files cut short."""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.bus.messages import (
    NO_TIME,
    CameraFrame,
    FixType,
    GnssFix,
    ImuSample,
    LidarPacket,
    MessageType,
    NmeaSentence,
    PowerEvent,
    PowerEventKind,
    TimeSync,
)
from agent.errors import RecordingError
from agent.recording import (
    DriveReader,
    DriveWriter,
    drive_info,
    drive_metadata,
    import_drive,
    iter_drive,
    replay,
)
from sensors.simulator import simulate_drive, simulate_messages
from tests._fixtures import fixture_file

T0 = 1_717_236_000_000_000_000


def _samples() -> list:
    head = lambda k: {"utc_ns": T0 + k * 1_000_000, "mono_ns": 5_000_000 + k}  # noqa: E731
    return [
        LidarPacket(source="lidar0", port=2368, data=bytes(range(256)) * 4 + b"\xff\xee", **head(0)),
        NmeaSentence(
            source="gnss0",
            text="$GNGGA,100000.00,4809.0000,N,01134.8000,E,4,14,0.7,517.6,M,47.4,M,,*7A",
            **head(1),
        ),
        NmeaSentence(source="gnss0", text="garbage \udcff line", **head(2)),
        GnssFix(
            source="gnss0",
            lat_deg=48.15,
            lon_deg=11.58,
            alt_m=517.6,
            fix_type=FixType.RTK_FIXED,
            hdop=0.7,
            num_sats=14,
            speed_mps=10.0,
            course_deg=90.0,
            geoid_sep_m=47.4,
            fix_utc_ns=T0,
            h_std_m=0.02,
            v_std_m=0.03,
            **head(3),
        ),
        GnssFix(source="gnss0", lat_deg=math.nan, lon_deg=math.nan, **head(4)),  # no fix: NaN, NO_TIME
        ImuSample(
            source="imu0", gyro=(0.1, -0.2, 0.3), accel=(0.0, 1.5, 9.80665), temperature_c=35.5, **head(5)
        ),
        ImuSample(source="imu0", gyro=(0.0, 0.0, 0.0), accel=(0.0, 0.0, 9.8), **head(6)),
        CameraFrame(
            source="cam_front",
            camera_id="cam_front",
            width=640,
            height=360,
            jpeg=b"\xff\xd8\xff\xe0fake-jpeg\x00\x01\xff\xd9",
            frame_index=7,
            **head(7),
        ),
        PowerEvent(source="mcu", kind=PowerEventKind.IGNITION_ON, ignition=True, supply_v=12.6, **head(8)),
        PowerEvent(source="mcu", kind=PowerEventKind.VOLTAGE, ignition=True, **head(9)),
        TimeSync(source="mcu", mcu_tick=123456789, pps_utc_ns=T0, tick_hz=1e6, residual_ns=12.5, **head(10)),
    ]


def test_every_bus_type_round_trips(tmp_path: Path) -> None:
    msgs = _samples()
    path = tmp_path / "d.mcap"
    with DriveWriter(path) as w:
        for m in msgs:
            w.write(m)
    back = list(iter_drive(path))
    assert [type(m) for m in back] == [type(m) for m in msgs]
    for a, b in zip(msgs, back):
        assert b.encode() == a.encode(), a.TYPE.name
    assert back[4].fix_utc_ns == NO_TIME and math.isnan(back[4].lat_deg)
    assert back[6].temperature_c is None


def test_channels_are_what_foxglove_reads(tmp_path: Path) -> None:
    """Read with mcap's own reader: schema names and encodings, JSON documents, base64 JPEG."""
    from mcap.reader import make_reader

    msgs = _samples()
    path = tmp_path / "d.mcap"
    with DriveWriter(path) as w:
        for m in msgs:
            w.write(m)
    seen = {}
    with open(path, "rb") as fh:
        reader = make_reader(fh)
        summary = reader.get_summary()
        assert summary is not None and summary.statistics.message_count == len(msgs)
        assert all(c.compression == "zstd" for c in summary.chunk_indexes)
        for schema, channel, message in reader.iter_messages():
            seen.setdefault(
                channel.topic,
                (
                    schema.name if schema else None,
                    schema.encoding if schema else None,
                    channel.message_encoding,
                    message.data,
                ),
            )
    name, enc, menc, data = seen["/gnss/gnss0/fix"]
    assert (name, enc, menc) == ("foxglove.LocationFix", "jsonschema", "json")
    doc = json.loads(data)
    assert doc["latitude"] == 48.15 and doc["longitude"] == 11.58
    assert doc["altitude"] == pytest.approx(517.6 + 47.4)  # ellipsoidal, as LocationFix wants
    assert doc["timestamp"] == {"sec": T0 // 10**9 + 0, "nsec": 3_000_000}
    assert doc["position_covariance_type"] == 2 and len(doc["position_covariance"]) == 9
    name, enc, menc, data = seen["/camera/cam_front/compressed"]
    assert (name, enc, menc) == ("foxglove.CompressedImage", "jsonschema", "json")
    doc = json.loads(data)
    assert doc["format"] == "jpeg" and base64.b64decode(doc["data"]) == msgs[7].jpeg
    assert seen["/gnss/gnss0/nmea"][:3] == ("edge_agent.NmeaSentence", "jsonschema", "json")
    assert json.loads(seen["/gnss/gnss0/nmea"][3])["text"] == msgs[1].text
    name, enc, menc, data = seen["/lidar/lidar0/packets"]
    assert name is None and menc == "edge-agent-bus"
    assert data.endswith(msgs[0].data)  # the payload bytes, untouched


@pytest.fixture(scope="module")
def sim_drive(tmp_path_factory) -> Path:
    return simulate_drive(out=tmp_path_factory.mktemp("sim") / "sim.mcap", duration=2.0, seed=9, camera=True)


def test_simulated_drive_reads_back_as_the_simulator_made_it(sim_drive: Path) -> None:
    direct = list(simulate_messages(duration=2.0, seed=9, camera=True))
    back = list(iter_drive(sim_drive))
    assert len(back) == len(direct) > 1000
    assert all(a.encode() == b.encode() for a, b in zip(direct, back))
    info = drive_info(sim_drive)
    lidar = [s for s in info["sensors"] if s["type"] == "lidar"][0]
    assert lidar["model"] == "VLP-16" and lidar["return_mode"] == "strongest"
    assert info["duration_s"] == pytest.approx(3.0, abs=0.01) and not info["truncated"]  # ignition on to off
    assert {c["bus_type"] for c in info["channels"]} == {
        "LIDAR_PACKET",
        "NMEA_SENTENCE",
        "GNSS_FIX",
        "IMU_SAMPLE",
        "CAMERA_FRAME",
        "POWER_EVENT",
    }
    assert info["metadata"]["drive"]["lidar_model"] == "VLP-16"
    meta = drive_metadata(sim_drive)
    assert meta["drive"]["seed"] == "9" and meta["drive"]["lidar_mount_xyz_rpy"] == "0,0,1.9,0,0,0"


# ---- files cut short ------------------------------------------------------------------------------


def test_truncated_recording_reads_up_to_its_last_complete_message(
    sim_drive: Path, tmp_path: Path, caplog
) -> None:
    full = [m.encode() for m in iter_drive(sim_drive)]
    data = sim_drive.read_bytes()
    with DriveReader(sim_drive) as r:
        list(r.raw_messages())
        assert r.stats.complete and r.stats.chunks >= 2
    offsets = [
        8,
        20,
        5000,
        len(data) // 3,
        len(data) // 2,
        2 * len(data) // 3,
        len(data) - 5000,
        len(data) - 1,
    ]
    got_counts = []
    for off in offsets:
        cut = tmp_path / f"cut{off}.mcap"
        cut.write_bytes(data[:off])
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="agent.recording"):
            got = [m.encode() for m in iter_drive(cut)]
        assert got == full[: len(got)], f"cut at {off}: not a prefix"
        got_counts.append(len(got))
        with DriveReader(cut) as r:
            n = sum(1 for _ in r.raw_messages())
            if r.stats.truncated:
                assert any("truncated" in rec.getMessage() for rec in caplog.records)
            else:  # cut inside the summary: every message is there
                assert n == len(full)
    assert got_counts == sorted(got_counts)
    # Cut mid-way, the partly written chunk still gives its complete messages: more than
    # the chunks before it hold.
    mid = tmp_path / "mid.mcap"
    mid.write_bytes(data[: len(data) // 2])
    with DriveReader(mid) as r:
        n = sum(1 for _ in r.raw_messages())
        complete_chunks = r.stats.chunks
    assert r.stats.truncated and 0 < n < len(full)
    with DriveReader(sim_drive) as r:
        per_chunk = []
        for _ in r.raw_messages():
            per_chunk.append(r.stats.chunks)
    assert n > per_chunk.count(complete_chunks) + sum(1 for c in per_chunk if c < complete_chunks)
    stats = replay(mid, lambda m: None, "max")
    assert stats.truncated and stats.messages == n


def test_not_an_mcap_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "x.mcap"
    bad.write_bytes(b"hello world, not an mcap")
    with pytest.raises(RecordingError, match="not an MCAP file"):
        list(iter_drive(bad))
    (tmp_path / "empty.mcap").write_bytes(b"")
    with pytest.raises(RecordingError, match="not an MCAP file"):
        list(iter_drive(tmp_path / "empty.mcap"))
    with pytest.raises(RecordingError, match="cannot open"):
        list(iter_drive(tmp_path / "missing.mcap"))


def test_foreign_channels_are_skipped(tmp_path: Path, caplog) -> None:
    from mcap.writer import Writer

    path = tmp_path / "foreign.mcap"
    with open(path, "wb") as fh:
        w = Writer(fh)
        w.start()
        sid = w.register_schema("other.Thing", "jsonschema", b"{}")
        cid = w.register_channel("/other", "json", sid)
        w.add_message(cid, log_time=1, data=b"{}", publish_time=1)
        msg = _samples()[5]
        from agent.recording import SCHEMAS, encode_payload

        sid2 = w.register_schema(
            *SCHEMAS[MessageType.IMU_SAMPLE][:1], "jsonschema", SCHEMAS[MessageType.IMU_SAMPLE][1]
        )
        cid2 = w.register_channel("/imu/x", "json", sid2)
        w.add_message(cid2, log_time=2, data=encode_payload(msg), publish_time=2)
        w.finish()
    with caplog.at_level(logging.WARNING):
        got = list(iter_drive(path))
    assert [m.encode() for m in got] == [msg.encode()]
    assert any("/other" in r.getMessage() for r in caplog.records)


# ---- replay and record on a real bus -----------------------------------------------------------


def test_replay_keeps_recorded_timing(sim_drive: Path) -> None:
    slow = replay(sim_drive, lambda m: None, 4.0)
    fast = replay(sim_drive, lambda m: None, "max")
    assert slow.messages == fast.messages > 0
    assert slow.wall_s >= slow.drive_s / 4.0 * 0.95
    assert slow.realtime_factor == pytest.approx(4.0, rel=0.1)
    with pytest.raises(RecordingError, match="positive number or 'max'"):
        replay(sim_drive, lambda m: None, "fast")


def test_record_then_replay_through_zeromq(tmp_path: Path) -> None:
    from agent.bus import Publisher, Subscriber

    sent = list(simulate_messages(duration=0.3, seed=2, camera=True))
    out = tmp_path / "rec.mcap"
    endpoint = "inproc://test-recording-record"
    ready = threading.Event()
    result = {}
    with Publisher(endpoint, send_hwm=100_000) as pub:
        th = threading.Thread(
            target=lambda: result.update(
                stats=__import__("agent.recording", fromlist=["record"]).record(
                    endpoint, out, duration=20.0, max_messages=len(sent), on_ready=ready.set
                )
            )
        )
        th.start()
        assert ready.wait(10)
        pub.wait_for_subscriber(10)
        for m in sent:
            pub.publish(m)
        th.join(30)
    assert not th.is_alive()
    stats = result["stats"]
    assert stats.messages == len(sent) and stats.dropped == 0
    got = list(iter_drive(out))
    # The recorder keeps the publisher's sequence numbers in LiDAR records; compare payloads.
    assert [type(m) for m in got] == [type(m) for m in sent]
    for a, b in zip(sent, got):
        a.seq = b.seq = 0
        a.publisher = b.publisher = 0
        assert a.encode() == b.encode()
    # And back onto a bus: a subscriber receives the same messages.
    endpoint2 = "inproc://test-recording-replay"
    with Publisher(endpoint2, send_hwm=100_000) as pub, Subscriber(endpoint2, recv_hwm=100_000) as sub:
        pub.wait_for_subscriber(10)
        st = replay(out, pub, "max")
        received = [sub.recv(2000) for _ in range(st.messages)]
    assert st.messages == len(sent) and sub.stats.dropped == 0
    for a, b in zip(sent, received):
        assert b is not None
        b.seq = 0
        b.publisher = 0
        assert a.encode() == b.encode()


# ---- import from real recordings --------------------------------------------------------------


def _nmea_lines(path: Path) -> list[str]:
    out = []
    for raw in path.read_bytes().splitlines():
        text = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
        if text.strip() and not text.startswith("#"):
            out.append(text)
    return out


def test_import_then_replay_is_byte_identical(tmp_path: Path) -> None:
    from agent.bus import Publisher, Subscriber
    from sensors.packets import open_packet_source

    pcap = fixture_file("lidar/velodyne/vlp16_county_fair.pcap")
    nmea = fixture_file("gnss/munich_drive_2014.nmea")
    cams = fixture_file("camera/nuscenes")
    out = tmp_path / "imported.mcap"
    stats = import_drive(
        out, lidar=str(pcap), gnss=str(nmea), camera=str(cams), offsets={"gnss": "align", "camera": "align"}
    )
    with open_packet_source(pcap) as src:
        packets = list(src)
    assert stats.lidar_packets == len(packets) == 100
    jpgs = sorted(cams.glob("*.jpg"))
    assert stats.camera_frames == len(jpgs) == 6
    endpoint = "inproc://test-recording-import"
    with Publisher(endpoint, send_hwm=100_000) as pub, Subscriber(endpoint, recv_hwm=100_000) as sub:
        pub.wait_for_subscriber(10)
        st = replay(out, pub, "max")
        got = [sub.recv(2000) for _ in range(st.messages)]
    assert sub.stats.dropped == 0 and all(m is not None for m in got)
    lidar = [m for m in got if isinstance(m, LidarPacket)]
    assert [(p.data, p.port) for p in lidar] == [(p.data, p.port) for p in packets]
    assert [p.utc_ns for p in lidar] == [int(round(p.timestamp * 1e9)) for p in packets]
    texts = [m.text for m in got if isinstance(m, NmeaSentence)]
    assert texts == _nmea_lines(nmea)
    frames = {m.camera_id: m for m in got if isinstance(m, CameraFrame)}
    for f in jpgs:
        frame = frames[f.name.split("__")[0]]
        assert frame.jpeg == f.read_bytes() and (frame.width, frame.height) == (1600, 900)
    # Aligned: the NMEA track and the images start at the first LiDAR packet.
    first_nmea = min(m.utc_ns for m in got if isinstance(m, NmeaSentence))
    assert first_nmea == lidar[0].utc_ns
    assert min(f.utc_ns for f in frames.values()) == lidar[0].utc_ns
    fixes = [m for m in got if isinstance(m, GnssFix)]
    assert len(fixes) > 1000 and all(abs(f.lat_deg - 48.1) < 0.3 for f in fixes if f.has_fix)


def test_import_rosbag2_and_offsets(tmp_path: Path) -> None:
    from sensors.packets import open_packet_source

    bag = fixture_file("lidar/velodyne/vlp16_rosbag2")
    with open_packet_source(bag) as src:
        packets = list(src)
    out = tmp_path / "bag.mcap"
    stats = import_drive(out, lidar=str(bag), offsets={"lidar": 2.5})
    assert stats.lidar_packets == len(packets) > 500
    got = list(iter_drive(out))
    assert [m.data for m in got] == [p.data for p in packets]
    assert got[0].utc_ns == int(round(packets[0].timestamp * 1e9)) + 2_500_000_000


def test_import_rejects_bad_input(tmp_path: Path) -> None:
    from agent.recording._import import parse_offsets

    with pytest.raises(RecordingError, match="nothing to import"):
        import_drive(tmp_path / "x.mcap")
    with pytest.raises(RecordingError, match="SOURCE=SECONDS"):
        parse_offsets(["radar=1"])
    with pytest.raises(RecordingError, match="not a number"):
        parse_offsets(["gnss=soon"])
    assert parse_offsets(["gnss=align", "camera=-1.5"]) == {"gnss": "align", "camera": -1.5}
    with pytest.raises(RecordingError, match="LiDAR capture .*no such file"):
        import_drive(tmp_path / "x.mcap", lidar=str(tmp_path / "none.pcap"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecordingError, match="no images"):
        import_drive(tmp_path / "x.mcap", camera=str(tmp_path / "empty"))


_floats = st.floats(allow_nan=True, allow_infinity=True, width=64)
_f32 = st.floats(allow_nan=True, allow_infinity=False, width=32)


def _same(a: float, b: float) -> bool:
    """Equal, with NaN equal to NaN and an infinity read back as NaN (JSON has neither)."""
    if math.isnan(a) or math.isinf(a):
        return math.isnan(b)
    return a == b


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    gyro=st.tuples(_floats, _floats, _floats),
    lat=_floats,
    hdop=_f32,
    text=st.text(max_size=80),
    utc=st.integers(min_value=-(2**63), max_value=2**63 - 1),
)
def test_json_channels_round_trip_any_values(tmp_path: Path, gyro, lat, hdop, text, utc) -> None:
    msgs = [
        ImuSample(source="imu0", gyro=gyro, accel=(1.0, 2.0, 3.0), utc_ns=utc, mono_ns=utc),
        GnssFix(source="g", lat_deg=lat, lon_deg=1.0, hdop=hdop, utc_ns=utc, mono_ns=-utc - 1),
        NmeaSentence(source="g", text=text, utc_ns=utc, mono_ns=0),
    ]
    path = tmp_path / "h.mcap"
    with DriveWriter(path) as w:
        for m in msgs:
            w.write(m)
    imu, fix, nmea = iter_drive(path)
    assert all(_same(a, b) for a, b in zip(gyro, imu.gyro)) and imu.accel == (1.0, 2.0, 3.0)
    assert _same(lat, fix.lat_deg) and _same(hdop, fix.hdop)
    assert nmea.text == text
    assert imu.utc_ns == fix.utc_ns == nmea.utc_ns == utc and fix.mono_ns == -utc - 1


def test_import_ouster_keeps_its_metadata(tmp_path: Path) -> None:
    from sensors.packets import open_packet_source

    pcap = fixture_file("lidar/ouster/OS-0-32-U1_v2.2.0_1024x10.pcap")
    meta = fixture_file("lidar/ouster/OS-0-32-U1_v2.2.0_1024x10.json")
    out = tmp_path / "ouster.mcap"
    stats = import_drive(out, lidar=str(pcap), lidar_meta=str(meta))
    with open_packet_source(pcap) as src:
        packets = list(src)
    assert stats.lidar_packets == len(packets) > 0
    with DriveReader(out) as reader:
        got = [m for _, _, m in reader.messages()]
        assert reader.metadata["lidar"]["meta_json"] == meta.read_text()
    assert [(m.port, m.data) for m in got] == [(p.port, p.data) for p in packets]
    info = drive_info(out)
    assert [s["model"] for s in info["sensors"]] == ["Ouster (sensor metadata in the recording)"]


def test_import_gnss_from_genivi_and_position_packets(tmp_path: Path) -> None:
    genivi = fixture_file("gnss/genivi_rpi_regensburg_2016.log")
    stats = import_drive(tmp_path / "g.mcap", gnss=str(genivi))
    assert stats.gnss_fixes > 100 and stats.imu_samples > 1000
    got = list(iter_drive(tmp_path / "g.mcap"))
    assert {type(m) for m in got} == {GnssFix, ImuSample}
    pcap = fixture_file("lidar/velodyne/hdl32e_with_gps.pcap")
    stats = import_drive(tmp_path / "p.mcap", lidar=str(pcap), gnss=str(pcap))
    got = list(iter_drive(tmp_path / "p.mcap"))
    rmc = [m for m in got if isinstance(m, NmeaSentence)]
    assert rmc and all(m.text.startswith("$GPRMC") for m in rmc)
    assert stats.nmea_sentences == len(rmc)
