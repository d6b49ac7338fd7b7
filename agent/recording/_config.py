"""The recording section of the agent configuration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class RecordingConfig(BaseModel):
    """How drive recordings (MCAP) are written.

    A power cut loses at most the open chunk: ``flush_interval_s`` closes it that often (and
    fsyncs), ``chunk_size_bytes`` bounds it by size. Smaller chunks compress a little worse.
    """

    model_config = ConfigDict(extra="forbid")

    chunk_size_bytes: int = Field(1_048_576, ge=4096, description="uncompressed bytes per MCAP chunk")
    compression: str = Field("zstd", pattern="^(zstd|lz4|none)$", description="chunk compression")
    flush_interval_s: float = Field(1.0, gt=0, description="close and fsync the open chunk this often")
