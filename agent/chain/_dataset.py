"""The minimal view of a dataset the chain side needs: id, root, metadata URL, flow roots.

The root over flow roots is an RFC 6962 Merkle tree (leaf ``SHA-256(0x00 || flow_root)``,
node ``SHA-256(0x01 || left || right)``, split at the largest power of two below n), the
hashing DESIGN.md fixes for Flows. :meth:`DatasetRef.check` recomputes it so a dataset whose
root does not match its flows is refused before any transaction.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import DatasetMismatch, InvalidDataset

# Where a dataset's metadata lives, until the upload sink reports the real URL.
DEFAULT_URL_TEMPLATE = "edge-agent://{evm_address}/datasets/{dataset_id}"


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def merkle_root(leaves: list[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash of ``leaves`` (the empty tree is SHA-256 of nothing)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return _leaf(leaves[0])
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return _node(merkle_root(leaves[:k]), merkle_root(leaves[k:]))


def _hex32(value: Any, what: str) -> bytes:
    text = str(value)
    raw = text[2:] if text.startswith(("0x", "0X")) else text
    try:
        out = bytes.fromhex(raw)
    except ValueError:
        raise InvalidDataset(f"{what}: not hex: {text!r}") from None
    if len(out) != 32:
        raise InvalidDataset(f"{what}: expected 32 bytes, got {len(out)}")
    return out


@dataclass(frozen=True)
class DatasetRef:
    """What gets anchored: ``root`` (32 bytes) is the integrity hash of the DAT class."""

    dataset_id: str
    root: bytes
    metadata_url: str
    flow_roots: tuple[bytes, ...] = field(default_factory=tuple)
    source: Path | None = field(default=None, compare=False)  # a provenance dataset directory, if any

    @property
    def root_hex(self) -> str:
        """The registry's ``hash`` string: ``0x`` + 64 lowercase hex digits."""
        return "0x" + self.root.hex()

    def recompute_root(self) -> bytes:
        return merkle_root(list(self.flow_roots))

    def check(self) -> None:
        """Raise :class:`DatasetMismatch` unless the root is the Merkle root of the flow roots."""
        if not self.flow_roots:
            raise DatasetMismatch(self.dataset_id, self.root_hex, "(no flows)")
        again = self.recompute_root()
        if again != self.root:
            raise DatasetMismatch(self.dataset_id, self.root_hex, "0x" + again.hex())

    @classmethod
    def build(cls, dataset_id: str, metadata_url: str, flow_roots: list[bytes]) -> DatasetRef:
        """A consistent reference from flow roots (the root is computed)."""
        return cls(dataset_id, merkle_root(flow_roots), metadata_url, tuple(flow_roots))

    def to_json(self) -> dict[str, Any]:
        return {"dataset_id": self.dataset_id, "root": self.root_hex, "metadata_url": self.metadata_url,
                "flow_roots": ["0x" + r.hex() for r in self.flow_roots]}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> DatasetRef:
        try:
            return cls(str(doc["dataset_id"]), _hex32(doc["root"], "root"), str(doc["metadata_url"]),
                       tuple(_hex32(r, f"flow_roots[{i}]") for i, r in enumerate(doc.get("flow_roots", []))))
        except KeyError as exc:
            raise InvalidDataset(f"dataset manifest lacks {exc.args[0]!r}") from None

    @classmethod
    def from_provenance(cls, directory: str | Path, url_template: str = DEFAULT_URL_TEMPLATE) -> DatasetRef:
        """A sealed dataset directory of :mod:`agent.provenance` (``manifest.cose``): id =
        SHA-256 of the manifest, root and flow roots from it; the metadata URL from
        ``url_template`` ({dataset_id}, {session}, {evm_address}, {device})."""
        from agent.provenance import MANIFEST, parse_dataset

        d = Path(directory)
        cose = (d / MANIFEST).read_bytes()
        _, m = parse_dataset(cose)
        dataset_id = hashlib.sha256(cose).hexdigest()
        url = url_template.format(dataset_id=dataset_id, session=m["session"], evm_address=m["evm_address"],
                                  device=m["device"])
        return cls(dataset_id, bytes(m["root"]), url, tuple(bytes(r) for _, r in m["flows"]), d)

    @classmethod
    def load(cls, path: str | Path, url_template: str = DEFAULT_URL_TEMPLATE) -> DatasetRef:
        """Read a sealed provenance dataset directory (``manifest.cose``), a JSON manifest
        (dataset_id, root, metadata_url, flow_roots), or a directory holding ``dataset.json``."""
        p = Path(path)
        if p.is_dir() and (p / "manifest.cose").exists():
            return cls.from_provenance(p, url_template)
        if p.is_dir():
            p = p / "dataset.json"
        try:
            doc = json.loads(p.read_text())
        except FileNotFoundError:
            raise InvalidDataset(f"{p}: no such dataset manifest") from None
        except json.JSONDecodeError as exc:
            raise InvalidDataset(f"{p}: not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise InvalidDataset(f"{p}: the manifest must be a JSON object")
        return cls.from_json(doc)
