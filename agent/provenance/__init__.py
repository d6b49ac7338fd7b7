"""Provenance formats: signed chunks (COSE_Sign1, RFC 9052, over deterministic CBOR),
Flows (signed manifests with RFC 6962 Merkle roots and inclusion proofs, optionally
encrypted for a recipient) and datasets (a drive session's Flows under one signed root).

The formats are described in :mod:`agent.provenance._chunk`, :mod:`agent.provenance._flow`
and :mod:`agent.provenance._dataset` (dataset directory layout). The store
(:mod:`agent.store`) sequences, writes and batches them; :mod:`agent.verify` checks them.
"""

from agent.provenance._cbor import dumps as canonical_cbor
from agent.provenance._chunk import (
    CHUNK_CTY,
    GENESIS,
    ChunkHeader,
    ChunkSpec,
    SignedChunk,
    build_chunk,
    parse_chunk,
    split_attached,
    verify_chunk,
)
from agent.provenance._config import DatasetConfig, FlowBatchConfig, ProvenanceConfig, StoreConfig
from agent.provenance._dataset import (
    DATASET_CTY,
    MANIFEST,
    SignedDataset,
    build_dataset,
    coverage_geojson,
    parse_dataset,
)
from agent.provenance._flow import (
    FLOW_CTY,
    FlowManifest,
    SignedFlow,
    build_flow,
    decrypt_flow,
    encrypt_flow,
    parse_flow,
)
from agent.provenance._merkle import inclusion_proof, leaf_hash, merkle_root, node_hash, verify_inclusion

__all__ = [
    "CHUNK_CTY", "DATASET_CTY", "FLOW_CTY", "GENESIS", "MANIFEST",
    "ChunkHeader", "ChunkSpec", "DatasetConfig", "FlowBatchConfig", "FlowManifest", "ProvenanceConfig",
    "SignedChunk", "SignedDataset", "SignedFlow", "StoreConfig",
    "build_chunk", "build_dataset", "build_flow", "canonical_cbor", "coverage_geojson", "decrypt_flow",
    "encrypt_flow", "inclusion_proof", "leaf_hash", "merkle_root", "node_hash", "parse_chunk", "parse_dataset",
    "parse_flow", "split_attached", "verify_chunk", "verify_inclusion",
]
