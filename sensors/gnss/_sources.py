"""GNSS sources: each yields bus messages (:class:`NmeaSentence`, :class:`GnssFix`,
:class:`ImuSample`) ready to publish, behind :class:`GnssSource` in :data:`GNSS_SOURCES`.

- ``NmeaFileSource``: an NMEA log file (``#`` lines are comments).
- ``SerialNmeaSource``: a serial port (pyserial), e.g. ``/dev/ttyACM0`` at 9600 or 115200 baud.
- ``GpsdSource``: gpsd's JSON protocol (``?WATCH``), TPV reports become fixes.
- ``VelodynePositionSource``: the ``$GPRMC`` inside Velodyne position packets (UDP 8308).
- ``GeniviLogSource`` (in ``_genivi``): GENIVI ``$GV...`` logs with GNSS, gyro and accelerometer.

Sources that see NMEA yield every line as an ``NmeaSentence`` (also rejected ones, so a
recorder keeps the raw stream) and, with ``fixes=True``, the fixes assembled from them.
"""

from __future__ import annotations

import collections
import datetime as _dt
import json
import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Union, runtime_checkable
from urllib.parse import parse_qs, urlparse

from agent.bus.messages import NO_TIME, FixType, GnssFix, ImuSample, NmeaSentence
from sensors.errors import SourceError
from sensors.gnss._fix import FixAssembler
from sensors.gnss._nmea import Rejected, try_parse

log = logging.getLogger(__name__)

GnssItem = Union[NmeaSentence, GnssFix, ImuSample]


@dataclass
class GnssStats:
    """What a GNSS source read."""

    lines: int = 0  # non-comment lines seen
    sentences: int = 0  # lines that parsed
    rejected: int = 0
    fixes: int = 0
    imu: int = 0
    reasons: collections.Counter = field(default_factory=collections.Counter)  # rejection reason → count

    def as_dict(self) -> dict[str, object]:
        return {"lines": self.lines, "sentences": self.sentences, "rejected": self.rejected,
                "fixes": self.fixes, "imu": self.imu, "reasons": dict(self.reasons.most_common(10))}


@runtime_checkable
class GnssSource(Protocol):
    """A stream of GNSS (and IMU) bus messages with an explicit lifecycle."""

    name: str
    stats: GnssStats

    def __enter__(self) -> GnssSource: ...

    def __exit__(self, *exc: object) -> None: ...

    def __iter__(self) -> Iterator[GnssItem]: ...

    def close(self) -> None: ...


class _NmeaStream:
    """Shared machinery: lines → NmeaSentence messages (+ assembled fixes) and stats."""

    name: str

    def __init__(self, source_id: str, fixes: bool, require_checksum: bool,
                 date: _dt.date | None = None) -> None:
        self.source_id = source_id
        self.fixes = fixes
        self.require_checksum = require_checksum
        self.stats = GnssStats()
        self._asm = FixAssembler(source_id, date)
        self._closed = False

    def __enter__(self):  # type: ignore[no-untyped-def]
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True

    def _line(self, text: str, mono_ns: int, utc_ns: int) -> list[GnssItem]:
        self.stats.lines += 1
        out: list[GnssItem] = [NmeaSentence(text=text, source=self.source_id, mono_ns=mono_ns, utc_ns=utc_ns)]
        rec = try_parse(text, require_checksum=self.require_checksum)
        if isinstance(rec, Rejected):
            self.stats.rejected += 1
            self.stats.reasons[rec.reason.split(":")[0]] += 1
            return out
        self.stats.sentences += 1
        if self.fixes:
            got = self._asm.push(rec, mono_ns, utc_ns)
            self.stats.fixes += len(got)
            out.extend(got)
        return out

    def _finish(self) -> list[GnssItem]:
        got = self._asm.flush() if self.fixes else []
        self.stats.fixes += len(got)
        return list(got)


class NmeaFileSource(_NmeaStream):
    """An NMEA log file. Receive times are not in the file: ``mono_ns`` is the read time and
    ``utc_ns`` the sentence's own UTC when known so far (else the read time)."""

    def __init__(self, path: str | Path, *, source_id: str = "gnss", fixes: bool = True,
                 require_checksum: bool = True, date: _dt.date | None = None) -> None:
        super().__init__(source_id, fixes, require_checksum, date)
        self.path = Path(path)
        self.name = str(path)
        if not self.path.is_file():
            raise SourceError(str(path), "no such NMEA file")

    def __enter__(self) -> NmeaFileSource:
        return self

    def __iter__(self) -> Iterator[GnssItem]:
        last_fix_utc = NO_TIME
        with open(self.path, "rb") as fh:
            for raw in fh:
                if self._closed:
                    return
                text = raw.rstrip(b"\r\n").decode("utf-8", "surrogateescape")
                if not text.strip() or text.startswith("#"):
                    continue
                now = time.time_ns()
                items = self._line(text, time.monotonic_ns(), last_fix_utc if last_fix_utc != NO_TIME else now)
                for it in items:
                    if isinstance(it, GnssFix) and it.fix_utc_ns != NO_TIME:
                        last_fix_utc = it.fix_utc_ns
                yield from items
        yield from self._finish()


class SerialNmeaSource(_NmeaStream):
    """NMEA from a serial port (a GNSS receiver on UART/USB). Iterates until closed; lines
    are stamped on arrival."""

    def __init__(self, port: str, *, baudrate: int = 9600, source_id: str = "gnss", fixes: bool = True,
                 require_checksum: bool = True, read_timeout_s: float = 0.2) -> None:
        super().__init__(source_id, fixes, require_checksum)
        self.port = port
        self.name = f"serial://{port}?baud={baudrate}"
        self.baudrate = baudrate
        self.read_timeout_s = read_timeout_s
        self._ser = None

    def open(self) -> SerialNmeaSource:
        if self._ser is None:
            import serial

            try:
                self._ser = serial.Serial(self.port, self.baudrate, timeout=self.read_timeout_s)
            except (serial.SerialException, OSError, ValueError) as exc:
                raise SourceError(self.port, f"cannot open serial port: {exc}") from exc
        return self

    def __enter__(self) -> SerialNmeaSource:
        return self.open()

    def close(self) -> None:
        super().close()
        if self._ser is not None:
            self._ser.close()
            self._ser = None

    def __iter__(self) -> Iterator[GnssItem]:
        import serial

        if self._ser is None:
            self.open()
        buf = b""
        while not self._closed and self._ser is not None:
            try:
                chunk = self._ser.readline()
            except (serial.SerialException, OSError) as exc:
                if self._closed:
                    return
                raise SourceError(self.port, f"serial read failed: {exc}") from exc
            if not chunk:
                continue
            buf += chunk
            if not buf.endswith(b"\n"):
                if len(buf) > 4096:  # no line end in sight: garbage on the line
                    buf = b""
                continue
            text = buf.rstrip(b"\r\n").decode("ascii", "surrogateescape")
            buf = b""
            if text.strip():
                yield from self._line(text, time.monotonic_ns(), time.time_ns())


# gpsd TPV "status" (gpsd ≥ 3.20) → fix type; mode 2/3 without status means a plain fix
_GPSD_STATUS = {2: FixType.DGPS, 3: FixType.RTK_FIXED, 4: FixType.RTK_FLOAT, 5: FixType.ESTIMATED,
                6: FixType.ESTIMATED, 8: FixType.SIMULATED}


def _iso_ns(text: str) -> int:
    """gpsd's ISO 8601 UTC time ("2020-03-18T13:28:20.600Z") → ns since the epoch."""
    main, _, frac = text.rstrip("Z").partition(".")
    dt = _dt.datetime.strptime(main, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.timezone.utc)
    ns = int(dt.timestamp()) * 1_000_000_000
    if frac:
        ns += int((frac + "000000000")[:9])
    return ns


def gpsd_tpv_to_fix(tpv: dict, source_id: str, hdop: float | None = None, sats: int | None = None,
                    mono_ns: int | None = None) -> GnssFix:
    """One gpsd TPV report as a GnssFix."""
    mode = int(tpv.get("mode", 0) or 0)
    ft = FixType.NO_FIX
    if mode >= 2:
        ft = _GPSD_STATUS.get(int(tpv.get("status", 1) or 1), FixType.GPS)
    futc = NO_TIME
    if isinstance(tpv.get("time"), str):
        try:
            futc = _iso_ns(tpv["time"])
        except ValueError:
            futc = NO_TIME
    nan = float("nan")

    def num(key: str) -> float:
        v = tpv.get(key)
        return float(v) if isinstance(v, (int, float)) else nan

    alt = num("altMSL")
    if alt != alt:
        alt = num("alt")
    eph = num("eph")
    if eph != eph and isinstance(tpv.get("epx"), (int, float)) and isinstance(tpv.get("epy"), (int, float)):
        eph = (float(tpv["epx"]) ** 2 + float(tpv["epy"]) ** 2) ** 0.5
    geoid = num("geoidSep")
    return GnssFix(source=source_id, mono_ns=time.monotonic_ns() if mono_ns is None else mono_ns,
                   utc_ns=futc if futc != NO_TIME else time.time_ns(),
                   lat_deg=num("lat") if mode >= 2 else nan, lon_deg=num("lon") if mode >= 2 else nan,
                   alt_m=alt if mode >= 3 else nan, fix_type=ft, hdop=nan if hdop is None else float(hdop),
                   num_sats=-1 if sats is None else int(sats), speed_mps=num("speed"), course_deg=num("track"),
                   geoid_sep_m=geoid, fix_utc_ns=futc, h_std_m=eph, v_std_m=num("epv"))


class GpsdSource:
    """Fixes from a gpsd daemon over its JSON protocol (TCP, default port 2947).

    Sends ``?WATCH={"enable":true,"json":true}``; TPV reports become GnssFix messages (with
    HDOP and the used-satellite count from the latest SKY report). Iterates until closed or
    until gpsd closes the connection; ``idle_timeout_s`` bounds a silent connection.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 2947, *, device: str | None = None,
                 source_id: str = "gnss", connect_timeout_s: float = 5.0, idle_timeout_s: float | None = None) -> None:
        self.host, self.port, self.device = host, port, device
        self.name = f"gpsd://{host}:{port}"
        self.source_id = source_id
        self.connect_timeout_s = connect_timeout_s
        self.idle_timeout_s = idle_timeout_s
        self.stats = GnssStats()
        self.version: dict | None = None
        self._sock: socket.socket | None = None
        self._closed = False

    def open(self) -> GpsdSource:
        if self._sock is None:
            try:
                self._sock = socket.create_connection((self.host, self.port), timeout=self.connect_timeout_s)
            except OSError as exc:
                raise SourceError(self.name, f"cannot connect to gpsd: {exc}") from exc
            watch: dict[str, object] = {"enable": True, "json": True}
            if self.device:
                watch["device"] = self.device
            self._sock.sendall(b"?WATCH=" + json.dumps(watch).encode() + b";\n")
            self._sock.settimeout(0.5)
        return self

    def __enter__(self) -> GpsdSource:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def reports(self) -> Iterator[dict]:
        """Every JSON report gpsd sends (VERSION, DEVICES, WATCH, TPV, SKY, ...)."""
        if self._sock is None:
            self.open()
        buf = b""
        last = time.monotonic()
        while not self._closed and self._sock is not None:
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                if self.idle_timeout_s is not None and time.monotonic() - last > self.idle_timeout_s:
                    return
                continue
            except OSError as exc:
                if self._closed:
                    return
                raise SourceError(self.name, f"gpsd connection failed: {exc}") from exc
            if not chunk:
                return  # gpsd closed the connection
            last = time.monotonic()
            buf += chunk
            *lines, buf = buf.split(b"\n")
            for line in lines:
                line = line.strip()
                if not line:
                    continue
                try:
                    doc = json.loads(line)
                except ValueError:
                    self.stats.rejected += 1
                    self.stats.reasons["not JSON"] += 1
                    continue
                if isinstance(doc, dict):
                    self.stats.lines += 1
                    yield doc

    def __iter__(self) -> Iterator[GnssItem]:
        hdop: float | None = None
        sats: int | None = None
        for doc in self.reports():
            cls = doc.get("class")
            if cls == "VERSION":
                self.version = doc
            elif cls == "SKY":
                hdop = doc.get("hdop", hdop)
                if isinstance(doc.get("uSat"), int):
                    sats = doc["uSat"]
                elif isinstance(doc.get("satellites"), list):
                    sats = sum(1 for s in doc["satellites"] if isinstance(s, dict) and s.get("used"))
            elif cls == "TPV":
                self.stats.sentences += 1
                fix = gpsd_tpv_to_fix(doc, self.source_id, hdop, sats)
                self.stats.fixes += 1
                yield fix


class VelodynePositionSource(_NmeaStream):
    """The NMEA ``$GPRMC`` a Velodyne sensor forwards in its position packets (UDP 8308),
    read from any packet source (pcap, bag, live UDP). Packet times stamp the messages."""

    def __init__(self, packets: Iterable, *, source_id: str = "lidar-gnss", fixes: bool = True,
                 port: int = 8308, name: str = "velodyne-position") -> None:
        super().__init__(source_id, fixes, require_checksum=True)
        self.packets = packets
        self.port = port
        self.name = name
        self.position_packets = 0

    def __enter__(self) -> VelodynePositionSource:
        return self

    def close(self) -> None:
        super().close()
        close = getattr(self.packets, "close", None)
        if callable(close):
            close()

    def __iter__(self) -> Iterator[GnssItem]:
        from sensors.lidar.velodyne import parse_position_packet

        for pkt in self.packets:
            if self._closed:
                return
            if pkt.port != self.port:
                continue
            info = parse_position_packet(pkt.data, pkt.timestamp)
            if info is None:
                continue
            self.position_packets += 1
            if not info.nmea:
                continue
            utc = int(round(pkt.timestamp * 1e9)) if pkt.timestamp else time.time_ns()
            yield from self._line(info.nmea, time.monotonic_ns(), utc)
        yield from self._finish()


# ---- registry ---------------------------------------------------------------------------------

GnssSourceFactory = Callable[..., GnssSource]


def _nmea_file(spec: str, **kw: object) -> GnssSource:
    return NmeaFileSource(spec, **kw)  # type: ignore[arg-type]


def _serial(spec: str, **kw: object) -> GnssSource:
    u = urlparse(spec)
    q = parse_qs(u.query)
    baud = int(q.get("baud", ["9600"])[0])
    return SerialNmeaSource(u.path or spec, baudrate=baud, **kw)  # type: ignore[arg-type]


def _gpsd(spec: str, **kw: object) -> GnssSource:
    u = urlparse(spec)
    q = parse_qs(u.query)
    return GpsdSource(u.hostname or "127.0.0.1", u.port or 2947, device=q.get("device", [None])[0], **kw)  # type: ignore[arg-type]


def _genivi(spec: str, **kw: object) -> GnssSource:
    from sensors.gnss._genivi import GeniviLogSource

    return GeniviLogSource(spec, **kw)  # type: ignore[arg-type]


def _velodyne(spec: str, **kw: object) -> GnssSource:
    from sensors.packets import open_packet_source

    return VelodynePositionSource(open_packet_source(spec, {8308}), **kw)  # type: ignore[arg-type]


GNSS_SOURCES: dict[str, GnssSourceFactory] = {
    "nmea-file": _nmea_file, "serial": _serial, "gpsd": _gpsd, "genivi": _genivi, "velodyne": _velodyne,
}


def gnss_source_kind(spec: str) -> str:
    """Name the kind of GNSS source ``spec`` is: ``gpsd://HOST:PORT``, ``serial:///dev/ttyX?baud=N``
    (or a ``/dev/tty*`` path), a capture (pcap/bag: Velodyne position packets), a GENIVI log or
    an NMEA file."""
    if spec.startswith("gpsd://"):
        return "gpsd"
    if spec.startswith("serial://") or spec.startswith("/dev/tty") or spec.startswith("/dev/pts/"):
        return "serial"
    path = Path(spec)
    if not path.exists():
        raise SourceError(spec, "no such file or device")
    if path.is_dir():
        return "velodyne"
    with open(path, "rb") as fh:
        head = fh.read(4096)
    from sensors.packets._pcap import is_capture

    if is_capture(head[:8]) or head.startswith(b"\x89MCAP") or path.suffix == ".db3":
        return "velodyne"
    if b"$GV" in head:
        return "genivi"
    return "nmea-file"


def open_gnss_source(spec: str | Path, **kwargs: object) -> GnssSource:
    """Open ``spec`` as a GNSS source of the kind :func:`gnss_source_kind` names."""
    spec = str(spec)
    return GNSS_SOURCES[gnss_source_kind(spec)](spec, **kwargs)
