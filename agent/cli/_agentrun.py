"""What ``demo`` and ``replay`` share: run an :class:`agent.runtime.Agent` over messages,
verify every sealed dataset, and print the summary."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click


def run_agent(cfg: Any, messages: Iterable[Any], state_dir: Path, *, source_id: str | None = None,
              total_s: float | None = None, start_ns: int | None = None, progress: bool = False,
              lidar_meta: str | None = None, config_path: str | None = None) -> dict[str, Any]:
    """Run the agent in replay mode; returns the summary dict (with ``verify`` per dataset)."""
    from agent.runtime import Agent
    from agent.verify import verify_path

    t0 = time.time()
    bar = None
    cb = None
    if progress and total_s:
        from tqdm import tqdm

        bar = tqdm(total=round(total_s, 1), unit="s", desc="drive", file=sys.stderr,
                   bar_format="{l_bar}{bar}| {n:.1f}/{total:.1f} s drive [{elapsed}<{remaining}, {rate_fmt}]")
        first = [start_ns]
        step = max(0.1, total_s / 300)

        def cb(utc_ns: int) -> None:
            if first[0] is None:
                first[0] = utc_ns
            pos = min((utc_ns - first[0]) / 1e9, total_s)
            if pos - bar.n >= step:  # a few hundred updates per drive, whatever its length
                bar.update(round(pos - bar.n, 1))

    agent = Agent(cfg, state_dir=state_dir, replay=True, lidar_meta=lidar_meta, config_path=config_path)
    old = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    for s in old:
        signal.signal(s, lambda *_: agent.request_stop("signal"))
    try:
        with agent:
            summary = agent.run(messages, source_id=source_id, progress=cb).as_dict()
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if bar is not None:
            if bar.n < bar.total and agent.summary.stopped_by == "end":
                bar.update(round(bar.total - bar.n, 1))
            bar.close()
    checks = []
    for d in summary["datasets"]:
        rep = verify_path(d["path"])
        checks.append({"session": d["session"], **rep.as_dict()})
    summary["verify"] = checks
    summary["verified"] = bool(checks) and all(c["ok"] for c in checks)
    summary["total_s"] = time.time() - t0
    return summary


def _mb(n: float) -> str:
    return f"{n / 1e6:.2f} MB"


def print_summary(s: dict[str, Any], title: str) -> None:
    p = s["pipeline"]
    echo = click.echo
    echo(f"{title}: {s['duration_s']:.1f} s of drive in {s['wall_s']:.1f} s "
         f"({s['realtime_factor']:.1f}x real time); {s['total_s']:.1f} s in all")
    echo(f"  numba warm-up at start-up: {s['warmup_s']:.2f} s (included above)")
    if s.get("first_chunk_s") is not None:
        echo(f"  first chunk committed after {s['first_chunk_s']:.2f} s")
    echo(f"  device {s['device']}, state {s['state_dir']}")
    echo(f"  LiDAR: {p['lidar_packets']} packets, {p['scans']} scans, points in {p['points_in']:,}, "
         f"kept {p['points_kept']:,} (removed: " + ", ".join(f"{k} {v:,}" for k, v in p["points_removed"].items() if v)
         + f"; no pose {p['points_no_pose']:,})")
    echo(f"  camera: {p['camera_frames']} frames, {p['keyframes']} redacted keyframes; GNSS: {p['gnss_fixes']} fixes, "
         f"IMU: {p['imu_samples']} samples")
    cb = p["chunk_payload_bytes"]
    echo(f"  chunks: {s['chunks']} committed" + (f" ({s['chunks_skipped']} already there from before a crash)"
                                                  if s["chunks_skipped"] else "")
         + " (" + ", ".join(f"{k} {v}" for k, v in p["chunks"].items()) + f"), Flows: {s['flows']}")
    echo(f"  bytes: LiDAR packets {_mb(p['lidar_bytes'])} -> {_mb(cb.get('packets', 0))} lossless; "
         f"points {_mb(p['points_raw_bytes'])} (float32 xyz+i, f64 t) -> {_mb(cb.get('points', 0))} quantized; "
         f"camera {_mb(p['camera_bytes'])} in -> {_mb(cb.get('keyframes', 0))} keyframes")
    drops = {k: v for k, v in s["drops"].items() if v}
    echo(f"  dropped by backpressure: {drops or 'nothing'}")
    for d, v in zip(s["datasets"], s.get("verify", [])):
        echo(f"  dataset {d['session']}: root 0x{d['root']}, state {d['state']}")
        echo(f"    path {d['path']}")
        echo(f"    verify: {'OK' if v['ok'] else 'FAILED'} " + ", ".join(f"{k} {n}" for k, n in v["checked"].items()))
        for f in v["failures"][:5]:
            echo(f"      {f['file']}: {f['reason']}")
        if d.get("token_id") is not None:
            echo(f"    DAT token id {d['token_id']}, tx {d['tx_hash']}")
        if d.get("upload"):
            echo(f"    uploaded to {d['upload'].get('url')}")
        if d.get("outputs"):
            echo(f"    outputs: {d['outputs'].get('dir')} ({', '.join(d['outputs'].get('files', []))})")
    if not s["datasets"]:
        echo("  no dataset was sealed (no data?)")
