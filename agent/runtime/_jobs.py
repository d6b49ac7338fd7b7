"""Fleet jobs acting on the running daemon (the ``actions`` of
:func:`agent.fleet.handlers.local_handlers`).

Every handler runs on the device client's job thread, but the work that touches the
pipeline, the store, the sink or the chain is handed to the agent's own worker thread with
:meth:`Agent.call <agent.runtime._agent.Agent.call>` and done there between two messages,
so it never races the pipeline or the state machine's tick. Each handler returns the
details of its SUCCEEDED update or raises (the job FAILs with the error).

- ``stop_capture`` / ``start_capture``: the capture sources keep reading (so a socket's
  buffer never overflows and resuming is immediate) but, while stopped, what they read is
  discarded at intake (counted as ``capture.discarded`` in status.json and telemetry);
  power events still pass (ignition off still ends the session). Idempotent.
- ``seal_dataset``: flush open chunks, cut the Flow, seal now (reason ``fleet_job``).
- ``mint``: every sealed dataset not yet anchored goes through the state machine
  (upload, then mint: exactly once, the chain is asked first); also when
  ``runtime.mint_on_seal`` is off.
- ``flush_uploads``: the upload step for every sealed dataset not yet uploaded.
- ``set_config``: :func:`agent.fleet.handlers.apply_config` (validated, atomic, rolled back
  if applying fails) with the keys in :data:`LIVE_KEYS` applied to the running agent; any
  other key is written and reported as ``restart_required``.
- ``restart``: flush and seal first, then ``{"restart": True}``: once the SUCCEEDED update is
  acknowledged the agent stops the normal way (flush, seal, upload, mint within the bound)
  and ``edge-agent run`` exits 75 for systemd to start it again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import AgentError

if TYPE_CHECKING:
    from agent.fleet.handlers import JobHandler, Progress
    from agent.fleet.jobs import Job
    from agent.runtime._agent import Agent

# How long a job waits for the agent's worker thread (it may be warming up or minting).
CALL_TIMEOUT_S = 120.0

# runtime keys read afresh by the running agent: safe to change without a restart
LIVE_KEYS = ("runtime.tick_s", "runtime.camera_high", "runtime.behind_high", "runtime.mint_on_seal",
             "runtime.outputs", "runtime.shutdown_timeout_s", "runtime.upload.sink", "runtime.upload.target")


def _sealed(agent: Agent, below: int) -> list[dict[str, Any]]:
    """Sealed, not evicted datasets whose state is below ``below`` (oldest first)."""
    from agent.store import State

    return [d for d in agent.store.datasets()
            if State[d["state"].upper()] >= State.SEALED and State[d["state"].upper()] < below and not d["evicted"]]


def _current(agent: Agent, session: str) -> dict[str, Any]:
    """The dataset's row now (the tick may have moved it since the job listed it)."""
    return next(d for d in agent.store.datasets() if d["session"] == session)


def _upload(agent: Agent, d: dict[str, Any]) -> dict[str, Any]:
    """The state machine's upload step for one dataset (worker thread)."""
    from agent.store import Outbox, State

    d = _current(agent, d["session"])
    if State[d["state"].upper()] >= State.UPLOADED:  # the tick was first
        up = Outbox(agent.store.conn).get("upload", d["session"])
        return {"session": d["session"], "dataset_id": d["id"], "already": True,
                **({"sink": up.payload.get("sink"), "url": up.payload.get("url")} if up else {})}
    url = agent.sink.put(d["session"], Path(d["path"]))
    Outbox(agent.store.conn).put("upload", d["session"], {"sink": agent.sink.name, "url": url, "at": time.time()})
    agent.store.mark_uploaded(d["session"])
    return {"session": d["session"], "dataset_id": d["id"], "sink": agent.sink.name, "url": url}


def _mint(agent: Agent, d: dict[str, Any]) -> dict[str, Any]:
    """Mint one uploaded dataset's DAT (exactly once: Idao.mint asks the chain first) and
    mark it anchored; the dataset's outbox item gets the result (worker thread)."""
    from agent.store import Outbox

    res = agent._mint(Path(d["path"]))
    tx = res.sent.get("requestReward") or next(iter(res.sent.values()), "")
    agent.store.mark_anchored(d["session"], f"token:{res.token_id} tx:{tx}")
    out = {"session": d["session"], "dataset_id": d["id"], "token_id": res.token_id, "tx_hash": tx,
           "already_minted": res.already_minted}
    ob = Outbox(agent.store.conn)
    item = ob.get("dataset_sealed", d["id"])
    if item is not None:
        ob.done(item.id, dict(item.result or {}, session=d["session"], dataset_id=d["id"], root=d["root"],
                              token_id=res.token_id, tx_hash=tx, file_id=res.file_id, owner=res.owner,
                              already_minted=res.already_minted))
    agent.metrics.minted.inc()
    if agent.fleet is not None:
        agent.fleet.dat_minted(d["id"], tx, res.token_id, session=d["session"])
    return out


def runtime_handlers(agent: Agent) -> dict[str, JobHandler]:
    """Handlers of the daemon's job types, bound to ``agent`` (see the module docstring)."""
    from agent.fleet.handlers import apply_config
    from agent.store import State

    def capture(on: bool) -> JobHandler:
        def handler(job: Job, progress: Progress) -> dict[str, Any]:
            was = agent.set_capture(on)
            agent.call(lambda a: a._write_status(), CALL_TIMEOUT_S)  # visible in status.json now
            return {"capture": "on" if on else "off", "changed": was != on, "discarded": agent._paused_msgs}
        return handler

    def seal(job: Job, progress: Progress) -> dict[str, Any]:
        progress(0.1, {"step": "flushing open chunks, cutting the Flow, sealing"})

        def work(a: Agent) -> dict[str, Any]:
            ds = a.seal_now("fleet_job")
            a._write_status()
            if ds is None:
                return {"sealed": False, "reason": "nothing captured since the last seal"}
            row = next(d for d in a.store.datasets() if d["id"] == ds.id)
            return {"sealed": True, "dataset_id": ds.id, "root": "0x" + ds.manifest["root"].hex(),
                    "session": row["session"], "path": row["path"]}
        return agent.call(work, CALL_TIMEOUT_S)

    def flush(job: Job, progress: Progress) -> dict[str, Any]:
        todo = agent.call(lambda a: _sealed(a, State.UPLOADED), CALL_TIMEOUT_S)
        progress(0.0, {"to_upload": [d["session"] for d in todo]})
        done = []
        for i, d in enumerate(todo):
            done.append(agent.call(lambda a, d=d: _upload(a, d), CALL_TIMEOUT_S))
            progress((i + 1) / len(todo), {"uploaded": done[-1]["session"]})
        def where(a: Agent) -> list[dict[str, Any]]:
            from agent.store import Outbox

            ob = Outbox(a.store.conn)
            return [{"session": d["session"], "url": (ob.get("upload", d["session"]).payload or {}).get("url")}
                    for d in a.store.datasets() if ob.get("upload", d["session"]) is not None]
        return {"uploaded": done, "in_sink": agent.call(where, CALL_TIMEOUT_S)}

    def mint(job: Job, progress: Progress) -> dict[str, Any]:
        todo = agent.call(lambda a: _sealed(a, State.ANCHORED), CALL_TIMEOUT_S)
        if not todo:
            return {"minted": [], "reason": "no sealed dataset waiting for its DAT"}
        progress(0.0, {"to_mint": [d["session"] for d in todo]})
        minted = []
        for i, d in enumerate(todo):
            def one(a: Agent, d: dict[str, Any] = d) -> dict[str, Any]:
                from agent.store import Outbox

                item = Outbox(a.store.conn).get("dataset_sealed", d["id"])
                if item is not None and item.state == "pending":
                    a._advance_dataset(item)  # the state machine's own steps (mints if mint_on_seal)
                d = _current(a, d["session"])
                if d["state"] == "anchored":
                    res = Outbox(a.store.conn).get("dataset_sealed", d["id"])
                    r = (res.result if res else None) or {}
                    return {"session": d["session"], "dataset_id": d["id"], "token_id": r.get("token_id"),
                            "tx_hash": r.get("tx_hash"), "anchor": d["anchor"]}
                _upload(a, d)  # anchored needs uploaded first (states move forward only)
                return _mint(a, d)
            minted.append(agent.call(one, CALL_TIMEOUT_S))
            progress((i + 1) / len(todo), {"minted": minted[-1]["session"]})
        return {"minted": minted}

    def set_config(job: Job, progress: Progress) -> dict[str, Any]:
        if not agent.config_path:
            raise AgentError("the agent runs without a config file: nothing to change")
        live = sorted(k for k in job.params if k in LIVE_KEYS)

        def on_apply(cfg: Any) -> None:
            def work(a: Agent) -> None:
                from agent.runtime._sinks import make_sink

                # the new sink first: if it cannot be made nothing has changed (and the file rolls back)
                sink = None
                if any(k.startswith("runtime.upload.") for k in live):
                    up = cfg.runtime.upload
                    sink = make_sink(up.sink, up.target, a.state)
                for key in live:
                    name = key.split(".")[-1]
                    if key.startswith("runtime.upload."):
                        setattr(a.rt.upload, name, getattr(cfg.runtime.upload, name))
                    else:
                        setattr(a.rt, name, getattr(cfg.runtime, name))
                if sink is not None:
                    a.sink = sink
            agent.call(work, CALL_TIMEOUT_S)

        out = apply_config(agent.config_path, job.params, on_apply=on_apply)
        out.update(applied_live=live, restart_required=sorted(k for k in job.params if k not in LIVE_KEYS))
        return out

    def restart(job: Job, progress: Progress) -> dict[str, Any]:
        progress(0.1, {"step": "flushing and sealing before the restart"})

        def work(a: Agent) -> dict[str, Any]:
            ds = a.seal_now("fleet_restart")
            a._write_status()
            return {"sealed": None if ds is None else ds.id}
        out = agent.call(work, CALL_TIMEOUT_S)
        progress(0.5, {"step": "sealed; stopping once this job's result is acknowledged"})
        return dict(out, restart=True)

    return {"start_capture": capture(True), "stop_capture": capture(False), "seal_dataset": seal,
            "flush_uploads": flush, "mint": mint, "set_config": set_config, "restart": restart}
