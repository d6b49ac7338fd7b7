"""Typed configuration: one settings object with a section per part, loaded from
``configs/*.yaml`` (the embedded ``configs/default.yaml`` when no file is given) and
validated with clear messages that name the file and the field.

Each part owns its section model in its own module; this module only composes them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agent.bus._config import BusConfig
from agent.provenance._config import ProvenanceConfig
from agent.chain._config import ChainConfig
from agent.errors import ConfigError
from agent.fleet._config import FleetConfig
from agent.recording._config import RecordingConfig
from firmware_bridge._config import BridgeConfig
from pipeline.camera._config import CameraProcessingConfig
from sensors.camera._config import CameraSourceConfig
from pipeline.georef._config import GeorefConfig
from pipeline.kernels._config import FilterConfig
from pipeline.codecs._config import CodecConfig
from pipeline.chunking import ChunkingConfig
from agent.runtime._config import RuntimeConfig

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LidarConfig(Section):
    """LiDAR decoding."""

    cut_angle_deg: float = Field(0.0, ge=0.0, lt=360.0, description="azimuth where a Velodyne scan ends")
    return_mode: str = Field("auto", pattern="^(auto|strongest|last|dual)$")
    min_range_m: float = Field(0.0, ge=0.0)
    ports: list[int] = Field(default_factory=lambda: [2368, 7502, 7503])


class AgentConfig(Section):
    """The whole configuration."""

    device_id: str = Field("edge-dev-0001", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")
    state_dir: Path = Path("state")
    lidar: LidarConfig = Field(default_factory=LidarConfig)
    bus: BusConfig = Field(default_factory=BusConfig)
    georef: GeorefConfig = Field(default_factory=GeorefConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    chunking: ChunkingConfig = Field(default_factory=ChunkingConfig)
    codecs: CodecConfig = Field(default_factory=CodecConfig)
    recording: RecordingConfig = Field(default_factory=RecordingConfig)
    provenance: ProvenanceConfig = Field(default_factory=ProvenanceConfig)
    chain: ChainConfig = Field(default_factory=ChainConfig)
    fleet: FleetConfig = Field(default_factory=FleetConfig)
    bridge: BridgeConfig = Field(default_factory=BridgeConfig)
    cameras: list[CameraSourceConfig] = Field(default_factory=list)
    camera_processing: CameraProcessingConfig = Field(default_factory=CameraProcessingConfig)
    runtime: RuntimeConfig = Field(default_factory=RuntimeConfig)

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of the effective configuration."""
        doc = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(doc.encode()).hexdigest()


def _format_errors(path: str, err: ValidationError) -> str:
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(top level)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


def load_config(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> AgentConfig:
    """Load and validate a configuration file (default: the embedded defaults)."""
    source = Path(path) if path else CONFIG_DIR / "default.yaml"
    data: dict[str, Any] = {}
    if source.exists():
        try:
            loaded = yaml.safe_load(source.read_text()) or {}
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"{source}:{mark.line + 1}" if mark else str(source)
            raise ConfigError(where, f"not valid YAML: {getattr(exc, 'problem', exc)}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(str(source), "the top level must be a mapping")
        data = loaded
    elif path:
        raise ConfigError(str(source), "no such configuration file")
    for dotted, value in (overrides or {}).items():
        node = data
        keys = dotted.split(".")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    try:
        return AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(str(source), _format_errors(str(source), exc)) from None
