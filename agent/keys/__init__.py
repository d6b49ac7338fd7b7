"""Device identity: an Ed25519 device key (signs chunks, Flows, datasets) and a separate
secp256k1 key (the device's EVM account), kept in a key store named by URI.

``file://DIR`` is the only backend built here; ``atecc://`` and ``tpm://`` are registered
and raise :class:`agent.errors.KeyNotAvailable`. See :mod:`agent.keys._store` for how to
add a secure element. The device id is ``edge-`` + the first 16 hex digits of SHA-256 of
the Ed25519 public key. Key objects never show secret material in ``repr``/``str``.
"""

from agent.keys._keys import (
    ED25519_ALG,
    Ed25519Signer,
    EvmKey,
    Signer,
    device_id_for,
    evm_address,
    verify_ed25519,
)
from agent.keys._store import KEYSTORE_SCHEMES, FileKeyStore, KeyStore, keys_dir, open_keystore

__all__ = [
    "ED25519_ALG",
    "KEYSTORE_SCHEMES",
    "Ed25519Signer",
    "EvmKey",
    "FileKeyStore",
    "KeyStore",
    "Signer",
    "device_id_for",
    "evm_address",
    "keys_dir",
    "open_keystore",
    "verify_ed25519",
]
