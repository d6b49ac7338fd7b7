"""The bus section of the agent configuration."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class BusConfig(BaseModel):
    """Where the bus lives and how much it buffers.

    ``endpoint`` is ``inproc://NAME`` (one process: replay, tests), ``ipc:///PATH`` (on the
    device: sources and agent as separate processes) or ``tcp://127.0.0.1:PORT``.
    A publisher drops messages for a subscriber whose queue holds ``send_hwm`` messages, so
    a slow consumer never stalls capture; the subscriber counts those drops from sequence gaps.
    """

    model_config = ConfigDict(extra="forbid")

    endpoint: str = Field("inproc://edge-agent-bus", pattern=r"^(inproc://\S+|ipc://\S+|tcp://[^\s:]+:\d{1,5})$",
                          description="ZeroMQ endpoint the publisher binds and subscribers connect to")
    send_hwm: int = Field(10000, ge=1, description="messages queued per subscriber at the publisher")
    recv_hwm: int = Field(10000, ge=1, description="messages queued at a subscriber")
    linger_ms: int = Field(0, ge=0, description="how long close() waits to flush unsent messages")
