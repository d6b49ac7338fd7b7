"""Key stores behind a Protocol and a registry of URI schemes.

Adding a secure element: write a class that implements :class:`KeyStore` (its
``device_signer()`` returns a :class:`~agent.keys.Signer` whose ``sign`` calls the
element; the secret never leaves it) and register a factory for its scheme in
:data:`KEYSTORE_SCHEMES`, e.g. ``KEYSTORE_SCHEMES["atecc"] = AteccKeyStore``. Until a
backend is built for this device, ``atecc://`` and ``tpm://`` raise :class:`KeyNotAvailable`.
Note that an ATECC608 signs ECDSA P-256 only (COSE alg ES256 = -7): the chunk format
records the algorithm, so a P-256 signer fits without a format change.

The ``file://`` store is a directory (mode 0700) holding:

    device.ed25519.key   the Ed25519 device key   (JSON, mode 0600)
    evm.secp256k1.key    the EVM account key      (JSON, mode 0600)
    identity.json        public parts only        (mode 0644)

A key file is ``{"format": "edge-agent-key/1", "type", "public", "secret" | "sealed"}``;
when a passphrase is given the secret is sealed with XSalsa20-Poly1305 (nacl SecretBox)
under a key derived with Argon2id (``nacl.pwhash.argon2id.kdf``), whose salt and limits are
stored beside it (``"kdf"``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlparse

import nacl.exceptions
import nacl.pwhash
import nacl.secret
import nacl.utils

from agent.errors import KeyNotAvailable, KeyStoreError, WrongPassphrase
from agent.keys._keys import Ed25519Signer, EvmKey, Signer, device_id_for

FORMAT = "edge-agent-key/1"
DEVICE_KEY_FILE = "device.ed25519.key"
EVM_KEY_FILE = "evm.secp256k1.key"
IDENTITY_FILE = "identity.json"
# Argon2id limits: "interactive" (64 MiB, 2 passes) keeps unlock under a second on a Pi 4.
KDF_OPSLIMIT = nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
KDF_MEMLIMIT = nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE


@runtime_checkable
class KeyStore(Protocol):
    """Where the device keys live. ``uri`` names it (``file:///...``, ``atecc://...``)."""

    uri: str

    def exists(self) -> bool: ...

    def init(self, passphrase: bytes | None = None, overwrite: bool = False) -> dict[str, Any]: ...

    def device_signer(self) -> Signer: ...

    def evm_key(self) -> EvmKey: ...

    def identity(self) -> dict[str, Any]: ...


def _write_private(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write with ``mode`` from the start (no window with wider permissions), fsync, rename."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


class FileKeyStore:
    """Keys in files of a directory; optionally sealed with a passphrase."""

    def __init__(self, directory: str | Path, passphrase: bytes | None = None) -> None:
        self.directory = Path(directory)
        self.uri = self.directory.resolve().as_uri()
        self._passphrase = passphrase

    def __repr__(self) -> str:  # the passphrase is never shown
        return f"FileKeyStore({self.uri!r}, encrypted_unlock={'yes' if self._passphrase else 'no'})"

    def key_uri(self, name: str) -> str:
        return (self.directory / name).resolve().as_uri()

    def exists(self) -> bool:
        return (self.directory / DEVICE_KEY_FILE).exists()

    def init(self, passphrase: bytes | None = None, overwrite: bool = False) -> dict[str, Any]:
        """Create both keys. Refuses to replace existing keys unless ``overwrite``."""
        passphrase = passphrase if passphrase is not None else self._passphrase
        if self.exists() and not overwrite:
            raise KeyStoreError(f"keys already exist in {self.directory} (refusing to replace a device identity)")
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)
        device = Ed25519Signer.generate(self.key_uri(DEVICE_KEY_FILE))
        evm = EvmKey.generate(self.key_uri(EVM_KEY_FILE))
        _write_private(self.directory / DEVICE_KEY_FILE,
                       self._key_doc("ed25519", device.public_key, device.secret_seed(), passphrase))
        _write_private(self.directory / EVM_KEY_FILE,
                       self._key_doc("secp256k1", evm.public_key, evm.secret_bytes(), passphrase))
        self._passphrase = passphrase
        ident = self._identity(device, evm, encrypted=passphrase is not None)
        _write_private(self.directory / IDENTITY_FILE, json.dumps(ident, indent=2).encode(), 0o644)
        return ident

    @staticmethod
    def _key_doc(kind: str, public: bytes, secret: bytes, passphrase: bytes | None) -> bytes:
        doc: dict[str, Any] = {"format": FORMAT, "type": kind, "public": public.hex()}
        if passphrase is None:
            doc["secret"] = secret.hex()
        else:
            salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
            key = nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase, salt,
                                           opslimit=KDF_OPSLIMIT, memlimit=KDF_MEMLIMIT)
            doc["kdf"] = {"name": "argon2id", "salt": salt.hex(), "opslimit": KDF_OPSLIMIT, "memlimit": KDF_MEMLIMIT}
            doc["cipher"] = "xsalsa20poly1305"
            doc["sealed"] = bytes(nacl.secret.SecretBox(key).encrypt(secret)).hex()
        return json.dumps(doc, indent=2).encode()

    def _load_secret(self, name: str, kind: str) -> tuple[bytes, bytes]:
        path = self.directory / name
        try:
            doc = json.loads(path.read_text())
        except FileNotFoundError:
            raise KeyStoreError(f"no key file {path}: run `edge-agent keys init`") from None
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"key file {path} is unreadable: {type(exc).__name__}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("type") != kind:
            raise KeyStoreError(f"key file {path} is not an {FORMAT} {kind} key")
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise KeyStoreError(f"key file {path} has mode {mode:o}: readable by others (expected 600)")
        try:
            public = bytes.fromhex(doc["public"])
            if "sealed" in doc:
                if self._passphrase is None:
                    raise KeyStoreError(f"key file {path} is encrypted: give its passphrase (--passphrase-env VAR)")
                kdf = doc["kdf"]
                key = nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, self._passphrase,
                                               bytes.fromhex(kdf["salt"]), opslimit=int(kdf["opslimit"]),
                                               memlimit=int(kdf["memlimit"]))
                try:
                    secret = nacl.secret.SecretBox(key).decrypt(bytes.fromhex(doc["sealed"]))
                except nacl.exceptions.CryptoError:
                    raise WrongPassphrase(f"wrong passphrase for key file {path}") from None
            else:
                secret = bytes.fromhex(doc["secret"])
        except (KeyError, ValueError, TypeError):
            raise KeyStoreError(f"key file {path} is malformed") from None
        return public, secret

    def device_signer(self) -> Ed25519Signer:
        public, seed = self._load_secret(DEVICE_KEY_FILE, "ed25519")
        signer = Ed25519Signer(seed, self.key_uri(DEVICE_KEY_FILE))
        if signer.public_key != public:
            raise KeyStoreError(f"key file {self.directory / DEVICE_KEY_FILE}: secret does not match its public key")
        return signer

    def evm_key(self) -> EvmKey:
        public, secret = self._load_secret(EVM_KEY_FILE, "secp256k1")
        key = EvmKey(secret, self.key_uri(EVM_KEY_FILE))
        if key.public_key != public:
            raise KeyStoreError(f"key file {self.directory / EVM_KEY_FILE}: secret does not match its public key")
        return key

    def identity(self) -> dict[str, Any]:
        """Public parts, read without the passphrase."""
        out: dict[str, Any] = {}
        for name, kind in ((DEVICE_KEY_FILE, "ed25519"), (EVM_KEY_FILE, "secp256k1")):
            path = self.directory / name
            try:
                doc = json.loads(path.read_text())
                public = bytes.fromhex(doc["public"])
            except FileNotFoundError:
                raise KeyStoreError(f"no key file {path}: run `edge-agent keys init`") from None
            except (OSError, ValueError, KeyError, TypeError):
                raise KeyStoreError(f"key file {path} is malformed") from None
            out[kind] = (public, "sealed" in doc)
        from agent.keys._keys import evm_address

        pub, enc = out["ed25519"]
        return {
            "device_id": device_id_for(pub),
            "ed25519_public_key": pub.hex(),
            "evm_address": evm_address(out["secp256k1"][0]),
            "encrypted": enc,
            "keystore": self.uri,
            "device_key_uri": self.key_uri(DEVICE_KEY_FILE),
            "evm_key_uri": self.key_uri(EVM_KEY_FILE),
        }

    @staticmethod
    def _identity(device: Ed25519Signer, evm: EvmKey, encrypted: bool) -> dict[str, Any]:
        return {
            "device_id": device.key_id,
            "ed25519_public_key": device.public_key.hex(),
            "evm_address": evm.address,
            "encrypted": encrypted,
        }


def _unavailable(kind: str) -> Callable[..., KeyStore]:
    def factory(uri: str, passphrase: bytes | None = None) -> KeyStore:
        raise KeyNotAvailable(
            f"{uri}: {kind} is not available on this device (no {kind} backend in this build); use a file:// key store"
        )

    return factory


def _file_factory(uri: str, passphrase: bytes | None = None) -> KeyStore:
    parsed = urlparse(uri)
    return FileKeyStore(unquote(parsed.path), passphrase)


# Scheme → factory(uri, passphrase). Register a secure element backend here.
KEYSTORE_SCHEMES: dict[str, Callable[..., KeyStore]] = {
    "file": _file_factory,
    "atecc": _unavailable("secure element ATECC608"),
    "tpm": _unavailable("TPM 2.0"),
}


def open_keystore(uri: str | Path, passphrase: bytes | None = None) -> KeyStore:
    """Open a key store by URI (``file:///var/lib/edge-agent/keys``) or plain directory path."""
    text = str(uri)
    scheme = urlparse(text).scheme if "://" in text else "file"
    if "://" not in text:
        return FileKeyStore(text, passphrase)
    factory = KEYSTORE_SCHEMES.get(scheme)
    if factory is None:
        raise KeyStoreError(f"unknown key store scheme {scheme!r} in {text}; known: {', '.join(sorted(KEYSTORE_SCHEMES))}")
    return factory(text, passphrase)


def keys_dir(state_dir: str | Path) -> Path:
    """Where the device keys live inside a state directory."""
    return Path(state_dir) / "keys"
