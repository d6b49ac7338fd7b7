"""The on-device store: SQLite (WAL, synchronous=FULL) for state, fsynced files for payloads.

:class:`Outbox` is the durable queue that MQTT events, job updates and chain transactions
go through: a message put in the outbox survives a crash and is handed out until it is
marked done, so it is delivered at least once; its ``key`` lets receivers deduplicate.

:class:`ChunkStore` keeps signed chunks, Flows and datasets crash-safely with a disk
budget (layout, states and recovery: :mod:`agent.store._chunks`); :func:`open_store`
builds one from the agent configuration and the device keys.
"""

from agent.store._chunks import ChunkStore, State, StreamHead
from agent.store._open import open_store
from agent.store._sqlite import connect
from agent.store.outbox import Outbox, OutboxItem

__all__ = ["ChunkStore", "Outbox", "OutboxItem", "State", "StreamHead", "connect", "open_store"]
