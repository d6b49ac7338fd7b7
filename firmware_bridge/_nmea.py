"""NMEA 0183 line assembly from arbitrary byte chunks, and the UTC second of RMC/ZDA.

Only what the bridge needs: sentences are checked (``*hh`` checksum when present, printable
ASCII, bounded length) and passed on as text; parsing fixes into positions is the GNSS
source's business, not the bridge's.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass

MAX_LINE = 255  # NMEA says 82; proprietary sentences run longer, nothing sane runs past this


@dataclass(slots=True)
class AssemblerStats:
    lines_ok: int = 0
    checksum_errors: int = 0
    malformed: int = 0
    overlong: int = 0
    partial_dropped: int = 0


def checksum_ok(line: bytes) -> bool | None:
    """True/False for a sentence with a ``*hh`` checksum, None when it has none."""
    star = line.rfind(b"*")
    if star < 0 or len(line) - star != 3:
        return None
    try:
        want = int(line[star + 1 :], 16)
    except ValueError:
        return False
    got = 0
    for b in line[1:star]:
        got ^= b
    return got == want


class LineAssembler:
    """Feed byte chunks, get complete, checked sentences (``$`` or ``!`` to before CR/LF).

    ``$`` and ``!`` only ever start a sentence, so after lost bytes (:meth:`drop_partial`) the
    assembler hunts for the next one, and a line holding a start marker past its beginning
    (the receiver's UART dropped a CR/LF) keeps only the part from the last marker.
    """

    def __init__(self, require_checksum: bool = False) -> None:
        self._buf = bytearray()
        self._hunting = True  # the first bytes may be the middle of a sentence
        self.require_checksum = require_checksum
        self.stats = AssemblerStats()

    @property
    def has_partial(self) -> bool:
        return bool(self._buf)

    def drop_partial(self) -> None:
        """Forget a half-received line (bytes were lost on the link: it cannot be trusted)
        and skip to the next sentence start."""
        if self._buf:
            self.stats.partial_dropped += 1
        self._buf.clear()
        self._hunting = True

    def feed(self, data: bytes) -> list[str]:
        if self._hunting:
            starts = [i for i in (data.find(b"$"), data.find(b"!")) if i >= 0]
            if not starts:
                return []
            data = data[min(starts):]
            self._hunting = False
        out: list[str] = []
        lines = data.split(b"\n")
        last = len(lines) - 1
        for i, piece in enumerate(lines):
            if self._hunting:  # an overlong line: skip to its end
                if i < last:
                    self._hunting = False
                continue
            self._buf += piece
            if len(self._buf) > MAX_LINE:
                self.stats.overlong += 1
                self._buf.clear()
                self._hunting = i == last
                continue
            if i < last:
                line = bytes(self._buf).strip(b"\r")
                self._buf.clear()
                if line:
                    sentence = self._check(line)
                    if sentence is not None:
                        out.append(sentence)
        return out

    def _check(self, line: bytes) -> str | None:
        k = max(line.rfind(b"$"), line.rfind(b"!"))
        if k > 0:  # the start of another sentence inside: its predecessor lost its end
            self.stats.malformed += 1
            line = line[k:]
        if line[:1] not in (b"$", b"!") or len(line) < 6 or any(b < 0x20 or b > 0x7E for b in line):
            self.stats.malformed += 1
            return None
        ok = checksum_ok(line)
        if ok is False or (ok is None and self.require_checksum):
            self.stats.checksum_errors += 1
            return None
        self.stats.lines_ok += 1
        return line.decode("ascii")


def utc_second(sentence: str) -> float | None:
    """UTC (epoch seconds) of an RMC with status A or of a ZDA, when it falls on a whole
    second; None otherwise (other sentences, void fixes, fractional times, bad fields)."""
    body = sentence.split("*", 1)[0]
    fields = body.split(",")
    kind = fields[0][3:] if len(fields[0]) == 6 else ""
    try:
        if kind == "RMC" and len(fields) >= 10:
            if fields[2] != "A":
                return None
            hms, date = fields[1], fields[9]
            day, month, year = int(date[0:2]), int(date[2:4]), 2000 + int(date[4:6])
            if year >= 2080:  # RMC has a two-digit year: 80..99 is the 1900s
                year -= 100
        elif kind == "ZDA" and len(fields) >= 5:
            hms = fields[1]
            day, month, year = int(fields[2]), int(fields[3]), int(fields[4])
        else:
            return None
        if len(hms) < 6:
            return None
        h, m, s = int(hms[0:2]), int(hms[2:4]), float(hms[4:])
        if s != int(s) or not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 61 and 1 <= month <= 12 and 1 <= day <= 31):
            return None
        return float(calendar.timegm((year, month, day, h, m, int(s), 0, 0, 0)))
    except (ValueError, IndexError):
        return None
