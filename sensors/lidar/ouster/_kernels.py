"""numba kernels of the Ouster decoder: plain functions on arrays, no I/O.

Packets come as a (n, width) uint8 array (:func:`sensors.packets.batch_packets`); frames are
``(N_FIELDS, H, W)`` uint32 planes in the sensor's *staggered* layout (column = measurement id),
destaggered only when a frame is finished.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Packet verdicts of parse_headers.
OK, BAD_SIZE, BAD_TYPE, BAD_MEASUREMENT_ID, BAD_CRC, BAD_FRAME_ID = 0, 1, 2, 3, 4, 5
VERDICTS = {
    BAD_SIZE: "wrong packet size",
    BAD_TYPE: "not a lidar packet (packet_type != 1)",
    BAD_MEASUREMENT_ID: "measurement id out of range",
    BAD_CRC: "CRC64 mismatch",
    BAD_FRAME_ID: "columns of one packet disagree on the frame id",
}

# Column states.
COL_MISSING, COL_INVALID, COL_VALID = 0, 1, 2


def _crc64_table() -> np.ndarray:
    """ECMA-182 CRC64, reflected (as the sensor computes it; ouster-sdk's crc64_compute)."""
    poly = 0xC96C5795D7870F42
    table = np.zeros(256, dtype=np.uint64)
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table[i] = crc
    return table


_CRC_TABLE = _crc64_table()


@njit(cache=True, inline="always")
def _le(row: np.ndarray, off: int, nbytes: int) -> np.int64:
    v = np.int64(0)
    for k in range(nbytes):
        v |= np.int64(row[off + k]) << np.int64(8 * k)
    return v


@njit(cache=True)
def crc64(row: np.ndarray, length: int) -> np.uint64:
    """CRC64 of ``row[:length]``."""
    table = _CRC_TABLE
    crc = np.uint64(0xFFFFFFFFFFFFFFFF)
    mask = np.uint64(0xFF)
    eight = np.uint64(8)
    for i in range(length):
        crc = table[(np.uint64(row[i]) ^ crc) & mask] ^ (crc >> eight)
    return ~crc


@njit(cache=True)
def parse_headers(data: np.ndarray, sizes: np.ndarray, rows: np.ndarray, packet_bytes: int, legacy: bool,
                  header_bytes: int, column_bytes: int, columns_per_packet: int, width: int,
                  check_crc: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Verdict, frame id, init id and serial number of each packet ``data[rows[i]]``."""
    n = rows.shape[0]
    verdict = np.zeros(n, dtype=np.int8)
    frame_id = np.full(n, -1, dtype=np.int64)
    init_id = np.zeros(n, dtype=np.int64)
    sn = np.zeros(n, dtype=np.int64)
    for i in range(n):
        r = rows[i]
        if sizes[r] != packet_bytes:
            verdict[i] = BAD_SIZE
            continue
        row = data[r]
        if legacy:
            fid = _le(row, 10, 2)
            for c in range(columns_per_packet):
                base = c * column_bytes
                if _le(row, base + 10, 2) != fid:
                    verdict[i] = BAD_FRAME_ID
        else:
            if _le(row, 0, 2) != 1:
                verdict[i] = BAD_TYPE
                continue
            fid = _le(row, 2, 2)
            init_id[i] = _le(row, 4, 3)
            sn[i] = _le(row, 7, 5)
            if check_crc:
                stored = np.uint64(_le(row, packet_bytes - 8, 8))
                # firmware 2.x leaves the footer zero or fills it with 0xDEADBEEF0000C0DE
                if (stored != np.uint64(0) and stored != np.uint64(0xDEADBEEF0000C0DE)
                        and stored != crc64(row, packet_bytes - 8)):
                    verdict[i] = BAD_CRC
                    continue
        frame_id[i] = fid
        for c in range(columns_per_packet):
            if _le(row, header_bytes + c * column_bytes + 8, 2) >= width:
                verdict[i] = BAD_MEASUREMENT_ID
    return verdict, frame_id, init_id, sn


@njit(cache=True)
def fill_frame(data: np.ndarray, rows: np.ndarray, legacy: bool, header_bytes: int, column_bytes: int,
               columns_per_packet: int, column_header_bytes: int, channel_bytes: int, height: int,
               fields: np.ndarray, present: np.ndarray, planes: np.ndarray, col_state: np.ndarray,
               col_ts: np.ndarray) -> None:
    """Write the columns of packets ``data[rows]`` into a staggered frame.

    ``planes[f, row, measurement_id]``; columns whose status says invalid are zeroed and marked
    ``COL_INVALID``; ``col_ts`` gets each column's sensor timestamp (ns).
    """
    nf = present.shape[0]
    for i in range(rows.shape[0]):
        row = data[rows[i]]
        for c in range(columns_per_packet):
            base = header_bytes + c * column_bytes
            m = _le(row, base + 8, 2)
            col_ts[m] = _le(row, base, 8)
            if legacy:
                valid = _le(row, base + column_bytes - 4, 4) == 0xFFFFFFFF
            else:
                valid = (_le(row, base + 10, 2) & 1) == 1
            if not valid:
                if col_state[m] != COL_VALID:
                    col_state[m] = COL_INVALID
                    for k in range(nf):
                        for px in range(height):
                            planes[present[k], px, m] = 0
                continue
            col_state[m] = COL_VALID
            pix = base + column_header_bytes
            for px in range(height):
                p = pix + px * channel_bytes
                for k in range(nf):
                    f = present[k]
                    v = _le(row, p + fields[f, 0], fields[f, 1])
                    planes[f, px, m] = ((v & fields[f, 2]) >> fields[f, 3]) << fields[f, 4]


@njit(cache=True)
def destagger(planes: np.ndarray, present: np.ndarray, shifts: np.ndarray) -> np.ndarray:
    """Destaggered copy of the present planes: ``out[f, u, j] = planes[f, u, (j - shift[u]) % W]``
    (ouster-sdk ``destagger``)."""
    nf, h, w = planes.shape
    out = np.zeros((nf, h, w), dtype=planes.dtype)
    for k in range(present.shape[0]):
        f = present[k]
        for u in range(h):
            s = shifts[u] % w
            for j in range(w):
                m = j - s
                if m < 0:
                    m += w
                out[f, u, j] = planes[f, u, m]
    return out


@njit(cache=True)
def build_points(planes: np.ndarray, col_state: np.ndarray, col_time: np.ndarray, shifts: np.ndarray,
                 lut_dir: np.ndarray, lut_off: np.ndarray, returns: np.ndarray, min_range_mm: int):
    """Points of the valid returns, in destaggered row-major order, return by return.

    ``returns[r] = (range field, intensity field or -1, return_type flag)``. A pixel is a point
    when its column is valid and its range is non-zero and at least ``min_range_mm``. XYZ is
    ``range * lut_dir + lut_off`` at the staggered pixel (ouster-sdk's XYZLut, metres).
    Returns x, y, z, intensity, ring (0 = lowest beam = last image row), azimuth (encoder
    angle of the column, degrees), time, return_type.
    """
    _, h, w = planes.shape
    lo = max(min_range_mm, 1)
    count = 0
    for r in range(returns.shape[0]):
        rf = returns[r, 0]
        for u in range(h):
            s = shifts[u] % w
            for j in range(w):
                m = j - s
                if m < 0:
                    m += w
                if planes[rf, u, m] >= lo and col_state[m] == COL_VALID:
                    count += 1
    x = np.empty(count, dtype=np.float32)
    y = np.empty(count, dtype=np.float32)
    z = np.empty(count, dtype=np.float32)
    intensity = np.empty(count, dtype=np.float32)
    ring = np.empty(count, dtype=np.uint16)
    azimuth = np.empty(count, dtype=np.float32)
    t = np.empty(count, dtype=np.float64)
    rtype = np.empty(count, dtype=np.uint8)
    deg_per_col = 360.0 / w
    i = 0
    for r in range(returns.shape[0]):
        rf = returns[r, 0]
        inf = returns[r, 1]
        flag = np.uint8(returns[r, 2])
        for u in range(h):
            s = shifts[u] % w
            ring_u = np.uint16(h - 1 - u)
            for j in range(w):
                m = j - s
                if m < 0:
                    m += w
                rng = planes[rf, u, m]
                if rng < lo or col_state[m] != COL_VALID:
                    continue
                fr = np.float64(rng)
                x[i] = fr * lut_dir[u, m, 0] + lut_off[u, m, 0]
                y[i] = fr * lut_dir[u, m, 1] + lut_off[u, m, 1]
                z[i] = fr * lut_dir[u, m, 2] + lut_off[u, m, 2]
                intensity[i] = planes[inf, u, m] if inf >= 0 else 0.0
                ring[i] = ring_u
                azimuth[i] = m * deg_per_col
                t[i] = col_time[m]
                rtype[i] = flag
                i += 1
    return x, y, z, intensity, ring, azimuth, t, rtype
