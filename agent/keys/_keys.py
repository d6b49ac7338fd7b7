"""Key objects: an Ed25519 device signer and a secp256k1 EVM account key.

Both hold their secret inside a library object and never show it: ``repr``/``str`` give
the public parts only, and nothing here formats secret bytes into a message.
"""

from __future__ import annotations

import hashlib
from typing import Protocol, runtime_checkable

import nacl.signing

from agent.errors import KeyStoreError

ED25519_ALG = -8  # COSE "EdDSA" (RFC 9053)


def device_id_for(public_key: bytes) -> str:
    """Device id derived from the Ed25519 public key: ``edge-`` + first 16 hex of SHA-256."""
    return "edge-" + hashlib.sha256(public_key).hexdigest()[:16]


@runtime_checkable
class Signer(Protocol):
    """What signs chunks, Flows and datasets. A secure element backend implements this."""

    alg: int  # COSE algorithm id
    key_id: str  # the device id (COSE kid)
    public_key: bytes

    def sign(self, message: bytes) -> bytes: ...


class Ed25519Signer:
    """The device's Ed25519 key (COSE alg EdDSA, kid = device id)."""

    alg = ED25519_ALG
    __slots__ = ("_sk", "key_id", "public_key", "uri")

    def __init__(self, seed: bytes, uri: str = "") -> None:
        if len(seed) != 32:
            raise KeyStoreError("an Ed25519 seed is 32 bytes")
        self._sk = nacl.signing.SigningKey(seed)
        self.public_key = bytes(self._sk.verify_key)
        self.key_id = device_id_for(self.public_key)
        self.uri = uri

    @classmethod
    def generate(cls, uri: str = "") -> Ed25519Signer:
        return cls(bytes(nacl.signing.SigningKey.generate()), uri)

    def sign(self, message: bytes) -> bytes:
        return self._sk.sign(message).signature

    def secret_seed(self) -> bytes:
        """The 32-byte seed, for writing the key file only."""
        return bytes(self._sk)

    def signing_key(self) -> nacl.signing.SigningKey:
        """The pynacl key object, for libraries that take one (the fleet client's status signing)."""
        return self._sk

    def x25519_private(self) -> bytes:
        """The matching X25519 private key (to open Flows sealed to this device)."""
        return bytes(self._sk.to_curve25519_private_key())

    def x25519_public(self) -> bytes:
        return bytes(self._sk.verify_key.to_curve25519_public_key())

    def __repr__(self) -> str:
        return f"Ed25519Signer(key_id={self.key_id!r}, public_key={self.public_key.hex()!r}, uri={self.uri!r})"

    __str__ = __repr__

    def __reduce__(self) -> object:  # never pickle a secret by accident
        raise TypeError("device keys cannot be pickled")


def verify_ed25519(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """True when ``signature`` is a valid Ed25519 signature of ``message``."""
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
        return True
    except Exception:  # BadSignatureError, malformed key or signature
        return False


def _keccak256(data: bytes) -> bytes:
    from Crypto.Hash import keccak  # pycryptodome, the eth-hash backend

    return keccak.new(digest_bits=256, data=data).digest()


def evm_address(public_key_uncompressed: bytes) -> str:
    """EIP-55 checksummed address of a 65-byte uncompressed secp256k1 public key."""
    raw = _keccak256(public_key_uncompressed[1:])[-20:].hex()
    digest = _keccak256(raw.encode()).hex()
    return "0x" + "".join(c.upper() if int(digest[i], 16) >= 8 else c for i, c in enumerate(raw))


class EvmKey:
    """The device's secp256k1 key for its EVM account."""

    __slots__ = ("_pk", "address", "public_key", "uri")

    def __init__(self, secret: bytes, uri: str = "") -> None:
        import coincurve

        if len(secret) != 32:
            raise KeyStoreError("a secp256k1 secret is 32 bytes")
        try:
            self._pk = coincurve.PrivateKey(secret)
        except Exception:
            raise KeyStoreError("not a valid secp256k1 secret") from None
        self.public_key = self._pk.public_key.format(compressed=False)
        self.address = evm_address(self.public_key)
        self.uri = uri

    @classmethod
    def generate(cls, uri: str = "") -> EvmKey:
        import coincurve

        return cls(coincurve.PrivateKey().secret, uri)

    def sign_hash(self, digest: bytes) -> tuple[int, int, int]:
        """ECDSA over a 32-byte hash: (v in {27, 28}, r, s), low-s as Ethereum requires."""
        sig = self._pk.sign_recoverable(digest, hasher=None)
        return sig[64] + 27, int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:64], "big")

    def secret_bytes(self) -> bytes:
        """The 32-byte secret, for handing to a transaction signer (eth_account) only."""
        return self._pk.secret

    def __repr__(self) -> str:
        return f"EvmKey(address={self.address!r}, uri={self.uri!r})"

    __str__ = __repr__

    def __reduce__(self) -> object:
        raise TypeError("device keys cannot be pickled")
