"""Exactly one DAT per dataset, whatever fails between steps.

State machine, each step idempotent because it looks at the chain first:

    (start) --addFile--> registered --addProof--> proved --requestReward--> rewarded

Before a step sends anything it asks the chain whether the step is already done (the
integrity hash's token id, the file id by hash or URL, the file's proof count). A step's
transaction is signed once, stored (raw bytes + hash + nonce) in the outbox under
``<chain>:<registry>:<dataset>:<step>``, then sent; after a crash, a node restart or an RPC
outage the same bytes are resent, so the chain sees one transaction whatever happens. A
stored transaction that never made it and whose nonce was used by something else is
replaced by a fresh one only after the chain says the step is still undone.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from agent.chain._client import ChainClient, SignedTx
from agent.chain._dataset import DatasetRef
from agent.chain._verifier import ProofSource, check_dataset
from agent.errors import ChainError
from agent.store.outbox import Outbox, OutboxItem

log = logging.getLogger(__name__)

TX_KIND = "tx"
STEPS = ("addFile", "addProof", "requestReward")

# Test hook: called as hook(stage, step, signed_tx) with stage "stored" (in the outbox, not
# yet sent) and "sent" (sent, receipt not yet seen); raising from it simulates a crash there.
Hook = Callable[[str, str, SignedTx], None]


@dataclass
class MintResult:
    dataset_id: str
    root: str
    file_id: int
    token_id: int
    owner: str
    sent: dict[str, str]  # step -> tx hash of what this run sent or found in the outbox
    already_minted: bool

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Minter:
    """Runs the mint state machine for datasets on one deployment."""

    def __init__(self, client: ChainClient, registry: Any, token: Any, outbox: Outbox, prover: ProofSource,
                 proof_url_template: str = "{metadata_url}#proof", hook: Hook | None = None) -> None:
        self.client = client
        self.registry = registry
        self.token = token
        self.outbox = outbox
        self.prover = prover
        self.proof_url_template = proof_url_template
        self.hook = hook

    # ------------------------------------------------------------------ chain state

    def token_id(self, ds: DatasetRef) -> int:
        return int(self.client.call(self.token.functions.tokenIdByHash(ds.root), "tokenIdByHash"))

    def file_id(self, ds: DatasetRef) -> int:
        by_hash = int(self.client.call(self.registry.functions.fileIdByHash(ds.root), "fileIdByHash"))
        if by_hash:
            return by_hash
        by_url = int(self.client.call(self.registry.functions.getFileIdByUrl(ds.metadata_url), "getFileIdByUrl"))
        if by_url:
            f = self.file(by_url)
            raise ChainError(f"dataset {ds.dataset_id}: URL {ds.metadata_url} is registered (file {by_url}) "
                             f"with another hash {f['hash']}")
        return 0

    def file(self, file_id: int) -> dict[str, Any]:
        f = self.client.call(self.registry.functions.getFileInfo(file_id), "getFileInfo")
        keys = ("id", "ownerAddress", "url", "hash", "proofsCount", "rewardTokenId", "timestamp")
        return dict(zip(keys, f, strict=True))

    # ------------------------------------------------------------------ the machine

    def mint(self, ds: DatasetRef) -> MintResult:
        """Anchor ``ds``: returns its token id, minting it at most once."""
        # Refuse, before any tx, a dataset whose root does not match its flows, or (for a
        # sealed directory) that fails full verification: a verifier would refuse it later.
        check_dataset(ds)
        sent: dict[str, str] = {}
        existing = self.token_id(ds)
        if existing:
            file_id = self.file_id(ds)
            self._close_all(ds, {"token_id": existing}, sent)
            return self._result(ds, file_id, existing, sent, already=True)

        # Every step runs through _step even when the chain shows it done, so a pending
        # outbox item of an interrupted run is found and closed.
        self._step(ds, "addFile", lambda: self.registry.functions.addFile(ds.metadata_url, ds.root_hex),
                   lambda: self.file_id(ds) != 0, sent)
        file_id = self.file_id(ds)
        if not file_id:
            raise ChainError(f"dataset {ds.dataset_id}: addFile mined but no file holds its hash")
        f = self.file(file_id)
        if f["ownerAddress"] != self.client.address:
            raise ChainError(f"dataset {ds.dataset_id}: file {file_id} is owned by {f['ownerAddress']}, "
                             f"not this device ({self.client.address})")

        proof_url = self.proof_url_template.format(metadata_url=ds.metadata_url, dataset_id=ds.dataset_id)

        def add_proof() -> Any:
            proof = self.prover.prove(ds, file_id, f["url"], proof_url)
            return self.registry.functions.addProof(file_id, proof.as_arg())

        self._step(ds, "addProof", add_proof, lambda: self.file(file_id)["proofsCount"] > 0, sent)
        self._step(ds, "requestReward", lambda: self.registry.functions.requestReward(file_id, 1),
                   lambda: self.token_id(ds) != 0, sent)
        token_id = self.token_id(ds)
        if not token_id:
            raise ChainError(f"dataset {ds.dataset_id}: requestReward mined but no token holds its hash")
        return self._result(ds, file_id, token_id, sent, already=False)

    def _result(self, ds: DatasetRef, file_id: int, token_id: int, sent: dict[str, str], already: bool) -> MintResult:
        return MintResult(ds.dataset_id, ds.root_hex, file_id, token_id, self.client.address, sent, already)

    def _key(self, ds: DatasetRef, step: str) -> str:
        return f"{self.client.chain_id}:{self.registry.address}:{ds.dataset_id}:{step}"

    def _close_all(self, ds: DatasetRef, result: dict[str, Any], sent: dict[str, str]) -> None:
        for step in STEPS:
            item = self.outbox.get(TX_KIND, self._key(ds, step))
            if item is not None and item.state == "pending":
                if "hash" in item.payload:
                    sent[step] = item.payload["hash"]
                self.outbox.done(item.id, {**result, "note": "found done on chain"})

    def _step(self, ds: DatasetRef, step: str, build: Callable[[], Any], done_on_chain: Callable[[], bool],
              sent: dict[str, str]) -> None:
        key = self._key(ds, step)
        item = self.outbox.get(TX_KIND, key)
        attempt = 1
        while item is not None and item.state == "done":
            if done_on_chain():
                return
            # The outbox saw it done, the chain does not have it (a reorg, a dev chain reset
            # to the same addresses). The chain is the truth: do the step again under a new
            # key, since outbox items never go back to pending.
            log.warning("%s of %s: done in the outbox but not on chain; doing it again", step, ds.dataset_id)
            attempt += 1
            key = f"{self._key(ds, step)}#{attempt}"
            item = self.outbox.get(TX_KIND, key)
        stx = _stored(item)
        if stx is not None:
            sent[step] = stx.tx_hash
            rec = self.client.receipt(stx.tx_hash)
            if rec is None:
                if done_on_chain():
                    self.outbox.done(item.id, {"note": "done on chain by another tx", "hash": stx.tx_hash})
                    return
                if self.client.nonce("latest") > stx.nonce:
                    # Its nonce went to another tx and it never mined: safe to sign anew.
                    log.warning("%s: stored tx %s superseded (nonce used); signing again", step, stx.tx_hash)
                    stx = None
                else:
                    log.info("%s: resending stored tx %s", step, stx.tx_hash)
                    self.client.broadcast(stx)
                    self._fire("sent", step, stx)
                    rec = self.client.wait(stx)
            if stx is not None:
                self._finish(item, step, stx, rec, build, done_on_chain)  # type: ignore[arg-type]
                return
        if done_on_chain():
            if item is not None:
                self.outbox.done(item.id, {"note": "found done on chain"})
            return
        fn = build()
        stx = self.client.sign(fn, step)
        payload = {**stx.as_payload(), "dataset_id": ds.dataset_id, "step": step}
        if item is None:
            item, created = self.outbox.put(TX_KIND, key, payload)
            if not created:  # a concurrent writer got there first: use its tx
                return self._step(ds, step, build, done_on_chain, sent)
        else:
            self.outbox.update_payload(item.id, payload)
        sent[step] = stx.tx_hash
        self._fire("stored", step, stx)
        self.outbox.attempted(item.id)
        self.client.broadcast(stx)
        self._fire("sent", step, stx)
        rec = self.client.wait(stx)
        self._finish(item, step, stx, rec, build, done_on_chain)

    def _finish(self, item: OutboxItem, step: str, stx: SignedTx, rec: Any, build: Callable[[], Any],
                done_on_chain: Callable[[], bool]) -> None:
        if rec["status"] == 1 or done_on_chain():
            self.outbox.done(item.id, {"hash": stx.tx_hash, "block": rec["blockNumber"], "gas": rec["gasUsed"],
                                       "status": rec["status"]})
            return
        # Reverted: keep the item pending without bytes, so a later run signs anew.
        self.outbox.update_payload(item.id, {"reverted": stx.tx_hash, "step": step, "nonce": stx.nonce})
        self.client.require_success(rec, build(), step)

    def _fire(self, stage: str, step: str, stx: SignedTx) -> None:
        if self.hook is not None:
            self.hook(stage, step, stx)


def _stored(item: OutboxItem | None) -> SignedTx | None:
    if item is None or "raw" not in item.payload:
        return None
    p = item.payload
    return SignedTx(p["raw"], p["hash"], int(p["nonce"]), p["from"], p.get("action", p.get("step", "?")))
