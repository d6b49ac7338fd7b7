"""Assemble per-epoch GNSS fixes from parsed NMEA sentences.

A receiver sends several sentences per epoch (GGA, RMC, GSA, GST, VTG, ...). The assembler
gathers what belongs to one epoch (same UTC time of day) and emits one :class:`GnssFix`:
as soon as the epoch has both a GGA/GNS and an RMC (the usual pair), otherwise when the
next epoch starts or on :meth:`FixAssembler.flush`. Sentences without a time (GSA, VTG)
attach to the current epoch.
"""

from __future__ import annotations

import datetime as _dt
import math
import time

from agent.bus.messages import NO_TIME, FixType, GnssFix
from sensors.gnss._nmea import (
    FIX_RANK,
    KNOT_MPS,
    Gga,
    Gll,
    Gns,
    Gsa,
    Gst,
    NmeaRecord,
    Rmc,
    Vtg,
    Zda,
)

_F32_MAX = 3.4e38
_EPOCH = _dt.date(1970, 1, 1)


def _f32(x: float | None) -> float:
    """A value for an f32 wire field: NaN when absent or not representable."""
    if x is None or not math.isfinite(x) or abs(x) > _F32_MAX:
        return math.nan
    return float(x)


def utc_ns(date: _dt.date, tod_ns: int) -> int:
    """ns since the Unix epoch for a UTC date and a time of day in ns."""
    return (date - _EPOCH).days * 86_400_000_000_000 + tod_ns


class _Epoch:
    __slots__ = ("tod_ns", "lat", "lon", "alt", "geoid", "fix", "hdop", "sats", "speed", "course",
                 "h_std", "v_std", "has_gga", "has_rmc", "mono_ns", "utc_rx_ns")

    def __init__(self, tod_ns: int | None, mono_ns: int, utc_rx_ns: int) -> None:
        self.tod_ns = tod_ns
        self.lat: float | None = None
        self.lon: float | None = None
        self.alt: float | None = None
        self.geoid: float | None = None
        self.fix = FixType.NO_FIX
        self.hdop: float | None = None
        self.sats: int | None = None
        self.speed: float | None = None
        self.course: float | None = None
        self.h_std: float | None = None
        self.v_std: float | None = None
        self.has_gga = False
        self.has_rmc = False
        self.mono_ns = mono_ns  # receive time of the epoch's first sentence
        self.utc_rx_ns = utc_rx_ns

    def better_fix(self, ft: FixType) -> None:
        if FIX_RANK[ft] > FIX_RANK[self.fix]:
            self.fix = ft


class FixAssembler:
    """Feed parsed records with :meth:`push`; it returns the fixes completed by them.

    ``date`` seeds the UTC date for streams whose first epochs come before any RMC/ZDA
    (without a date, ``fix_utc_ns`` stays :data:`NO_TIME` until one arrives).
    """

    def __init__(self, source: str = "gnss", date: _dt.date | None = None) -> None:
        self.source = source
        self.date = date
        self._cur: _Epoch | None = None
        self._last_tod: int | None = None  # time of day of the last emitted epoch
        self._last_utc = NO_TIME  # UTC of the last emitted fix
        self.emitted = 0

    def _start(self, tod: int | None, mono_ns: int | None, utc_rx_ns: int | None) -> list[GnssFix]:
        out = self.flush()
        self._cur = _Epoch(tod, time.monotonic_ns() if mono_ns is None else mono_ns,
                           time.time_ns() if utc_rx_ns is None else utc_rx_ns)
        return out

    def push(self, rec: NmeaRecord, mono_ns: int | None = None, utc_rx_ns: int | None = None) -> list[GnssFix]:
        """Take one record (with its receive times, default now); return completed fixes."""
        out: list[GnssFix] = []
        tod = getattr(rec, "tod_ns", None)
        positional = isinstance(rec, (Gga, Rmc, Gns, Gll))
        if isinstance(rec, (Rmc, Zda)) and rec.date is not None:
            self.date = rec.date
        if positional or isinstance(rec, Gst):
            if tod is not None and tod == self._last_tod and (self._cur is None or self._cur.tod_ns is None):
                return out  # a late sentence (e.g. GLL) of the epoch already emitted
            if self._cur is None or (tod is not None and self._cur.tod_ns is not None and tod != self._cur.tod_ns):
                if isinstance(rec, Gst) and self._cur is not None and self._cur.tod_ns is not None:
                    # a GST for another epoch than the current one: ignore rather than split
                    return out
                out += self._start(tod, mono_ns, utc_rx_ns)
            elif self._cur.tod_ns is None and tod is not None:
                self._cur.tod_ns = tod
        elif self._cur is None:
            if not isinstance(rec, (Gsa, Vtg)):
                return out
            out += self._start(None, mono_ns, utc_rx_ns)
        e = self._cur
        assert e is not None
        if isinstance(rec, (Gga, Gns)):
            e.has_gga = True
            if rec.lat is not None and rec.lon is not None:
                e.lat, e.lon = rec.lat, rec.lon
            e.alt = rec.alt_m if rec.alt_m is not None else e.alt
            e.geoid = rec.geoid_sep_m if rec.geoid_sep_m is not None else e.geoid
            e.hdop = rec.hdop if rec.hdop is not None else e.hdop
            e.sats = rec.num_sats if rec.num_sats is not None else e.sats
            e.fix = rec.fix_type  # GGA/GNS quality is authoritative (RTK fixed/float)
        elif isinstance(rec, Rmc):
            e.has_rmc = True
            if e.lat is None and rec.lat is not None and rec.lon is not None:
                e.lat, e.lon = rec.lat, rec.lon
            if rec.speed_knots is not None:
                e.speed = rec.speed_knots * KNOT_MPS
            e.course = rec.course_deg if rec.course_deg is not None else e.course
            if not e.has_gga:
                e.better_fix(rec.fix_type)
        elif isinstance(rec, Gll):
            if e.lat is None and rec.lat is not None and rec.lon is not None and rec.valid:
                e.lat, e.lon = rec.lat, rec.lon
                if not e.has_gga and not e.has_rmc:
                    e.better_fix(FixType.GPS)
        elif isinstance(rec, Gst):
            if rec.lat_std_m is not None and rec.lon_std_m is not None:
                e.h_std = math.hypot(rec.lat_std_m, rec.lon_std_m)
            e.v_std = rec.alt_std_m if rec.alt_std_m is not None else e.v_std
        elif isinstance(rec, Vtg):
            if e.speed is None:
                if rec.speed_kmh is not None:
                    e.speed = rec.speed_kmh / 3.6
                elif rec.speed_knots is not None:
                    e.speed = rec.speed_knots * KNOT_MPS
            if e.course is None:
                e.course = rec.course_true_deg
        elif isinstance(rec, Gsa):
            e.hdop = e.hdop if e.hdop is not None else rec.hdop
            if rec.fix_mode == 1 and not e.has_gga and not e.has_rmc:
                e.fix = FixType.NO_FIX
        if e.has_gga and e.has_rmc:
            out += self.flush()
        return out

    def flush(self) -> list[GnssFix]:
        """Emit the current epoch (if it has a position or a fix state) and clear it."""
        e, self._cur = self._cur, None
        if e is not None and e.tod_ns is not None:
            self._last_tod = e.tod_ns
        if e is None or (e.lat is None and not (e.has_gga or e.has_rmc)):
            return []
        futc = NO_TIME
        if e.tod_ns is not None and self.date is not None:
            futc = utc_ns(self.date, e.tod_ns)
            # past midnight before the next RMC/ZDA brought the new date: the day rolled over
            if self._last_utc != NO_TIME and futc < self._last_utc - 43_200_000_000_000:
                futc += 86_400_000_000_000
            self._last_utc = futc
        sats = e.sats if e.sats is not None and 0 <= e.sats <= 32767 else -1
        fix = GnssFix(
            source=self.source, mono_ns=e.mono_ns, utc_ns=futc if futc != NO_TIME else e.utc_rx_ns,
            lat_deg=math.nan if e.lat is None else e.lat, lon_deg=math.nan if e.lon is None else e.lon,
            alt_m=math.nan if e.alt is None or not math.isfinite(e.alt) else e.alt,
            fix_type=e.fix if e.lat is not None else FixType.NO_FIX, hdop=_f32(e.hdop),
            num_sats=sats, speed_mps=_f32(e.speed), course_deg=_f32(e.course), geoid_sep_m=_f32(e.geoid),
            fix_utc_ns=futc, h_std_m=_f32(e.h_std), v_std_m=_f32(e.v_std),
        )
        self.emitted += 1
        return [fix]
