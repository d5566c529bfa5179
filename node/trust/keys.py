"""Ed25519 signing keys, their key ids, and private-key files that only their owner can read.

Rules kept here:
- A key id is ``<algorithm>:<fingerprint>``; the fingerprint is the first 32 hex digits of
  SHA-256 over the raw public key, so ids are stable and another suite (``sm2:…``) can be
  added without changing envelopes or manifests.
- Signing and verifying run in libsodium (PyNaCl): on this project's machines it signs and
  verifies Ed25519 about twice as fast as OpenSSL, and signature checks are the largest cost
  per message. Key files, parsing and ids stay with ``cryptography``.
- Private keys are written with mode 0600 from the first byte (never chmod after the fact),
  and a private key file that group or others can read is refused at load time.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from nacl.bindings import crypto_sign, crypto_sign_BYTES, crypto_sign_open, crypto_sign_seed_keypair
from nacl.exceptions import BadSignatureError

ED25519 = "ed25519"
PRIVATE_KEY_MODE = 0o600


class KeyFileError(Exception):
    """A key file is missing, unreadable, malformed or too widely readable."""


def key_id_for(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return f"{ED25519}:{hashlib.sha256(raw).hexdigest()[:32]}"


def public_key_to_text(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def public_key_from_text(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text, validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as exc:
        raise ValueError(f"not a base64 Ed25519 public key: {exc}") from exc


@dataclass(frozen=True)
class VerifyKey:
    """A public key as the manifest names it."""

    key_id: str
    public_key: Ed25519PublicKey

    @cached_property
    def _raw(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def public_bytes(self) -> bytes:
        """The raw public key, as the manifest lists it (base64 there)."""
        return self._raw

    def verify(self, signature: bytes, data: bytes) -> bool:
        if len(signature) != crypto_sign_BYTES:
            return False
        try:
            crypto_sign_open(signature + data, self._raw)
        except BadSignatureError:
            return False
        return True


@dataclass(frozen=True)
class SigningKey:
    """A private key and the id its signatures are published under."""

    key_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> SigningKey:
        private = Ed25519PrivateKey.generate()
        return cls(key_id_for(private.public_key()), private)

    @property
    def verify_key(self) -> VerifyKey:
        return VerifyKey(self.key_id, self.private_key.public_key())

    @cached_property
    def _secret(self) -> bytes:
        seed = self.private_key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )
        return bytes(crypto_sign_seed_keypair(seed)[1])

    def sign(self, data: bytes) -> bytes:
        return bytes(crypto_sign(data, self._secret)[:crypto_sign_BYTES])

    def private_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def write_private_file(path: Path, data: bytes) -> None:
    """Write secret bytes readable by the owner only; refuse to overwrite an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_KEY_MODE)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def read_private_file(path: Path) -> bytes:
    """Read secret bytes, refusing a file that group or others may read."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as exc:
        raise KeyFileError(f"private key file {path} does not exist") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"private key file {path} is readable by group or others (mode {mode & 0o777:o}); "
            "run: chmod 600 " + str(path)
        )
    return path.read_bytes()


def save_signing_key(key: SigningKey, path: Path) -> None:
    write_private_file(path, key.private_pem())


def load_signing_key(path: Path) -> SigningKey:
    data = read_private_file(path)
    try:
        private = serialization.load_pem_private_key(data, password=None)
    except ValueError as exc:
        raise KeyFileError(f"{path} is not a PEM private key: {exc}") from exc
    if not isinstance(private, Ed25519PrivateKey):
        raise KeyFileError(f"{path} holds a {type(private).__name__}, not an Ed25519 key")
    return SigningKey(key_id_for(private.public_key()), private)
