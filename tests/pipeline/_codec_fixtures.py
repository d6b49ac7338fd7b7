"""Recorded packet streams and clouds for the codec tests and the codec bench."""

from __future__ import annotations

import functools

from tests._fixtures import fixture_file

# name → (capture, metadata JSON or None)
PACKET_FIXTURES = {
    "vlp16-pcap": ("lidar/velodyne/vlp16_county_fair.pcap", None),
    "hdl32e-pcap": ("lidar/velodyne/hdl32e_with_gps.pcap", None),
    "vlp16-rosbag2": ("lidar/velodyne/vlp16_rosbag2", None),
    "os1-128-lb": ("lidar/ouster/OS-1-128_v2.3.0_1024x10_lb_n3.pcap", "lidar/ouster/OS-1-128_v2.3.0_1024x10.json"),
    "os0-32": ("lidar/ouster/OS-0-32-U1_v2.2.0_1024x10.pcap", "lidar/ouster/OS-0-32-U1_v2.2.0_1024x10.json"),
}


@functools.cache
def packets(name: str) -> tuple[list, str | None]:
    """All packets of a fixture capture (every port) and its metadata path."""
    from sensors.packets import open_packet_source

    capture, meta = PACKET_FIXTURES[name]
    path = fixture_file(capture)
    meta_path = str(fixture_file(meta)) if meta else None
    with open_packet_source(str(path), None) as src:
        return list(src), meta_path


@functools.cache
def scans(name: str) -> tuple:
    """Decoded scans of a fixture capture."""
    from sensors.lidar import make_decoder

    pk, meta = packets(name)
    dec = make_decoder(meta=meta)
    return tuple(list(dec.feed(pk)) + list(dec.flush()))
