"""Classic pcap and pcapng capture files: link layer → IPv4 (with fragment reassembly) → UDP.

Link types: Ethernet (with any number of 802.1Q / 802.1ad VLAN tags), Linux cooked
capture v1 and v2, raw IPv4 and BSD loopback. A file cut inside a record yields every
complete packet before the cut, sets ``stats.truncated`` and logs one warning.
"""

from __future__ import annotations

import logging
import mmap
import struct
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

from sensors.errors import SourceError
from sensors.packets._types import Packet, SourceStats

log = logging.getLogger(__name__)

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"

LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_RAW_ALT, LINK_IPV4, LINK_SLL, LINK_SLL2 = 0, 1, 101, 12, 228, 113, 276
_SUPPORTED_LINKS = {LINK_NULL, LINK_ETHERNET, LINK_RAW, LINK_RAW_ALT, LINK_IPV4, LINK_SLL, LINK_SLL2}
_VLAN_TYPES = {0x8100, 0x88A8, 0x9100}
_MAX_PENDING_REASSEMBLIES = 256


def is_capture(head: bytes) -> bool:
    return head[:4] in PCAP_MAGICS or head[:4] == PCAPNG_MAGIC


class _Reassembler:
    """IPv4 fragment reassembly keyed by (src, dst, id); bounded so a lost fragment
    cannot grow memory without limit."""

    def __init__(self, stats: SourceStats) -> None:
        self.pending: OrderedDict[tuple[bytes, bytes, int], dict] = OrderedDict()
        self.stats = stats

    def add(self, key: tuple[bytes, bytes, int], offset: int, more: bool, data: bytes, header: bytes) -> bytes | None:
        entry = self.pending.get(key)
        if entry is None:
            entry = {"parts": {}, "total": None, "header": None}
            self.pending[key] = entry
            while len(self.pending) > _MAX_PENDING_REASSEMBLIES:
                self.pending.popitem(last=False)
                self.stats.fragments_dropped += 1
        entry["parts"][offset] = data
        if offset == 0:
            entry["header"] = header
        if not more:
            entry["total"] = offset + len(data)
        total = entry["total"]
        if total is None or entry["header"] is None:
            return None
        have = 0
        chunks = []
        for off in sorted(entry["parts"]):
            part = entry["parts"][off]
            if off > have:
                return None  # a hole remains
            if off + len(part) > have:
                chunks.append(part[have - off :])
                have = off + len(part)
        if have < total:
            return None
        del self.pending[key]
        return b"".join(chunks)[:total]


class PcapSource:
    """Packets of a pcap or pcapng file, filtered by UDP destination port."""

    def __init__(self, path: str | Path, ports: set[int] | None = None) -> None:
        self.path = Path(path)
        self.name = str(path)
        self.ports = set(ports) if ports else None
        self.stats = SourceStats()
        self._file = None
        self._map: mmap.mmap | bytes | None = None
        try:
            self._file = open(self.path, "rb")
        except OSError as exc:
            raise SourceError(self.name, exc.strerror or str(exc)) from None
        size = self.path.stat().st_size
        head = self._file.read(4)
        self._file.seek(0)
        if len(head) < 4 or not is_capture(head):
            self.close()
            raise SourceError(self.name, "not a pcap or pcapng capture (unknown magic number)")
        self._map = mmap.mmap(self._file.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        self._reasm = _Reassembler(self.stats)

    def __enter__(self) -> PcapSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if isinstance(self._map, mmap.mmap):
            self._map.close()
        self._map = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __iter__(self) -> Iterator[Packet]:
        if self._map is None:
            raise SourceError(self.name, "source is closed")
        buf = self._map
        if buf[:4] == PCAPNG_MAGIC:
            frames = self._pcapng_frames(buf)
        else:
            frames = self._pcap_frames(buf)
        for ts, link, frame in frames:
            self.stats.frames += 1
            pkt = self._udp(ts, link, frame)
            if pkt is None:
                continue
            if self.ports is not None and pkt.port not in self.ports:
                self.stats.skipped += 1
                continue
            self.stats.packets += 1
            yield pkt
        self.stats.fragments_dropped += len(self._reasm.pending)
        self._reasm.pending.clear()

    def _truncated(self, offset: int) -> None:
        self.stats.truncated = True
        msg = f"{self.name}: capture truncated at byte {offset}; kept the {self.stats.frames} complete frames before it"
        self.stats.warnings.append(msg)
        log.warning(msg)

    # -- classic pcap -----------------------------------------------------------------
    def _pcap_frames(self, buf) -> Iterator[tuple[float, int, bytes]]:
        if len(buf) < 24:
            self._truncated(len(buf))
            return
        endian, scale = PCAP_MAGICS[bytes(buf[:4])]
        link = struct.unpack_from(endian + "I", buf, 20)[0] & 0x0FFFFFFF
        if link not in _SUPPORTED_LINKS:
            raise SourceError(self.name, f"unsupported pcap link type {link}")
        rec = struct.Struct(endian + "IIII")
        pos, end = 24, len(buf)
        while pos < end:
            if pos + 16 > end:
                self._truncated(pos)
                return
            sec, frac, incl, _orig = rec.unpack_from(buf, pos)
            pos += 16
            if incl > 262144:
                raise SourceError(self.name, f"corrupt record at byte {pos - 16}: captured length {incl}")
            if pos + incl > end:
                self._truncated(pos - 16)
                return
            yield sec + frac * scale, link, bytes(buf[pos : pos + incl])
            pos += incl

    # -- pcapng -----------------------------------------------------------------------
    def _pcapng_frames(self, buf) -> Iterator[tuple[float, int, bytes]]:
        pos, end = 0, len(buf)
        endian = "<"
        interfaces: list[tuple[int, float]] = []  # (link type, seconds per tick)
        while pos < end:
            if pos + 12 > end:
                self._truncated(pos)
                return
            btype = bytes(buf[pos : pos + 4])
            if btype == PCAPNG_MAGIC:
                bom = bytes(buf[pos + 8 : pos + 12])
                if bom == b"\x4d\x3c\x2b\x1a":
                    endian = "<"
                elif bom == b"\x1a\x2b\x3c\x4d":
                    endian = ">"
                else:
                    raise SourceError(self.name, f"corrupt pcapng section header at byte {pos}")
                interfaces = []
            block_type, block_len = struct.unpack_from(endian + "II", buf, pos)
            if block_len < 12 or block_len % 4:
                raise SourceError(self.name, f"corrupt pcapng block at byte {pos}: length {block_len}")
            if pos + block_len > end:
                self._truncated(pos)
                return
            body = pos + 8
            if block_type == 1:  # interface description
                link = struct.unpack_from(endian + "H", buf, body)[0]
                interfaces.append((link, self._tsresol(buf, body + 8, pos + block_len - 4, endian)))
            elif block_type == 6:  # enhanced packet
                iface, ts_hi, ts_lo, cap_len, _orig = struct.unpack_from(endian + "IIIII", buf, body)
                if iface >= len(interfaces) or body + 20 + cap_len > pos + block_len:
                    raise SourceError(self.name, f"corrupt enhanced packet block at byte {pos}")
                link, tick = interfaces[iface]
                yield ((ts_hi << 32) | ts_lo) * tick, link, bytes(buf[body + 20 : body + 20 + cap_len])
            elif block_type == 3:  # simple packet: no timestamp
                if not interfaces:
                    raise SourceError(self.name, f"simple packet block before any interface at byte {pos}")
                orig = struct.unpack_from(endian + "I", buf, body)[0]
                cap = min(orig, block_len - 16)
                yield 0.0, interfaces[0][0], bytes(buf[body + 4 : body + 4 + cap])
            pos += block_len

    @staticmethod
    def _tsresol(buf, pos: int, end: int, endian: str) -> float:
        tick = 1e-6
        while pos + 4 <= end:
            code, length = struct.unpack_from(endian + "HH", buf, pos)
            if code == 0:
                break
            if code == 9 and length >= 1:
                value = buf[pos + 4]
                tick = 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0 ** -value
            pos += 4 + ((length + 3) & ~3)
        return tick

    # -- link, IPv4, UDP -----------------------------------------------------------------
    def _udp(self, ts: float, link: int, frame: bytes) -> Packet | None:
        ip = self._ipv4(link, frame)
        if ip is None:
            self.stats.skipped += 1
            return None
        if len(ip) < 20 or ip[0] >> 4 != 4:
            self.stats.skipped += 1
            return None
        ihl = (ip[0] & 0x0F) * 4
        total = struct.unpack_from(">H", ip, 2)[0]
        if ihl < 20 or total < ihl or len(ip) < ihl:
            self.stats.skipped += 1
            return None
        ip_body = ip[ihl:total] if total <= len(ip) else ip[ihl:]
        if ip[9] != 17:
            self.stats.skipped += 1
            return None
        flags_frag = struct.unpack_from(">H", ip, 6)[0]
        more = bool(flags_frag & 0x2000)
        offset = (flags_frag & 0x1FFF) * 8
        if more or offset:
            key = (bytes(ip[12:16]), bytes(ip[16:20]), struct.unpack_from(">H", ip, 4)[0])
            whole = self._reasm.add(key, offset, more, bytes(ip_body), bytes(ip[:ihl]))
            if whole is None:
                return None
            ip_body = whole
        if len(ip_body) < 8:
            self.stats.skipped += 1
            return None
        _sport, dport, ulen = struct.unpack_from(">HHH", ip_body, 0)
        if ulen < 8:
            self.stats.skipped += 1
            return None
        return Packet(ts, dport, bytes(ip_body[8:ulen]))

    @staticmethod
    def _ipv4(link: int, frame: bytes) -> bytes | None:
        if link == LINK_ETHERNET:
            if len(frame) < 14:
                return None
            etype = struct.unpack_from(">H", frame, 12)[0]
            pos = 14
            while etype in _VLAN_TYPES:
                if len(frame) < pos + 4:
                    return None
                etype = struct.unpack_from(">H", frame, pos + 2)[0]
                pos += 4
            return frame[pos:] if etype == 0x0800 else None
        if link in (LINK_RAW, LINK_RAW_ALT, LINK_IPV4):
            return frame
        if link == LINK_SLL:
            if len(frame) < 16 or struct.unpack_from(">H", frame, 14)[0] != 0x0800:
                return None
            return frame[16:]
        if link == LINK_SLL2:
            if len(frame) < 20 or struct.unpack_from(">H", frame, 0)[0] != 0x0800:
                return None
            return frame[20:]
        if link == LINK_NULL:
            if len(frame) < 4:
                return None
            family = struct.unpack_from("<I", frame, 0)[0]
            if family not in (2, 0x02000000):
                return None
            return frame[4:]
        return None
