"""Build a :class:`ChunkStore` from the agent configuration and the device keys."""

from __future__ import annotations

from pathlib import Path

from agent.store._chunks import ChunkStore


def open_store(config: object, passphrase: bytes | None = None, state_dir: str | Path | None = None) -> ChunkStore:
    """The store of ``config`` (an :class:`agent.config.AgentConfig`) under its state directory
    (``<state_dir>/store``), signing with the device key in ``<state_dir>/keys``. The store
    shares ``<state_dir>/store/store.db`` with the outbox (pass that path to ``Outbox``)."""
    from agent.keys import keys_dir, open_keystore

    state = Path(state_dir if state_dir is not None else config.state_dir)  # type: ignore[attr-defined]
    ks = open_keystore(keys_dir(state), passphrase)
    evm = ks.identity()["evm_address"]
    return ChunkStore(state / "store", ks.device_signer(), config.provenance,  # type: ignore[attr-defined]
                      config_hash=config.digest(), evm_address=evm,  # type: ignore[attr-defined]
                      effective_config=config.model_dump(mode="json"))  # type: ignore[attr-defined]
