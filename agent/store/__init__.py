"""The on-device store: SQLite (WAL, synchronous=FULL) for state, fsynced files for payloads.

:class:`Outbox` is the durable queue that MQTT events, job updates and chain transactions
go through: a message put in the outbox survives a crash and is handed out until it is
marked done, so it is delivered at least once; its ``key`` lets receivers deduplicate.
"""

from agent.store.outbox import Outbox, OutboxItem
from agent.store._sqlite import connect

__all__ = ["Outbox", "OutboxItem", "connect"]
