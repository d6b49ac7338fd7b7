"""The sensor simulator: packet format, ground truth recovered by decoders, determinism,
and GNSS / IMU / camera outputs consistent with the trajectory."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from sensors.simulator import DriveSimulation, get_model, simulate_drive
from sensors.simulator._models import DATA_PORT, POSITION_PORT

T_WINDOW = 0.35  # seconds of LiDAR: three full rotations


def _packets(sim: DriveSimulation, seconds: float = T_WINDOW, start: float = 0.0):
    p0 = sim.sensor.packet_count(start)
    return list(sim.sensor.simulate(p0, p0 + sim.sensor.packet_count(seconds), sim._rmc_at))


@pytest.fixture(scope="module")
def vlp16() -> DriveSimulation:
    return DriveSimulation(duration=20.0, lidar="vlp16", seed=11, camera=False)


# ---- packet format (read with the manual's layout, no decoder) --------------------------------


@pytest.mark.parametrize("name", ["vlp16", "vlp32c", "hdl32e"])
def test_data_packets_follow_the_velodyne_format(name: str) -> None:
    sim = DriveSimulation(duration=2.0, lidar=name, seed=2, camera=False)
    model = get_model(name)
    pkts = [p for p in _packets(sim, 0.05) if p.port == DATA_PORT]
    assert len(pkts) > 10
    toh = []
    for p in pkts:
        d = p.data
        assert len(d) == 1206
        assert d[1204] == 0x37 and d[1205] == model.product_id
        az = []
        for b in range(12):
            flag, a = struct.unpack_from("<HH", d, b * 100)
            assert flag == 0xEEFF and d[b * 100 : b * 100 + 2] == b"\xff\xee"
            assert 0 <= a < 36000
            az.append(a)
        # 600 rpm: the azimuth advances 360 deg * 10 Hz * block duration per block.
        step = np.diff(np.unwrap(np.radians(np.array(az) / 100.0)))
        assert np.allclose(np.degrees(step), 3600 * model.block_us * 1e-6, atol=0.011)
        toh.append(struct.unpack_from("<I", d, 1200)[0])
        # The timestamp is microseconds past the hour of the packet's first firing.
        assert abs(((p.timestamp - model.packet_us * 1e-6 - 50e-6) % 3600) * 1e6 - toh[-1]) <= 1.0
    assert np.allclose(np.diff(toh), model.packet_us, atol=1.0)


def test_position_packets_carry_a_valid_rmc(vlp16: DriveSimulation) -> None:
    from sensors.gnss import Rmc, try_parse
    from sensors.lidar.velodyne import parse_position_packet

    pos = [p for p in _packets(vlp16, 0.2) if p.port == POSITION_PORT]
    assert len(pos) >= 10
    for p in pos:
        assert len(p.data) == 512
        info = parse_position_packet(p.data, p.timestamp)
        assert info is not None
        text = p.data[206:].split(b"\r\n")[0].decode()
        rec = try_parse(text, require_checksum=True)
        assert isinstance(rec, Rmc) and rec.valid
        assert abs(rec.lat - 48.15) < 1e-3 and abs(rec.lon - 11.58) < 1e-3


# ---- geometry: decoded points lie on the scene's surfaces ------------------------------------


def _reference_decode_vlp16(pkts, model) -> tuple[np.ndarray, np.ndarray]:
    """Points (sensor frame) and times from VLP-16 packets, written from the manual: block
    azimuth interpolated by firing time, 2 mm distances, laser elevation and vertical
    correction tables, time from the packet's own microseconds-past-the-hour."""
    elev = np.radians(np.array(model.elevation_deg))
    zoff = np.array(model.z_offset_mm) * 1e-3
    offs = np.array(model.record_offset_us) * 1e-6
    xyz, times = [], []
    for p in pkts:
        d = p.data
        az = np.array([struct.unpack_from("<H", d, b * 100 + 2)[0] for b in range(12)]) / 100.0
        delta = np.diff(np.unwrap(np.radians(az)))
        delta = np.degrees(np.append(delta, delta[-1]))
        hour = math.floor(p.timestamp / 3600) * 3600
        t_packet = hour + struct.unpack_from("<I", d, 1200)[0] * 1e-6
        for b in range(12):
            for i in range(32):
                dist, _ = struct.unpack_from("<HB", d, b * 100 + 4 + 3 * i)
                if dist == 0:
                    continue
                r = dist * 0.002
                a = math.radians(az[b] + delta[b] * offs[i] / 110.592e-6)
                w = elev[i % 16]
                xyz.append(
                    (
                        r * math.cos(w) * math.cos(a),
                        -r * math.cos(w) * math.sin(a),
                        r * math.sin(w) + zoff[i % 16],
                    )
                )
                times.append(t_packet + b * 110.592e-6 + offs[i])
    return np.array(xyz), np.array(times)


def _check_surfaces(sim: DriveSimulation, world: np.ndarray, median_max: float = 0.005) -> None:
    d = sim.scene.distance_to_surface(world)
    assert len(d) > 10_000
    assert np.quantile(d, 0.999) < 0.03, f"p99.9 distance {np.quantile(d, 0.999):.4f} m"
    assert np.median(d) < median_max
    # Ground points: far from every object, their height is the road's (z = 0).
    off_objects = sim.scene.distance_to_surface(world, ground=False) > 0.3
    ground = off_objects & (world[:, 2] < 0.3)
    assert ground.sum() > 1000
    assert np.abs(world[ground, 2]).max() < 0.03
    # Facade points: the longest building on the north side of the street near the start.
    best, facade = 0.0, None
    for box, kind in zip(sim.scene.boxes, sim.scene.box_kind):
        overlap = min(box[3], 25.0) - max(box[0], -15.0)
        if kind == "building" and 12.0 <= box[1] <= 13.6 and overlap > best:
            best, facade = overlap, box
    assert facade is not None
    on = (
        (world[:, 0] > facade[0] + 0.5)
        & (world[:, 0] < facade[3] - 0.5)
        & (world[:, 2] > 2.5)
        & (world[:, 2] < facade[5] - 0.5)
        & (np.abs(world[:, 1] - facade[1]) < 0.5)
    )
    assert on.sum() > 50
    assert np.abs(world[on, 1] - facade[1]).max() < 0.03


def test_manual_decode_finds_the_scene(vlp16: DriveSimulation) -> None:
    pkts = [p for p in _packets(vlp16, 0.12) if p.port == DATA_PORT]
    xyz, t = _reference_decode_vlp16(pkts, get_model("vlp16"))
    _check_surfaces(vlp16, vlp16.to_scene(xyz, t))


@pytest.mark.parametrize("name", ["vlp16", "vlp32c", "hdl32e"])
def test_project_decoder_finds_the_scene(name: str) -> None:
    from sensors.lidar import make_decoder

    sim = DriveSimulation(duration=20.0, lidar=name, seed=4, camera=False)
    dec = make_decoder("velodyne")
    scans = list(dec.feed(_packets(sim))) + list(dec.flush())
    assert dec.model == get_model(name).name
    assert dec.stats.bad_packets == 0
    full = [s for s in scans if 0.095 < s.t_end - s.t_start < 0.105]
    assert len(full) >= 2
    xyz = np.concatenate([s.xyz for s in full])
    t = np.concatenate([s.time for s in full])
    _check_surfaces(sim, sim.to_scene(xyz, t))


@pytest.mark.parametrize("name", ["vlp16", "vlp32c", "hdl32e"])
def test_reference_decoder_finds_the_scene(name: str) -> None:
    vd = pytest.importorskip("velodyne_decoder")
    sim = DriveSimulation(duration=20.0, lidar=name, seed=4, camera=False)
    model = {"vlp16": vd.Model.VLP16, "vlp32c": vd.Model.VLP32C, "hdl32e": vd.Model.HDL32E}[name]
    dec = vd.StreamDecoder(vd.Config(model=model, timestamp_first_packet=True))
    clouds = []
    for p in _packets(sim):
        if p.port == DATA_PORT:
            got = dec.decode(p.timestamp, p.data)
            if got is not None:
                clouds.append(got)
    assert len(clouds) >= 2
    xyz = np.concatenate([c[1][:, :3] for c in clouds]).astype(np.float64)
    t = np.concatenate([c[0].device + c[1][:, 4].astype(np.float64) for c in clouds])
    _check_surfaces(sim, sim.to_scene(xyz, t))


def test_turning_drive_still_matches(vlp16: DriveSimulation) -> None:
    """Mid-turn (yaw changing during the sweep) the poses at the packets' own device times
    still put every return on its surface."""
    t_turn = 0.5 * sum(vlp16.trajectory.turn_times)
    pkts = [p for p in _packets(vlp16, 0.12, start=t_turn) if p.port == DATA_PORT]
    xyz, t = _reference_decode_vlp16(pkts, get_model("vlp16"))
    d = vlp16.scene.distance_to_surface(vlp16.to_scene(xyz, t))
    assert len(d) > 10_000
    assert d.max() < 0.03


# ---- determinism ----------------------------------------------------------------------------


def test_same_seed_same_bytes(tmp_path) -> None:
    a = simulate_drive(out=tmp_path / "a.mcap", duration=1.0, seed=5)
    b = simulate_drive(out=tmp_path / "b.mcap", duration=1.0, seed=5)
    c = simulate_drive(out=tmp_path / "c.mcap", duration=1.0, seed=6)
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_unknown_model_and_bad_duration_are_rejected() -> None:
    from sensors.errors import SensorError

    with pytest.raises(SensorError, match="unknown simulated LiDAR 'vls256'"):
        DriveSimulation(lidar="vls256")
    with pytest.raises(SensorError, match="positive number of seconds"):
        DriveSimulation(duration=-1)


# ---- GNSS, IMU, camera ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nav_events(vlp16: DriveSimulation):
    return list(vlp16.events({"nmea", "fix", "imu"}))


def _metres(lat1, lon1, lat2, lon2) -> float:
    r = 6371008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = (
        math.sin((p2 - p1) / 2) ** 2
        + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lon2 - lon1) / 2) ** 2
    )
    return 2 * r * math.asin(math.sqrt(a))


def test_nmea_is_valid_and_follows_the_trajectory(vlp16: DriveSimulation, nav_events) -> None:
    from sensors.gnss import Gga, Rmc, try_parse

    recs = [try_parse(e.payload, require_checksum=True) for e in nav_events if e.kind == "nmea"]
    ggas = [r for r in recs if isinstance(r, Gga)]
    rmcs = [r for r in recs if isinstance(r, Rmc)]
    assert len(ggas) == len(rmcs) == 200  # 10 Hz for 20 s
    assert abs(ggas[0].lat - 48.15) < 1e-7 and abs(ggas[0].lon - 11.58) < 1e-7
    assert ggas[0].quality == 4 and ggas[0].num_sats == 14
    # 10 m/s on the first straight: 1 m between 10 Hz fixes, heading east.
    for a, b in zip(ggas[:50], ggas[1:51]):
        assert abs(_metres(a.lat, a.lon, b.lat, b.lon) - 1.0) < 0.01
    assert all(
        abs(r.course_deg - 90.0) < 0.01 and abs(r.speed_knots - 10 / 0.514444) < 0.01 for r in rmcs[:50]
    )
    assert rmcs[-1].course_deg < 0.01 or rmcs[-1].course_deg > 359.99  # north after the turn
    assert rmcs[0].date.isoformat() == "2024-06-01"


def test_imu_integrates_to_the_gnss_track(nav_events) -> None:
    imu = [e for e in nav_events if e.kind == "imu"]
    fixes = {round(e.payload.epoch, 3): e.payload for e in nav_events if e.kind == "fix"}
    assert len(imu) == 2000
    t = np.array([e.t for e in imu])
    gz = np.array([e.payload.gyro[2] for e in imu])
    ax = np.array([e.payload.accel[0] for e in imu])
    ay = np.array([e.payload.accel[1] for e in imu])
    assert np.allclose([e.payload.accel[2] for e in imu], 9.80665)
    # Yaw rate integrates to the quarter turn the course shows.
    yaw = np.concatenate([[0.0], np.cumsum((gz[1:] + gz[:-1]) / 2 * np.diff(t))])
    assert abs(yaw[-1] - math.pi / 2) < 0.01
    # Forward acceleration integrates to the GNSS speed, at every fix.
    v = 10.0 + np.concatenate([[0.0], np.cumsum((ax[1:] + ax[:-1]) / 2 * np.diff(t))])
    for k in range(0, 2000, 100):
        f = fixes[round(t[k], 3)]
        assert abs(v[k] - f.speed_mps) < 0.05
    # In the turn the lateral acceleration is v^2 / R (left turn: +y).
    turning = gz > 0.1
    assert turning.sum() > 300
    assert np.allclose(ay[turning], v[turning] ** 2 / 15.0, rtol=0.02)


def test_camera_frames_are_jpegs_of_the_street() -> None:
    import cv2

    sim = DriveSimulation(duration=0.5, seed=3, camera=True)
    frames = [e.payload for e in sim.events({"camera"})]
    assert len(frames) == 5
    for f in frames:
        img = cv2.imdecode(np.frombuffer(f.jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (360, 640, 3)
        assert img[:100].mean(axis=(0, 1))[0] > img[:100].mean(axis=(0, 1))[2]  # blue sky (BGR)
        assert img.std() > 20  # buildings and cars drawn, not a blank frame


def test_power_events_bracket_the_drive() -> None:
    from agent.bus.messages import PowerEvent, PowerEventKind
    from sensors.simulator import simulate_messages

    msgs = list(simulate_messages(duration=2.5, seed=1, camera=False))
    power = [m for m in msgs if isinstance(m, PowerEvent)]
    assert [p.kind for p in power] == [PowerEventKind.IGNITION_ON] + [PowerEventKind.VOLTAGE] * 3 + [
        PowerEventKind.IGNITION_OFF
    ]
    assert msgs[0] is power[0] and msgs[-1] is power[-1]  # the session spans every sample
    assert [p.ignition for p in power] == [True, True, True, True, False]


def test_simulate_drive_without_out_gives_the_messages() -> None:
    from sensors.simulator import simulate_messages

    a = [m.encode() for m in simulate_drive(0.2, "vlp32c", 1, camera=False)]
    b = [m.encode() for m in simulate_messages(duration=0.2, lidar="vlp32c", seed=1, camera=False)]
    assert a == b and len(a) > 300


def test_lidar_packets_window_matches_the_event_stream() -> None:
    sim = DriveSimulation(duration=1.0, seed=3, camera=False)
    stream = [e.payload for e in sim.events({"lidar"})]
    data = [p.data for p in stream if p.port == DATA_PORT]
    window = [p.data for p in sim.lidar_packets(0.25, 0.5) if p.port == DATA_PORT]
    first = sim.sensor.packet_count(0.25)
    assert len(window) > 300 and window == data[first : first + len(window)]
    assert all(p.port == DATA_PORT for p in sim.lidar_packets(0.0, 0.1, position=False))
    assert len(sim.lidar_packets()) == len(stream)
