"""Status file and Prometheus metrics of the running agent.

The daemon writes ``<state_dir>/status.json`` atomically (temporary file, fsync-free
rename: a reader sees the old or the new document, never half of one) every tick;
``edge-agent status`` reads it. Metrics go to a ``prometheus_client`` registry served on
``runtime.metrics_port`` (0: off).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from agent.errors import AgentError


def write_status(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(doc, default=str, sort_keys=True))
    os.replace(tmp, path)


def read_status(state_dir: str | Path, name: str = "status.json") -> dict[str, Any]:
    """The last status the agent wrote; ``alive`` says whether its process still runs."""
    path = Path(state_dir) / name
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        raise AgentError(f"{path}: no status file (is the agent running with this state dir?)") from None
    except json.JSONDecodeError as exc:
        raise AgentError(f"{path}: not JSON: {exc}") from None
    pid = doc.get("pid")
    alive = False
    if isinstance(pid, int):
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
    doc["alive"] = alive and doc.get("state") not in ("stopped",)
    doc["age_s"] = round(time.time() - float(doc.get("updated", 0)), 3)
    return doc


class Metrics:
    """Prometheus metrics of one agent (its own registry: tests run several in a process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge

        r = self.registry = CollectorRegistry()
        self.messages = Counter("edge_agent_messages", "bus messages taken in", ["kind"], registry=r)
        self.bytes_in = Counter("edge_agent_sensor_bytes", "sensor bytes taken in", ["kind"], registry=r)
        self.drops = Counter("edge_agent_dropped", "items dropped by the backpressure policy", ["what"], registry=r)
        self.queue = Gauge("edge_agent_queue_depth", "intake queue depth (messages)", registry=r)
        self.queue_max = Gauge("edge_agent_queue_capacity", "intake queue capacity", registry=r)
        self.points = Counter("edge_agent_points", "LiDAR points", ["stage"], registry=r)
        self.chunks = Gauge("edge_agent_chunks", "chunks committed", ["stream"], registry=r)
        self.flows = Gauge("edge_agent_flows", "Flows cut", registry=r)
        self.datasets = Gauge("edge_agent_datasets", "datasets by state", ["state"], registry=r)
        self.mint = Gauge("edge_agent_mint_pending", "sealed datasets waiting to be uploaded/minted", registry=r)
        self.minted = Counter("edge_agent_dats_minted", "DATs minted", registry=r)
        self.disk = Gauge("edge_agent_store_bytes", "bytes used by the store", registry=r)
        self.disk_free = Gauge("edge_agent_disk_free_bytes", "free bytes on the state file system", registry=r)
        self.fix_lat = Gauge("edge_agent_gnss_lat_deg", "last GNSS fix latitude", registry=r)
        self.fix_lon = Gauge("edge_agent_gnss_lon_deg", "last GNSS fix longitude", registry=r)
        self.fix_type = Gauge("edge_agent_gnss_fix_type", "last GNSS fix type (GGA quality)", registry=r)
        self.fix_age = Gauge("edge_agent_gnss_fix_utc_s", "UTC time of the last GNSS fix", registry=r)
        self.rate = Gauge("edge_agent_rate_per_s", "messages per second over the last tick", ["kind"], registry=r)
        self._server: Any = None

    def serve(self, port: int, host: str = "127.0.0.1") -> int:
        """Start the HTTP endpoint; returns the port (0 → nothing started)."""
        if not port:
            return 0
        from prometheus_client import start_http_server

        self._server, _thread = start_http_server(port, host, registry=self.registry)
        return self._server.server_port

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None


def sd_notify(state: str) -> bool:
    """Tell systemd (``Type=notify`` units: READY=1, STOPPING=1, WATCHDOG=1); False elsewhere."""
    import socket

    addr = os.environ.get("NOTIFY_SOCKET")
    if not addr:
        return False
    if addr.startswith("@"):
        addr = "\0" + addr[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)  # a stalled receiver must never stall the agent
            sock.connect(addr)
            sock.sendall(state.encode())
        return True
    except OSError:
        return False
