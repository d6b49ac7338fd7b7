"""Contract behaviour on py-evm: access control, registry, quota, revenue split, reentrancy."""

from __future__ import annotations

import itertools
import shutil
import subprocess
from fractions import Fraction

import pytest
from web3 import Web3
from web3.logs import DISCARD

from agent.chain import MINTER_ROLE, ProofData, Verifier
from agent.chain._artifacts import artifact
from agent.errors import TransactionReverted
from tests.chain._ganache import CONTRACTS, ensure_node_modules
from tests.chain.conftest import Env, key

ETH = "0x" + "00" * 20
MAG = 2**128
_n = itertools.count(1)


def _hash(label: str) -> bytes:
    return bytes(Web3.keccak(text=label))


def new_class(env: Env, units: int = 1000, to: str | None = None) -> int:
    """A class minted straight by the admin (given the minter role for these tests)."""
    if not env.token.functions.hasRole(MINTER_ROLE, env.admin.address).call():
        env.admin.transact(env.token.functions.grantRole(MINTER_ROLE, env.admin.address), "grant")
    n = next(_n)
    h = _hash(f"class {n}")
    env.admin.transact(env.token.functions.mintClass(to or env.admin.address, units, f"ipfs://c/{n}", h,
                                                     "ipfs://policy", env.admin.address, True), "mintClass")
    return env.token.functions.tokenIdByHash(h).call()


def send(env: Env, who: str, fn_name: str, *args, value: int = 0, contract=None):
    c = env.client(who)
    target = c.contract("DataAnchoringToken", env.token_address) if contract is None else contract(c)
    return c.transact(getattr(target.functions, fn_name)(*args), fn_name, value=value)


def reg(env: Env, who: str, fn_name: str, *args):
    return send(env, who, fn_name, *args, contract=lambda c: c.contract("DataRegistry", env.registry_address))


def eth_delta_plus_gas(env: Env, who: str, action) -> int:
    """ETH received by ``who`` during ``action`` (gas paid added back)."""
    addr = env.client(who).address
    before = env.w3.eth.get_balance(addr)
    rec = action()
    return env.w3.eth.get_balance(addr) - before + rec["gasUsed"] * rec["effectiveGasPrice"]


# ---------------------------------------------------------------------- artifacts

@pytest.mark.slow
def test_committed_artifacts_match_a_fresh_compile():
    if shutil.which("node") is None:
        pytest.skip("node is not installed")
    ensure_node_modules()
    run = subprocess.run(["node", "scripts/build.js", "--check"], cwd=CONTRACTS, capture_output=True, text=True, check=False,
                         timeout=300)
    assert run.returncode == 0, run.stderr + run.stdout
    assert "up to date" in run.stdout
    assert artifact("DataAnchoringToken")["compiler"]["version"].startswith("0.8.28+")


# ---------------------------------------------------------------------- token basics and access control

def test_erc1155_surface_and_uri(env: Env):
    tid = new_class(env)
    assert env.token.functions.supportsInterface(bytes.fromhex("d9b67a26")).call()  # ERC-1155
    assert env.token.functions.supportsInterface(bytes.fromhex("0e89341c")).call()  # metadata URI
    assert env.token.functions.uri(tid).call().startswith("ipfs://c/")
    assert env.token.functions.totalSupply(tid).call() == 1000


def test_only_minters_mint_and_only_admin_grants(env: Env):
    with pytest.raises(TransactionReverted, match=r"AccessControlUnauthorizedAccount\(0x"):
        send(env, "alice", "mintClass", env.client("alice").address, 5, "u", _hash("x"), "p",
             env.client("alice").address, False)
    with pytest.raises(TransactionReverted, match="AccessControlUnauthorizedAccount"):
        send(env, "alice", "grantRole", MINTER_ROLE, env.client("alice").address)
    with pytest.raises(TransactionReverted, match="AccessControlUnauthorizedAccount"):
        reg(env, "alice", "grantRole", Web3.keccak(text="VERIFIER_ROLE"), env.client("alice").address)


def test_a_second_class_with_the_same_integrity_hash_reverts(env: Env):
    tid = new_class(env)
    h = env.token.functions.classOf(tid).call()[1]
    with pytest.raises(TransactionReverted, match=f"DuplicateIntegrityHash\\(0x{bytes(h).hex()}, {tid}\\)"):
        send(env, "admin", "mintClass", env.admin.address, 5, "u", h, "p", env.admin.address, True)


# ---------------------------------------------------------------------- registry

def _proof(signer: Verifier, file_id: int, url: str, score: int = 100):
    return signer.sign(ProofData(file_id, score, url, url + "#proof")).as_arg()


def test_registry_path_mints_once_to_the_owner_with_events(env: Env):
    url, h = "ipfs://reg/1", "0x" + _hash("reg 1").hex()
    rec = reg(env, "alice", "addFile", url, h)
    (ev,) = env.registry.events.FileAdded().process_receipt(rec, errors=DISCARD)
    fid = ev.args.fileId
    assert ev.args.ownerAddress == env.client("alice").address and ev.args.url == url
    assert env.registry.functions.getFileIdByUrl(url).call() == fid
    with pytest.raises(TransactionReverted, match=f"ProofNotFound\\({fid}, 1\\)"):
        reg(env, "bob", "requestReward", fid, 1)
    rec = reg(env, "bob", "addProof", fid, _proof(env.verifier, fid, url))  # anyone may submit a signed proof
    (ev,) = env.registry.events.ProofAdded().process_receipt(rec, errors=DISCARD)
    assert (ev.args.proofIndex, ev.args.proofUrl) == (1, url + "#proof")
    (ev,) = env.registry.events.ProofVerified().process_receipt(rec, errors=DISCARD)
    assert (ev.args.proofIndex, ev.args.verifier, ev.args.score) == (1, env.verifier.address, 100)
    with pytest.raises(TransactionReverted, match="ProofAlreadyAdded"):
        reg(env, "bob", "addProof", fid, _proof(env.verifier, fid, url))
    rec = reg(env, "bob", "requestReward", fid, 1)
    (ev,) = env.registry.events.RewardRequested().process_receipt(rec, errors=DISCARD)
    assert (ev.args.contributorAddress, ev.args.fileId, ev.args.proofIndex, ev.args.rewardAmount) == (
        env.client("alice").address, fid, 1, 1000)
    (ev,) = env.registry.events.RewardMinted().process_receipt(rec, errors=DISCARD)
    tid = ev.args.tokenId
    (cc,) = env.token.events.ClassCreated().process_receipt(rec, errors=DISCARD)
    assert cc.args.id == tid and cc.args.integrityHash == bytes.fromhex(h[2:])
    alice = env.client("alice").address
    assert env.token.functions.balanceOf(alice, tid).call() == 1000  # to the owner, not the caller
    assert env.token.functions.tokenIdByHash(bytes.fromhex(h[2:])).call() == tid
    assert env.registry.functions.getFile(fid).call() == (fid, alice, url, h, 1, 1000)  # LazAI's FileResponse
    f = env.registry.functions.getFileInfo(fid).call()
    assert (f[0], f[1], f[2], f[3], f[4], f[5]) == (fid, alice, url, h, 1, tid)
    with pytest.raises(TransactionReverted, match=f"AlreadyRewarded\\({fid}, {tid}\\)"):
        reg(env, "alice", "requestReward", fid, 1)


def test_registry_refuses_reused_url_reused_hash_bad_hash(env: Env):
    url, h = "ipfs://reg/2", "0x" + _hash("reg 2").hex()
    reg(env, "alice", "addFile", url, h)
    fid = env.registry.functions.getFileIdByUrl(url).call()
    with pytest.raises(TransactionReverted, match=f"UrlAlreadyUsed\\(ipfs://reg/2, {fid}\\)"):
        reg(env, "bob", "addFile", url, "0x" + _hash("other").hex())
    with pytest.raises(TransactionReverted, match=f"HashAlreadyUsed\\(.*, {fid}\\)"):
        reg(env, "bob", "addFile", "ipfs://reg/2b", h.upper().replace("0X", "0x"))
    for bad in ("abc", "0x" + "g" * 64, "0x" + "00" * 32, h[:-1]):
        with pytest.raises(TransactionReverted, match="InvalidHash"):
            reg(env, "bob", "addFile", "ipfs://reg/bad", bad)


def test_registry_refuses_wrong_verifier_and_mismatched_proof(env: Env):
    url, h = "ipfs://reg/3", "0x" + _hash("reg 3").hex()
    reg(env, "alice", "addFile", url, h)
    fid = env.registry.functions.getFileIdByUrl(url).call()
    impostor = Verifier(key("impostor verifier"))
    with pytest.raises(TransactionReverted, match=f"InvalidVerifier\\({impostor.address}\\)"):
        reg(env, "alice", "addProof", fid, _proof(impostor, fid, url))
    with pytest.raises(TransactionReverted, match=f"ProofMismatch\\({fid}\\)"):
        reg(env, "alice", "addProof", fid, _proof(env.verifier, fid, "ipfs://elsewhere"))
    sig, data = _proof(env.verifier, fid, url)
    tampered = (sig, (data[0], 99, data[2], data[3]))  # score changed after signing
    with pytest.raises(TransactionReverted, match="InvalidVerifier"):
        reg(env, "alice", "addProof", fid, tampered)
    assert env.registry.functions.getFileInfo(fid).call()[4] == 0


# ---------------------------------------------------------------------- usage rights

def test_usage_consumes_quota_by_holder_or_approved_operator(env: Env):
    alice, bob = env.client("alice").address, env.client("bob").address
    tid = new_class(env, 100, to=alice)
    rec = send(env, "alice", "recordUsage", tid, 30, "inference")
    (ev,) = env.token.events.UsageRecorded().process_receipt(rec, errors=DISCARD)
    assert (ev.args.id, ev.args.account, ev.args.operator, ev.args.units, ev.args.metric) == \
        (tid, alice, alice, 30, "inference")
    assert env.token.functions.balanceOf(alice, tid).call() == 70
    with pytest.raises(TransactionReverted, match=f"NotHolderOrOperator\\({alice}, {bob}\\)"):
        send(env, "bob", "recordUsageFrom", alice, tid, 5, "training")
    send(env, "alice", "setApprovalForAll", bob, True)
    send(env, "bob", "recordUsageFrom", alice, tid, 5, "training")
    assert env.token.functions.balanceOf(alice, tid).call() == 65
    with pytest.raises(TransactionReverted, match="ERC1155InsufficientBalance"):
        send(env, "alice", "recordUsage", tid, 66, "too much")
    assert env.token.functions.totalSupply(tid).call() == 65


# ---------------------------------------------------------------------- value share

class Model:
    """The contract's accounting in Python integers (to predict exact wei)."""

    def __init__(self, bal: dict[str, int]) -> None:
        self.bal, self.mpu, self.carry, self.corr, self.wd = dict(bal), 0, 0, dict.fromkeys(bal, 0), dict.fromkeys(bal, 0)

    def settle(self, amount: int) -> None:
        total = amount * MAG + self.carry
        supply = sum(self.bal.values())
        self.mpu += total // supply
        self.carry = total % supply

    def move(self, a: str, b: str, units: int) -> None:
        self.bal[a] -= units
        self.bal[b] += units
        self.corr[a] += self.mpu * units
        self.corr[b] -= self.mpu * units

    def claimable(self, a: str) -> int:
        return (self.mpu * self.bal[a] + self.corr[a]) // MAG - self.wd[a]


def test_revenue_split_exact_across_transfers_claim_twice_and_no_leak(env: Env):
    names = ("admin", "alice", "bob", "carol")
    addr = {n: env.client(n).address for n in names}
    tid = new_class(env, 1000)
    model = Model({"admin": 1000, "alice": 0, "bob": 0, "carol": 0})

    def transfer(a: str, b: str, units: int) -> None:
        send(env, a, "safeTransferFrom", addr[a], addr[b], tid, units, b"")
        model.move(a, b, units)

    transfer("admin", "alice", 600)
    transfer("admin", "bob", 300)
    r1 = 10**18
    send(env, "payer", "settleRevenueETH", tid, value=r1)
    model.settle(r1)
    assert [env.token.functions.claimable(tid, ETH, addr[n]).call() for n in names] == \
        [10**17, 6 * 10**17, 3 * 10**17, 0]
    transfer("alice", "carol", 300)  # carol gets units, not alice's past revenue
    r2 = 10**18 + 7  # not divisible by the supply: the remainder is carried, not lost
    send(env, "payer", "settleRevenueETH", tid, value=r2)
    model.settle(r2)
    transfer("bob", "admin", 299)
    r3 = 12_345_678_901
    send(env, "payer", "settleRevenueETH", tid, value=r3)
    model.settle(r3)
    expected = {n: model.claimable(n) for n in names}
    # Exact rational shares for comparison: floor, never more.
    exact = {"admin": Fraction(r1 * 100 + r2 * 100, 1000) + Fraction(r3 * 399, 1000)}
    assert expected["admin"] <= exact["admin"] < expected["admin"] + 1
    assert expected["carol"] == (r2 * 300 + r3 * 300) // 1000
    paid = {}
    for n in names:
        assert env.token.functions.claimable(tid, ETH, addr[n]).call() == expected[n]
        paid[n] = eth_delta_plus_gas(env, n, lambda n=n: send(env, n, "claim", tid, ETH))
        assert paid[n] == expected[n]
        again = eth_delta_plus_gas(env, n, lambda n=n: send(env, n, "claim", tid, ETH))
        assert again == 0  # claiming twice pays nothing
    settled, claimed, unclaimed, _carry = env.token.functions.revenueOf(tid, ETH).call()
    assert settled == r1 + r2 + r3
    assert claimed == sum(paid.values())
    assert sum(paid.values()) + unclaimed == settled  # nothing leaks
    assert 0 <= unclaimed < len(names)  # at most one wei of rounding per holder stays behind
    assert env.w3.eth.get_balance(env.token_address) >= unclaimed


def test_revenue_in_an_erc20(env: Env):
    alice, payer = env.client("alice").address, env.client("payer").address
    tid = new_class(env, 1000)
    send(env, "admin", "safeTransferFrom", env.admin.address, alice, tid, 250, b"")
    erc_addr = env.deploy_test("payer", "TestERC20")
    erc = lambda c: c.contract("TestERC20", erc_addr)
    send(env, "payer", "mint", payer, 4000, contract=erc)
    send(env, "payer", "approve", env.token_address, 4000, contract=erc)
    send(env, "payer", "settleRevenueERC20", tid, erc_addr, 4000)
    send(env, "alice", "claim", tid, erc_addr)
    send(env, "admin", "claim", tid, erc_addr)
    bal = env.at("alice", "TestERC20", erc_addr).functions.balanceOf
    assert (bal(alice).call(), bal(env.admin.address).call()) == (1000, 3000)
    assert env.token.functions.revenueAssets(tid).call() == [erc_addr]


def test_settle_needs_holders_and_a_known_class(env: Env):
    tid = new_class(env, 10)
    send(env, "admin", "recordUsage", tid, 10, "all")
    with pytest.raises(TransactionReverted, match=f"NoHolders\\({tid}\\)"):
        send(env, "payer", "settleRevenueETH", tid, value=5)
    with pytest.raises(TransactionReverted, match="UnknownClass\\(999999\\)"):
        send(env, "payer", "settleRevenueETH", 999999, value=5)


def test_reentrant_claim_is_paid_once(env: Env):
    tid = new_class(env, 1000)
    attacker = env.deploy_test("carol", "ReentrantClaimer", env.token_address)
    send(env, "admin", "safeTransferFrom", env.admin.address, attacker, tid, 500, b"")
    send(env, "payer", "settleRevenueETH", tid, value=10**18)
    att = lambda c: c.contract("ReentrantClaimer", attacker)
    send(env, "carol", "attack", tid, contract=att)
    a = env.at("carol", "ReentrantClaimer", attacker).functions
    assert a.received().call() == 5 * 10**17
    assert a.reentryAttempts().call() == 1  # it did try to re-enter
    assert a.reentrySucceeded().call() == 0  # and got nothing
    send(env, "carol", "attack", tid, contract=att)
    assert a.received().call() == 5 * 10**17
    assert env.w3.eth.get_balance(attacker) == 5 * 10**17
    _, claimed, unclaimed, _ = env.token.functions.revenueOf(tid, ETH).call()
    assert (claimed, unclaimed) == (5 * 10**17, 5 * 10**17)


# ---------------------------------------------------------------------- LazAI compatibility

# LazAI's IDataRegistry as published in alith's SDK (0xLazAI/alith, the `sol!` block of its
# contracts module): canonical signatures of what a LazAI client calls and decodes.
LAZAI_FUNCTIONS = {
    "addFile(string,string)": ["uint256"],
    "addProof(uint256,(bytes,(uint256,uint256,string,string)))": None,  # LazAI returns nothing; extra outputs are ignored
    "requestReward(uint256,uint256)": None,
    "getFile(uint256)": ["(uint256,address,string,string,uint256,uint256)"],
    "getFileIdByUrl(string)": ["uint256"],
    "getFileProof(uint256,uint256)": ["(bytes,(uint256,uint256,string,string))"],
    "filesCount()": ["uint256"],
    "name()": ["string"],
    "version()": ["uint256"],
    "token()": ["address"],
}
LAZAI_EVENTS = {
    "FileAdded(uint256,address,string)": [True, True, False],
    "ProofAdded(uint256,address,uint256,string)": [True, True, False, False],
    "RewardRequested(address,uint256,uint256,uint256)": [True, True, True, False],
}


def _canon(t: dict) -> str:
    if t["type"].startswith("tuple"):
        return "(" + ",".join(_canon(c) for c in t["components"]) + ")" + t["type"][5:]
    return t["type"]


def test_registry_abi_matches_lazai_interface():
    abi = artifact("DataRegistry")["abi"]
    funcs = {f"{e['name']}({','.join(_canon(i) for i in e['inputs'])})": [_canon(o) for o in e["outputs"]]
             for e in abi if e["type"] == "function"}
    for sig, outputs in LAZAI_FUNCTIONS.items():
        assert sig in funcs, f"missing {sig}"
        if outputs is not None:
            assert funcs[sig] == outputs, sig
    events = {f"{e['name']}({','.join(_canon(i) for i in e['inputs'])})": [i["indexed"] for i in e["inputs"]]
              for e in abi if e["type"] == "event"}
    for sig, indexed in LAZAI_EVENTS.items():
        assert events.get(sig) == indexed, sig
