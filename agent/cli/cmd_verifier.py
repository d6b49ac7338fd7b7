"""``edge-agent verifier ...``: the verifier role: check a dataset, sign its ProofData."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from agent.cli._common import emit_json, json_option

if TYPE_CHECKING:  # web3 loads only when a command runs
    from agent.chain import Verifier

_key_option = click.option("--key", "key_file", type=click.Path(dir_okay=False), required=True,
                           help="Verifier EVM key file (hex); --create makes one if missing.")


def _verifier(key_file: str, create: bool = False) -> Verifier:
    from agent.chain import KeyFile, Verifier

    return Verifier(KeyFile(Path(key_file), create=create).private_key())


@click.group(name="verifier")
def command() -> None:
    """Act as a verifier node: check datasets (signatures, roots) and sign LazAI's
    ProofData (EIP-191 over keccak256(abi.encode(id, score, fileUrl, proofUrl))) with the
    verifier's own key, whose address the registry admin allow-lists."""


@command.command("address")
@_key_option
@click.option("--create", is_flag=True, help="Create the key file when missing.")
@json_option
def address_cmd(key_file: str, create: bool, as_json: bool) -> None:
    """Print the verifier's address (to allow-list it in the registry)."""
    v = _verifier(key_file, create)
    emit_json({"address": v.address}) if as_json else click.echo(v.address)


@command.command("check")
@click.argument("dataset", type=click.Path(exists=True))
@json_option
def check_cmd(dataset: str, as_json: bool) -> None:
    """Check DATASET: its root against the root recomputed from its flows and, for a sealed
    dataset directory, everything `edge-agent verify` checks (signatures, hashes, Merkle
    proofs, chains). A failure is one ERROR line."""
    from agent.chain import DatasetRef
    from agent.chain._verifier import check_dataset

    ds = DatasetRef.load(dataset)
    check_dataset(ds)
    out = {"dataset_id": ds.dataset_id, "root": ds.root_hex, "flows": len(ds.flow_roots), "ok": True}
    emit_json(out) if as_json else click.echo(f"{ds.dataset_id}: root {ds.root_hex} matches its {len(ds.flow_roots)} flows")


@command.command("sign")
@click.argument("dataset", type=click.Path(exists=True))
@_key_option
@click.option("--file-id", type=click.IntRange(min=1), required=True, help="The registry's file id.")
@click.option("--file-url", default=None, help="The file URL as registered (default: the dataset's metadata URL).")
@click.option("--proof-url", default=None, help="Where the verification report lives (default: FILE_URL#proof).")
@json_option
def sign_cmd(dataset: str, key_file: str, file_id: int, file_url: str | None, proof_url: str | None,
             as_json: bool) -> None:
    """Check DATASET and print a signed Proof for registry.addProof(fileId, proof)."""
    from agent.chain import DatasetRef

    ds = DatasetRef.load(dataset)
    url = file_url or ds.metadata_url
    proof = _verifier(key_file).prove(ds, file_id, url, proof_url or f"{url}#proof")
    out = {"signature": "0x" + proof.signature.hex(), "signer": proof.signer(),
           "data": {"id": proof.data.id, "score": proof.data.score, "fileUrl": proof.data.file_url,
                    "proofUrl": proof.data.proof_url}}
    if as_json:
        emit_json(out)
        return
    click.echo(f"proof for file {file_id} by {out['signer']}: {out['signature']}")
