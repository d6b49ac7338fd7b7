"""Velodyne position packets (UDP 8308) from the real captures."""

from __future__ import annotations

import pytest

from sensors.lidar.velodyne import PositionInfo, VelodyneDecoder, parse_position_packet
from sensors.packets import Packet, open_packet_source
from tests._fixtures import fixture_file


def _position_packets(rel: str) -> list[Packet]:
    with open_packet_source(fixture_file(rel)) as src:
        return [p for p in src if p.port == 8308]


def test_hdl32e_position_packets_carry_gprmc():
    packets = _position_packets("lidar/velodyne/hdl32e_with_gps.pcap")
    assert len(packets) == 9
    infos = [parse_position_packet(p.data, p.timestamp) for p in packets]
    assert all(isinstance(i, PositionInfo) for i in infos)
    first = infos[0]
    assert first.nmea == "$GPRMC,214616,A,3708.3443,N,12139.4299,W,009.7,040.6,111212,013.8,E,D*0E"
    assert first.timestamp == packets[0].timestamp
    assert first.device_us_past_hour == 2777073776
    assert first.pps_status == 0 and first.pps == "absent"
    # the sensor clock runs forward with the capture clock
    ticks = [i.device_us_past_hour for i in infos]
    assert ticks == sorted(ticks)
    span_device = (ticks[-1] - ticks[0]) * 1e-6
    span_host = packets[-1].timestamp - packets[0].timestamp
    assert span_device == pytest.approx(span_host, abs=0.005)
    # the NMEA checksum of the forwarded sentence is intact
    body, checksum = first.nmea[1:].split("*")
    x = 0
    for c in body.encode():
        x ^= c
    assert f"{x:02X}" == checksum


def test_vlp16_position_packets_without_gps():
    packets = _position_packets("lidar/velodyne/vlp16_county_fair.pcap")
    assert len(packets) == 16
    infos = [parse_position_packet(p.data) for p in packets]
    assert all(i is not None and i.nmea == "" for i in infos)
    assert infos[0].device_us_past_hour == 332921185


def test_not_position_packets():
    good = _position_packets("lidar/velodyne/hdl32e_with_gps.pcap")[0].data
    assert parse_position_packet(good[:511]) is None
    assert parse_position_packet(good + b"\x00") is None
    assert parse_position_packet(b"") is None
    over_an_hour = bytearray(good)
    over_an_hour[198:202] = (3_600_000_000).to_bytes(4, "little")
    assert parse_position_packet(bytes(over_an_hour)) is None
    garbage = bytearray(good)
    garbage[206:210] = b"\x01\x02\x03\x04"
    assert parse_position_packet(bytes(garbage)) is None
    pps_locked = bytearray(good)
    pps_locked[202] = 2
    assert parse_position_packet(bytes(pps_locked)).pps == "locked"


def test_decoder_collects_positions_and_counts_bad_ones():
    packets = _position_packets("lidar/velodyne/hdl32e_with_gps.pcap")
    dec = VelodyneDecoder()
    assert list(dec.feed(packets + [Packet(0.0, 8308, b"\x00" * 100)])) == []
    assert dec.stats.other_packets == 9
    assert dec.stats.reasons == {"bad position packet": 1}
    assert [p.timestamp for p in dec.positions] == [p.timestamp for p in packets]
    assert dec.positions[-1].nmea.startswith("$GPRMC,")
