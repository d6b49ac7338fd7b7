"""Device identity: key files, passphrase sealing, URIs, and no secret in any text."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from agent.errors import KeyNotAvailable, KeyStoreError, WrongPassphrase
from agent.keys import (
    Ed25519Signer,
    EvmKey,
    FileKeyStore,
    KeyStore,
    device_id_for,
    open_keystore,
    verify_ed25519,
)


def _secrets(ks: FileKeyStore) -> list[str]:
    d, e = ks.device_signer(), ks.evm_key()
    return [d.secret_seed().hex(), e.secret_bytes().hex()]


def test_init_creates_0600_files_and_derived_ids(tmp_path):
    ks = open_keystore(tmp_path / "keys")
    assert isinstance(ks, KeyStore)
    ident = ks.init()
    for name in ("device.ed25519.key", "evm.secp256k1.key"):
        assert (tmp_path / "keys" / name).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700
    signer = ks.device_signer()
    assert ident["device_id"] == device_id_for(signer.public_key) == signer.key_id
    assert ident["device_id"].startswith("edge-") and len(ident["device_id"]) == 5 + 16
    assert ident["ed25519_public_key"] == signer.public_key.hex()
    assert verify_ed25519(signer.public_key, b"m", signer.sign(b"m"))
    assert not verify_ed25519(signer.public_key, b"n", signer.sign(b"m"))
    evm = ks.evm_key()
    assert ident["evm_address"] == evm.address and evm.address.startswith("0x") and len(evm.address) == 42
    with pytest.raises(KeyStoreError, match="already exist"):
        ks.init()


def test_evm_address_matches_eth_keys(tmp_path):
    from eth_keys import keys as ek

    key = EvmKey(bytes.fromhex("4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"))
    ref = ek.PrivateKey(key.secret_bytes())
    assert key.address == ref.public_key.to_checksum_address()
    digest = bytes(range(32))
    v, r, s = key.sign_hash(digest)
    sig = ek.Signature(vrs=(v - 27, r, s))
    assert sig.recover_public_key_from_msg_hash(digest) == ref.public_key


def test_passphrase_sealing_and_wrong_passphrase_leaks_nothing(tmp_path):
    ks = FileKeyStore(tmp_path / "k", passphrase=b"correct horse")
    ks.init()
    text = (tmp_path / "k" / "device.ed25519.key").read_text()
    doc = json.loads(text)
    assert "secret" not in doc and doc["kdf"]["name"] == "argon2id" and doc["cipher"] == "xsalsa20poly1305"
    secrets = _secrets(ks)
    assert not any(s in text for s in secrets)
    wrong = FileKeyStore(tmp_path / "k", passphrase=b"battery staple")
    with pytest.raises(WrongPassphrase) as err:
        wrong.device_signer()
    assert "correct horse" not in str(err.value) and not any(s in str(err.value) for s in secrets)
    with pytest.raises(KeyStoreError, match="encrypted"):
        FileKeyStore(tmp_path / "k").device_signer()
    # Public parts are readable without the passphrase.
    assert FileKeyStore(tmp_path / "k").identity()["encrypted"] is True


def test_no_secret_in_repr_str_or_errors(tmp_path, caplog):
    ks = FileKeyStore(tmp_path / "k", passphrase=b"pw-123456")
    ks.init()
    d, e = ks.device_signer(), ks.evm_key()
    secrets = _secrets(ks) + [bytes(d.signing_key()).hex(), "pw-123456"]
    texts = [repr(d), str(d), repr(e), str(e), repr(ks), f"{d}", f"{e!r}"]
    for t in texts:
        assert not any(s in t for s in secrets), t
    with pytest.raises(TypeError):
        import pickle

        pickle.dumps(d)
    # A corrupted key file: the error names the file, not its content.
    path = tmp_path / "k" / "evm.secp256k1.key"
    doc = json.loads(path.read_text())
    doc["sealed"] = doc["sealed"][:-4] + "0000"
    path.write_text(json.dumps(doc))
    with pytest.raises(WrongPassphrase) as err:
        ks.evm_key()
    assert not any(s in str(err.value) for s in secrets + [doc["sealed"]])


def test_world_readable_key_file_refused(tmp_path):
    ks = FileKeyStore(tmp_path / "k")
    ks.init()
    os.chmod(tmp_path / "k" / "device.ed25519.key", 0o644)
    with pytest.raises(KeyStoreError, match="readable by others"):
        ks.device_signer()


def test_uri_schemes(tmp_path):
    ks = open_keystore((tmp_path / "k").as_uri())
    assert isinstance(ks, FileKeyStore)
    ks.init()
    assert ks.identity()["device_key_uri"] == (tmp_path / "k" / "device.ed25519.key").resolve().as_uri()
    for uri in ("atecc://i2c-1/0x60", "tpm:///dev/tpmrm0"):
        with pytest.raises(KeyNotAvailable, match="not available on this device"):
            open_keystore(uri)
    with pytest.raises(KeyStoreError, match="unknown key store scheme"):
        open_keystore("pkcs11://x")


def test_cli_init_show(tmp_path):
    env = dict(os.environ, EDGE_PW="s3cret-pass")
    code = "from agent.cli import main; main()"
    out = subprocess.run([sys.executable, "-c", code, "keys", "init", "--state-dir", str(tmp_path),
                          "--passphrase-env", "EDGE_PW", "--json"], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    ident = json.loads(out.stdout)
    show = subprocess.run([sys.executable, "-c", code, "keys", "show", "--state-dir", str(tmp_path), "--json",
                           "--check", "--passphrase-env", "EDGE_PW"], capture_output=True, text=True, env=env)
    assert show.returncode == 0, show.stderr
    assert json.loads(show.stdout)["device_id"] == ident["device_id"]
    env["EDGE_PW"] = "wrong"
    bad = subprocess.run([sys.executable, "-c", code, "keys", "show", "--state-dir", str(tmp_path), "--check",
                          "--passphrase-env", "EDGE_PW"], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("ERROR: wrong passphrase")
    signer = FileKeyStore(tmp_path / "keys", b"s3cret-pass").device_signer()
    assert signer.secret_seed().hex() not in bad.stderr + show.stdout + out.stdout


def test_signer_from_seed_is_deterministic():
    a, b = Ed25519Signer(bytes(32)), Ed25519Signer(bytes(32))
    assert a.public_key == b.public_key and a.sign(b"x") == b.sign(b"x")
