"""The tests' JSON-RPC node: see :mod:`agent.chain._devnode`."""

from agent.chain._devnode import CHAIN_ID, CONTRACTS, Ganache, ensure_node_modules, free_port

__all__ = ["CHAIN_ID", "CONTRACTS", "Ganache", "ensure_node_modules", "free_port"]
