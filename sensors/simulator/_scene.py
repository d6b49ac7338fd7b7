"""A procedural street scene: flat ground, building facades, poles and parked cars.

Everything is an axis-aligned box or a vertical cylinder in a local ENU frame (metres,
x east, y north, z up, ground at z = 0), so ray casting is exact and tests can measure
how far a decoded point lies from the nearest surface. The layout follows the simulated
trajectory: a street along +x, a left turn, a street along +y (see ``_trajectory``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FACADE_OFFSET_M = 12.0  # street centreline to facade line
CURB_OFFSET_M = 9.0  # centreline to curb (sidewalk 3 m)
GROUND_REFLECTIVITY = 12


@dataclass
class Scene:
    """Boxes ``(M, 6)`` as xmin, ymin, zmin, xmax, ymax, zmax; cylinders ``(K, 5)`` as
    cx, cy, radius, zmin, zmax; a reflectivity (0-255) per object; the ground is z = 0."""

    boxes: np.ndarray
    box_reflectivity: np.ndarray
    box_kind: list[str]
    cylinders: np.ndarray
    cylinder_reflectivity: np.ndarray
    ground_reflectivity: int = GROUND_REFLECTIVITY

    def near_mask(self, x: float, y: float, radius: float) -> tuple[np.ndarray, np.ndarray]:
        """Masks of the boxes and cylinders whose footprint comes within ``radius`` of (x, y)."""
        b = self.boxes
        dx = np.maximum(np.maximum(b[:, 0] - x, x - b[:, 3]), 0.0)
        dy = np.maximum(np.maximum(b[:, 1] - y, y - b[:, 4]), 0.0)
        c = self.cylinders
        return dx * dx + dy * dy <= radius * radius, np.hypot(c[:, 0] - x, c[:, 1] - y) <= radius + c[:, 2]

    def near(
        self, x: float, y: float, radius: float
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Boxes, their reflectivity, cylinders, theirs: those within ``radius`` of (x, y)."""
        keep_b, keep_c = self.near_mask(x, y, radius)
        return (
            np.ascontiguousarray(self.boxes[keep_b]),
            self.box_reflectivity[keep_b],
            np.ascontiguousarray(self.cylinders[keep_c]),
            self.cylinder_reflectivity[keep_c],
        )

    def distance_to_surface(self, points: np.ndarray, ground: bool = True) -> np.ndarray:
        """Distance (m) of each world point ``(N, 3)`` to the nearest scene surface (the
        ground plane included unless ``ground`` is False)."""
        from sensors.simulator._raycast import surface_distance

        pts = np.ascontiguousarray(points, dtype=np.float64)
        return surface_distance(
            pts, np.ascontiguousarray(self.boxes), np.ascontiguousarray(self.cylinders), ground
        )


class _Builder:
    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.boxes: list[tuple[float, ...]] = []
        self.refl: list[int] = []
        self.kind: list[str] = []
        self.cyl: list[tuple[float, ...]] = []
        self.cyl_refl: list[int] = []

    def box(
        self, x0: float, y0: float, z0: float, x1: float, y1: float, z1: float, refl: int, kind: str
    ) -> None:
        self.boxes.append((min(x0, x1), min(y0, y1), z0, max(x0, x1), max(y0, y1), z1))
        self.refl.append(refl)
        self.kind.append(kind)

    def buildings(self, along: str, fixed: float, side: int, start: float, end: float) -> None:
        """Buildings along a street running in ``along`` (x or y) with the facade line at
        ``fixed + side * FACADE_OFFSET_M``; each gets its own setback, height and depth."""
        r = self.rng
        u = start
        while u < end:
            length = float(r.uniform(12.0, 35.0))
            setback = float(r.uniform(0.0, 1.5))
            depth = float(r.uniform(12.0, 20.0))
            height = float(r.uniform(8.0, 24.0))
            refl = int(r.integers(30, 90))
            near_ = fixed + side * (FACADE_OFFSET_M + setback)
            far_ = near_ + side * depth
            u1 = min(u + length, end)
            if along == "x":
                self.box(u, near_, 0.0, u1, far_, height, refl, "building")
            else:
                self.box(near_, u, 0.0, far_, u1, height, refl, "building")
            u = u1 + (float(r.uniform(2.0, 6.0)) if r.random() < 0.3 else 0.0)

    def street_furniture(self, along: str, fixed: float, side: int, start: float, end: float) -> None:
        """Lamp poles on the sidewalk and cars parked along the curb."""
        r = self.rng
        u = start + float(r.uniform(0.0, 10.0))
        while u < end:
            off = fixed + side * (CURB_OFFSET_M + 1.0)
            radius = float(r.uniform(0.08, 0.15))
            height = float(r.uniform(4.0, 8.0))
            xy = (u, off) if along == "x" else (off, u)
            self.cyl.append((xy[0], xy[1], radius, 0.0, height))
            self.cyl_refl.append(int(r.integers(100, 160)))
            u += float(r.uniform(18.0, 30.0))
        u = start + float(r.uniform(0.0, 6.0))
        while u < end - 5.0:
            if r.random() < 0.65:
                length = float(r.uniform(4.0, 4.8))
                width = float(r.uniform(1.7, 1.9))
                c = fixed + side * (CURB_OFFSET_M - 0.2 - width / 2)
                refl = int(r.integers(20, 120))
                body = (u, c - width / 2, 0.25, u + length, c + width / 2, float(r.uniform(0.9, 1.0)))
                cab_in = float(r.uniform(0.8, 1.2))
                cabin = (
                    u + cab_in,
                    c - width / 2 + 0.1,
                    body[5],
                    u + length - 0.6,
                    c + width / 2 - 0.1,
                    float(r.uniform(1.4, 1.55)),
                )
                for b in (body, cabin):
                    if along == "x":
                        self.box(b[0], b[1], b[2], b[3], b[4], b[5], refl, "car")
                    else:
                        self.box(b[1], b[0], b[2], b[4], b[3], b[5], refl, "car")
                u += length + float(r.uniform(0.8, 3.0))
            else:
                u += float(r.uniform(5.0, 12.0))


def make_street_scene(seed: int, turn_x: float, street2_length: float, lead_in: float = 80.0) -> Scene:
    """The L-shaped street of the simulated drive: street 1 along y = 0 from ``-lead_in``
    to the corner, street 2 along x = ``turn_x`` northwards for ``street2_length`` metres.
    Deterministic for ``seed``."""
    rng = np.random.default_rng(seed)
    b = _Builder(rng)
    w = FACADE_OFFSET_M
    x0 = -lead_in
    y_end = street2_length + 40.0
    # Street 1: north side stops at the corner; south side continues past it.
    b.buildings("x", 0.0, +1, x0, turn_x - w - 0.5)
    b.buildings("x", 0.0, -1, x0, turn_x + w + 20.0)
    # The wall that closes street 1 and lines street 2's east side.
    b.buildings("y", turn_x, +1, -w - 20.0, y_end)
    # Street 2 west side, behind the corner building of street 1.
    b.buildings("y", turn_x, -1, w + 20.0, y_end)
    b.street_furniture("x", 0.0, +1, x0, turn_x - w - 3.0)
    b.street_furniture("x", 0.0, -1, x0, turn_x - w - 3.0)
    b.street_furniture("y", turn_x, +1, w + 3.0, y_end - 20.0)
    b.street_furniture("y", turn_x, -1, w + 3.0, y_end - 20.0)
    return Scene(
        boxes=np.asarray(b.boxes, dtype=np.float64).reshape(-1, 6),
        box_reflectivity=np.asarray(b.refl, dtype=np.uint8),
        box_kind=b.kind,
        cylinders=np.asarray(b.cyl, dtype=np.float64).reshape(-1, 5),
        cylinder_reflectivity=np.asarray(b.cyl_refl, dtype=np.uint8),
    )
