"""The ``fleet`` section of the agent configuration: broker, TLS, credentials, trust."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


class FleetConfig(BaseModel):
    """How the device (and the fleet manager's tools) reach the MQTT broker, and which fleet
    keys the device trusts to sign jobs.

    ``protocol`` ``auto`` connects with MQTT 5 and falls back to 3.1.1 when the broker refuses
    the protocol version. The session is persistent (clean start off, ``session_expiry_s``) so
    job notifications sent while the device is offline wait at the broker.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="run the fleet client in the daemon")
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(1883, ge=1, le=65535)
    protocol: str = Field("auto", pattern=r"^(auto|5|3\.1\.1)$")
    username: str | None = None
    password: str | None = Field(None, description="or set EDGE_FLEET_PASSWORD")
    tls: bool = Field(False, description="TLS to the broker (needs ca_file)")
    ca_file: Path | None = None
    cert_file: Path | None = Field(None, description="client certificate (mutual TLS)")
    key_file: Path | None = Field(None, description="client certificate's private key")
    keepalive_s: int = Field(30, ge=5, le=3600)
    session_expiry_s: int = Field(7 * 24 * 3600, ge=0, description="MQTT 5 session expiry")
    reconnect_min_s: int = Field(1, ge=1)
    reconnect_max_s: int = Field(30, ge=1)
    topic_root: str = Field("edge/v1", pattern=r"^[A-Za-z0-9_./-]+$")
    telemetry_interval_s: float = Field(10.0, gt=0.0)
    trusted_keys: list[str] = Field(default_factory=list,
                                    description="hex Ed25519 public keys of fleet signers this device obeys")
    max_job_bytes: int = Field(16384, ge=256, description="larger job documents are dropped unread")
    max_job_validity_s: int = Field(7 * 24 * 3600, ge=1, description="expires_at - issued_at may not exceed this")
    clock_skew_s: int = Field(300, ge=0, description="tolerated issued-at in the future")
    fleet_key_file: Path = Field(Path("fleet/fleet_ed25519.key"), description="fleet side: signing key (hex seed)")
    shared_group: str = Field("fleet", pattern=r"^[A-Za-z0-9_-]+$", description="fleet side: shared subscription group")

    @field_validator("trusted_keys")
    @classmethod
    def _hex_keys(cls, keys: list[str]) -> list[str]:
        out = []
        for k in keys:
            k = k.strip().lower()
            if len(k) != 64 or any(c not in "0123456789abcdef" for c in k):
                raise ValueError(f"not a hex Ed25519 public key (64 hex digits): {k[:16]}...")
            out.append(k)
        return out
