"""numba kernels: many Velodyne data packets → points, and packet-level scan cutting.

Pure functions on arrays (no I/O). ``decode_packets`` writes into preallocated outputs of
``n_packets * 384`` points and returns per-packet status codes and the running point count,
so the caller can slice any packet range (a scan) without copying per point.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# Per-packet status codes written by decode_packets.
OK = 0
BAD_PRODUCT = 1  # product id is not the decoder's model
BAD_MODE = 2  # return mode byte is not 0x37/0x38/0x39
BAD_FLAG = 3  # a block does not start with a valid block flag
BAD_AZIMUTH = 4  # a block azimuth is 36000 or more
STATUS_NAMES = {
    BAD_PRODUCT: "product id mismatch",
    BAD_MODE: "unknown return mode",
    BAD_FLAG: "bad block flag",
    BAD_AZIMUTH: "azimuth out of range",
}

R_STRONGEST = 1
R_LAST = 2
R_SECOND = 4

_MAX_STEP = 500  # 5 degrees between firing groups: faster than any Velodyne spins


@njit(cache=True)
def _u16(row, pos):
    return np.int64(row[pos]) | (np.int64(row[pos + 1]) << 8)


@njit(cache=True)
def decode_packets(data, stamps, pid, layout, group_blocks, cos_el, sin_el, z_off, cos_off, sin_off,
                   ring_of_laser, dist_res, time_single, time_dual, frac, min_range, keep_flags, cos_tab,
                   sin_tab, state,
                   out_x, out_y, out_z, out_i, out_ring, out_az, out_t, out_rt, pkt_end, status, last_az):
    """Decode ``data`` (n, 1206) uint8 packets into the ``out_*`` arrays.

    ``cos_tab``/``sin_tab`` hold the 36000 encoder angles (0.01 degree); ``cos_off``/``sin_off``
    each laser's azimuth offset.

    ``state`` carries across calls: [last azimuth step between firing groups (0.01 degree,
    -1 when unknown), first azimuth of the previous packet, 1 if there was one].
    ``pkt_end[i]`` is the point count after packet i, ``status[i]`` its status code,
    ``last_az[i]`` the azimuth of its last used block (0.01 degree).
    Returns the total number of points written.
    """
    n = data.shape[0]
    k = 0
    az = np.empty(12, dtype=np.int64)
    bank = np.empty(12, dtype=np.int64)
    last_step = state[0]
    prev_az0 = state[1]
    have_prev = state[2] > 0
    for p in range(n):
        row = data[p]
        pkt_end[p] = k
        last_az[p] = -1
        if row[1205] != pid:
            status[p] = 1
            continue
        mode = row[1204]
        if mode != 0x37 and mode != 0x38 and mode != 0x39:
            status[p] = 2
            continue
        dual = mode == 0x39
        nblocks = 12
        group = group_blocks
        if dual:
            group = group_blocks * 2
            if layout == 2:
                nblocks = 8
        bad = 0
        for b in range(nblocks):
            flag = _u16(row, b * 100)
            if layout == 2:
                if flag == 0xEEFF:
                    bank[b] = 0
                elif flag == 0xDDFF:
                    bank[b] = 1
                elif flag == 0xCCFF:
                    bank[b] = 2
                elif flag == 0xBBFF:
                    bank[b] = 3
                else:
                    bad = 3
                    break
            else:
                if flag != 0xEEFF:
                    bad = 3
                    break
                bank[b] = 0
            a = _u16(row, b * 100 + 2)
            if a >= 36000:
                bad = 4
                break
            az[b] = a
        if bad != 0:
            status[p] = bad
            continue
        status[p] = 0
        last_az[p] = az[nblocks - 1]
        t0 = stamps[p]
        ngroups = nblocks // group
        # The azimuth advance per firing group. VLP/HDL: averaged over the packet (block
        # azimuths jitter by +-0.02 degree, the mean over 11 intervals does not). VLS-128 (3
        # groups, 1 in dual mode): from the previous packet's first azimuth, unless a packet
        # was lost in between (step 1.8 times the last one), as velodyne_decoder does.
        from_prev = False
        if layout == 2 and have_prev:
            step = ((az[0] - prev_az0 + 36000) % 36000) / ngroups
            if step <= _MAX_STEP and not (last_step > 0 and step > 1.8 * last_step):
                last_step = step
            from_prev = True
        if ngroups > 1 and not from_prev:
            span = (az[(ngroups - 1) * group] - az[0] + 36000) % 36000
            step = span / (ngroups - 1)
            if step <= _MAX_STEP:
                last_step = step
        prev_az0 = az[0]
        have_prev = True
        step_f = last_step if last_step >= 0 else 0.0
        for g in range(ngroups):
            first = g * group
            for b in range(first, first + group):
                # Dual return: blocks come in pairs (even: last return, odd: strongest or,
                # when the strongest is also the last, the second strongest).
                pos_in_group = b - first
                is_dual_second = dual and (pos_in_group % 2 == 1)
                base = b * 100 + 4
                for s in range(32):
                    off = base + s * 3
                    raw = np.int64(row[off]) | (np.int64(row[off + 1]) << 8)
                    if raw == 0:
                        continue
                    inten = row[off + 2]
                    if dual:
                        other = off - 100 if is_dual_second else off + 100
                        oraw = np.int64(row[other]) | (np.int64(row[other + 1]) << 8)
                        ointen = row[other + 2]
                        if is_dual_second:
                            if oraw == raw and ointen == inten:
                                continue  # identical to the last return: emitted once, by it
                            # The last return was at least as strong: this is the second strongest.
                            rt = 4 if (oraw != 0 and ointen >= inten) else 1
                        else:
                            # Last return that is also the strongest (or the only one): both flags.
                            rt = 3 if (oraw == 0 or inten >= ointen) else 2
                    else:
                        rt = 1 if mode == 0x37 else 2
                    if (rt & keep_flags) == 0:
                        continue
                    r = raw * dist_res
                    if r < min_range:
                        continue
                    if layout == 0:
                        laser = s % 16
                    else:
                        laser = bank[b] * 32 + s
                    if layout == 2:
                        seq = 0 if dual else b // 4
                        fr = frac[seq, laser]
                        dt = time_dual[seq, laser] if dual else time_single[seq, laser]
                    else:
                        fr = frac[b, s]
                        dt = time_dual[b, s] if dual else time_single[b, s]
                    # Rounded to the encoder's 0.01 degree, as velodyne_decoder does.
                    azi = np.int64(math.floor(az[b] + step_f * fr + 0.5)) % 36000
                    azc = azi * 0.01
                    # cos/sin of (encoder angle + the laser's azimuth offset) from the table
                    ca = cos_tab[azi] * cos_off[laser] - sin_tab[azi] * sin_off[laser]
                    sa = sin_tab[azi] * cos_off[laser] + cos_tab[azi] * sin_off[laser]
                    xy = r * cos_el[laser]
                    out_x[k] = xy * ca
                    out_y[k] = -xy * sa
                    out_z[k] = r * sin_el[laser] + z_off[laser]
                    out_i[k] = inten
                    out_ring[k] = ring_of_laser[laser]
                    out_az[k] = azc
                    out_t[k] = t0 + dt * 1e-6
                    out_rt[k] = rt
                    k += 1
        pkt_end[p] = k
    state[0] = last_step
    state[1] = prev_az0
    state[2] = 1.0 if have_prev else 0.0
    return k


@njit(cache=True)
def cut_scans(last_az, stamps, status, cut, duration_threshold, state, close_before, close_after):
    """Packet-level scan cutting, the rule velodyne_decoder 3.1 uses.

    A packet joins the open scan; the scan closes after the first packet whose last-block
    azimuth has passed ``cut`` (0.01 degree) once the scan covers more than half a turn. A
    time gap longer than ``duration_threshold`` since the scan's first packet closes the scan
    before the packet. ``state`` = [coverage, first stamp, packets in the open scan] carries
    across calls. Packets with a non-zero status are skipped.
    """
    coverage = state[0]
    t_first = state[1]
    count = state[2]
    for p in range(last_az.shape[0]):
        close_before[p] = False
        close_after[p] = False
        if status[p] != 0:
            continue
        if count > 0 and stamps[p] - t_first > duration_threshold:
            close_before[p] = True
            coverage = 0.0
            count = 0.0
        if count == 0:
            t_first = stamps[p]
        count += 1
        new_cov = (last_az[p] - cut + 36000) % 36000
        if coverage > 18000 and coverage > new_cov:
            close_after[p] = True
            coverage = 0.0
            count = 0.0
        else:
            coverage = new_cov
    state[0] = coverage
    state[1] = t_first
    state[2] = count
