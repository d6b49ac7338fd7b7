"""How each bus message type is stored in a drive MCAP: topic, schema, encoding, codec.

=============  ===============================  ======================  ===========================
bus type       MCAP topic                       schema                  message encoding
=============  ===============================  ======================  ===========================
LIDAR_PACKET   /lidar/<source>/packets          (none)                  ``edge-agent-bus``: the bus
                                                                        record bytes, payload kept
                                                                        exactly (see agent.bus.messages)
NMEA_SENTENCE  /gnss/<source>/nmea              edge_agent.NmeaSentence json (the sentence as text)
GNSS_FIX       /gnss/<source>/fix               foxglove.LocationFix    json (Foxglove's Map panel)
IMU_SAMPLE     /imu/<source>                    edge_agent.ImuSample    json
CAMERA_FRAME   /camera/<camera_id>/compressed   foxglove.CompressedImage json (JPEG base64)
POWER_EVENT    /vehicle/<source>/power          edge_agent.PowerEvent   json
TIME_SYNC      /vehicle/<source>/time_sync      edge_agent.TimeSync     json
=============  ===============================  ======================  ===========================

JSON documents carry the bus header fields too (``source``, ``mono_ns``, ``utc_ns``), so a
recording gives back the same messages it was made from (``seq`` and ``publisher`` are
stamped anew by whoever publishes them). NaN, infinite and absent values are JSON ``null``
(read back as NaN). Each
channel's metadata names its bus type (``bus_type``) and source.
MCAP ``log_time`` is the message's capture time (``utc_ns``); ``publish_time`` is when the
recorder received it (equal to ``log_time`` for imported and simulated drives).
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent.bus.messages import (
    NO_TIME,
    CameraFrame,
    FixType,
    GnssFix,
    ImuSample,
    LidarPacket,
    Message,
    MessageType,
    NmeaSentence,
    PowerEvent,
    PowerEventKind,
    TimeSync,
    decode_message,
)
from agent.errors import RecordingError

BUS_ENCODING = "edge-agent-bus"
PROFILE = "edge-agent-drive"

_TIME = {
    "type": "object",
    "title": "time",
    "properties": {
        "sec": {"type": "integer", "minimum": 0},
        "nsec": {"type": "integer", "minimum": 0, "maximum": 999999999},
    },
}
_HEADER_PROPS = {
    "source": {"type": "string", "description": "bus source id"},
    "mono_ns": {"type": "integer", "description": "monotonic clock at capture, ns"},
    "utc_ns": {"type": "integer", "description": "UTC at capture, ns since the epoch"},
}
_VEC3 = {"type": "object", "properties": {k: {"type": "number"} for k in "xyz"}}


def _schema(title: str, description: str, props: dict[str, Any]) -> bytes:
    doc = {
        "title": title,
        "description": description,
        "type": "object",
        "properties": {"timestamp": _TIME, **props, **_HEADER_PROPS},
    }
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


SCHEMAS: dict[MessageType, tuple[str, bytes]] = {
    MessageType.NMEA_SENTENCE: (
        "edge_agent.NmeaSentence",
        _schema(
            "edge_agent.NmeaSentence",
            "One NMEA 0183 sentence as received, without CR/LF",
            {"text": {"type": "string"}},
        ),
    ),
    MessageType.GNSS_FIX: (
        "foxglove.LocationFix",
        _schema(
            "foxglove.LocationFix",
            "A navigation satellite fix (altitude above the WGS 84 ellipsoid when the "
            "geoid separation is known); extra fields keep what the receiver reported",
            {
                "frame_id": {"type": "string"},
                "latitude": {"type": "number"},
                "longitude": {"type": "number"},
                "altitude": {"type": "number"},
                "position_covariance": {
                    "type": "array",
                    "items": {"type": "number"},
                    "minItems": 9,
                    "maxItems": 9,
                },
                "position_covariance_type": {"type": "integer", "minimum": 0, "maximum": 3},
                "fix_type": {"type": "integer"},
                "alt_msl": {"type": ["number", "null"]},
                "hdop": {"type": ["number", "null"]},
                "num_sats": {"type": "integer"},
                "speed_mps": {"type": ["number", "null"]},
                "course_deg": {"type": ["number", "null"]},
                "geoid_sep_m": {"type": ["number", "null"]},
                "fix_utc_ns": {"type": ["integer", "null"]},
                "h_std_m": {"type": ["number", "null"]},
                "v_std_m": {"type": ["number", "null"]},
            },
        ),
    ),
    MessageType.IMU_SAMPLE: (
        "edge_agent.ImuSample",
        _schema(
            "edge_agent.ImuSample",
            "One IMU sample in the sensor frame (rad/s, m/s^2)",
            {
                "frame_id": {"type": "string"},
                "angular_velocity": _VEC3,
                "linear_acceleration": _VEC3,
                "temperature_c": {"type": ["number", "null"]},
            },
        ),
    ),
    MessageType.CAMERA_FRAME: (
        "foxglove.CompressedImage",
        _schema(
            "foxglove.CompressedImage",
            "A compressed image (data is base64 in JSON)",
            {
                "frame_id": {"type": "string"},
                "data": {"type": "string", "contentEncoding": "base64"},
                "format": {"type": "string"},
                "width": {"type": "integer"},
                "height": {"type": "integer"},
                "frame_index": {"type": "integer"},
            },
        ),
    ),
    MessageType.POWER_EVENT: (
        "edge_agent.PowerEvent",
        _schema(
            "edge_agent.PowerEvent",
            "Ignition and supply voltage from the vehicle unit",
            {
                "kind": {"type": "string"},
                "ignition": {"type": "boolean"},
                "supply_v": {"type": ["number", "null"]},
            },
        ),
    ),
    MessageType.TIME_SYNC: (
        "edge_agent.TimeSync",
        _schema(
            "edge_agent.TimeSync",
            "A PPS edge: MCU tick and the UTC second it marks",
            {
                "mcu_tick": {"type": "integer"},
                "pps_utc_ns": {"type": "integer"},
                "tick_hz": {"type": ["number", "null"]},
                "residual_ns": {"type": ["number", "null"]},
            },
        ),
    ),
}


def topic_for(msg: Message) -> str:
    """The MCAP topic a message is recorded on."""
    src = msg.source or "default"
    kind = msg.TYPE
    if kind is MessageType.LIDAR_PACKET:
        return f"/lidar/{src}/packets"
    if kind is MessageType.NMEA_SENTENCE:
        return f"/gnss/{src}/nmea"
    if kind is MessageType.GNSS_FIX:
        return f"/gnss/{src}/fix"
    if kind is MessageType.IMU_SAMPLE:
        return f"/imu/{src}"
    if kind is MessageType.CAMERA_FRAME:
        return f"/camera/{msg.camera_id or src}/compressed"  # type: ignore[union-attr]
    if kind is MessageType.POWER_EVENT:
        return f"/vehicle/{src}/power"
    return f"/vehicle/{src}/time_sync"


def _num(x: float | None) -> float | None:
    """JSON has no NaN or infinity: both become null (read back as NaN)."""
    return None if x is None or not math.isfinite(x) else float(x)


def _unnum(x: float | None) -> float:
    return math.nan if x is None else float(x)


def _stamp(ns: int) -> dict[str, int]:
    return {"sec": ns // 1_000_000_000, "nsec": ns % 1_000_000_000}


def _head(msg: Message) -> dict[str, Any]:
    return {
        "timestamp": _stamp(msg.utc_ns),
        "source": msg.source,
        "mono_ns": msg.mono_ns,
        "utc_ns": msg.utc_ns,
    }


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), allow_nan=False).encode()


def encode_payload(msg: Message) -> bytes:
    """The MCAP message data for a bus message."""
    kind = msg.TYPE
    if kind is MessageType.LIDAR_PACKET:
        return msg.encode()
    doc = _head(msg)
    if isinstance(msg, NmeaSentence):
        doc["text"] = msg.text
    elif isinstance(msg, GnssFix):
        alt = msg.alt_m + (0.0 if math.isnan(msg.geoid_sep_m) else msg.geoid_sep_m)
        h = msg.h_std_m if not math.isnan(msg.h_std_m) else None
        v = msg.v_std_m if not math.isnan(msg.v_std_m) else None
        known = h is not None and v is not None
        cov = [
            h * h if known else 0.0,
            0.0,
            0.0,
            0.0,
            h * h if known else 0.0,
            0.0,
            0.0,
            0.0,
            v * v if known else 0.0,
        ]  # type: ignore[operator]
        doc.update(
            frame_id=msg.source,
            latitude=_num(msg.lat_deg),
            longitude=_num(msg.lon_deg),
            altitude=_num(alt),
            position_covariance=cov,
            position_covariance_type=2 if known else 0,
            fix_type=int(msg.fix_type),
            alt_msl=_num(msg.alt_m),
            hdop=_num(msg.hdop),
            num_sats=msg.num_sats,
            speed_mps=_num(msg.speed_mps),
            course_deg=_num(msg.course_deg),
            geoid_sep_m=_num(msg.geoid_sep_m),
            fix_utc_ns=None if msg.fix_utc_ns == NO_TIME else msg.fix_utc_ns,
            h_std_m=_num(msg.h_std_m),
            v_std_m=_num(msg.v_std_m),
        )
    elif isinstance(msg, ImuSample):
        doc.update(
            frame_id=msg.source,
            angular_velocity={k: _num(v) for k, v in zip("xyz", msg.gyro)},
            linear_acceleration={k: _num(v) for k, v in zip("xyz", msg.accel)},
            temperature_c=_num(msg.temperature_c),
        )
    elif isinstance(msg, CameraFrame):
        doc.update(
            frame_id=msg.camera_id,
            data=base64.b64encode(msg.jpeg).decode("ascii"),
            format="jpeg",
            width=msg.width,
            height=msg.height,
            frame_index=msg.frame_index,
        )
    elif isinstance(msg, PowerEvent):
        doc.update(kind=msg.kind.name, ignition=msg.ignition, supply_v=_num(msg.supply_v))
    elif isinstance(msg, TimeSync):
        doc.update(
            mcu_tick=msg.mcu_tick,
            pps_utc_ns=msg.pps_utc_ns,
            tick_hz=_num(msg.tick_hz),
            residual_ns=_num(msg.residual_ns),
        )
    else:  # pragma: no cover - every bus type is handled above
        raise RecordingError(f"no MCAP mapping for bus type {kind.name}")
    return _dumps(doc)


def _vec(d: dict[str, Any]) -> tuple[float, float, float]:
    return (_unnum(d["x"]), _unnum(d["y"]), _unnum(d["z"]))


_DECODERS: dict[MessageType, Callable[[dict[str, Any], dict[str, Any]], Message]] = {
    MessageType.NMEA_SENTENCE: lambda d, h: NmeaSentence(text=d["text"], **h),
    MessageType.GNSS_FIX: lambda d, h: GnssFix(
        lat_deg=_unnum(d["latitude"]),
        lon_deg=_unnum(d["longitude"]),
        alt_m=_unnum(d.get("alt_msl")),
        fix_type=FixType(d.get("fix_type", 0)),
        hdop=_unnum(d.get("hdop")),
        num_sats=d.get("num_sats", -1),
        speed_mps=_unnum(d.get("speed_mps")),
        course_deg=_unnum(d.get("course_deg")),
        geoid_sep_m=_unnum(d.get("geoid_sep_m")),
        fix_utc_ns=NO_TIME if d.get("fix_utc_ns") is None else int(d["fix_utc_ns"]),
        h_std_m=_unnum(d.get("h_std_m")),
        v_std_m=_unnum(d.get("v_std_m")),
        **h,
    ),
    MessageType.IMU_SAMPLE: lambda d, h: ImuSample(
        gyro=_vec(d["angular_velocity"]),
        accel=_vec(d["linear_acceleration"]),
        temperature_c=d.get("temperature_c"),
        **h,
    ),
    MessageType.CAMERA_FRAME: lambda d, h: CameraFrame(
        camera_id=d.get("frame_id", ""),
        width=int(d.get("width", 0)),
        height=int(d.get("height", 0)),
        jpeg=base64.b64decode(d["data"]),
        frame_index=int(d.get("frame_index", 0)),
        **h,
    ),
    MessageType.POWER_EVENT: lambda d, h: PowerEvent(
        kind=PowerEventKind[d["kind"]], ignition=bool(d["ignition"]), supply_v=_unnum(d.get("supply_v")), **h
    ),
    MessageType.TIME_SYNC: lambda d, h: TimeSync(
        mcu_tick=int(d["mcu_tick"]),
        pps_utc_ns=int(d["pps_utc_ns"]),
        tick_hz=_unnum(d.get("tick_hz")),
        residual_ns=_unnum(d.get("residual_ns")),
        **h,
    ),
}


@dataclass(frozen=True)
class ChannelInfo:
    """What a reader needs to know about one MCAP channel."""

    topic: str
    bus_type: MessageType | None  # None: a channel this project did not write (skipped on replay)
    message_encoding: str
    schema_name: str


def channel_bus_type(metadata: dict[str, str], schema_name: str, message_encoding: str) -> MessageType | None:
    """The bus type of a channel, from its metadata or (for foreign files) its schema."""
    name = metadata.get("bus_type")
    if name in MessageType.__members__:
        return MessageType[name]
    if message_encoding == BUS_ENCODING:
        return MessageType.LIDAR_PACKET
    for kind, (sname, _) in SCHEMAS.items():
        if sname == schema_name and message_encoding == "json":
            return kind
    return None


def decode_payload(kind: MessageType, data: bytes, log_time_ns: int) -> Message:
    """The bus message stored as ``data`` on a channel of type ``kind``."""
    if kind is MessageType.LIDAR_PACKET:
        msg = decode_message(data)
        if not isinstance(msg, LidarPacket):
            raise RecordingError(f"a LiDAR channel holds a {msg.TYPE.name} record")
        return msg
    try:
        doc = json.loads(data)
        ts = doc.get("timestamp") or {}
        utc = doc.get("utc_ns")
        if utc is None:
            utc = int(ts["sec"]) * 1_000_000_000 + int(ts["nsec"]) if ts else log_time_ns
        head = {
            "source": doc.get("source", doc.get("frame_id", "")),
            "utc_ns": int(utc),
            "mono_ns": int(doc.get("mono_ns", utc)),
        }
        return _DECODERS[kind](doc, head)
    except (ValueError, KeyError, TypeError) as exc:
        raise RecordingError(f"bad {kind.name} message: {exc}") from exc
