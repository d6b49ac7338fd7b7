"""The data path of the agent: bus messages in, chunk specs out (no threads, no files).

Streams the agent signs (one chunk stream each, see :mod:`agent.provenance`):

- ``<lidar>/packets``: the raw LiDAR packets, byte-exact, losslessly coded (range-image
  codec), a chunk per UTC time window cut at most every 2 s or 8 MiB (so a power cut loses
  at most 2 s of them). Never dropped: this is the sensor's own record.
- ``<lidar>/points``: georeferenced points (filters, deskew, voxel grid), quantized XYZ in
  the local ENU frame whose origin is in the codec parameters, chunked by tile and window.
  When processing falls behind, whole scans are skipped here (counted), never parts of one.
- ``<camera>/keyframes``: redacted JPEG keyframes with GPS EXIF, one chunk per keyframe.
- ``<gnss>/nmea``: the NMEA sentences (or the fixes as text lines), one chunk per window.

:class:`Pipeline.feed` takes one message and returns the :class:`ChunkSpec` s it completes;
:meth:`Pipeline.flush` closes everything still open.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agent.provenance import ChunkSpec

log = logging.getLogger(__name__)


@dataclass
class PipelineStats:
    """Counters of the data path (all cumulative)."""

    messages: int = 0
    lidar_packets: int = 0
    lidar_bytes: int = 0
    scans: int = 0
    scans_processed: int = 0
    scans_dropped: int = 0  # whole scans skipped because processing was behind
    points_in: int = 0  # decoded points
    points_kept: int = 0  # points in committed point chunks
    points_no_pose: int = 0
    points_late: int = 0
    points_removed: dict[str, int] = field(default_factory=dict)
    camera_frames: int = 0
    camera_bytes: int = 0
    camera_dropped: int = 0
    keyframes: int = 0
    camera_decisions: dict[str, int] = field(default_factory=dict)
    gnss_fixes: int = 0
    nmea_sentences: int = 0
    imu_samples: int = 0
    power_events: int = 0
    bytes_in: int = 0  # sensor bytes: packets + JPEG + NMEA
    points_raw_bytes: int = 0  # points as float32 x y z intensity + float64 time (24 B) before coding
    chunk_payload_bytes: dict[str, int] = field(default_factory=dict)  # per stream kind, after coding
    chunks: dict[str, int] = field(default_factory=dict)
    last_fix: dict[str, Any] | None = None
    first_utc_ns: int | None = None
    last_utc_ns: int | None = None

    def as_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


class _Window:
    """Items of one stream collected for the current UTC window."""

    def __init__(self) -> None:
        self.index: int | None = None
        self.items: list[Any] = []
        self.t0 = 0
        self.t1 = 0


class Pipeline:
    """Turns bus messages into chunk specs (see the module docstring).

    ``config``: an :class:`agent.config.AgentConfig`. ``lidar_meta``: Ouster sensor metadata
    (JSON text) when the LiDAR is an Ouster. ``camera``: run the camera stage (needs OpenCV).
    """

    DECODE_BATCH = 64  # LiDAR packets per decoder call (~85 ms of a VLP-16, ~50 ms of an OS1-128)
    RAW_MAX_BYTES = 8 << 20  # raw packet chunks: a window or this many bytes (0.65 s of an OS1-128; the range-image encoder needs ~10x)
    RAW_MAX_NS = 2_000_000_000  # ... or 2 s: raw packets are committed (signed, fsynced) at least this often
    EARLY_FIXES_NS = 60_000_000_000  # fixes kept for a camera stage not built yet (its track needs a few seconds)
    MAX_POINTS = 400_000  # point chunks are split above this (the encoder's memory is ~100 B a point)

    def __init__(self, config: Any, *, lidar_meta: str | None = None, camera: bool = True) -> None:
        from pipeline.chunking import Chunker
        from pipeline.codecs import make_codec
        from pipeline.georef import Georeferencer
        from sensors.lidar import make_decoder

        self.cfg = config
        self.stats = PipelineStats()
        self.window_s = float(config.chunking.window_s)
        self.geo = Georeferencer(config.georef)
        self.chunker = Chunker.from_config(config.chunking)
        self.lidar_meta = lidar_meta
        self.decoder = make_decoder("ouster" if lidar_meta else "velodyne", meta=lidar_meta,
                                    **({} if lidar_meta else {"cut_angle_deg": config.lidar.cut_angle_deg,
                                                               "return_mode": config.lidar.return_mode}))
        self.points_codec = make_codec("quantized", config.codecs)
        self.raw_codec = make_codec("rangeimage", config.codecs)
        self._layout: Any = None
        self.lidar_source = "lidar0"
        self._raw = _Window()
        self._batch: list[Any] = []
        self._raw_bytes = 0
        self._tbase: float | None = None  # point times are kept as int64 us from here
        self._nmea: dict[str, _Window] = {}
        self._pending: deque[Any] = deque()  # decoded scans waiting for navigation to cover them
        self._nav_t = -math.inf  # newest navigation time (UTC s)
        self._lidar_t = -math.inf
        self.skip_scans = False  # set by the runtime when processing is behind
        self.track: list[tuple[float, float, float]] = []  # (t, lat, lon) of fixes, decimated to 1 Hz
        rt = getattr(config, "runtime", None)
        self._outlier_method = getattr(rt, "outlier_method", "knn")
        self._ring_reach = int(getattr(rt, "outlier_ring_reach", 1))
        self._outlier_threads = int(getattr(rt, "outlier_threads", 2))
        self._filters_no_outliers = config.filters.model_copy(update={"outlier_enabled": False})
        self._filters_done = config.filters.model_copy(update={"outlier_enabled": False, "min_range_m": 0.0,
                                                               "max_range_m": math.inf, "crop_box": None,
                                                               "body_box": None})
        # the camera stage (and OpenCV, ~30 MB) is built at the first camera frame: a LiDAR-only
        # drive never loads it; the fixes before that frame are kept (bounded) to seed its track
        self.camera: Any = None
        self._camera_wanted = bool(camera and config.camera_processing.enabled)
        self._early_fixes: deque[Any] = deque()

    # ------------------------------------------------------------------ feeding
    def feed(self, msg: Any) -> list[ChunkSpec]:
        """One bus message; returns the chunk specs it completes."""
        from agent.bus.messages import CameraFrame, GnssFix, ImuSample, LidarPacket, NmeaSentence, PowerEvent

        s = self.stats
        s.messages += 1
        if s.first_utc_ns is None:
            s.first_utc_ns = msg.utc_ns
        s.last_utc_ns = msg.utc_ns if s.last_utc_ns is None else max(s.last_utc_ns, msg.utc_ns)
        if isinstance(msg, LidarPacket):
            return self._lidar(msg)
        if isinstance(msg, GnssFix):
            return self._fix(msg)
        if isinstance(msg, ImuSample):
            s.imu_samples += 1
            self.geo.add(msg)
            return []
        if isinstance(msg, NmeaSentence):
            s.nmea_sentences += 1
            s.bytes_in += len(msg.text)
            return self._windowed_text(f"{msg.source}/nmea", msg.utc_ns, msg.text)
        if isinstance(msg, CameraFrame):
            return self._camera(msg)
        if isinstance(msg, PowerEvent):
            s.power_events += 1
        return []

    def _fix(self, msg: Any) -> list[ChunkSpec]:
        s = self.stats
        s.gnss_fixes += 1
        self.geo.add(msg)
        if self.camera is not None:
            self.camera.add_fix(msg)
        elif self._camera_wanted:
            self._early_fixes.append(msg)
            while msg.utc_ns - self._early_fixes[0].utc_ns > self.EARLY_FIXES_NS:
                self._early_fixes.popleft()
        t = (msg.fix_utc_ns if msg.fix_utc_ns > 0 else msg.utc_ns) / 1e9
        if math.isfinite(msg.lat_deg) and math.isfinite(msg.lon_deg):
            s.last_fix = {"utc": t, "lat": msg.lat_deg, "lon": msg.lon_deg, "fix_type": int(msg.fix_type),
                          "hdop": msg.hdop, "sats": msg.num_sats}
            if not self.track or t - self.track[-1][0] >= 1.0:
                self.track.append((t, msg.lat_deg, msg.lon_deg))
        self._nav_t = max(self._nav_t, t)
        out = self._process_ready()
        return out

    def _windowed_text(self, stream: str, utc_ns: int, text: str) -> list[ChunkSpec]:
        w = self._nmea.setdefault(stream, _Window())
        idx = int(utc_ns // int(self.window_s * 1e9))
        out: list[ChunkSpec] = []
        if w.index is not None and idx != w.index:
            out.append(self._text_spec(stream, w))
        if w.index != idx:
            w.index, w.items, w.t0 = idx, [], utc_ns
        w.items.append(text.rstrip("\r\n"))
        w.t1 = utc_ns
        return out

    def _text_spec(self, stream: str, w: _Window) -> ChunkSpec:
        import zstandard

        raw = ("\n".join(w.items) + "\n").encode()
        payload = zstandard.ZstdCompressor(level=self.cfg.codecs.zstd_level).compress(raw)
        self._count(stream, "nmea", len(payload))
        return ChunkSpec(stream=stream, sensor="nmea-0183", t_start_ns=w.t0, t_end_ns=max(w.t1, w.t0),
                         payload=payload, codec="zstd", codec_params={"content": "text/nmea", "raw_bytes": len(raw)},
                         counts={"sentences": len(w.items)})

    # ------------------------------------------------------------------ LiDAR
    def _lidar(self, msg: Any) -> list[ChunkSpec]:
        from sensors.packets import Packet

        s = self.stats
        s.lidar_packets += 1
        s.lidar_bytes += len(msg.data)
        s.bytes_in += len(msg.data)
        self.lidar_source = msg.source or self.lidar_source
        pkt = Packet(msg.utc_ns / 1e9, msg.port, msg.data)
        out: list[ChunkSpec] = []
        # raw packets: always kept, one chunk per window
        idx = int(msg.utc_ns // int(self.window_s * 1e9))
        w = self._raw
        if w.index is not None and (idx != w.index or self._raw_bytes >= self.RAW_MAX_BYTES
                                    or msg.utc_ns - w.t0 >= self.RAW_MAX_NS):
            # a window ends, the chunk is big enough (memory) or old enough (what a power cut loses)
            out.append(self._raw_spec())
        if w.index is None:
            w.index, w.items, w.t0 = idx, [], msg.utc_ns
        w.items.append(pkt)
        self._raw_bytes += len(msg.data)
        w.t1 = msg.utc_ns
        self._lidar_t = max(self._lidar_t, pkt.timestamp)
        # decode in batches (one kernel call per batch); a scan waits for navigation anyway
        self._batch.append(pkt)
        if len(self._batch) >= self.DECODE_BATCH:
            out += self._decode()
        return out

    def _decode(self) -> list[ChunkSpec]:
        out: list[ChunkSpec] = []
        batch, self._batch = self._batch, []
        for scan in self.decoder.feed(batch):
            out += self._scan(scan)
        return out

    def _raw_spec(self) -> ChunkSpec:
        from pipeline.codecs.rangeimage import layout_for

        w = self._raw
        if self._layout is None:
            self._layout = layout_for(w.items, json.loads(self.lidar_meta) if self.lidar_meta else None)
        payload = self.raw_codec.encode(w.items, self._layout)
        stream = f"{self.lidar_source}/packets"
        raw = sum(len(p.data) for p in w.items)
        self._count(stream, "packets", len(payload))
        spec = ChunkSpec(stream=stream, sensor=getattr(self.decoder, "model", "") or "lidar", t_start_ns=w.t0,
                         t_end_ns=max(w.t1, w.t0), payload=payload, codec="rangeimage",
                         codec_params={"packets": len(w.items), "raw_bytes": raw}, counts={"packets": len(w.items)})
        w.items = []
        w.index = None
        self._raw_bytes = 0
        return spec

    def _scan(self, scan: Any) -> list[ChunkSpec]:
        s = self.stats
        s.scans += 1
        s.points_in += len(scan)
        if self.skip_scans:
            s.scans_dropped += 1  # a whole scan, never part of one
            return []
        self._pending.append(scan)
        return self._process_ready()

    def _process_ready(self, final: bool = False) -> list[ChunkSpec]:
        out: list[ChunkSpec] = []
        gap = self.cfg.georef.max_gap_s
        while self._pending:
            scan = self._pending[0]
            covered = self._nav_t >= scan.t_end
            stale = self._lidar_t - scan.t_end > gap  # navigation is not coming: go without
            if not (final or covered or stale):
                break
            self._pending.popleft()
            out += self._process(scan)
        return out

    def _process(self, scan: Any) -> list[ChunkSpec]:
        from pipeline.georef import ecef_to_geodetic, process_scan

        s = self.stats
        filters = self.cfg.filters
        removed: dict[str, int] = {}
        points: Any = scan
        if filters.outlier_enabled and self._outlier_method == "ring" and len(scan):
            points, removed = self._ring_outliers(scan)
            filters = self._filters_done  # the filters already ran: process_scan only georeferences and voxelizes
        ps = process_scan(points, self.geo, filters)
        s.scans_processed += 1
        s.points_no_pose += ps.no_pose
        for k, v in {**removed, **{k: v for k, v in ps.removed.items() if k not in removed}}.items():
            s.points_removed[k] = s.points_removed.get(k, 0) + int(v)
        if s.scans_processed % 50 == 0:  # live use: keep navigation bounded
            self.geo.prune(scan.t_start - 10.0)
        if not len(ps):
            return []
        geo = ecef_to_geodetic(np.ascontiguousarray(ps.ecef))
        self._origin = ps.origin
        if self._tbase is None:
            self._tbase = math.floor(float(ps.time.min()))
        # compact rows while a window is open (float32 ENU: < 2 mm error within 16 km of the origin)
        pay = {"enu": ps.enu.astype(np.float32), "intensity": np.clip(np.round(ps.intensity), 0, 65535).astype(np.uint16),
               "t_us": np.round((ps.time - self._tbase) * 1e6).astype(np.int64)}
        chunks = self.chunker.feed("points", ps.time, geo[:, 0], geo[:, 1], pay)
        return [spec for c in chunks for spec in self._points_specs(c)]

    def _ring_outliers(self, scan: Any) -> tuple[Any, dict[str, int]]:
        """The range, crop and body filters, then the range-image outlier filter
        (:mod:`pipeline.kernels.ring_outliers`) on the points they keep; returns the kept
        points of the scan and the counts removed per filter (as :func:`filter_points`)."""
        from pipeline.kernels._filter import filter_points
        from pipeline.kernels.ring_outliers import ring_outlier_mask

        f = self.cfg.filters
        xyz = np.ascontiguousarray(scan.xyz)
        fr = filter_points(xyz, self._filters_no_outliers, self.geo.rotation, self.geo.translation)
        idx = np.flatnonzero(fr.keep)
        removed = dict(fr.removed)
        if len(idx):
            inner = ring_outlier_mask(xyz[idx], scan.ring[idx], scan.time[idx], f.outlier_neighbors,
                                      f.outlier_std_ratio, self._ring_reach, f.outlier_neighbors,
                                      self._outlier_threads)
            removed["outliers"] = int(len(idx) - inner.sum())
            idx = idx[inner]
        else:
            removed["outliers"] = 0
        return _Points(xyz[idx], np.asarray(scan.time)[idx], np.asarray(scan.intensity)[idx]), removed

    def _points_specs(self, c: Any) -> list[ChunkSpec]:
        """A closed chunk as one or more specs of at most MAX_POINTS (bounded encoder memory;
        the pieces share the tile, window and bbox)."""
        n = len(c.payload["enu"])
        k = max(1, -(-n // self.MAX_POINTS))
        return [self._points_spec(c, slice(i * n // k, (i + 1) * n // k)) for i in range(k)]

    def _points_spec(self, c: Any, part: slice) -> ChunkSpec:
        s = self.stats
        enu = c.payload["enu"][part].astype(np.float64)
        n = len(enu)
        t_us = c.payload["t_us"][part]
        base_us = int(self._tbase or 0) * 1_000_000
        t0_us, t1_us = int(t_us.min()), int(t_us.max())
        t0_ns = (base_us + t0_us) * 1000
        dt_us = t_us - t0_us
        inten = c.payload["intensity"][part]
        payload = self.points_codec.encode(enu, {"intensity": inten, "dt_us": dt_us})
        stream = f"{self.lidar_source}/points"
        s.points_kept += n
        s.points_raw_bytes += n * 24
        self._count(stream, "points", len(payload))
        lat0, lon0, h0 = self._origin
        # bbox in the chunk header order: [min_lon, min_lat, max_lon, max_lat]
        bbox = (c.bbox[1], c.bbox[0], c.bbox[3], c.bbox[2])
        return ChunkSpec(stream=stream, sensor=getattr(self.decoder, "model", "") or "lidar", t_start_ns=t0_ns,
                         t_end_ns=(base_us + t1_us) * 1000, payload=payload, codec="quantized",
                         codec_params={"frame": "enu", "origin": [lat0, lon0, h0], "step_m": self.cfg.codecs.xyz_step_m,
                                       "attrs": ["intensity", "dt_us"], "window": [c.window_start, c.window_end]},
                         tile=c.tile, bbox=bbox, counts={"points": n})

    # ------------------------------------------------------------------ camera
    def _camera(self, msg: Any) -> list[ChunkSpec]:
        s = self.stats
        s.camera_frames += 1
        s.camera_bytes += len(msg.jpeg)
        s.bytes_in += len(msg.jpeg)
        if self.camera is None and self._camera_wanted:
            self._camera_wanted = False  # one attempt
            try:
                from pipeline.camera import camera_stage_from_config

                self.camera = camera_stage_from_config(self.cfg.camera_processing)
            except ImportError as exc:  # OpenCV missing: frames are counted, not processed
                log.warning("camera stage off: %s", exc)
            else:
                for fix in self._early_fixes:
                    self.camera.add_fix(fix)
            self._early_fixes.clear()
        if self.camera is None:
            return []
        res = self.camera.process(msg)
        s.camera_decisions[res.decision] = s.camera_decisions.get(res.decision, 0) + 1
        kf = res.keyframe
        if kf is None:
            return []
        s.keyframes += 1
        stream = f"{msg.camera_id or msg.source}/keyframes"
        self._count(stream, "keyframes", len(kf.jpeg))
        pos = kf.position
        lat, lon = float(getattr(pos, "lat_deg", math.nan)), float(getattr(pos, "lon_deg", math.nan))
        tile = bbox = None
        if math.isfinite(lat) and math.isfinite(lon):
            from pipeline.chunking import tile_xy

            x, y = tile_xy(np.array([lat]), np.array([lon]), self.cfg.chunking.zoom)
            tile = f"{self.cfg.chunking.zoom}/{int(x[0])}/{int(y[0])}"
            bbox = (lon, lat, lon, lat)
        return [ChunkSpec(stream=stream, sensor="camera", t_start_ns=kf.utc_ns, t_end_ns=kf.utc_ns, payload=kf.jpeg,
                          codec="jpeg", codec_params={"width": kf.width, "height": kf.height, "redacted": True,
                                                      "regions": len(kf.boxes)},
                          tile=tile, bbox=bbox, counts={"frames": 1})]

    # ------------------------------------------------------------------ closing
    def flush(self) -> list[ChunkSpec]:
        """Close every open chunk (end of a drive, ignition off, shutdown)."""
        out: list[ChunkSpec] = self._decode()
        for scan in self.decoder.flush():
            out += self._scan(scan)
        out += self._process_ready(final=True)
        out += [spec for c in self.chunker.flush() for spec in self._points_specs(c)]
        if self._raw.items:
            out.append(self._raw_spec())
        for stream, w in self._nmea.items():
            if w.items:
                out.append(self._text_spec(stream, w))
                w.items, w.index = [], None
        self.stats.points_late = self.chunker.stats.late
        return out

    def _count(self, stream: str, kind: str, nbytes: int) -> None:
        s = self.stats
        s.chunks[kind] = s.chunks.get(kind, 0) + 1
        s.chunk_payload_bytes[kind] = s.chunk_payload_bytes.get(kind, 0) + nbytes


@dataclass
class _Points:
    """The per-point fields :func:`pipeline.georef.process_scan` reads, for a subset of a scan."""

    xyz: np.ndarray
    time: np.ndarray
    intensity: np.ndarray

    def __len__(self) -> int:
        return len(self.xyz)


def now_ns() -> int:
    return time.time_ns()
