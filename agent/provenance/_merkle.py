"""RFC 6962 Merkle trees (section 2.1): leaf = SHA-256(0x00 || d), node = SHA-256(0x01 || l || r),
split at the largest power of two smaller than n. Inclusion proofs (audit paths) and their
verification follow RFC 9162 section 2.1.3."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than n (n >= 2)."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def _root_of_hashes(hashes: Sequence[bytes]) -> bytes:
    n = len(hashes)
    if n == 1:
        return hashes[0]
    k = _split(n)
    return node_hash(_root_of_hashes(hashes[:k]), _root_of_hashes(hashes[k:]))


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """MTH over the leaf data (each leaf hashed with the 0x00 prefix). Empty: SHA-256('')."""
    if not leaves:
        return EMPTY_ROOT
    return _root_of_hashes([leaf_hash(x) for x in leaves])


def _path(index: int, hashes: Sequence[bytes]) -> list[bytes]:
    n = len(hashes)
    if n == 1:
        return []
    k = _split(n)
    if index < k:
        return _path(index, hashes[:k]) + [_root_of_hashes(hashes[k:])]
    return _path(index - k, hashes[k:]) + [_root_of_hashes(hashes[:k])]


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """Audit path PATH(m, D[n]) for leaf ``index``, bottom-up."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf {index} outside a tree of {len(leaves)}")
    return _path(index, [leaf_hash(x) for x in leaves])


def verify_inclusion(leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2: does ``proof`` show leaf data ``leaf`` at ``index`` in a tree of ``size`` with ``root``?"""
    if not 0 <= index < size:
        return False
    fn, sn = index, size - 1
    r = leaf_hash(leaf)
    for p in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn & 1 == 0 and fn != 0:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def all_inclusion_proofs(leaves: Sequence[bytes]) -> tuple[bytes, list[list[bytes]]]:
    """(root, audit path of every leaf) in O(n log n), for verifying whole Flows."""
    proofs: list[list[bytes]] = [[] for _ in leaves]

    def rec(lo: int, hashes: Sequence[bytes]) -> bytes:
        n = len(hashes)
        if n == 1:
            return hashes[0]
        k = _split(n)
        left = rec(lo, hashes[:k])
        right = rec(lo + k, hashes[k:])
        for i in range(lo, lo + k):
            proofs[i].append(right)
        for i in range(lo + k, lo + n):
            proofs[i].append(left)
        return node_hash(left, right)

    if not leaves:
        return EMPTY_ROOT, []
    return rec(0, [leaf_hash(x) for x in leaves]), proofs
