"""Job documents, verification, the ledger and the handlers that do real work (no broker)."""

from __future__ import annotations

import json
import tarfile
import time
from pathlib import Path

import pytest
import yaml
from nacl.signing import SigningKey
from pydantic import ValidationError

from agent.config import load_config
from agent.errors import FleetError, JobRejected
from agent.fleet.handlers import apply_config, collect_diagnostics
from agent.fleet.jobs import JobLedger, JobVerifier, canonical, create_signing_key, load_signing_key, sign_job
from agent.fleet.telemetry import temperatures


@pytest.fixture
def key() -> SigningKey:
    return SigningKey.generate()


@pytest.fixture
def verifier(tmp_path: Path, key: SigningKey) -> JobVerifier:
    return JobVerifier("dev-1", [key.verify_key.encode().hex()], JobLedger(tmp_path / "agent.db"), max_bytes=4096)


def raw(doc: dict) -> bytes:
    return json.dumps(doc).encode()


def test_canonical_is_sorted_compact_and_excludes_sig() -> None:
    assert canonical({"b": 1, "a": [1, 2], "sig": "x"}) == b'{"a":[1,2],"b":1}'


def test_good_job_is_accepted_once(verifier: JobVerifier, key: SigningKey) -> None:
    doc = sign_job(key, "dev-1", "start_capture", {"x": 1})
    job = verifier.verify(raw(doc))
    assert job.job_id == doc["job_id"] and job.params == {"x": 1}
    with pytest.raises(JobRejected, match="replay") as exc:
        verifier.verify(raw(doc))
    assert exc.value.tell is False  # the original job's updates stand


def test_replay_refused_after_reopen(tmp_path: Path, key: SigningKey) -> None:
    doc = sign_job(key, "dev-1", "mint")
    pub = [key.verify_key.encode().hex()]
    JobVerifier("dev-1", pub, JobLedger(tmp_path / "a.db")).verify(raw(doc))
    again = JobVerifier("dev-1", pub, JobLedger(tmp_path / "a.db"))
    with pytest.raises(JobRejected, match="replay"):
        again.verify(raw(doc))
    # same nonce under a new id: still a replay (nonces are unique too)
    other = dict(doc, job_id="j-other")
    other["sig"] = key.sign(canonical(other)).signature.hex()
    with pytest.raises(JobRejected, match="replay"):
        again.verify(raw(other))


@pytest.mark.parametrize("case, match, tell", [
    ("forged", "bad signature", True),
    ("untrusted", "key not trusted", True),
    ("tampered", "bad signature", True),
    ("wrong_target", "wrong target", True),
    ("expired", "expired", True),
    ("future", "issued in the future", True),
    ("too_long", "validity window", True),
    ("bad_field", "malformed: issued_at", True),
    ("extra_field", "malformed: evil", True),
    ("no_job_id", "no valid job_id", False),
    ("not_json", "not JSON", False),
    ("not_object", "not a JSON object", False),
    ("oversized", "oversized", False),
])
def test_rejections(verifier: JobVerifier, key: SigningKey, case: str, match: str, tell: bool) -> None:
    other = SigningKey.generate()
    now = time.time()
    doc = sign_job(key, "dev-1", "start_capture")
    data: bytes
    if case == "forged":  # claims the trusted key id, signed by another key
        doc["sig"] = other.sign(canonical(doc)).signature.hex()
    elif case == "untrusted":
        doc = sign_job(other, "dev-1", "start_capture")
    elif case == "tampered":
        doc["params"] = {"injected": True}
    elif case == "wrong_target":
        doc = sign_job(key, "dev-2", "start_capture")
    elif case == "expired":
        doc = sign_job(key, "dev-1", "start_capture", ttl_s=10, now=now - 100)
    elif case == "future":
        doc = sign_job(key, "dev-1", "start_capture", now=now + 3600)
    elif case == "too_long":
        doc = sign_job(key, "dev-1", "start_capture", ttl_s=30 * 24 * 3600)
    elif case == "bad_field":
        doc["issued_at"] = "yesterday"
    elif case == "extra_field":
        doc["evil"] = 1
    elif case == "no_job_id":
        doc["job_id"] = "../../etc"
    elif case == "oversized":
        doc = sign_job(key, "dev-1", "start_capture", {"blob": "x" * 5000})
    data = {"not_json": b"{nope", "not_object": b"[1, 2]"}.get(case, raw(doc))
    with pytest.raises(JobRejected, match=match) as exc:
        verifier.verify(data, now=now)
    assert exc.value.tell is tell
    assert verifier.counts.get("accepted", 0) == 0
    assert verifier.ledger.seen(doc["job_id"]) is False  # nothing recorded, nothing run


def test_unknown_type_cannot_be_signed(key: SigningKey) -> None:
    with pytest.raises(FleetError, match="unknown job type"):
        sign_job(key, "dev-1", "format_disk")


def test_key_file_roundtrip(tmp_path: Path) -> None:
    path = tmp_path / "k" / "fleet.key"
    key = create_signing_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_signing_key(path).verify_key == key.verify_key
    with pytest.raises(FleetError, match="exists"):
        create_signing_key(path)
    with pytest.raises(FleetError, match="no fleet key"):
        load_signing_key(tmp_path / "missing")


def test_ledger_birth_and_unfinished(tmp_path: Path, key: SigningKey) -> None:
    led = JobLedger(tmp_path / "a.db")
    assert [led.bump("b"), led.bump("b")] == [1, 2]
    v = JobVerifier("dev-1", [key.verify_key.encode().hex()], led)
    job = v.verify(raw(sign_job(key, "dev-1", "seal_dataset")))
    assert led.unfinished() == [(job.job_id, "QUEUED")]


def _config(tmp_path: Path) -> Path:
    p = tmp_path / "agent.yaml"
    p.write_text(yaml.safe_dump({"device_id": "dev-1", "lidar": {"min_range_m": 0.0}}))
    return p


def test_apply_config_writes_validated_file(tmp_path: Path) -> None:
    p = _config(tmp_path)
    out = apply_config(p, {"lidar.min_range_m": 1.5, "fleet.telemetry_interval_s": 2})
    cfg = load_config(p)
    assert cfg.lidar.min_range_m == 1.5 and cfg.fleet.telemetry_interval_s == 2
    assert out["config_digest"] == cfg.digest()
    assert not list(tmp_path.glob(".*tmp"))  # no temp file left behind


def test_apply_config_invalid_leaves_file(tmp_path: Path) -> None:
    p = _config(tmp_path)
    before = p.read_bytes()
    with pytest.raises(ValidationError):
        apply_config(p, {"lidar.min_range_m": -3})
    with pytest.raises(ValidationError):
        apply_config(p, {"no_such_section.x": 1})
    assert p.read_bytes() == before


def test_apply_config_rolls_back_when_apply_fails(tmp_path: Path) -> None:
    p = _config(tmp_path)
    before = p.read_bytes()
    seen = []

    def take_live(cfg: object) -> None:
        seen.append(cfg)
        raise RuntimeError("lidar driver refused the new range")

    with pytest.raises(RuntimeError, match="refused"):
        apply_config(p, {"lidar.min_range_m": 2.0}, on_apply=take_live)
    assert len(seen) == 1 and seen[0].lidar.min_range_m == 2.0  # it was tried...
    assert p.read_bytes() == before  # ...and rolled back


def test_diagnostics_bundle(tmp_path: Path) -> None:
    p = _config(tmp_path)
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "agent.log").write_text("line 1\nline 2\n")
    out = collect_diagnostics(tmp_path / "state", config_path=p, log_dirs=[logs], stats={"pending": 3})
    with tarfile.open(out) as tar:
        names = tar.getnames()
        assert json.load(tar.extractfile("stats.json")) == {"pending": 3}  # type: ignore[arg-type]
        assert tar.extractfile("logs/agent.log").read() == b"line 1\nline 2\n"  # type: ignore[union-attr]
    assert set(names) == {"config.yaml", "logs/agent.log", "stats.json"}


def test_temperatures_reads_thermal_zones(tmp_path: Path) -> None:
    z = tmp_path / "thermal_zone0"
    z.mkdir()
    (z / "temp").write_text("48312\n")
    (z / "type").write_text("cpu-thermal\n")
    bad = tmp_path / "thermal_zone1"
    bad.mkdir()
    (bad / "temp").write_text("garbage")
    assert temperatures(tmp_path) == {"cpu-thermal": 48.312}


def test_accepting_a_job_and_queueing_its_update_is_one_commit(tmp_path: Path, key: SigningKey) -> None:
    """The ledger row (job id, nonce seen) and the QUEUED update land in one fsync'd commit: a
    crash between them leaves no half-accepted job (it would be refused as a replay when the
    broker redelivers it, and never run)."""
    import sqlite3

    from agent.fleet import FleetConfig
    from agent.fleet.device import OUTBOX_KIND, DeviceClient
    from agent.store._sqlite import connect

    conn = connect(tmp_path / "agent.db")
    dev = DeviceClient(FleetConfig(trusted_keys=[key.verify_key.encode().hex()]), "dev-1", conn, {},
                       state_dir=tmp_path)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    job = sign_job(key, "dev-1", "start_capture")
    raw = json.dumps(job).encode()

    real_put = dev.outbox.put

    def crash(*a: object, **k: object) -> None:
        raise sqlite3.OperationalError("disk I/O error (simulated crash)")

    dev.outbox.put = crash  # type: ignore[method-assign]
    dev._on_message("edge/v1/dev-1/jobs/notify", raw)
    with pytest.raises(sqlite3.OperationalError, match="simulated"):
        dev._drain_intake()
    assert not dev.ledger.seen(job["job_id"])  # rolled back together: not taken, not "seen"

    dev.outbox.put = real_put  # type: ignore[method-assign]
    statements.clear()
    dev._on_message("edge/v1/dev-1/jobs/notify", raw)  # the broker redelivers it
    dev._drain_intake()
    assert dev.ledger.state(job["job_id"]) == "QUEUED"
    (item,) = dev.outbox.pending(OUTBOX_KIND)
    assert item.payload["body"]["state"] == "QUEUED" and item.payload["body"]["job_id"] == job["job_id"]
    assert sum(s.strip().upper() == "COMMIT" for s in statements) == 1
    assert dev._jobs.get_nowait().job_id == job["job_id"]
    dev.outbox.close()
    dev.ledger.close()
    conn.close()
