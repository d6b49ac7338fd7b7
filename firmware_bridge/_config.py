"""The ``bridge`` section of the agent configuration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BridgeConfig(BaseModel):
    """The serial link to the vehicle unit's MCU (``edge-agent bridge``); command-line options
    override these."""

    model_config = ConfigDict(extra="forbid")

    port: str | None = Field(None, description="serial port of the MCU, e.g. /dev/ttyACM0 (none: not configured)")
    baud: int = Field(921_600, ge=1200, description="baud rate (ignored by USB CDC ports)")
    source: str = Field("mcu", min_length=1, max_length=64, description="source id on the bus messages")
    stats_interval_s: float = Field(10.0, gt=0, description="seconds between stats log lines")
    timesync_window: int = Field(32, ge=2, le=4096, description="PPS edges in the tick → UTC fit")
    label_delay_s: float = Field(0.95, gt=0, lt=1.0,
                                 description="longest wait from a PPS edge to the time sentence naming it")
    outlier_s: float = Field(0.002, gt=0, description="an edge this far off the fit is dropped as an outlier")
    command_timeout_s: float = Field(1.0, gt=0, description="wait for the MCU's acknowledgement of a command")
