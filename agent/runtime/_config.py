"""The ``runtime`` section of the agent configuration: sources, queues, shutdown, metrics."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class UploadConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    sink: str = Field("local", description="upload sink (agent.runtime.SINKS): local")
    target: str = Field("", description="sink target; local: a directory (default STATE/uploads)")


class SourcesConfig(BaseModel):
    """Live sources of ``edge-agent run`` (replay and demo read a drive instead)."""

    model_config = ConfigDict(extra="forbid")

    lidar: str | None = Field(None, description="LiDAR packets: udp://HOST:PORT (or a pcap for bring-up)")
    lidar_meta: str | None = Field(None, description="Ouster sensor metadata JSON file (Ouster only)")
    gnss: str | None = Field(None, description="NMEA: a serial device or pty (/dev/ttyACM0), udp://HOST:PORT, "
                             "or a file (read once)")
    gnss_baud: int = Field(115200, gt=0)
    bus: bool = Field(False, description="also take what other processes publish on bus.endpoint (bound here): "
                      "the firmware bridge's power events (ignition off seals the dataset), IMU, replays")


class RuntimeConfig(BaseModel):
    """How the daemon runs (``runtime:``).

    Backpressure: capture never waits on processing in live mode. Everything captured goes
    into one intake queue of ``intake_max`` messages. Above ``camera_high`` of it, camera
    frames are dropped at intake (counted); above ``behind_high``, decoded LiDAR scans are
    skipped whole by the point stage (counted) while their raw packets are still chunked
    and signed; only a full queue loses raw packets (``capture_overflow``, should stay 0).
    Replays of files block instead (nothing is dropped: the file can wait)."""

    model_config = ConfigDict(extra="forbid")

    sources: SourcesConfig = Field(default_factory=SourcesConfig)
    upload: UploadConfig = Field(default_factory=UploadConfig)
    intake_max: int = Field(20000, ge=100, description="intake queue length (messages)")
    camera_high: float = Field(0.25, gt=0, le=1, description="queue fill above which camera frames are dropped")
    behind_high: float = Field(0.5, gt=0, le=1, description="queue fill above which whole scans are skipped")
    tick_s: float = Field(0.5, gt=0, description="state machine tick: Flows, seals, uploads, mints, status")
    shutdown_timeout_s: float = Field(20.0, gt=0, description="SIGTERM / ignition off: flush, seal, stop within this")
    mint_on_seal: bool = Field(True, description="mint the DAT of each sealed dataset")
    outputs: bool = Field(True, description="per dataset: track and tile GeoJSON, PNG map, PLY point cloud")
    metrics_port: int = Field(0, ge=0, le=65535, description="Prometheus HTTP port (0: off)")
    metrics_host: str = "127.0.0.1"
    outlier_method: Literal["ring", "knn"] = Field(
        "ring", description="statistical outlier filter (filters.outlier_*) of the agent's point stage: ring = "
        "k nearest among the range-image neighbourhood (pipeline.kernels.ring_outliers: ~2x cheaper on one core, "
        "99-99.7 % the same kept set on the VLP-16/OS1-128 fixtures); knn = exact k-NN over the scan (Open3D)")
    outlier_ring_reach: int = Field(1, ge=0, le=8, description="ring: beams above and below searched")
    outlier_threads: int = Field(2, ge=1, le=2, description="ring: 2 searches half of each scan on a worker "
                                 "thread (the kernel releases the GIL: the second core)")
    status_file: str = Field("status.json", description="status written atomically here (relative to state_dir)")
