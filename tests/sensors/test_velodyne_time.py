"""The time base of Velodyne points: the sensor's own microseconds past the hour.

The HDL-32E capture comes from a GNSS-synced sensor whose host clock was 0.9 s off; the
ROS 2 bag's VLP-16 runs a free clock (its 'hour' is unrelated to UTC)."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from sensors.errors import DecodeError
from sensors.lidar.velodyne import VelodyneDecoder
from sensors.packets import open_packet_source
from tests._fixtures import fixture_file


def _data_packets(rel):
    with open_packet_source(fixture_file(rel), {2368}) as src:
        return list(src)


def _device_s(p):
    return struct.unpack_from("<I", p.data, 1200)[0] * 1e-6


def test_synced_sensor_uses_its_utc_device_time():
    packets = _data_packets("lidar/velodyne/hdl32e_with_gps.pcap")
    dec = VelodyneDecoder()
    scans = list(dec.feed(packets)) + list(dec.flush())
    t = np.concatenate([s.time for s in scans])
    host = VelodyneDecoder(time_source="host")
    th = np.concatenate([s.time for s in list(host.feed(packets)) + list(host.flush())])
    shift = t - th
    # device time = top of the host's hour + microseconds past the hour: 0.8995 s before the host
    p0 = packets[0]
    placed = math.floor(p0.timestamp / 3600) * 3600 + _device_s(p0)
    assert placed - p0.timestamp == pytest.approx(-0.8995, abs=1e-3)
    assert np.median(shift) == pytest.approx(placed - p0.timestamp, abs=1e-4)
    # per packet, the shift is exactly that packet's device-minus-host time
    assert shift.max() - shift.min() < 2e-4  # host receive jitter only


def test_free_running_clock_keeps_device_spacing_anchored_to_host():
    packets = _data_packets("lidar/velodyne/vlp16_rosbag2")
    dec = VelodyneDecoder()
    scans = list(dec.feed(packets)) + list(dec.flush())
    t0 = min(s.t_start for s in scans)
    # anchored at the first packet's host time (the device's hour is not UTC: 1531 s off)
    assert t0 == pytest.approx(packets[0].timestamp, abs=1e-3)
    # spacing follows the device clock: scan starts differ exactly as device times do
    dev = np.array([_device_s(p) for p in packets])
    host = np.array([p.timestamp for p in packets])
    assert np.abs(np.diff(dev) - np.diff(host)).max() > 1e-6  # the clocks do differ in spacing
    t_all = np.sort(np.concatenate([s.time for s in scans]))
    assert t_all[-1] - t_all[0] == pytest.approx(dev[-1] - dev[0], abs=2e-3)


def test_time_source_is_validated():
    with pytest.raises(DecodeError, match="time source"):
        VelodyneDecoder(time_source="gps")
