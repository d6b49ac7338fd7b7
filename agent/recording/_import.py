"""Building a drive MCAP from foreign recordings: a LiDAR capture (pcap, pcapng or ROS 2
bag), a GNSS log (NMEA, GENIVI with IMU, or a capture's Velodyne position packets), and a
video or a folder of images.

Clocks: LiDAR packets keep their capture times; NMEA sentences take the UTC of their fix
epoch (date from RMC/ZDA); images take a time parsed from their name (nuScenes style
``CAM_FRONT__1532402927612460.jpg``: µs; 19 digits: ns; 13: ms; 10: s) or, like video
frames, which carry no clock, follow each other at the frame rate from the drive's start
(the first LiDAR packet, else the first NMEA epoch). ``offsets`` shift a source by seconds,
or ``"align"`` moves its first message onto the drive's start, for sources whose clocks
differ (an NMEA track of another day, images from another device).
"""

from __future__ import annotations

import datetime as _dt
import heapq
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from agent.bus.messages import NO_TIME, CameraFrame, GnssFix, LidarPacket, Message, NmeaSentence
from agent.errors import RecordingError
from agent.recording._writer import DriveWriter

log = logging.getLogger(__name__)

SOURCES = ("lidar", "gnss", "camera")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
_STAMP = re.compile(r"(?<!\d)(\d{19}|\d{16}|\d{13}|\d{10}(?:\.\d+)?)(?!\d)")


@dataclass
class ImportStats:
    lidar_packets: int = 0
    nmea_sentences: int = 0
    gnss_fixes: int = 0
    imu_samples: int = 0
    camera_frames: int = 0
    offsets_s: dict[str, float] = field(default_factory=dict)
    start_utc_ns: int | None = None
    end_utc_ns: int | None = None
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "lidar_packets": self.lidar_packets,
            "nmea_sentences": self.nmea_sentences,
            "gnss_fixes": self.gnss_fixes,
            "imu_samples": self.imu_samples,
            "camera_frames": self.camera_frames,
            "offsets_s": dict(self.offsets_s),
            "start_utc_ns": self.start_utc_ns,
            "end_utc_ns": self.end_utc_ns,
            "warnings": list(self.warnings),
        }


def parse_offsets(items: list[str] | tuple[str, ...]) -> dict[str, float | str]:
    """``["gnss=align", "camera=-1.5"]`` → ``{"gnss": "align", "camera": -1.5}``."""
    out: dict[str, float | str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip().lower()
        if not sep or name not in SOURCES:
            raise RecordingError(
                f"time offset {item!r}: expected SOURCE=SECONDS or SOURCE=align with "
                f"SOURCE one of {', '.join(SOURCES)}"
            )
        value = value.strip()
        if value.lower() == "align":
            out[name] = "align"
            continue
        try:
            out[name] = float(value)
        except ValueError:
            raise RecordingError(
                f"time offset {item!r}: {value!r} is not a number of seconds or 'align'"
            ) from None
    return out


# ---- sources --------------------------------------------------------------------------------


def _lidar_messages(
    spec: str, source_id: str, ports: set[int] | None, stats: ImportStats
) -> Iterator[LidarPacket]:
    from sensors.errors import SensorError
    from sensors.packets import open_packet_source

    try:
        src = open_packet_source(spec, ports)
    except SensorError as exc:
        raise RecordingError(f"LiDAR capture {exc}") from None
    with src:
        for pkt in src:
            ns = int(round(pkt.timestamp * 1e9))
            stats.lidar_packets += 1
            yield LidarPacket(source=source_id, port=pkt.port, data=bytes(pkt.data), utc_ns=ns, mono_ns=ns)
        if src.stats.truncated:
            stats.warnings.append(f"{spec}: capture is truncated; imported the complete packets")


def _nmea_messages(path: str, source_id: str, stats: ImportStats) -> list[Message]:
    """Every NMEA line (as the GNSS source yields it) and the fixes assembled from them,
    stamped with the UTC of their epoch."""
    from sensors.errors import SensorError
    from sensors.gnss import NmeaFileSource, try_parse, utc_ns

    try:
        src = NmeaFileSource(path, source_id=source_id, fixes=True)
        items = list(src)
    except SensorError as exc:
        raise RecordingError(f"NMEA log {exc}") from None
    except OSError as exc:
        raise RecordingError(f"NMEA log {path}: {exc.strerror or exc}") from None
    # A first pass finds the date; sentences carry only a time of day.
    first_date: _dt.date | None = None
    parsed = []
    for it in items:
        rec = try_parse(it.text, require_checksum=False) if isinstance(it, NmeaSentence) else None
        parsed.append(rec)
        if first_date is None and getattr(rec, "date", None) is not None:
            first_date = rec.date  # type: ignore[union-attr]
    if first_date is None:
        raise RecordingError(f"NMEA log {path}: no RMC or ZDA sentence with a date: cannot place it in time")
    date = first_date
    last_tod: int | None = None
    times: list[int | None] = []
    for it, rec in zip(items, parsed):
        if isinstance(it, GnssFix):
            times.append(it.fix_utc_ns if it.fix_utc_ns != NO_TIME else None)
            continue
        if getattr(rec, "date", None) is not None:
            date = rec.date  # type: ignore[union-attr]
        tod = getattr(rec, "tod_ns", None)
        if tod is not None:
            if last_tod is not None and tod < last_tod - 43_200_000_000_000:
                date = date + _dt.timedelta(days=1)  # midnight passed
            last_tod = tod
            times.append(utc_ns(date, tod))
        else:
            times.append(None)
    # Untimed lines (GSA, GSV, proprietary) take the time of the last timed line (the
    # first timed one for lines before it).
    first = next((t for t in times if t is not None), None)
    if first is None:
        raise RecordingError(f"NMEA log {path}: no sentence with a time of day")
    out: list[Message] = []
    cur = first
    for it, t in zip(items, times):
        if t is not None:
            cur = t
        it.utc_ns = cur
        it.mono_ns = cur
        if isinstance(it, NmeaSentence):
            stats.nmea_sentences += 1
        else:
            stats.gnss_fixes += 1
        out.append(it)
    return out  # file order: a log whose clock steps back keeps its order (and its stamps)


def _gnss_messages(spec: str, source_id: str, stats: ImportStats) -> list[Message]:
    """GNSS (and IMU) messages from a log: an NMEA file, a GENIVI log (fixes and IMU
    samples), or a capture whose Velodyne position packets carry ``$GPRMC``."""
    from sensors.errors import SensorError
    from sensors.gnss import GeniviLogSource, VelodynePositionSource, gnss_source_kind

    try:
        kind = gnss_source_kind(spec)
    except SensorError as exc:
        raise RecordingError(f"GNSS log {exc}") from None
    if kind == "nmea-file":
        return _nmea_messages(spec, source_id, stats)
    try:
        if kind == "genivi":
            items = list(GeniviLogSource(spec, source_id=source_id, imu_source_id="imu0"))
        elif kind == "velodyne":
            from sensors.packets import open_packet_source

            with VelodynePositionSource(open_packet_source(spec, {8308}), source_id=source_id) as src:
                items = list(src)
        else:
            raise RecordingError(
                f"GNSS log {spec}: a live source ({kind}); record it with 'edge-agent record'"
            )
    except SensorError as exc:
        raise RecordingError(f"GNSS log {exc}") from None
    for it in items:
        if isinstance(it, NmeaSentence):
            stats.nmea_sentences += 1
        elif isinstance(it, GnssFix):
            stats.gnss_fixes += 1
        else:
            stats.imu_samples += 1
    if not items:
        raise RecordingError(f"GNSS log {spec}: no GNSS messages in it")
    return items  # type: ignore[return-value]


def _image_stamp(name: str) -> int | None:
    m = _STAMP.search(name)
    if m is None:
        return None
    digits = m.group(1)
    if "." in digits:
        return int(round(float(digits) * 1e9))
    scale = {19: 1, 16: 1_000, 13: 1_000_000, 10: 1_000_000_000}[len(digits)]
    return int(digits) * scale


def _jpeg(image, quality: int) -> bytes:  # type: ignore[no-untyped-def]
    import cv2

    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RecordingError("JPEG encoding failed")
    return buf.tobytes()


def _camera_messages(
    spec: str, camera_id: str | None, fps: float, start_ns: int, quality: int, stats: ImportStats
) -> list[CameraFrame] | Iterator[CameraFrame]:
    import cv2
    import numpy as np

    path = Path(spec)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise RecordingError(f"camera folder {spec}: no images ({', '.join(IMAGE_SUFFIXES)})")
        stamps = [_image_stamp(p.name) for p in files]
        use_names = all(s is not None for s in stamps)
        frames = []
        for k, p in enumerate(files):
            raw = p.read_bytes()
            img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                stats.warnings.append(f"{p.name}: not a readable image, skipped")
                continue
            # JPEG files are stored as they are; other formats are encoded to JPEG.
            data = raw if raw[:3] == b"\xff\xd8\xff" else _jpeg(img, quality)
            cid = camera_id or (p.name.split("__")[0] if "__" in p.name else "camera0")
            t = stamps[k] if use_names else start_ns + int(round(k / fps * 1e9))
            frames.append(
                CameraFrame(
                    source=cid,
                    camera_id=cid,
                    width=img.shape[1],
                    height=img.shape[0],
                    jpeg=data,
                    frame_index=k,
                    utc_ns=t,
                    mono_ns=t,
                )
            )  # type: ignore[arg-type]
        frames.sort(key=lambda f: f.utc_ns)
        stats.camera_frames += len(frames)
        return frames
    if not path.is_file():
        raise RecordingError(f"camera input {spec}: no such file or folder")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise RecordingError(f"camera input {spec}: OpenCV cannot open it as a video")
    vfps = cap.get(cv2.CAP_PROP_FPS) or fps
    cid = camera_id or "camera0"

    def frames_of_video() -> Iterator[CameraFrame]:
        k = 0
        try:
            while True:
                ok, img = cap.read()
                if not ok:
                    break
                t = start_ns + int(round(k / vfps * 1e9))
                stats.camera_frames += 1
                yield CameraFrame(
                    source=cid,
                    camera_id=cid,
                    width=img.shape[1],
                    height=img.shape[0],
                    jpeg=_jpeg(img, quality),
                    frame_index=k,
                    utc_ns=t,
                    mono_ns=t,
                )
                k += 1
        finally:
            cap.release()

    return frames_of_video()


def _shift(msgs, offset_ns: int):  # type: ignore[no-untyped-def]
    for m in msgs:
        if offset_ns:
            m.utc_ns += offset_ns
            m.mono_ns += offset_ns
            if isinstance(m, GnssFix) and m.fix_utc_ns != NO_TIME:
                m.fix_utc_ns += offset_ns
        yield m


def _monotonic_keys(msgs):  # type: ignore[no-untyped-def]
    """(merge key, message): the key is the running maximum of the times, so a source whose
    clock steps back keeps its own order when the sources are merged."""
    top = None
    for m in msgs:
        top = m.utc_ns if top is None or m.utc_ns > top else top
        yield top, m


def _peek(it: Iterator[Message]) -> tuple[Message | None, Iterator[Message]]:
    first = next(it, None)
    if first is None:
        return None, iter(())

    def chain() -> Iterator[Message]:
        yield first
        yield from it

    return first, chain()


def import_drive(
    out: str | Path,
    *,
    lidar: str | None = None,
    lidar_meta: str | None = None,
    gnss: str | None = None,
    camera: str | None = None,
    offsets: dict[str, float | str] | None = None,
    lidar_id: str = "lidar0",
    gnss_id: str = "gnss0",
    camera_id: str | None = None,
    camera_fps: float = 10.0,
    jpeg_quality: int = 90,
    ports: set[int] | None = None,
) -> ImportStats:
    """Write a drive MCAP from foreign recordings (any subset of LiDAR, NMEA, camera)."""
    if not (lidar or gnss or camera):
        raise RecordingError("nothing to import: give at least one of --lidar, --gnss, --camera")
    offsets = dict(offsets or {})
    stats = ImportStats()
    meta: dict[str, dict[str, str]] = {
        "import": {k: str(v) for k, v in (("lidar", lidar), ("gnss", gnss), ("camera", camera)) if v}
    }
    if lidar_meta:
        try:
            meta["lidar"] = {"meta_json": Path(lidar_meta).read_text(), "meta_file": Path(lidar_meta).name}
        except OSError as exc:
            raise RecordingError(f"LiDAR metadata {lidar_meta}: {exc.strerror or exc}") from None
    lidar_it: Iterator[Message] | None = None
    lidar_first: int | None = None
    if lidar:
        first, lidar_it = _peek(_lidar_messages(lidar, lidar_id, ports, stats))
        if first is None:
            stats.warnings.append(f"{lidar}: no packets")
        else:
            lidar_first = first.utc_ns
    gnss_msgs = _gnss_messages(gnss, gnss_id, stats) if gnss else None
    gnss_first = min(m.utc_ns for m in gnss_msgs) if gnss_msgs else None

    def offset_ns(name: str, first: int | None, ref: int | None) -> int:
        value = offsets.get(name, 0.0)
        if value == "align":
            if first is None or ref is None:
                return 0
            stats.offsets_s[name] = (ref - first) / 1e9
            return ref - first
        stats.offsets_s[name] = float(value)
        return int(round(float(value) * 1e9))

    lidar_off = offset_ns("lidar", lidar_first, lidar_first)
    ref = None if lidar_first is None else lidar_first + lidar_off
    gnss_off = offset_ns("gnss", gnss_first, ref if ref is not None else gnss_first)
    if ref is None and gnss_first is not None:
        ref = gnss_first + gnss_off
    streams: list[Iterator[Message]] = []
    if lidar_it is not None:
        streams.append(_shift(lidar_it, lidar_off))
    if gnss_msgs:
        streams.append(_shift(iter(gnss_msgs), gnss_off))
    if camera:
        start = ref if ref is not None else 0
        cam = _camera_messages(camera, camera_id, camera_fps, start, jpeg_quality, stats)
        cam_first, cam_it = _peek(iter(cam))
        streams.append(_shift(cam_it, offset_ns("camera", cam_first.utc_ns if cam_first else None, ref)))
    with DriveWriter(out, metadata=meta) as writer:
        for _, msg in heapq.merge(*(_monotonic_keys(s) for s in streams), key=lambda km: km[0]):
            if stats.start_utc_ns is None or msg.utc_ns < stats.start_utc_ns:
                stats.start_utc_ns = msg.utc_ns
            if stats.end_utc_ns is None or msg.utc_ns > stats.end_utc_ns:
                stats.end_utc_ns = msg.utc_ns
            writer.write(msg)
    for w in stats.warnings:
        log.warning("import: %s", w)
    return stats
