"""GNSS sources over real inputs: NMEA files, a serial pseudo-terminal, a real gpsd fed by
gpsfake, Velodyne position packets, and the source registry."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from agent.bus.messages import FixType, GnssFix, NmeaSentence
from sensors.errors import SourceError
from sensors.gnss import (
    GNSS_SOURCES,
    GnssSource,
    GpsdSource,
    NmeaFileSource,
    SerialNmeaSource,
    VelodynePositionSource,
    gnss_source_kind,
    open_gnss_source,
    with_checksum,
)
from tests._fixtures import fixture_file

RTK_LOG = "gnss/receivers/nmea-rtk.log"


def _data_lines(path: Path) -> list[str]:
    return [ln for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]


@pytest.mark.fixtures
def test_nmea_file_source_yields_every_line_and_the_fixes() -> None:
    path = fixture_file(RTK_LOG)
    with NmeaFileSource(path, source_id="gnss0") as src:
        assert isinstance(src, GnssSource)
        items = list(src)
    sentences = [i for i in items if isinstance(i, NmeaSentence)]
    fixes = [i for i in items if isinstance(i, GnssFix)]
    assert [s.text for s in sentences] == _data_lines(path)
    assert len(fixes) == 122 == src.stats.fixes
    assert {f.source for f in items} == {"gnss0"}
    assert sum(f.fix_type is FixType.RTK_FIXED for f in fixes) == 18
    times = [f.fix_utc_ns for f in fixes]
    assert times == sorted(times) and len(set(times)) == len(times)
    for it in items:  # everything a source yields can go on the bus
        assert it.encode()


@pytest.mark.fixtures
def test_nmea_file_source_reports_rejections() -> None:
    with NmeaFileSource(fixture_file("gnss/regensburg_drive_geko301_2010.nmea")) as src:
        fixes = [i for i in src if isinstance(i, GnssFix)]
    assert src.stats.rejected == 3157 and src.stats.reasons["unsupported talker 'HC'"] == 789
    assert len(fixes) == 788
    assert all(48.9 < f.lat_deg < 49.1 and 11.9 < f.lon_deg < 12.2 for f in fixes if f.has_fix)


def test_serial_source_over_a_pseudo_terminal() -> None:
    master, slave = os.openpty()
    path = os.ttyname(slave)
    lines = [with_checksum(f"GPGGA,1200{i:02d},4807.038,N,01131.000,E,4,12,0.6,545.4,M,46.9,M,1.0,0001") for i in range(5)]
    lines += [with_checksum(f"GPRMC,1200{i:02d},A,4807.038,N,01131.000,E,1.0,90.0,010724,,,R") for i in range(5)]
    lines.sort(key=lambda s: s[7:13])  # GGA then RMC per epoch
    got: list = []
    try:
        with SerialNmeaSource(path, baudrate=115200, source_id="ser0") as src:
            def feed() -> None:
                for ln in lines:
                    os.write(master, ln.encode() + b"\r\n")
                    time.sleep(0.005)
                os.write(master, b"garbage without checksum\r\n")

            t = threading.Thread(target=feed)
            t.start()
            deadline = time.monotonic() + 10
            for item in src:
                got.append(item)
                if sum(isinstance(i, NmeaSentence) for i in got) == len(lines) + 1 or time.monotonic() > deadline:
                    break
            t.join()
    finally:
        os.close(master)
        os.close(slave)
    texts = [i.text for i in got if isinstance(i, NmeaSentence)]
    assert texts == lines + ["garbage without checksum"]
    fixes = [i for i in got if isinstance(i, GnssFix)]
    assert len(fixes) == 5 and all(f.fix_type is FixType.RTK_FIXED and f.source == "ser0" for f in fixes)
    assert src.stats.rejected == 1 and src.stats.reasons["does not start with '$'"] == 1


def test_serial_source_bad_port() -> None:
    with pytest.raises(SourceError, match="cannot open serial port"):
        SerialNmeaSource("/dev/does-not-exist-tty").open()


def _gpsfake() -> str:
    exe = shutil.which("gpsfake")
    gpsd = shutil.which("gpsd") or ("/usr/sbin/gpsd" if os.path.exists("/usr/sbin/gpsd") else None)
    if exe and gpsd:
        return exe
    msg = ("gpsd/gpsfake are not installed (Debian packages gpsd and gpsd-clients; "
           "scripts/bootstrap.sh test installs them)")
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(msg + "; under CI this is a failure", pytrace=False)
    pytest.skip(msg)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.fixtures
def test_gpsd_source_with_real_gpsd_and_gpsfake() -> None:
    exe = _gpsfake()
    log = fixture_file(RTK_LOG)
    port = _free_port()
    env = dict(os.environ, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    # -1: play the log once; -c: 10 ms between sentences; gpsfake waits for our client
    proc = subprocess.Popen([exe, "-1", "-q", "-P", str(port), "-c", "0.01", str(log)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                    pytest.fail(f"gpsfake did not start gpsd on port {port}: {out[-500:]}")
                time.sleep(0.1)
        with GpsdSource("127.0.0.1", port, source_id="gpsd0", idle_timeout_s=5) as src:
            fixes = []
            for fix in src:
                fixes.append(fix)
                if fix.fix_utc_ns and fix.fix_utc_ns >= 1584538741_500_000_000:  # 13:39:01.5, the last epoch
                    break
        assert src.version is not None and src.version.get("release")
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        try:  # the gpsd that gpsfake started shares its process group: leave nothing behind
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    assert len(fixes) >= 30, f"only {len(fixes)} TPV reports"
    kinds = {f.fix_type for f in fixes}
    assert FixType.RTK_FIXED in kinds and FixType.DGPS in kinds
    with_pos = [f for f in fixes if f.has_fix]
    assert all(41.57 < f.lat_deg < 41.58 and -93.76 < f.lon_deg < -93.74 for f in with_pos)
    utc = [f.fix_utc_ns for f in fixes]
    assert utc == sorted(utc) and all(f.source == "gpsd0" for f in fixes)
    rtk = [f for f in fixes if f.fix_type is FixType.RTK_FIXED and f.alt_m == f.alt_m]
    assert rtk and all(280.0 < f.alt_m < 282.0 for f in rtk)


def test_gpsd_source_connection_refused() -> None:
    with pytest.raises(SourceError, match="cannot connect to gpsd"):
        GpsdSource("127.0.0.1", _free_port(), connect_timeout_s=1).open()


@pytest.mark.fixtures
def test_velodyne_position_packets_source() -> None:
    from sensors.packets import open_packet_source

    path = fixture_file("lidar/velodyne/hdl32e_with_gps.pcap")
    with VelodynePositionSource(open_packet_source(path, {8308}), source_id="vlp-gps") as src:
        items = list(src)
    sentences = [i for i in items if isinstance(i, NmeaSentence)]
    fixes = [i for i in items if isinstance(i, GnssFix)]
    assert src.position_packets == 9 and len(sentences) == 9
    assert all(s.text.startswith("$GPRMC,") for s in sentences)
    assert len(fixes) == 1  # all nine packets repeat the 21:46:16 sentence
    f = fixes[0]
    assert f.fix_type is FixType.DGPS and f.lat_deg == pytest.approx(37 + 8.3443 / 60)
    assert f.lon_deg == pytest.approx(-(121 + 39.4299 / 60)) and f.speed_mps == pytest.approx(9.7 * 1852 / 3600)
    # packets carry their capture time (2012-12-11, matching the RMC date)
    assert all(1355262000e9 < s.utc_ns < 1355263000e9 for s in sentences)


@pytest.mark.fixtures
def test_registry_picks_the_kind(tmp_path: Path) -> None:
    assert set(GNSS_SOURCES) == {"nmea-file", "serial", "gpsd", "genivi", "velodyne"}
    assert gnss_source_kind("gpsd://127.0.0.1:2947") == "gpsd"
    assert gnss_source_kind("serial:///dev/ttyUSB0?baud=115200") == "serial"
    assert gnss_source_kind(str(fixture_file(RTK_LOG))) == "nmea-file"
    assert gnss_source_kind(str(fixture_file("gnss/genivi_rpi_regensburg_2016.log"))) == "genivi"
    assert gnss_source_kind(str(fixture_file("lidar/velodyne/vlp16_county_fair.pcap"))) == "velodyne"
    src = open_gnss_source("gpsd://localhost:3000?device=/dev/ttyACM0")
    assert isinstance(src, GpsdSource) and (src.host, src.port, src.device) == ("localhost", 3000, "/dev/ttyACM0")
    ser = open_gnss_source("serial:///dev/ttyS9?baud=38400")
    assert isinstance(ser, SerialNmeaSource) and ser.port == "/dev/ttyS9" and ser.baudrate == 38400
    with pytest.raises(SourceError, match="no such file"):
        open_gnss_source(str(tmp_path / "missing.nmea"))
