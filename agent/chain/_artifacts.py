"""Committed build artifacts of contracts/ (ABI and bytecode): the agent needs no compiler."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

from eth_utils import keccak

from agent.errors import ChainError

BUILD_DIR = Path(os.environ.get("EDGE_AGENT_CONTRACTS_BUILD", Path(__file__).resolve().parents[2] / "contracts" / "build"))


@functools.cache
def artifact(name: str) -> dict[str, Any]:
    """The artifact of contract ``name`` (abi, bytecode, compiler, sourceHashes)."""
    path = BUILD_DIR / f"{name}.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ChainError(f"contract artifact {path} is missing: run npm --prefix contracts run build") from None


def _sig(item: dict[str, Any]) -> str:
    def typ(inp: dict[str, Any]) -> str:
        t = inp["type"]
        if t.startswith("tuple"):
            return "(" + ",".join(typ(c) for c in inp["components"]) + ")" + t[len("tuple"):]
        return t

    return f"{item['name']}(" + ",".join(typ(i) for i in item.get("inputs", [])) + ")"


@functools.cache
def error_selectors() -> dict[bytes, tuple[str, list[str]]]:
    """4-byte selector → (error signature, input types) over every artifact's custom errors."""
    out: dict[bytes, tuple[str, list[str]]] = {}
    for path in sorted(BUILD_DIR.glob("*.json")):
        for item in json.loads(path.read_text())["abi"]:
            if item["type"] == "error":
                sig = _sig(item)
                types = sig[sig.index("(") + 1 : -1]
                out[keccak(text=sig)[:4]] = (sig, [t for t in _split_types(types)])
    return out


def _split_types(types: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in types:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    if cur:
        parts.append(cur)
    return parts


def decode_revert(data: bytes | str | None) -> str:
    """A readable revert reason: Error(string), Panic(uint256) or one of our custom errors."""
    from eth_abi import decode

    if data is None:
        return "reverted without data"
    if isinstance(data, str):
        data = bytes.fromhex(data.removeprefix("0x"))
    if len(data) < 4:
        return "reverted without data"
    sel, body = data[:4], data[4:]
    if sel == bytes.fromhex("08c379a0"):
        return decode(["string"], body)[0]
    if sel == bytes.fromhex("4e487b71"):
        return f"panic 0x{decode(['uint256'], body)[0]:02x}"
    known = error_selectors().get(sel)
    if known is None:
        return f"unknown error 0x{data.hex()}"
    sig, types = known
    try:
        values = decode(types, body) if types else ()
    except Exception:  # noqa: BLE001 - a malformed body still names the error
        return sig
    from eth_utils import to_checksum_address

    shown = ", ".join(
        to_checksum_address(v) if t == "address" else "0x" + v.hex() if isinstance(v, bytes) else str(v)
        for t, v in zip(types, values, strict=False)
    )
    return f"{sig.split('(')[0]}({shown})"
