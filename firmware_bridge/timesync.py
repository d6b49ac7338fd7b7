"""MCU ticks → UTC: a least-squares line through recent PPS edges.

Each PPS edge (its tick from the MCU's input capture) is labelled with the UTC second of the
first whole-second RMC (status A) or ZDA sentence that arrives after it, within
``max_label_delay`` seconds (receivers send the time of an edge after the edge). Over the last
``window`` labelled edges, UTC = offset + slope · (tick − tick₀) is fitted by least squares;
the slope absorbs the MCU oscillator's error (tens of ppm), the offset its boot time. The
fit's residual (RMS and max, seconds) says how well the edges agree with a line; a label that
disagrees with the fit by more than ``outlier`` seconds is dropped (a missed or doubled PPS,
a sentence for the wrong second), and two in a row restart the fit (the GNSS time jumped).
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from firmware_bridge.records import TICK_HZ


@dataclass(frozen=True, slots=True)
class SyncState:
    """The fit after an edge was added: ``utc(tick) = utc0 + slope · (tick − tick0)``."""

    tick0: int
    utc0: float
    slope: float  # seconds per tick
    edges: int
    residual_rms: float  # seconds; 0 with fewer than 3 edges
    residual_max: float
    edge_tick: int  # the edge just added
    edge_utc: float

    @property
    def drift_ppm(self) -> float:
        """How fast the MCU clock runs against UTC, ppm (positive: MCU fast)."""
        return (1.0 / (self.slope * TICK_HZ) - 1.0) * 1e6

    def to_utc(self, tick: int) -> float:
        return self.utc0 + self.slope * (tick - self.tick0)


class TickClock:
    """Maps MCU ticks to UTC from PPS edges and the GNSS time sentences that follow them."""

    def __init__(self, window: int = 32, tick_hz: int = TICK_HZ, max_label_delay: float = 0.95,
                 outlier: float = 0.002) -> None:
        if window < 2:
            raise ValueError("window must hold at least 2 edges")
        self.window = window
        self.tick_hz = tick_hz
        self.max_label_delay = max_label_delay
        self.outlier = outlier
        self._pairs: deque[tuple[int, float]] = deque(maxlen=window)
        self._pending: int | None = None  # last PPS edge not yet labelled
        self._strikes = 0
        self.state: SyncState | None = None
        self.outliers = 0
        self.restarts = 0
        self.unlabelled_edges = 0

    def reset(self) -> None:
        """Forget everything (the MCU rebooted: its ticks restarted)."""
        self._pairs.clear()
        self._pending = None
        self._strikes = 0
        self.state = None

    @property
    def synced(self) -> bool:
        return self.state is not None

    def on_pps(self, edge_tick: int) -> None:
        if self._pending is not None:
            self.unlabelled_edges += 1
        self._pending = edge_tick

    def on_utc_second(self, utc: float, arrival_tick: int) -> SyncState | None:
        """A whole-second GNSS time arrived at ``arrival_tick``; label the pending edge with it.
        Returns the new fit when an edge was added, else None."""
        edge = self._pending
        if edge is None:
            return None
        delay = (arrival_tick - edge) / self.tick_hz
        if not 0 <= delay <= self.max_label_delay:
            return None  # the sentence belongs to no edge we saw
        self._pending = None
        return self.add_edge(edge, utc)

    def add_edge(self, edge_tick: int, utc: float) -> SyncState | None:
        """Add a labelled edge directly (tests, or a receiver that reports its own labels)."""
        if self._pairs and edge_tick <= self._pairs[-1][0]:
            self.reset()  # ticks went backwards: a reboot we did not hear about
            self.restarts += 1
        if self.state is not None and abs(self.state.to_utc(edge_tick) - utc) > self.outlier:
            self._strikes += 1
            self.outliers += 1
            if self._strikes < 2:
                return None
            self._pairs.clear()
            self.restarts += 1
        self._strikes = 0
        self._pairs.append((edge_tick, utc))
        self.state = self._fit(edge_tick, utc)
        return self.state

    def to_utc(self, tick: int) -> float | None:
        return None if self.state is None else self.state.to_utc(tick)

    def _fit(self, edge_tick: int, edge_utc: float) -> SyncState:
        pairs = self._pairs
        n = len(pairs)
        tick0, utc0 = pairs[0]
        if n == 1:
            return SyncState(tick0, utc0, 1.0 / self.tick_hz, 1, 0.0, 0.0, edge_tick, edge_utc)
        # Centred sums in float64: x in ticks (< 2^53), y in seconds from the first edge.
        xs = [t - tick0 for t, _ in pairs]
        ys = [u - utc0 for _, u in pairs]
        mx = sum(xs) / n
        my = sum(ys) / n
        sxx = sum((x - mx) ** 2 for x in xs)
        sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
        slope = sxy / sxx
        intercept = my - slope * mx
        res = [y - (intercept + slope * x) for x, y in zip(xs, ys)]
        rms = math.sqrt(sum(r * r for r in res) / n) if n > 2 else 0.0
        rmax = max(abs(r) for r in res) if n > 2 else 0.0
        return SyncState(tick0, utc0 + intercept, slope, n, rms, rmax, edge_tick, edge_utc)


class HostClock:
    """MCU ticks → the host's monotonic clock (``mono_ns`` of bus messages).

    A frame reaches the host some delivery delay after the instant its tick names (UART or USB
    transfer, buffering, scheduling); the delay varies, and frames arrive in bursts, so the
    receipt time is a poor timestamp. The smallest delay seen recently is the closest to the
    true one: each frame gives ``offset = mono_at_receipt − tick · ns_per_tick``, and a tick is
    mapped with the minimum offset over the last ``window`` ticks (a sliding minimum, O(1) per
    frame). The result is late by the smallest delivery delay (typically well under a
    millisecond on USB) instead of by every frame's own delay.
    """

    def __init__(self, window: int = 2 * TICK_HZ) -> None:
        self.window = window
        self._mins: deque[tuple[int, float]] = deque()  # (tick, offset), offsets increasing

    def reset(self) -> None:
        self._mins.clear()

    def observe(self, tick: int, mono_ns: int, ns_per_tick: float = 1e9 / TICK_HZ) -> None:
        mins = self._mins
        if mins and tick < mins[-1][0]:
            mins.clear()  # ticks went back: an MCU reboot
        off = mono_ns - tick * ns_per_tick
        while mins and mins[-1][1] >= off:
            mins.pop()
        mins.append((tick, off))
        limit = tick - self.window
        while mins[0][0] < limit:
            mins.popleft()

    def to_mono(self, tick: int, ns_per_tick: float = 1e9 / TICK_HZ) -> int | None:
        if not self._mins:
            return None
        return round(tick * ns_per_tick + self._mins[0][1])


__all__ = ["HostClock", "SyncState", "TickClock"]
