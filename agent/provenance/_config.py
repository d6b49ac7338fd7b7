"""The ``provenance`` configuration section: chunk size, Flow batching, dataset sessions
and the store's disk budget."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FlowBatchConfig(_Section):
    """A Flow is cut when any limit is reached (whichever comes first)."""

    max_bytes: int = Field(64 * 1024 * 1024, ge=1, description="payload bytes per Flow")
    max_chunks: int = Field(1024, ge=1, description="chunks per Flow")
    max_age_s: float = Field(30.0, gt=0, description="age of the oldest unflowed chunk")


class DatasetConfig(_Section):
    """A dataset is a drive session: ignition on to off, this window, or an explicit seal."""

    window_s: float | None = Field(None, gt=0, description="seal after this long (None: ignition or explicit)")
    usage_terms: dict[str, Any] = Field(
        default_factory=lambda: {"license": "CC-BY-NC-4.0", "quota": 100, "attribution": "edge-agent device"}
    )


class StoreConfig(_Section):
    """The on-device store's disk budget and what happens when it is reached."""

    budget_bytes: int = Field(8 * 1024**3, ge=1, description="chunks, payloads and manifests on disk")
    policy: Literal["stop", "evict"] = Field(
        "stop", description="stop: refuse new data; evict: drop the oldest uploaded and anchored datasets"
    )
    reserve_bytes: int = Field(
        1024 * 1024, ge=0, description="file kept in reserve, released when the file system fills so that "
                                       "the store can still record what happened"
    )


class ProvenanceConfig(_Section):
    """Signed chunks, Flows, datasets and the store that keeps them."""

    chunk_target_bytes: int = Field(
        1024 * 1024, ge=1024, description="recommended payload size of one chunk (see bench sign/store)"
    )
    attach_payload: bool = Field(False, description="payload inside the chunk file instead of <id>.bin beside it")
    flow: FlowBatchConfig = Field(default_factory=FlowBatchConfig)
    dataset: DatasetConfig = Field(default_factory=DatasetConfig)
    store: StoreConfig = Field(default_factory=StoreConfig)
