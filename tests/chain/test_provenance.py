"""The chain side on a real sealed dataset of agent.provenance / agent.store: the root and
flow roots come from manifest.cose, the verifier runs agent.verify, a tampered dataset is
refused before any transaction."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.chain import ChainConfig, DatasetRef, Idao
from agent.errors import ChainError
from tests.chain.conftest import FAST, key


@pytest.fixture(scope="module")
def sealed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from agent.keys import Ed25519Signer
    from agent.provenance import ChunkSpec, ProvenanceConfig
    from agent.store import ChunkStore

    root = tmp_path_factory.mktemp("prov")
    store = ChunkStore(root / "store", Ed25519Signer(bytes(range(32))), ProvenanceConfig(flow={"max_chunks": 2}),
                       config_hash="0" * 64, evm_address="0x0000000000000000000000000000000000000001")
    for i in range(5):
        store.ingest(ChunkSpec("lidar/points", "vlp16", i * 10, i * 10 + 9, bytes([i]) * 200))
    store.seal_dataset("explicit", session="drive-1")
    copy = root / "copy"
    shutil.copytree(store.dataset_dir("drive-1"), copy)  # the store's files are hard links
    store.close()
    return copy


def test_sealed_dataset_reads_verifies_and_mints_once(sealed: Path, tmp_path: Path):
    ds = DatasetRef.load(sealed)
    assert len(ds.flow_roots) >= 2 and ds.recompute_root() == ds.root
    assert ds.metadata_url == f"edge-agent://0x0000000000000000000000000000000000000001/datasets/{ds.dataset_id}"
    with Idao.open(ChainConfig(**FAST), tmp_path / "state", device_key=key("prov device")) as idao:
        res = idao.mint(ds)
        assert idao.show(res.token_id)["integrity_hash"] == ds.root_hex
        assert idao.mint(ds).already_minted


def test_tampered_sealed_dataset_is_refused_before_any_transaction(sealed: Path, tmp_path: Path):
    bad = tmp_path / "bad"
    shutil.copytree(sealed, bad)
    victim = min((bad / "chunks").glob("*.bin"))
    data = bytearray(victim.read_bytes())
    data[10] ^= 0xFF
    victim.write_bytes(bytes(data))
    ds = DatasetRef.load(bad)
    ds.check()  # the roots alone still agree: only the full verification sees the payload change
    with Idao.open(ChainConfig(**FAST), tmp_path / "state", device_key=key("prov device 2")) as idao:
        nonce = idao.client.nonce()
        with pytest.raises(ChainError, match="fails verification"):
            idao.mint(ds)
        assert idao.client.nonce() == nonce  # the device checks before it registers anything
        assert idao.client.call(idao.registry.functions.fileIdByHash(ds.root)) == 0
