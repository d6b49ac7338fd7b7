"""The streaming Ouster decoder: packets in, one :class:`~sensors.lidar.Scan` per frame id out.

Conventions (what a consumer of the scans must know):

- **Frames.** A frame is every lidar packet with one ``frame_id``. It is emitted as soon as all
  columns of the metadata's ``column_window`` have arrived, or else when a packet of another
  frame arrives; :meth:`OusterDecoder.flush` emits the last, partial one. Packets of a frame
  already emitted (late or duplicated) are dropped and counted bad.
- **Missing columns** (no packet, or status bit "invalid") have range 0 and no points;
  ``extras["valid_columns"]`` is a (W,) bool mask indexed by *measurement id* (staggered
  column), the way the sensor numbers columns.
- **Images.** ``extras`` holds destaggered (H, W) images exactly like ouster-sdk's
  ``destagger(info, field)``: ``range`` (uint32, mm), ``reflectivity``, ``signal``, ``nir``
  (uint16) where the profile has them, and for dual profiles ``range2``, ``reflectivity2``,
  ``signal2``. Row 0 is the **top** beam (highest altitude angle), as in ouster-sdk.
  ``column_timestamp`` (W,) uint64 is the sensor's timestamp of each column, ns.
- **Points** are the valid returns only: range non-zero and at least ``min_range_m``, in
  destaggered row-major order; for dual profiles all first returns, then all second returns.
  XYZ is ouster-sdk's ``XYZLut`` (sensor frame, metres, ``lidar_to_sensor_transform`` and the
  beam origin offset applied). ``ring`` = H - 1 - row, so **ring 0 is the lowest beam**
  (Velodyne's convention, the reverse of Ouster's row order). ``azimuth`` is the encoder angle
  of the column that measured the point, ``360 * measurement_id / W`` degrees. ``intensity`` is
  reflectivity (or signal with ``intensity="signal"``). ``return_type`` is RETURN_STRONGEST
  for the first return (RETURN_LAST if the sensor's return_order is FARTHEST_TO_NEAREST) and
  RETURN_SECOND for the second.
- **Time.** Column timestamps are the sensor's clock. When that clock is within a day of the
  capture time (PTP or GPS time) it is used as is; otherwise (internal oscillator: seconds
  since boot) it is anchored once to the capture time of the first packet, and re-anchored if
  the two drift more than a second apart. ``time`` is per point, ``t_start``/``t_end`` span
  the frame's valid columns.
- **Scan.index** is the sensor's frame id (16 bits, it wraps).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from sensors.errors import DecodeError, MetadataError
from sensors.lidar._scan import RETURN_LAST, RETURN_SECOND, RETURN_STRONGEST, DecoderStats, Scan
from sensors.lidar.ouster import _kernels as K
from sensors.lidar.ouster._imu import ImuSample, decode_imu_array
from sensors.lidar.ouster._metadata import OusterMetadata, load_metadata
from sensors.lidar.ouster._profiles import (
    FIELD_NAMES,
    IMU_PACKET_BYTES,
    LIDAR_PROFILES,
    RANGE,
    RANGE2,
    REFLECTIVITY,
    REFLECTIVITY2,
    SIGNAL,
    SIGNAL2,
)
from sensors.packets import Packet, batch_packets

_CHUNK = 64  # packets per kernel call: amortises the call, holds back at most about one frame
_GIVE_UP_AFTER = 256  # lidar-sized packets with none matching before the metadata is rejected
_ABSOLUTE_CLOCK_S = 86400.0
_REANCHOR_S = 1.0


def _tables(meta: OusterMetadata, destaggered: bool) -> tuple[np.ndarray, np.ndarray, float]:
    shifts = np.asarray(meta.pixel_shift_by_row if destaggered else [0] * meta.pixels_per_column,
                        dtype=np.int64)
    return K.xyz_tables(meta.columns_per_frame, np.asarray(meta.beam_altitude_angles, dtype=np.float64),
                        np.asarray(meta.beam_azimuth_angles, dtype=np.float64),
                        np.ascontiguousarray(meta.beam_to_lidar_transform, dtype=np.float64),
                        np.ascontiguousarray(meta.lidar_to_sensor_transform, dtype=np.float64), shifts)


def xyz_lut(meta: OusterMetadata, destaggered: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """ouster-sdk's XYZ look-up table: ``xyz = range_mm * dir + off`` (metres, sensor frame).
    Staggered (pixel (row, measurement id), as ouster-sdk's ``XYZLut``) or laid out like the
    destaggered images. Returns ``dir`` and ``off``, both (H, W, 3) float64 (the decoder uses
    the compact factored form of :func:`_kernels.xyz_tables`)."""
    lut_dir, base, dist = _tables(meta, destaggered)
    h, w = meta.pixels_per_column, meta.columns_per_frame
    shifts = np.asarray(meta.pixel_shift_by_row if destaggered else [0] * h, dtype=np.int64)
    m = (np.arange(w)[None, :] - shifts[:, None]) % w
    direction = lut_dir.astype(np.float64)
    return direction, base[m] - dist * direction


class OusterDecoder:
    """Ouster OS-0/1/2 (and OSDome) packets → scans, driven by the sensor's metadata JSON.

    ``meta`` is a path to the JSON, the JSON text, or a parsed dict. ``return_mode``: ``auto``
    or ``dual`` (every return the profile carries), ``strongest``/``first`` (first return only),
    ``second`` (second return of a dual profile), ``last`` (the farther of a dual profile's
    two returns, when the sensor orders them by range; an error otherwise). Packets whose serial number or init id differ
    from the metadata's are rejected, as ouster-sdk does, unless ``soft_id_check``. CRC64 of
    firmware 3.x packets is checked when present (``check_crc``). Other keyword arguments (meant
    for other decoders) are ignored.
    """

    sensor = "ouster"

    def __init__(self, meta: str | Path | Mapping[str, Any] | None = None, return_mode: str = "auto",
                 min_range_m: float = 0.0, intensity: str = "reflectivity", check_crc: bool = True,
                 soft_id_check: bool = False, **ignored: Any) -> None:
        if meta is None:
            raise MetadataError("<none>", "decoding Ouster packets needs the sensor's metadata JSON")
        self.meta = load_metadata(meta)
        m = self.meta
        self.profile = LIDAR_PROFILES[m.udp_profile_lidar]
        self.model = m.prod_line
        self.stats = DecoderStats()
        self.packet_bytes = self.profile.packet_bytes(m.pixels_per_column, m.columns_per_packet)
        fw = m.firmware_version
        # CRC64 footers came with firmware 3; older footers hold zeros or a fixed pattern
        self.check_crc = bool(check_crc) and not self.profile.legacy and (fw is None or fw[0] >= 3)
        self.soft_id_check = soft_id_check
        if min_range_m < 0:
            raise DecodeError(f"min_range_m must be >= 0, got {min_range_m}")
        self.min_range_mm = int(np.ceil(min_range_m * 1000.0))

        present = self.profile.present()
        self._names = [FIELD_NAMES[f] for f in present]
        slot = {f: i for i, f in enumerate(present)}
        self._fields = np.ascontiguousarray(self.profile.field_table()[present])
        self._returns = self._pick_returns(return_mode, intensity, slot)

        h, w = m.pixels_per_column, m.columns_per_frame
        self._shifts = np.asarray(m.pixel_shift_by_row, dtype=np.int64)
        self._lut_dir, self._lut_base, self._lut_dist = _tables(m, destaggered=True)
        self._planes = np.zeros((len(present), h, w), dtype=np.uint32)  # staggered
        self._col_state = np.zeros(w, dtype=np.uint8)
        self._col_ts = np.zeros(w, dtype=np.int64)
        self._window = m.window_mask()
        self._window_n = m.window_columns
        self._frame_id: int | None = None
        self._frame_packets = 0
        self._frame_t0 = 0.0
        self._last_emitted: int | None = None
        self._time_offset: float | None = None
        self._imu: list[ImuSample] = []
        self._candidates = 0  # packets taken for lidar packets, matching or not
        self._size_seen: Counter[int] = Counter()
        self._ids_seen: Counter[tuple[int, int]] = Counter()

    # -- configuration -------------------------------------------------------------------------

    def _pick_returns(self, return_mode: str, intensity: str, slot: dict[int, int]) -> np.ndarray:
        mode = (return_mode or "auto").lower()
        if intensity not in ("reflectivity", "signal"):
            raise DecodeError(f"intensity must be 'reflectivity' or 'signal', got {intensity!r}")
        inten = (REFLECTIVITY, REFLECTIVITY2) if intensity == "reflectivity" else (SIGNAL, SIGNAL2)
        if inten[0] not in slot:
            raise DecodeError(f"profile {self.profile.name} carries no {intensity}")
        first = RETURN_LAST if self.meta.return_order == "FARTHEST_TO_NEAREST" else RETURN_STRONGEST
        r1 = (slot[RANGE], slot[inten[0]], first)
        r2 = (slot[RANGE2], slot.get(inten[1], -1), RETURN_SECOND) if self.profile.dual else None
        if mode in ("auto", "dual", "both"):
            rows = [r1] if r2 is None else [r1, r2]
        elif mode in ("strongest", "first", "single"):
            rows = [r1]
        elif mode == "last":
            # a dual profile sends the two strongest returns; which is the farther depends on
            # the sensor's return_order
            order = self.meta.return_order
            if r2 is None or order not in ("FARTHEST_TO_NEAREST", "NEAREST_TO_FARTHEST"):
                raise DecodeError(f"return_mode 'last' needs a dual-return profile with return_order "
                                  f"FARTHEST_TO_NEAREST or NEAREST_TO_FARTHEST; the metadata says "
                                  f"{self.profile.name}, {order}")
            rows = [r1] if order == "FARTHEST_TO_NEAREST" else [(r2[0], r2[1], RETURN_LAST)]
        elif mode == "second":
            if r2 is None:
                raise DecodeError(f"return_mode 'second' needs a dual-return profile, the metadata says "
                                  f"{self.profile.name}")
            rows = [r2]
        else:
            raise DecodeError(f"unknown return_mode {return_mode!r} for Ouster "
                              "(auto, dual, strongest, first, second, last)")
        return np.array(rows, dtype=np.int64)

    # -- the LidarDecoder protocol ------------------------------------------------------------

    def feed(self, packets: Iterable[Packet]) -> Iterator[Scan]:
        """Decode packets; yields each frame as soon as it is complete."""
        chunk: list[Packet] = []
        for p in packets:
            chunk.append(p)
            if len(chunk) >= _CHUNK:
                yield from self._process(chunk)
                chunk = []
        if chunk:
            yield from self._process(chunk)

    def flush(self) -> Iterator[Scan]:
        """Emit the frame in progress (possibly partial). Raises :class:`MetadataError` if
        lidar packets came but none matched the metadata."""
        if self._candidates and self.stats.packets == 0:
            raise self._mismatch_error()
        if self._frame_id is not None:
            yield self._finish()

    def take_imu(self) -> list[ImuSample]:
        """IMU samples decoded since the last call (IMU packets ride along with lidar ones)."""
        out, self._imu = self._imu, []
        return out

    # -- internals ------------------------------------------------------------------------------

    def _process(self, chunk: list[Packet]) -> Iterator[Scan]:
        m = self.meta
        batch = batch_packets(chunk, max(self.packet_bytes, IMU_PACKET_BYTES))
        sizes, ports = batch.sizes, batch.ports
        is_imu = (ports == m.udp_port_imu) | ((sizes == IMU_PACKET_BYTES) & (ports != m.udp_port_lidar))
        if is_imu.any():
            self._take_imu(batch, np.flatnonzero(is_imu))
        rows = np.flatnonzero(~is_imu)
        if not len(rows):
            return
        self._candidates += len(rows)
        prof = self.profile
        verdict, frame_id, init_id, sn = K.parse_headers(
            batch.data, sizes, rows, self.packet_bytes, prof.legacy, prof.packet_header_bytes,
            prof.column_bytes(m.pixels_per_column), m.columns_per_packet, m.columns_per_frame,
            self.check_crc)
        for code in np.unique(verdict):
            if code != K.OK:
                bad = verdict == code
                self.stats.bad(K.VERDICTS[int(code)], int(bad.sum()))
                if code == K.BAD_SIZE:
                    self._size_seen.update(sizes[rows[bad]].tolist())
        ok = verdict == K.OK
        if not prof.legacy and not self.soft_id_check and (m.prod_sn or m.init_id):
            wrong = ok & (((sn != m.prod_sn) if m.prod_sn else False)
                          | ((init_id != m.init_id) if m.init_id else False))
            if wrong.any():
                self.stats.bad("serial number or init id differ from the metadata", int(wrong.sum()))
                self._ids_seen.update(zip(sn[wrong].tolist(), init_id[wrong].tolist()))
                ok &= ~wrong
        good = rows[ok]
        if len(good):
            yield from self._assemble(batch, good, frame_id[ok])
        if self.stats.packets == 0 and self._candidates >= _GIVE_UP_AFTER:
            raise self._mismatch_error()

    def _take_imu(self, batch: Any, idx: np.ndarray) -> None:
        right = batch.sizes[idx] == IMU_PACKET_BYTES
        if (~right).any():
            self.stats.bad("IMU packet of wrong size", int((~right).sum()))
        idx = idx[right]
        if not len(idx):
            return
        self.stats.other_packets += len(idx)
        if self.meta.udp_profile_imu != "LEGACY":
            return
        recs = decode_imu_array(batch.data[idx, :IMU_PACKET_BYTES])
        for rec, t in zip(recs, batch.timestamps[idx]):
            a, g = rec["accel"].tolist(), rec["gyro"].tolist()
            self._imu.append(ImuSample(int(rec["sys_ts"]), int(rec["accel_ts"]), int(rec["gyro_ts"]),
                                       (a[0], a[1], a[2]), (g[0], g[1], g[2]), float(t)))
        if len(self._imu) > 100_000:  # nobody takes them: keep memory bounded
            del self._imu[: len(self._imu) - 100_000]

    def _assemble(self, batch: Any, rows: np.ndarray, fids: np.ndarray) -> Iterator[Scan]:
        m, prof = self.meta, self.profile
        cuts = np.flatnonzero(np.diff(fids)) + 1
        starts = np.concatenate(([0], cuts))
        ends = np.concatenate((cuts, [len(rows)]))
        for a, b in zip(starts.tolist(), ends.tolist()):
            fid = int(fids[a])
            run = rows[a:b]
            if fid == self._last_emitted and fid != self._frame_id:
                self.stats.bad("late packet of a frame already emitted", len(run))
                continue
            if self._frame_id is not None and fid != self._frame_id:
                yield self._finish()
            if self._frame_id is None:
                self._frame_id = fid
                self._frame_t0 = float(batch.timestamps[run[0]])
            K.fill_frame(batch.data, run, prof.legacy, prof.packet_header_bytes,
                         prof.column_bytes(m.pixels_per_column), m.columns_per_packet,
                         prof.column_header_bytes, prof.channel_bytes, m.pixels_per_column,
                         self._fields, self._planes, self._col_state, self._col_ts)
            self._frame_packets += len(run)
            self.stats.packets += len(run)
            if np.count_nonzero(self._col_state[self._window]) == self._window_n:
                yield self._finish()

    def _column_times(self, valid: np.ndarray) -> np.ndarray:
        ts = self._col_ts * 1e-9
        if valid.any():
            first = float(ts[valid].min())
            if self._time_offset is None or abs(first + self._time_offset - self._frame_t0) > _REANCHOR_S:
                absolute = abs(first - self._frame_t0) < _ABSOLUTE_CLOCK_S
                self._time_offset = 0.0 if absolute else self._frame_t0 - first
        return ts + (self._time_offset or 0.0)

    def _finish(self) -> Scan:
        assert self._frame_id is not None
        valid = self._col_state == K.COL_VALID
        col_time = self._column_times(valid)
        images = K.destagger(self._planes, self._shifts)
        x, y, z, inten, ring, az, t, rtype = K.build_points(
            images, self._col_state, col_time, self._shifts, self._lut_dir, self._lut_base, self._lut_dist,
            self._returns, self.min_range_mm)
        extras: dict[str, np.ndarray] = {}
        for i, name in enumerate(self._names):
            extras[name] = images[i] if name.startswith("range") else images[i].astype(np.uint16)
        extras["valid_columns"] = valid
        extras["column_timestamp"] = self._col_ts.astype(np.uint64)
        if valid.any():
            t_start, t_end = float(col_time[valid].min()), float(col_time[valid].max())
        else:
            t_start = t_end = self._frame_t0
        scan = Scan(index=self._frame_id, x=x, y=y, z=z, intensity=inten, ring=ring, azimuth=az, time=t,
                    return_type=rtype, t_start=t_start, t_end=t_end, sensor=self.sensor, model=self.model,
                    packets=self._frame_packets, extras=extras)
        self.stats.scans += 1
        self._last_emitted = self._frame_id
        self._frame_id = None
        self._frame_packets = 0
        self._planes.fill(0)
        self._col_state.fill(0)
        self._col_ts.fill(0)
        return scan

    def _mismatch_error(self) -> MetadataError:
        m = self.meta
        lead = "metadata does not match the data"
        if self._size_seen:
            (size, n), *others = self._size_seen.most_common(3)
            more = "".join(f", {s} ({k})" for s, k in others)
            reason = (f"{lead}: expected packet size {self.packet_bytes}, got {size} ({n} packets{more}; the "
                      f"metadata says {m.udp_profile_lidar}, {m.pixels_per_column} beams, "
                      f"{m.columns_per_packet} columns per packet)")
        elif self._ids_seen:
            (sn, init), _ = self._ids_seen.most_common(1)[0]
            reason = (f"{lead}: packets come from sensor sn {sn} (init_id {init}), the metadata describes "
                      f"sn {m.prod_sn} (init_id {m.init_id}); use that sensor's metadata JSON "
                      "(soft_id_check=True skips this check for a sensor that was only re-initialised)")
        else:
            why = ", ".join(f"{k}: {v}" for k, v in self.stats.reasons.items())
            reason = f"{lead}: no lidar packet could be decoded ({why})"
        return MetadataError(m.source, reason)
