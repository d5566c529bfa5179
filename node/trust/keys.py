"""Signing keys of either suite, their key ids, and private-key files only their owner reads.

Rules kept here:
- A key id is ``<suite>:<fingerprint>``; the fingerprint is the first 32 hex digits of
  SHA-256 over the raw public key, so ids are stable and name their suite (``ed25519:…``,
  ``sm2:…``) without changing envelopes or manifests. All signing and verifying goes through
  the key's suite (node/trust/suites.py: Ed25519 in libsodium, SM2 in gmalglib).
- A public key as text is base64 of the raw key, optionally prefixed by its suite; bare, its
  length tells the suite (32 bytes Ed25519, 65 an SM2 point). Keys off the curve, of the
  wrong length or of a small order are refused where they are parsed.
- Private keys are written with mode 0600 from the first byte (never chmod after the fact),
  and a private key file that group or others can read is refused at load time.
"""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from node.trust.suites import (
    ED25519_SUITE,
    SUITES,
    Suite,
    load_private_pem,
    suite_named,
)

PRIVATE_KEY_MODE = 0o600


class KeyFileError(Exception):
    """A key file is missing, unreadable, malformed or too widely readable."""


def parse_public_key(text: str, suite: Suite | None = None) -> VerifyKey:
    """A public key as text: ``<suite>:<base64>`` or bare base64 (the suite then told by
    ``suite``, or by the key's length: 32 bytes Ed25519, 65 bytes an SM2 point). ValueError
    with a sentence when it is not a usable key."""
    named, colon, rest = text.partition(":")
    if colon and named in SUITES:
        suite, text = suite_named(named), rest
    try:
        raw = base64.b64decode(text, validate=True)
    except ValueError:
        raise ValueError("not a base64 public key") from None
    if suite is None:
        suite = next((s for s in SUITES.values() if s.public_length == len(raw)), None)
        if suite is None:
            raise ValueError(
                f"a {len(raw)}-byte public key is of no known suite (Ed25519 keys have 32 "
                "bytes, SM2 points 65)"
            )
    suite.check_public(raw)
    return VerifyKey(suite.key_id(raw), raw, suite)


@dataclass(frozen=True)
class VerifyKey:
    """A public key as the manifest names it: its id, raw bytes and suite."""

    key_id: str
    public_bytes: bytes
    """The raw public key, as the manifest lists it (base64 there)."""
    suite: Suite = ED25519_SUITE

    @property
    def text(self) -> str:
        """The key as the manifest and governance files write it: base64 of the raw key."""
        return base64.b64encode(self.public_bytes).decode("ascii")

    def verify(self, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` is this key's over ``data``; never raises on hostile input."""
        return self.suite.verify(self.public_bytes, signature, data)


@dataclass(frozen=True)
class SigningKey:
    """A private key, its suite, and the id its signatures are published under."""

    key_id: str
    secret: bytes = field(repr=False)
    suite: Suite = ED25519_SUITE

    @classmethod
    def generate(cls, suite: Suite = ED25519_SUITE) -> SigningKey:
        secret = suite.generate()
        return cls(suite.key_id(suite.public_of(secret)), secret, suite)

    @cached_property
    def verify_key(self) -> VerifyKey:
        public = self.suite.public_of(self.secret)
        return VerifyKey(self.key_id, public, self.suite)

    def sign(self, data: bytes) -> bytes:
        return self.suite.sign(self.secret, data)

    def private_pem(self) -> bytes:
        return self.suite.private_pem(self.secret)


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
        suite, secret = load_private_pem(data)
    except ValueError as exc:
        raise KeyFileError(f"{path} is not a private key this node can sign with: {exc}") from exc
    return SigningKey(suite.key_id(suite.public_of(secret)), secret, suite)
