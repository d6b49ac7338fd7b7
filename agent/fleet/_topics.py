"""Topic names under ``<root>/<device_id>/`` (DESIGN.md "Fleet over MQTT")."""

from __future__ import annotations

STATUS = "status"
TELEMETRY = "telemetry"
EVENTS = "events"
JOBS_NOTIFY = "jobs/notify"


def device_topic(root: str, device_id: str, leaf: str) -> str:
    return f"{root}/{device_id}/{leaf}"


def job_update_topic(root: str, device_id: str, job_id: str) -> str:
    return f"{root}/{device_id}/jobs/{job_id}/update"


def shared(group: str, topic: str) -> str:
    """An MQTT 5 shared subscription: the broker gives each message to one member of ``group``."""
    return f"$share/{group}/{topic}"


def parse(root: str, topic: str) -> tuple[str, str] | None:
    """``(device_id, leaf)`` of a topic under ``root``, or None."""
    prefix = root + "/"
    if not topic.startswith(prefix):
        return None
    rest = topic[len(prefix):]
    device_id, _, leaf = rest.partition("/")
    return (device_id, leaf) if device_id and leaf else None
