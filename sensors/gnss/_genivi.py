"""Reader for GENIVI positioning logs (the ``$GV...`` line format of the GENIVI
positioning PoC's log replayer): GNSS fixes and IMU samples.

Each line is ``<log time ms>,<countdown>,$GV<KIND>,<sensor timestamp ms>,<fields...>,<validity bits>``:

- ``$GVGNSTIM``: year, month, day, hour, minute, second, ms, scale, leap seconds
- ``$GVGNSPOS``: latitude, longitude, altitudeMSL, altitudeEll, hSpeed (m/s), vSpeed, heading,
  pdop, hdop, vdop, used/tracked/visible satellites, sigmas (hpos, alt, hspeed, vspeed,
  heading), fixStatus (0 none, 1 single, 2 2D, 3 3D, 4 time), fixTypeBits, systems...
- ``$GVSNSACC``: x, y, z acceleration (m/s²), temperature
- ``$GVSNSGYR``: yaw, pitch, roll rate (deg/s), temperature

Fields are used only when their validity bit is set. An accelerometer and a gyroscope line
with the same sensor timestamp make one :class:`ImuSample` (gyro in the vehicle frame
x forward/roll, y left/pitch, z up/yaw, in rad/s). ``mono_ns`` is the sensor timestamp;
``utc_ns`` is it shifted by the offset the first valid ``$GVGNSTIM`` gives.
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections.abc import Iterator
from pathlib import Path

from agent.bus.messages import NO_TIME, FixType, GnssFix, ImuSample
from sensors.errors import LogFormatError, SourceError
from sensors.gnss._sources import GnssItem, GnssStats

_NAN = math.nan
# GENIVI EGNSSFixStatus → fix type (2D and 3D both count as an autonomous fix)
_FIX_STATUS = {0: FixType.NO_FIX, 1: FixType.GPS, 2: FixType.GPS, 3: FixType.GPS, 4: FixType.NO_FIX}
_EXPECTED = {"$GVGNSTIM": 14, "$GVGNSPOS": 27, "$GVSNSACC": 9, "$GVSNSGYR": 9}


def _num(v: str, path: str, n: int, what: str) -> float:
    try:
        return float(v)
    except ValueError:
        raise LogFormatError(path, n, f"bad {what} {v.strip()[:20]!r}") from None


class GeniviLogSource:
    """GNSS fixes and IMU samples from a GENIVI log, in file order.

    ``strict=True`` raises :class:`LogFormatError` on a malformed ``$GV`` line; by default
    it is counted in ``stats.rejected`` (with the reason) and skipped.
    """

    def __init__(self, path: str | Path, *, source_id: str = "gnss", imu_source_id: str = "imu",
                 strict: bool = False) -> None:
        self.path = Path(path)
        self.name = str(path)
        if not self.path.is_file():
            raise SourceError(str(path), "no such GENIVI log")
        self.source_id = source_id
        self.imu_source_id = imu_source_id
        self.strict = strict
        self.stats = GnssStats()
        self.utc_offset_ns: int | None = None  # UTC − sensor time, from the first valid GVGNSTIM
        self._closed = False

    def __enter__(self) -> GeniviLogSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True

    def _lines(self) -> Iterator[tuple[int, list[str]]]:
        with open(self.path, encoding="latin-1") as fh:
            for n, line in enumerate(fh, 1):
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                fields = line.split(",")
                if len(fields) < 3 or not fields[2].startswith("$GV"):
                    # e.g. "0,0$GVGNSVER,4,0,0": a version banner without its comma
                    if "$GV" in line and "VER" in line:
                        continue
                    yield n, fields  # reported as rejected below
                    continue
                yield n, fields

    @staticmethod
    def _tim_utc_ns(f: list[str]) -> int | None:
        bits = int(f[13], 16)
        if bits & 0x3 != 0x3:
            return None
        y, mo, d, h, mi, s, ms = (int(x) for x in f[4:11])
        dt = _dt.datetime(y, mo, d, h, mi, s, tzinfo=_dt.timezone.utc)
        return int(dt.timestamp()) * 1_000_000_000 + ms * 1_000_000

    def _find_offset(self) -> int | None:
        for _, f in self._lines():
            if len(f) == 14 and f[2] == "$GVGNSTIM":
                try:
                    utc = self._tim_utc_ns(f)
                except ValueError:
                    continue
                if utc is not None:
                    return utc - int(f[3]) * 1_000_000
        return None

    def _reject(self, n: int, reason: str) -> None:
        if self.strict:
            raise LogFormatError(str(self.path), n, reason)
        self.stats.rejected += 1
        self.stats.reasons[reason.split(" '")[0]] += 1

    def __iter__(self) -> Iterator[GnssItem]:
        path = str(self.path)
        self.utc_offset_ns = self._find_offset()
        off = self.utc_offset_ns
        pending: dict[str, tuple[int, tuple[float, float, float], float]] = {}  # kind → (ts, xyz, temp)
        pending_ts: int | None = None

        def stamp(ts_ms: int) -> tuple[int, int]:
            mono = ts_ms * 1_000_000
            return mono, (mono + off) if off is not None else time.time_ns()

        def imu_out() -> ImuSample | None:
            nonlocal pending_ts
            if pending_ts is None:
                return None
            acc = pending.get("ACC")
            gyr = pending.get("GYR")
            temps = [t for t in ((acc[2] if acc else _NAN), (gyr[2] if gyr else _NAN)) if not math.isnan(t)]
            mono, utc = stamp(pending_ts)
            sample = ImuSample(
                source=self.imu_source_id, mono_ns=mono, utc_ns=utc,
                gyro=gyr[1] if gyr else (_NAN, _NAN, _NAN), accel=acc[1] if acc else (_NAN, _NAN, _NAN),
                temperature_c=temps[0] if temps else None)
            pending.clear()
            pending_ts = None
            self.stats.imu += 1
            return sample

        for n, f in self._lines():
            if self._closed:
                return
            self.stats.lines += 1
            kind = f[2] if len(f) > 2 else ""
            want = _EXPECTED.get(kind)
            if want is None:
                self._reject(n, f"unknown record {kind[:12]!r}")
                continue
            if len(f) != want:
                self._reject(n, f"{kind} has {len(f)} fields, expected {want}")
                continue
            try:
                ts = int(f[3])
                bits = int(f[-1], 16)
            except ValueError:
                self._reject(n, f"{kind}: bad timestamp or validity bits")
                continue
            try:
                if kind in ("$GVSNSACC", "$GVSNSGYR"):
                    sub = kind[-3:]
                    if pending_ts is not None and (ts != pending_ts or sub in pending):
                        s = imu_out()
                        if s is not None:
                            yield s
                    vals = [_num(x, path, n, "IMU value") if bits & (1 << i) else _NAN for i, x in enumerate(f[4:7])]
                    temp = _num(f[7], path, n, "temperature") if bits & 0x8 else _NAN
                    if sub == "GYR":  # yaw, pitch, roll (deg/s) → x (roll), y (pitch), z (yaw) rad/s
                        xyz = (math.radians(vals[2]), math.radians(vals[1]), math.radians(vals[0]))
                    else:
                        xyz = (vals[0], vals[1], vals[2])
                    pending[sub] = (ts, xyz, temp)
                    pending_ts = ts
                    if len(pending) == 2:
                        s = imu_out()
                        if s is not None:
                            yield s
                elif kind == "$GVGNSTIM":
                    utc = self._tim_utc_ns(f)
                    if utc is None:
                        continue
                    self.stats.sentences += 1
                elif kind == "$GVGNSPOS":
                    self.stats.sentences += 1

                    def val(i: int, bit: int) -> float:
                        return _num(f[i], path, n, "GNSS value") if bits & bit else _NAN

                    status = int(f[22]) if bits & 0x40000 else 0
                    lat, lon = val(4, 0x1), val(5, 0x2)
                    fix = _FIX_STATUS.get(status, FixType.NO_FIX)
                    if math.isnan(lat) or math.isnan(lon):
                        fix = FixType.NO_FIX
                    alt_msl, alt_ell = val(6, 0x4), val(7, 0x8)
                    mono, utc = stamp(ts)
                    yield GnssFix(
                        source=self.source_id, mono_ns=mono, utc_ns=utc, lat_deg=lat, lon_deg=lon,
                        alt_m=alt_msl if status >= 3 else _NAN, fix_type=fix, hdop=val(12, 0x100),
                        num_sats=int(f[14]) if bits & 0x400 else -1, speed_mps=val(8, 0x10),
                        course_deg=val(10, 0x40),
                        geoid_sep_m=(alt_ell - alt_msl) if status >= 3 else _NAN,
                        fix_utc_ns=utc if off is not None else NO_TIME,
                        h_std_m=val(17, 0x2000), v_std_m=val(18, 0x4000))
                    self.stats.fixes += 1
            except LogFormatError as err:
                if self.strict:
                    raise
                self._reject(n, err.reason)
            except ValueError as err:
                self._reject(n, f"{kind}: {err}")
        s = imu_out()
        if s is not None:
            yield s
