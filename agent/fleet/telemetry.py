"""Telemetry the device reports: what the daemon knows (rates, queue depth, GNSS fix,
datasets) merged with what this module reads itself (disk, temperatures)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

TelemetrySource = Callable[[], Mapping[str, Any]]
"""The daemon's part: e.g. ``{"rates": {"lidar_pps": ...}, "queue_depth": 3,
"gnss": {"fix": "rtk_fixed", "sats": 14}, "datasets": 2}``."""

THERMAL_ROOT = Path("/sys/class/thermal")


def temperatures(root: Path = THERMAL_ROOT) -> dict[str, float]:
    """Degrees Celsius per thermal zone (``type`` name, else the zone directory name)."""
    out: dict[str, float] = {}
    for zone in sorted(root.glob("thermal_zone*")):
        try:
            milli = int((zone / "temp").read_text().strip())
        except (OSError, ValueError):
            continue  # some zones refuse reads (e.g. sensors powered down)
        try:
            name = (zone / "type").read_text().strip() or zone.name
        except OSError:
            name = zone.name
        if name in out:
            name = f"{name}.{zone.name}"
        out[name] = milli / 1000.0
    return out


def disk(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    u = shutil.disk_usage(p)
    return {"path": str(path), "total": u.total, "free": u.free, "used_pct": round(100.0 * u.used / u.total, 2)}
