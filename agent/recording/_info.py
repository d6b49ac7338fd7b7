"""A summary of a drive recording: channels, message counts, time span, sensors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.recording._reader import DriveReader


def drive_info(path: str | Path) -> dict[str, Any]:
    """Channels (topic, bus type, encoding, schema, count, first/last time, bytes), totals,
    the drive's time span, the sensors seen, its metadata and whether it is truncated.

    The whole file is read (a summary section may be absent after a power cut, and the
    LiDAR model is found from the packets themselves)."""
    path = Path(path)
    chans: dict[int, dict[str, Any]] = {}
    lidar_samples: dict[str, list[bytes]] = {}  # first Velodyne data packets per source
    t_min: int | None = None
    t_max: int | None = None
    with DriveReader(path) as reader:
        for raw in reader.raw_messages():
            c = chans.get(raw.channel_id)
            if c is None:
                ch = reader.channels.get(raw.channel_id)
                c = chans[raw.channel_id] = {
                    "topic": ch.topic if ch else f"#{raw.channel_id}",
                    "bus_type": ch.bus_type.name if ch and ch.bus_type else None,
                    "source": ch.metadata.get("source", "") if ch else "",
                    "message_encoding": ch.message_encoding if ch else "",
                    "schema": ch.schema_name if ch else "",
                    "messages": 0,
                    "bytes": 0,
                    "first_ns": raw.log_time,
                    "last_ns": raw.log_time,
                }
            c["messages"] += 1
            c["bytes"] += len(raw.data)
            c["first_ns"] = min(c["first_ns"], raw.log_time)
            c["last_ns"] = max(c["last_ns"], raw.log_time)
            t_min = raw.log_time if t_min is None else min(t_min, raw.log_time)
            t_max = raw.log_time if t_max is None else max(t_max, raw.log_time)
            if c["bus_type"] == "LIDAR_PACKET" and len(raw.data) >= 1206:
                sample = lidar_samples.setdefault(c["source"], [])
                off = _body_offset(raw.data)
                if (
                    len(sample) < 16
                    and len(raw.data) - off == 1206
                    and raw.data[off : off + 2] == b"\xff\xee"
                ):
                    sample.append(raw.data[off:])
        stats = reader.stats
        metadata = dict(reader.metadata)
        header = reader.header
    sensors: dict[str, dict[str, Any]] = {}
    for c in chans.values():
        kind = c["bus_type"]
        if kind is None:
            continue
        stype = _SENSOR_TYPE.get(kind, "other")
        s = sensors.setdefault(
            f"{stype}:{c['source'] or c['topic']}", {"type": stype, "source": c["source"], "topics": []}
        )
        s["topics"].append(c["topic"])
        span = (c["last_ns"] - c["first_ns"]) / 1e9
        s.setdefault("rates_hz", {})[kind] = round((c["messages"] - 1) / span, 3) if span > 0 else None
    for src, packets in lidar_samples.items():
        key = f"lidar:{src}"
        if key in sensors and packets:
            sensors[key]["model"] = _velodyne_name(packets)
            sensors[key]["return_mode"] = _MODES.get(packets[0][1204], hex(packets[0][1204]))
    for s in sensors.values():
        if s["type"] == "lidar" and "model" not in s:
            s["model"] = "Ouster (sensor metadata in the recording)" if "lidar" in metadata else "unknown"
    return {
        "path": str(path),
        "size_bytes": path.stat().st_size,
        "profile": header[0],
        "library": header[1],
        "messages": stats.messages,
        "chunks": stats.chunks,
        "start_ns": t_min,
        "end_ns": t_max,
        "duration_s": (t_max - t_min) / 1e9 if t_min is not None and t_max is not None else 0.0,
        "truncated": stats.truncated,
        "warnings": stats.warnings,
        "channels": sorted(chans.values(), key=lambda c: c["topic"]),
        "sensors": sorted(sensors.values(), key=lambda s: (s["type"], s["source"])),
        "metadata": {
            k: {kk: (vv if len(vv) < 200 else f"<{len(vv)} chars>") for kk, vv in v.items()}
            for k, v in metadata.items()
        },
    }


_MODES = {0x37: "strongest", 0x38: "last", 0x39: "dual"}
_SENSOR_TYPE = {
    "LIDAR_PACKET": "lidar",
    "NMEA_SENTENCE": "gnss",
    "GNSS_FIX": "gnss",
    "IMU_SAMPLE": "imu",
    "CAMERA_FRAME": "camera",
    "POWER_EVENT": "vehicle",
    "TIME_SYNC": "vehicle",
}


def _velodyne_name(packets: list[bytes]) -> str:
    """The Velodyne model the packets come from (the decoder's own detection)."""
    from sensors.lidar.velodyne import detect_model

    model = detect_model(packets)
    return model.name if model is not None else f"Velodyne product id 0x{packets[0][1205]:02x}"


def _body_offset(record: bytes) -> int:
    """Bytes before the UDP payload in a LiDAR packet's bus record (header + port + length)."""
    from agent.bus.messages import HEADER_SIZE

    return HEADER_SIZE + record[HEADER_SIZE - 1] + 6
