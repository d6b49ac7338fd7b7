"""Timing and reporting helpers shared by the suites."""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import ModuleType
from typing import Any

MIN_SECONDS = 1.0


@dataclass
class Row:
    """One measurement, ours beside the reference's."""

    suite: str
    case: str
    metric: str
    unit: str
    ours: float
    reference: float | None = None
    reference_name: str | None = None
    ratio: float | None = None
    better: str = "higher"  # "higher" or "lower"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def measure(fn: Callable[[], Any], min_seconds: float = MIN_SECONDS, min_repeats: int = 3) -> tuple[float, Any]:
    """Seconds per call of ``fn`` (best of repeated calls over at least ``min_seconds``)."""
    result = None
    best = float("inf")
    total = 0.0
    n = 0
    while total < min_seconds or n < min_repeats:
        t0 = time.perf_counter()
        result = fn()
        dt = time.perf_counter() - t0
        best = min(best, dt)
        total += dt
        n += 1
    return best, result


def ratio_row(suite: str, case: str, metric: str, unit: str, ours: float, reference: float | None,
              reference_name: str | None, better: str = "higher") -> Row:
    """A row with ``ratio`` = ours / reference for higher-is-better metrics, and
    reference / ours... no: always ours / reference, so read it with ``better``."""
    ratio = None
    if reference not in (None, 0):
        ratio = ours / reference  # type: ignore[operator]
    return Row(suite, case, metric, unit, ours, reference, reference_name, ratio, better)


def suite_modules() -> dict[str, ModuleType | str]:
    """Suite name → module path (imported lazily by the caller)."""
    import bench

    out: dict[str, ModuleType | str] = {}
    for info in pkgutil.iter_modules(bench.__path__):
        if info.name.startswith("suite_"):
            out[info.name[len("suite_") :].replace("_", "-")] = f"bench.{info.name}"
    return out


def load_suite(name: str) -> ModuleType:
    return importlib.import_module(str(suite_modules()[name]))
