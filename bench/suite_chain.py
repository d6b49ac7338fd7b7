"""iDAO on chain: gas of each contract function, and mints per minute on the embedded chain
(py-evm in process) beside the same over JSON-RPC to a ganache node (pinned in
contracts/package.json), same code path (Idao.mint: chain checks, outbox, three signed txs).

Rows:
- ``gas <function>``: gas used by one call (receipt ``gasUsed``; deterministic for the inputs
  used here: a 3-flow dataset, a 40-character URL, one revenue asset).
- ``mint rate``: datasets anchored per minute, each a full addFile → addProof → requestReward
  with receipts; ``reference`` is the same over JSON-RPC to ganache on loopback (instamine),
  ``ratio`` = embedded / ganache. The first mint of each side (imports, connection) is
  excluded and reported as ``first mint``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from web3 import Web3

from bench._harness import Row, ratio_row

SUITE = "chain"
N_MINTS = 12


def _key(label: str) -> bytes:
    return bytes(Web3.keccak(text=f"edge-agent bench {label}"))


def _ds(tag: str, i: int):
    from agent.chain import DatasetRef

    roots = [bytes(Web3.keccak(text=f"bench {tag} {i} flow {j}")) for j in range(3)]
    return DatasetRef.build(f"bench-{tag}-{i:04d}", f"ipfs://edge-agent/bench/{tag}/{i:04d}", roots)


def _gas_rows() -> list[Row]:
    from agent.chain import ETH, ChainClient, ChainConfig, Verifier, deploy, embedded_web3, fund
    from agent.chain._artifacts import artifact

    w3, _ = embedded_web3()
    cfg = ChainConfig()
    dev, holder, payer = _key("device"), _key("holder"), _key("payer")
    for k in (dev, holder, payer):
        fund(w3, Verifier(k).address, 10**21)
    c, h, p = (ChainClient(w3, k, cfg) for k in (dev, holder, payer))
    verifier = Verifier(_key("verifier"))
    gas: dict[str, int] = {}
    for name, args in (("DataAnchoringToken", (c.address,)),):
        art = artifact(name)
        rec = c.transact(w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"]).constructor(*args), "deploy")
        gas[f"deploy {name}"] = rec["gasUsed"]
    dep = deploy(c, 1000, "ipfs://policy", [verifier.address])
    art = artifact("DataRegistry")
    rec = c.transact(w3.eth.contract(abi=art["abi"], bytecode=art["bytecode"]).constructor(
        c.address, dep.token, 1000, "ipfs://policy"), "deploy")
    gas["deploy DataRegistry"] = rec["gasUsed"]
    reg, tok = c.contract("DataRegistry", dep.registry), c.contract("DataAnchoringToken", dep.token)
    ds = _ds("gas", 0)

    def t(label: str, client: ChainClient, fn, value: int = 0) -> None:
        gas[label] = client.transact(fn, label, value=value)["gasUsed"]

    t("addFile", c, reg.functions.addFile(ds.metadata_url, ds.root_hex))
    fid = reg.functions.fileIdByHash(ds.root).call()
    proof = verifier.prove(ds, fid, ds.metadata_url, ds.metadata_url + "#proof")
    t("addProof", c, reg.functions.addProof(fid, proof.as_arg()))
    t("requestReward (mints the DAT)", c, reg.functions.requestReward(fid, 1))
    tid = tok.functions.tokenIdByHash(ds.root).call()
    t("safeTransferFrom (no revenue yet)", c, tok.functions.safeTransferFrom(c.address, h.address, tid, 100, b""))
    t("settleRevenueETH (first)", p, p.contract("DataAnchoringToken", dep.token).functions.settleRevenueETH(tid), 10**18)
    t("settleRevenueETH (again)", p, p.contract("DataAnchoringToken", dep.token).functions.settleRevenueETH(tid), 10**18)
    t("safeTransferFrom (1 revenue asset)", c, tok.functions.safeTransferFrom(c.address, h.address, tid, 100, b""))
    t("recordUsage", c, tok.functions.recordUsage(tid, 10, "inference"))
    t("claim ETH", h, h.contract("DataAnchoringToken", dep.token).functions.claim(tid, ETH))
    return [Row(SUITE, "gas", f"gas {k}", "gas", float(v), better="lower") for k, v in gas.items()]


def _mint_rate(cfg, state: Path, device_key: bytes, tag: str) -> tuple[float, float]:
    """(mints per minute over N_MINTS, seconds of the first mint)."""
    from agent.chain import Idao, Verifier

    verifier = Verifier(_key("verifier"))
    with Idao.open(cfg, state, device_key=device_key, verifier=verifier, deploy_if_missing=True) as idao:
        t0 = time.perf_counter()
        idao.mint(_ds(tag, 0))
        first = time.perf_counter() - t0
        t0 = time.perf_counter()
        for i in range(1, N_MINTS + 1):
            idao.mint(_ds(tag, i))
        dt = time.perf_counter() - t0
    return N_MINTS / dt * 60.0, first


def run(input: str | None = None, meta: str | None = None) -> list[Row]:
    """Gas rows and mint rates; ``input``/``meta`` are unused."""
    from agent.chain import ChainConfig

    rows = _gas_rows()
    tmp = Path(tempfile.mkdtemp(prefix="bench-chain-"))
    try:
        emb_rate, emb_first = _mint_rate(ChainConfig(poll_interval_s=0.01), tmp / "emb", _key("device"), "emb")
        ref_rate = ref_first = None
        if shutil.which("node") and shutil.which("npm"):
            from agent.chain._devnode import CHAIN_ID, Ganache

            node = Ganache(tmp / "ganache-db", [_key("device")])
            node.start()
            try:
                cfg = ChainConfig(backend="rpc", rpc_url=node.url, chain_id=CHAIN_ID, poll_interval_s=0.01)
                ref_rate, ref_first = _mint_rate(cfg, tmp / "rpc", _key("device"), "rpc")
            finally:
                node.stop()
        rows.append(ratio_row(SUITE, "embedded py-evm vs ganache JSON-RPC", "mint rate", "mints/min", emb_rate,
                              ref_rate, "ganache 7.9.2 over JSON-RPC"))
        rows.append(ratio_row(SUITE, "embedded py-evm vs ganache JSON-RPC", "first mint", "s", emb_first,
                              ref_first, "ganache 7.9.2 over JSON-RPC", better="lower"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows
