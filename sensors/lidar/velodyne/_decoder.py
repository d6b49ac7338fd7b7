"""The streaming Velodyne decoder: packets in, :class:`~sensors.lidar._scan.Scan` out.

Scan boundaries are at packet granularity, by the rule velodyne_decoder 3.1 uses (its
``ScanBatcher``): a scan ends with the first packet whose last block's azimuth has passed the
cut angle after the scan has covered more than half a turn, so one scan may run past the
cut by at most one packet (under 5 degrees on a VLP-16 at 600 rpm); a gap of more than
0.3 s since the scan's first packet also ends it. Matching it keeps scans comparable with
that reference, packet for packet.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np

from sensors.errors import DecodeError
from sensors.lidar._scan import RETURN_LAST, RETURN_SECOND, RETURN_STRONGEST, DecoderStats, Scan
from sensors.lidar.velodyne import _kernels as K
from sensors.lidar.velodyne._models import (
    MODELS,
    PACKET_SIZE,
    PID_HDL32E,
    POSITION_PACKET_SIZE,
    UNSUPPORTED_PRODUCTS,
    VLP16,
    VelodyneModel,
    model_by_name,
    packet_interval_us,
)
from sensors.lidar.velodyne._position import PositionInfo, parse_position_packet
from sensors.packets import Packet

log = logging.getLogger(__name__)

DATA_PORT = 2368
POSITION_PORT = 8308
BATCH_PACKETS = 4096  # per kernel call: about 1.6 M points, 50 MB of output arrays
DURATION_THRESHOLD_S = 0.3  # as velodyne_decoder: no scan lasts longer (slowest is 5 Hz)
SYNC_TOLERANCE_S = 2.0  # device time this close to host time: the sensor is PPS/GNSS-synced
REANCHOR_S = 1.0  # free-running device clock drifted this far from host time: anchor again
TIME_SOURCES = ("auto", "device", "host")
_POINTS_PER_PACKET = 384
_ANGLES = np.radians(np.arange(36000) * 0.01)
_COS_TAB = np.cos(_ANGLES)
_SIN_TAB = np.sin(_ANGLES)
_RETURN_FILTERS = {
    "auto": RETURN_STRONGEST | RETURN_LAST | RETURN_SECOND,
    "dual": RETURN_STRONGEST | RETURN_LAST | RETURN_SECOND,
    "both": RETURN_STRONGEST | RETURN_LAST | RETURN_SECOND,
    "strongest": RETURN_STRONGEST,
    "last": RETURN_LAST,
}


def _device_us(data: bytes) -> int:
    return int.from_bytes(data[1200:1204], "little")


def detect_model(packets: list[bytes]) -> VelodyneModel | None:
    """The model of these data packets from their factory byte (``None`` if unknown).

    Early VLP-16 firmware reported product id 0x21 (HDL-32E), as the county-fair capture
    does. The two are told apart by the packet rate, which the factory byte cannot fake:
    an HDL-32E sends a packet every 553 us (276 us in dual mode), a VLP-16 every 1327 us
    (664 us dual). Two consecutive packets' device timestamps decide; with only one packet
    the factory byte is trusted.
    """
    if not packets:
        return None
    pid = packets[0][1205]
    model = MODELS.get(pid)
    if model is None or pid != PID_HDL32E or len(packets) < 2:
        return model
    deltas = []
    for a, b in zip(packets, packets[1:]):
        if a[1205] == b[1205] == PID_HDL32E:
            deltas.append((_device_us(b) - _device_us(a)) % 3_600_000_000)
    if not deltas:
        return model
    delta = float(np.median(deltas))
    dual = packets[0][1204] == 0x39
    vlp16_us = packet_interval_us(VLP16, dual)
    hdl_us = packet_interval_us(model, dual)
    if abs(delta - vlp16_us) < abs(delta - hdl_us):
        log.debug("product id 0x21 (HDL-32E) but packets every %.0f us: decoding as VLP-16", delta)
        return VLP16
    return model


class VelodyneDecoder:
    """Streaming decoder for VLP-16 (and Puck LITE / Hi-Res), VLP-32C, HDL-32E and VLS-128.

    ``cut_angle_deg``: azimuth (degrees, sensor encoder angle) where scans are cut.
    ``return_mode``: ``auto`` keeps what the sensor sends; in dual-return data ``strongest``
    or ``last`` keep only points carrying that flag. ``min_range_m``: closer returns are
    dropped (zero-range returns always are). ``model``: force a model by name (``VLP-16``,
    ``HDL-32E``, ...) instead of detecting it from the packets' factory bytes.

    Points: x forward, y left, z up (metres); ``azimuth`` is the interpolated encoder angle
    (clockwise seen from above, as the sensor counts); ``time`` = the packet's time (see
    ``time_source`` below) + the model's firing offset. Dual return: the even block of a pair is the last return, the odd
    one the strongest; when both carry the same distance and reflectivity the return is
    emitted once with ``RETURN_LAST | RETURN_STRONGEST``; when the last return is at least as
    strong as the other, it gets both flags and the other is ``RETURN_SECOND`` (the manual:
    "if the strongest return is also the last, the second-strongest is reported").

    ``time_source`` says what a packet's time is. Each data packet carries the sensor's
    microseconds past the hour of its first firing; the capture/receive time comes from the
    host and includes network and OS latency (and a host clock that may be off).
    ``auto`` (default): when the device time, placed in the host's hour, lies within
    :data:`SYNC_TOLERANCE_S` of the host time the sensor is synced to GNSS/PPS and its time is
    used as is (exact UTC of each firing); otherwise the device clock is free-running, so its
    spacing is kept (jitter-free) and anchored to the host time of the first packet,
    re-anchored when they drift more than :data:`REANCHOR_S` apart. ``device``: always the
    device time in the host's hour. ``host``: the capture times as they are.

    Position packets (UDP 8308) are parsed into :attr:`positions` (the newest 1000).
    """

    sensor = "velodyne"

    def __init__(self, cut_angle_deg: float = 0.0, return_mode: str = "auto", min_range_m: float = 0.0,
                 model: str | None = None, time_source: str = "auto") -> None:
        if time_source not in TIME_SOURCES:
            raise DecodeError(f"unknown time source {time_source!r}; choose one of {', '.join(TIME_SOURCES)}")
        self.time_source = time_source
        self._anchor: float | None = None  # host minus unwrapped device time (free-running clock)
        self._last_dev: float | None = None
        self._wrap = 0.0
        self._was_synced = False
        if return_mode not in _RETURN_FILTERS:
            choices = ", ".join(_RETURN_FILTERS)
            raise DecodeError(f"unknown return mode {return_mode!r}; choose one of {choices}")
        self.cut_angle_deg = float(cut_angle_deg) % 360.0
        self.return_mode = return_mode
        self.min_range_m = float(min_range_m)
        self._forced: VelodyneModel | None = None
        if model is not None:
            self._forced = model_by_name(model)
            if self._forced is None:
                raise DecodeError(f"unknown Velodyne model {model!r}")
        self._model: VelodyneModel | None = None
        self._pid = -1  # product id the data packets carry (an early VLP-16 says 0x21)
        self.model = self._forced.name if self._forced else ""
        self.stats = DecoderStats()
        self.positions: deque[PositionInfo] = deque(maxlen=1000)
        self._probe: list[Packet] = []  # data packets held until the model is known
        self._kstate = np.array([-1.0, 0.0, 0.0])  # last azimuth step, previous packet azimuth
        self._cstate = np.zeros(3)  # coverage, first stamp, packets in open scan
        self._cut = int(round(self.cut_angle_deg * 100)) % 36000
        self._open: list[tuple[np.ndarray, ...]] = []  # point chunks of the open scan
        self._open_packets = 0
        self._scan_index = 0
        self._tables: tuple | None = None

    # -- public -------------------------------------------------------------------------
    def feed(self, packets: Iterable[Packet]) -> Iterator[Scan]:
        """Decode ``packets`` (any number, in order); yield every scan they complete.

        Packets are decoded in batches of up to :data:`BATCH_PACKETS` per kernel call, so a
        whole capture can be fed at once with bounded memory.
        """
        data: list[bytes] = []
        stamps: list[float] = []
        for pkt in packets:
            if len(data) >= BATCH_PACKETS:
                yield from self._batch(data, stamps)
                data, stamps = [], []
            payload = pkt.data
            size = len(payload)
            if pkt.port == POSITION_PORT or (size == POSITION_PACKET_SIZE and pkt.port != DATA_PORT):
                info = parse_position_packet(payload, pkt.timestamp)
                if info is None:
                    self.stats.bad("bad position packet")
                else:
                    self.stats.other_packets += 1
                    self.positions.append(info)
                continue
            if size != PACKET_SIZE:
                self.stats.bad("wrong size")
                continue
            data.append(payload)
            stamps.append(pkt.timestamp)
        yield from self._batch(data, stamps)

    def _batch(self, data: list[bytes], stamps: list[float]) -> Iterator[Scan]:
        if self._model is None:
            data, stamps = self._detect(data, stamps)
            if self._model is None:
                return
        if data:
            yield from self._decode(data, stamps)

    def flush(self) -> Iterator[Scan]:
        """Yield the open (partial) scan, if it has points; the decoder starts afresh."""
        if self._model is None and self._probe:
            probe, self._probe = self._probe, []
            known = [p.data for p in probe if p.data[1205] in MODELS]
            self._model = self._forced or detect_model(known)
            if self._model is not None and known:
                self._pid = known[0][1205]
                self.model = self._model.name
                yield from self._decode([p.data for p in probe], [p.timestamp for p in probe])
        if self._open_packets:
            yield self._close()
        self._cstate[:] = 0.0

    # -- internals ----------------------------------------------------------------------
    def _detect(self, data: list[bytes], stamps: list[float]) -> tuple[list[bytes], list[float]]:
        """Hold packets until the model is known; return the held ones once it is."""
        for payload, ts in zip(data, stamps):
            pid = payload[1205]
            if pid in MODELS:
                self._probe.append(Packet(ts, DATA_PORT, payload))
            elif pid in UNSUPPORTED_PRODUCTS:
                self.stats.bad(f"unsupported product {UNSUPPORTED_PRODUCTS[pid]}")
            else:
                self.stats.bad("unknown product id")
        if not self._probe:
            return [], []
        first = self._probe[0].data[1205]
        if first == PID_HDL32E and len(self._probe) < 2 and self._forced is None:
            return [], []  # one more packet tells an HDL-32E from an early VLP-16
        self._pid = first
        self._model = self._forced or detect_model([p.data for p in self._probe[:8]])
        self.model = self._model.name if self._model else ""
        probe, self._probe = self._probe, []
        return [p.data for p in probe], [p.timestamp for p in probe]

    def _model_tables(self) -> tuple:
        """The model arguments of ``decode_packets``, in its order (built once)."""
        if self._tables is None:
            m = self._model
            assert m is not None
            el = np.radians(m.elevation_deg)
            off = np.radians(m.azimuth_offset_deg)

            def f64(a: np.ndarray) -> np.ndarray:
                return np.ascontiguousarray(a, dtype=np.float64)

            self._tables = (
                np.uint8(self._pid), m.layout, m.group_blocks, np.cos(el), np.sin(el), f64(m.z_offset_m),
                np.cos(off), np.sin(off), m.rings(), float(m.distance_resolution),
                f64(m.time_us), f64(m.time_dual_us), f64(m.frac),
            )
        return self._tables

    def _decode(self, data: list[bytes], stamps: list[float]) -> Iterator[Scan]:
        n = len(data)
        arr = np.frombuffer(b"".join(data), dtype=np.uint8).reshape(n, PACKET_SIZE)
        ts = np.asarray(stamps, dtype=np.float64)
        m = n * _POINTS_PER_PACKET
        x = np.empty(m, np.float32)
        y = np.empty(m, np.float32)
        z = np.empty(m, np.float32)
        inten = np.empty(m, np.float32)
        ring = np.empty(m, np.uint16)
        az = np.empty(m, np.float32)
        t = np.empty(m, np.float64)
        rt = np.empty(m, np.uint8)
        pkt_end = np.empty(n, np.int64)
        status = np.empty(n, np.int8)
        last_az = np.empty(n, np.int64)
        K.decode_packets(arr, ts, *self._model_tables(), self.min_range_m, _RETURN_FILTERS[self.return_mode],
                         _COS_TAB, _SIN_TAB, self._kstate, x, y, z, inten, ring, az, t, rt, pkt_end, status,
                         last_az)
        bad = status != K.OK
        if self.time_source != "host" and n:
            # Re-base every good packet's points on its device time (see the class docstring).
            delta = self._packet_times(arr, ts, ~bad) - ts
            counts = np.diff(pkt_end[:n], prepend=0)
            t[: int(pkt_end[n - 1])] += np.repeat(delta, counts)
        if bad.any():
            for i in np.flatnonzero(bad).tolist():
                code = int(status[i])
                reason = K.STATUS_NAMES.get(code, "bad packet")
                if code == K.BAD_PRODUCT:
                    pid = int(arr[i, 1205])
                    if pid in UNSUPPORTED_PRODUCTS:
                        reason = f"unsupported product {UNSUPPORTED_PRODUCTS[pid]}"
                    elif pid not in MODELS:
                        reason = "unknown product id"
                self.stats.bad(reason)
        self.stats.packets += int(n - bad.sum())
        close_before = np.empty(n, np.bool_)
        close_after = np.empty(n, np.bool_)
        K.cut_scans(last_az, ts, status, self._cut, DURATION_THRESHOLD_S, self._cstate,
                    close_before, close_after)
        cols = (x, y, z, inten, ring, az, t, rt)
        good = ~bad
        start = 0  # first packet of the open part in this batch
        cuts_before = np.flatnonzero(close_before)
        cuts_after = np.flatnonzero(close_after)
        events = sorted([(int(i), 0) for i in cuts_before] + [(int(i), 1) for i in cuts_after])
        for i, after in events:
            end = i + 1 if after else i
            self._append(cols, pkt_end, start, end, int(good[start:end].sum()))
            start = end
            if self._open_packets:
                yield self._close()
        self._append(cols, pkt_end, start, n, int(good[start:n].sum()))

    def _packet_times(self, arr: np.ndarray, host: np.ndarray, good: np.ndarray) -> np.ndarray:
        """Time of each packet's first firing from its device clock (host time where the
        packet is bad or its clock field is out of range)."""
        dev = np.ascontiguousarray(arr[:, 1200:1204]).view("<u4")[:, 0].astype(np.float64) * 1e-6
        valid = good & (dev < 3600.0)
        out = host.copy()
        top = np.floor(host / 3600.0) * 3600.0
        placed = top + dev
        placed -= 3600.0 * (placed - host > 1800.0)
        placed += 3600.0 * (host - placed > 1800.0)
        # Hysteresis: once synced, a host clock wandering up to twice the tolerance away does
        # not flip points between the two time bases.
        limit = SYNC_TOLERANCE_S * (2.0 if self._was_synced else 1.0)
        synced = valid & (np.abs(placed - host) < limit)
        if valid.any():
            self._was_synced = bool(synced[np.flatnonzero(valid)[-1]])
        if self.time_source == "device":
            out[valid] = placed[valid]
            return out
        out[synced] = placed[synced]
        free = np.flatnonzero(valid & ~synced)
        if len(free):
            d = dev[free]
            prev = np.concatenate(([d[0] if self._last_dev is None else self._last_dev], d[:-1]))
            unwrapped = d + self._wrap + 3600.0 * np.cumsum(d < prev - 1800.0)  # the hour rolled over
            self._wrap = float(unwrapped[-1] - d[-1])
            self._last_dev = float(d[-1])
            if self._anchor is None:
                self._anchor = float(host[free[0]] - unwrapped[0])
            est = unwrapped + self._anchor
            if np.any(np.abs(est - host[free]) > REANCHOR_S):
                for j, i in enumerate(free.tolist()):  # rare: anchor again where it drifted
                    if abs(unwrapped[j] + self._anchor - host[i]) > REANCHOR_S:
                        self._anchor = float(host[i] - unwrapped[j])
                    est[j] = unwrapped[j] + self._anchor
            out[free] = est
        return out

    def _append(self, cols: tuple[np.ndarray, ...], pkt_end: np.ndarray, start: int, end: int,
                packets: int) -> None:
        """Add packets ``start:end`` of this batch (``packets`` of them valid) to the open scan."""
        if end <= start:
            return
        lo = int(pkt_end[start - 1]) if start > 0 else 0
        hi = int(pkt_end[end - 1])
        self._open_packets += packets
        if hi > lo:
            self._open.append(tuple(c[lo:hi] for c in cols))

    def _close(self) -> Scan:
        chunks = self._open
        if len(chunks) == 1:
            cols = list(chunks[0])
        elif chunks:
            cols = [np.concatenate([c[j] for c in chunks]) for j in range(8)]
        else:
            cols = [np.empty(0, d) for d in (np.float32, np.float32, np.float32, np.float32, np.uint16,
                                              np.float32, np.float64, np.uint8)]
        t = cols[6]
        scan = Scan(
            index=self._scan_index, x=cols[0], y=cols[1], z=cols[2], intensity=cols[3], ring=cols[4],
            azimuth=cols[5], time=t, return_type=cols[7],
            t_start=float(t.min()) if len(t) else 0.0, t_end=float(t.max()) if len(t) else 0.0,
            sensor=self.sensor, model=self.model, packets=self._open_packets,
        )
        self._scan_index += 1
        self.stats.scans += 1
        self._open = []
        self._open_packets = 0
        return scan
