"""Velodyne sensor models: laser tables, firing timing and packet layout.

Everything a kernel needs about a model is flattened into per-(block, slot) tables so one
numba kernel decodes every model. Sources: the Velodyne user manuals (VLP-16 rev. E,
VLP-32C rev. F, HDL-32E rev. M, VLS-128 rev. A timing tables) and, for the nominal laser
angles, the factory tables velodyne_decoder and the ROS driver ship.

A data packet is 1206 bytes: 12 blocks of 100 bytes (flag 0xFFEE or a bank flag, azimuth
uint16 in 0.01 degree, 32 x (distance uint16, reflectivity uint8)), then a 4-byte
microsecond-past-the-hour timestamp, the return mode byte and the product id byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PACKET_SIZE = 1206
POSITION_PACKET_SIZE = 512
BLOCKS = 12
SLOTS = 32
BLOCK_BYTES = 100

# Factory bytes (the last two bytes of a data packet).
MODE_STRONGEST = 0x37
MODE_LAST = 0x38
MODE_DUAL = 0x39
RETURN_MODES = {MODE_STRONGEST: "strongest", MODE_LAST: "last", MODE_DUAL: "dual"}

PID_HDL32E = 0x21
PID_VLP16 = 0x22
PID_PUCK_LITE = 0x23
PID_PUCK_HIRES = 0x24
PID_VLP32C = 0x28
PID_VELARRAY = 0x31
PID_VLS128 = 0xA1

# Per-laser z offsets ("vertical correction": the height of each beam's origin above the
# sensor frame's origin), in laser order. VLP-16 and Puck Hi-Res: the user manuals' tables.
# VLP-32C, HDL-32E and VLS-128: what velodyne_decoder 3.1 applies, measured against it to
# 0.01 mm (HDL-32E: -28.95 mm * tan(elevation), VLS-128: -58.63 mm * tan(elevation)); those
# manuals give no table. The VLP-16 table is -41.9 mm * tan(elevation) too: every beam's line
# passes through one point of the rotation axis, above or below the frame origin.
VLP16_Z_MM = [11.2, -0.7, 9.7, -2.2, 8.1, -3.7, 6.6, -5.1, 5.1, -6.6, 3.7, -8.1, 2.2, -9.7, 0.7, -11.2]
PUCK_HIRES_Z_MM = [7.4, -0.9, 6.5, -1.8, 5.5, -2.7, 4.6, -3.7, 3.7, -4.6, 2.7, -5.5, 1.8, -6.5, 0.9, -7.4]
VLP32C_Z_MM = [19.77, 0.74, 1.23, 11.87, 8.48, 0.0, 0.49, 6.6, 5.4, -0.25, 0.25, 4.57, 3.96, -0.99, -0.49,
               2.96, 3.46, -1.23, -0.74, 2.72, 2.47, -2.47, -1.73, 1.98, 2.22, -5.21, -3.46, 1.73, 1.48,
               -11.36, -7.73, 0.99]
HDL32E_FOCAL_M = 0.02895
VLS128_FOCAL_M = 0.05863

# Layout kinds understood by the kernel.
LAYOUT_16 = 0  # two firing sequences of 16 lasers per block (VLP-16, Puck)
LAYOUT_32 = 1  # one firing of 32 lasers per block (HDL-32E, VLP-32C)
LAYOUT_BANKS = 2  # the block flag names a bank of 32 lasers (VLS-128)

# VLS-128 block flags → bank (lasers 32*bank .. 32*bank+31).
VLS128_BANK_FLAGS = (0xEEFF, 0xDDFF, 0xCCFF, 0xBBFF)


@dataclass(frozen=True)
class VelodyneModel:
    """One sensor model, with tables indexed by (block, slot) for the kernel.

    ``elevation_deg`` / ``azimuth_offset_deg`` are per laser (laser = the channel number the
    packet uses). A point's azimuth is ``block azimuth + step * frac[block, slot]``, where
    ``step`` is the azimuth advance from one firing group to the next; its time is
    ``packet time + time_us[block, slot] * 1e-6`` (``time_dual_us`` in dual-return mode).
    VLS-128 (``LAYOUT_BANKS``) tables are indexed [firing sequence, laser] instead.
    """

    name: str
    product_id: int
    layout: int
    elevation_deg: np.ndarray  # (lasers,)
    azimuth_offset_deg: np.ndarray  # (lasers,) added to the encoder azimuth
    distance_resolution: float  # metres per distance count
    z_offset_m: np.ndarray  # (lasers,) added to z (the manuals' "vertical correction")
    time_us: np.ndarray  # (12, 32) firing time of each return after the packet time, single return
    time_dual_us: np.ndarray  # (12, 32) the same in dual-return mode
    frac: np.ndarray  # like time_us: fraction of the group's azimuth step at each firing
    group_blocks: int  # blocks sharing one azimuth in single-return mode (dual: twice as many)
    block_us: float  # duration of one firing group

    @property
    def lasers(self) -> int:
        return len(self.elevation_deg)

    def rings(self) -> np.ndarray:
        """Laser number → ring (0 = lowest beam)."""
        order = np.argsort(self.elevation_deg, kind="stable")
        ring = np.empty(len(order), dtype=np.uint16)
        ring[order] = np.arange(len(order), dtype=np.uint16)
        return ring


def _beam_origin_z(elevation_deg: np.ndarray, focal_m: float) -> np.ndarray:
    """z offsets of beams whose lines cross the rotation axis ``focal_m`` from the optical
    centre: ``-focal * tan(elevation)``. For the VLP-16 (41.9 mm) this reproduces the
    manual's "vertical correction" table (11.2, -0.7, 9.7, ... mm)."""
    return -focal_m * np.tan(np.radians(elevation_deg))


def _vlp16_like(name: str, pid: int, elevations: list[float], z_offset_mm: list[float]) -> VelodyneModel:
    # VLP-16 manual, firing timing: a block holds two firing sequences of 55.296 us; the
    # 16 lasers of a sequence fire 2.304 us apart. Dual mode: a block pair shares one time.
    seq_us, fire_us, block_us = 55.296, 2.304, 110.592
    slot = np.arange(SLOTS)
    within = (slot // 16) * seq_us + (slot % 16) * fire_us
    block = np.arange(BLOCKS)[:, None]
    time_us = block * block_us + within[None, :]
    time_dual_us = (block // 2) * block_us + within[None, :]
    # Manual "precision azimuth": interpolate by firing time over the block's 110.592 us.
    frac = np.broadcast_to(within / block_us, (BLOCKS, SLOTS)).copy()
    elev = np.array(elevations, dtype=np.float64)
    return VelodyneModel(name, pid, LAYOUT_16, elev, np.zeros(16), 0.002, np.array(z_offset_mm) * 1e-3,
                         time_us, time_dual_us, frac, 1, block_us)


def _hdl32e() -> VelodyneModel:
    # HDL-32E manual: 32 lasers fire one after the other 1.152 us apart; a block (one firing
    # cycle) lasts 46.080 us. Each laser's azimuth is interpolated by its firing time, as
    # velodyne_decoder 3.1 does (the ROS driver keeps the block azimuth).
    elev = [-30.67, -9.33, -29.33, -8.0, -28.0, -6.67, -26.67, -5.33, -25.33, -4.0, -24.0, -2.67, -22.67,
            -1.33, -21.33, 0.0, -20.0, 1.33, -18.67, 2.67, -17.33, 4.0, -16.0, 5.33, -14.67, 6.67, -13.33,
            8.0, -12.0, 9.33, -10.67, 10.67]
    block_us, fire_us = 46.08, 1.152
    slot = np.arange(SLOTS)
    block = np.arange(BLOCKS)[:, None]
    time_us = block * block_us + slot[None, :] * fire_us
    time_dual_us = (block // 2) * block_us + slot[None, :] * fire_us
    frac = np.broadcast_to(slot * fire_us / block_us, (BLOCKS, SLOTS)).copy()
    elev_a = np.array(elev)
    return VelodyneModel("HDL-32E", PID_HDL32E, LAYOUT_32, elev_a, np.zeros(32), 0.002,
                         _beam_origin_z(elev_a, HDL32E_FOCAL_M), time_us, time_dual_us, frac, 1, block_us)


def _vlp32c() -> VelodyneModel:
    # VLP-32C manual: lasers fire in pairs 2.304 us apart, a firing cycle is 55.296 us, and
    # the precision azimuth of a pair interpolates over the cycle. Per-laser azimuth offsets.
    table = [(-1.4, -25), (4.2, -1), (-1.4, -1.667), (1.4, -15.639), (-1.4, -11.31), (1.4, 0),
             (-4.2, -0.667), (1.4, -8.843), (-1.4, -7.254), (4.2, 0.333), (-1.4, -0.333), (1.4, -6.148),
             (-4.2, -5.333), (1.4, 1.333), (-4.2, 0.667), (1.4, -4), (-1.4, -4.667), (4.2, 1.667),
             (-1.4, 1), (4.2, -3.667), (-4.2, -3.333), (1.4, 3.333), (-1.4, 2.333), (1.4, -2.667),
             (-1.4, -3), (1.4, 7), (-1.4, 4.667), (4.2, -2.333), (-4.2, -2), (1.4, 15), (-1.4, 10.333),
             (1.4, -1.333)]
    # The tables list the correction subtracted from the azimuth (ROS convention): negate it.
    az_off = -np.array([t[0] for t in table])
    elev = np.array([t[1] for t in table], dtype=np.float64)
    block_us, fire_us = 55.296, 2.304
    slot = np.arange(SLOTS)
    within = (slot // 2) * fire_us
    block = np.arange(BLOCKS)[:, None]
    time_us = block * block_us + within[None, :]
    time_dual_us = (block // 2) * block_us + within[None, :]
    frac = np.broadcast_to(within / block_us, (BLOCKS, SLOTS)).copy()
    return VelodyneModel("VLP-32C", PID_VLP32C, LAYOUT_32, elev, az_off, 0.004, np.array(VLP32C_Z_MM) * 1e-3,
                         time_us, time_dual_us,
                         frac, 1, block_us)


_VLS128_TABLE = [
    (-6.354, -11.742), (-4.548, -1.99), (-2.732, 3.4), (-0.911, -5.29), (0.911, -0.78), (2.732, 4.61),
    (4.548, -4.08), (6.354, 1.31), (-6.354, -6.5), (-4.548, -1.11), (-2.732, 4.28), (-0.911, -4.41),
    (0.911, 0.1), (2.732, 6.48), (4.548, -3.2), (6.354, 2.19), (-6.354, -3.86), (-4.548, 1.53),
    (-2.732, -9.244), (-0.911, -1.77), (0.911, 2.74), (2.732, -5.95), (4.548, -0.56), (6.354, 4.83),
    (-6.354, -2.98), (-4.548, 2.41), (-2.732, -6.28), (-0.911, -0.89), (0.911, 3.62), (2.732, -5.07),
    (4.548, 0.32), (6.354, 7.58), (-6.354, -0.34), (-4.548, 5.18), (-2.732, -3.64), (-0.911, 1.75),
    (0.911, -25), (2.732, -2.43), (4.548, 2.96), (6.354, -5.73), (-6.354, 0.54), (-4.548, 9.7),
    (-2.732, -2.76), (-0.911, 2.63), (0.911, -7.65), (2.732, -1.55), (4.548, 3.84), (6.354, -4.85),
    (-6.354, 3.18), (-4.548, -5.51), (-2.732, -0.12), (-0.911, 5.73), (0.911, -4.3), (2.732, 1.09),
    (4.548, -16.042), (6.354, -2.21), (-6.354, 4.06), (-4.548, -4.63), (-2.732, 0.76), (-0.911, 15),
    (0.911, -3.42), (2.732, 1.97), (4.548, -6.85), (6.354, -1.33), (-6.354, -5.62), (-4.548, -0.23),
    (-2.732, 5.43), (-0.911, -3.53), (0.911, 0.98), (2.732, -19.582), (4.548, -2.32), (6.354, 3.07),
    (-6.354, -4.74), (-4.548, 0.65), (-2.732, 11.75), (-0.911, -2.65), (0.911, 1.86), (2.732, -7.15),
    (4.548, -1.44), (6.354, 3.95), (-6.354, -2.1), (-4.548, 3.29), (-2.732, -5.4), (-0.911, -0.01),
    (0.911, 4.5), (2.732, -4.19), (4.548, 1.2), (6.354, -13.565), (-6.354, -1.22), (-4.548, 4.17),
    (-2.732, -4.52), (-0.911, 0.87), (0.911, 6.08), (2.732, -3.31), (4.548, 2.08), (6.354, -6.65),
    (-6.354, 1.42), (-4.548, -10.346), (-2.732, -1.88), (-0.911, 3.51), (0.911, -6.06), (2.732, -0.67),
    (4.548, 4.72), (6.354, -3.97), (-6.354, 2.3), (-4.548, -6.39), (-2.732, -1), (-0.911, 4.39),
    (0.911, -5.18), (2.732, 0.21), (4.548, 6.98), (6.354, -3.09), (-6.354, 4.98), (-4.548, -3.75),
    (-2.732, 1.64), (-0.911, -8.352), (0.911, -2.54), (2.732, 2.85), (4.548, -5.84), (6.354, -0.45),
    (-6.354, 8.43), (-4.548, -2.87), (-2.732, 2.52), (-0.911, -6.17), (0.911, -1.66), (2.732, 3.73),
    (4.548, -4.96), (6.354, 0.43),
]


def _vls128() -> VelodyneModel:
    # VLS-128 manual: 128 lasers in 16 firing groups of 8; a firing sequence lasts 53.3 us,
    # a group 2.665 us, with a 5.33 us maintenance period (two group slots) after group 8 and
    # another at the end of the sequence (velodyne_decoder 3.1 agrees); the packet time
    # refers to the first firing minus 8.7 us (time-of-hour adjustment, as the ROS driver;
    # velodyne_decoder uses 7 us, and 2.89 us groups for firmware >= 5.2.3: not handled
    # here). A sequence fills 4 blocks (one per bank) sharing one azimuth; a packet holds 3
    # sequences (single return). In dual-return mode one sequence fills 8 blocks (last and
    # strongest per bank) and the last 4 blocks carry no data (velodyne_decoder agrees).
    seq_us, group_us, toh_us = 53.3, 2.665, 8.7
    az_off = -np.array([t[0] for t in _VLS128_TABLE])
    elev = np.array([t[1] for t in _VLS128_TABLE], dtype=np.float64)
    laser = np.arange(128)
    group = laser // 8
    slot_group = group + 2 * (group // 8)  # the maintenance period after group 8
    # VLS-128 tables are per laser (bank decided at run time): index [sequence, laser].
    time_us = np.stack([s * seq_us + slot_group * group_us - toh_us for s in range(3)])  # (3,128)
    time_dual_us = np.stack([slot_group * group_us - toh_us for _ in range(3)])
    frac = (slot_group * group_us / seq_us)[None, :].repeat(3, axis=0)
    return VelodyneModel("VLS-128", PID_VLS128, LAYOUT_BANKS, elev, az_off, 0.004,
                         _beam_origin_z(elev, VLS128_FOCAL_M), time_us, time_dual_us, frac, 4, seq_us)


_VLP16_ELEV = [-15, 1, -13, 3, -11, 5, -9, 7, -7, 9, -5, 11, -3, 13, -1, 15]
VLP16 = _vlp16_like("VLP-16", PID_VLP16, _VLP16_ELEV, VLP16_Z_MM)
PUCK_LITE = _vlp16_like("Puck LITE", PID_PUCK_LITE, _VLP16_ELEV, VLP16_Z_MM)
PUCK_HIRES = _vlp16_like("Puck Hi-Res", PID_PUCK_HIRES,
                         [-10, 0.667, -8.667, 2, -7.333, 3.333, -6, 4.667, -4.667, 6, -3.333, 7.333, -2,
                          8.667, -0.667, 10], PUCK_HIRES_Z_MM)
HDL32E = _hdl32e()
VLP32C = _vlp32c()
VLS128 = _vls128()

MODELS: dict[int, VelodyneModel] = {
    m.product_id: m for m in (VLP16, PUCK_LITE, PUCK_HIRES, HDL32E, VLP32C, VLS128)
}
MODELS_BY_NAME: dict[str, VelodyneModel] = {
    m.name.lower().replace(" ", "").replace("-", ""): m for m in MODELS.values()
}
UNSUPPORTED_PRODUCTS = {PID_VELARRAY: "Velarray"}


def model_by_name(name: str) -> VelodyneModel | None:
    """``VLP-16``, ``vlp16``, ``HDL-32E``, ``VLS-128``... (case, dashes and spaces ignored)."""
    return MODELS_BY_NAME.get(name.lower().replace(" ", "").replace("-", "").replace("_", ""))


def packet_interval_us(model: VelodyneModel, dual: bool) -> float:
    """Nominal time between two data packets (12 blocks)."""
    groups = BLOCKS // (model.group_blocks * (2 if dual else 1))
    if model.layout == LAYOUT_BANKS and dual:
        groups = 1
    return groups * model.block_us
