"""Signing keys: libsodium signatures are standard Ed25519, and key files stay private."""
# The SM2 suite's keys and signatures: tests/test_suites.py.

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from node.trust.keys import KeyFileError, SigningKey, load_signing_key, save_signing_key


def test_signatures_interoperate_with_openssl() -> None:
    """What libsodium signs, OpenSSL verifies, and the other way round."""
    key = SigningKey.generate()
    private = Ed25519PrivateKey.from_private_bytes(key.secret)
    private.public_key().verify(key.sign(b"envelope"), b"envelope")
    assert key.verify_key.verify(private.sign(b"receipt"), b"receipt")


@pytest.mark.parametrize("signature", [b"", b"\x00" * 63, b"\x00" * 65, b"\x00" * 64])
def test_malformed_signatures_do_not_verify(signature: bytes) -> None:
    """Signatures of the wrong length or content are refused, never an exception."""
    assert SigningKey.generate().verify_key.verify(signature, b"data") is False


def test_tampered_data_does_not_verify() -> None:
    """One changed byte in the signed data fails verification."""
    key = SigningKey.generate()
    assert not key.verify_key.verify(key.sign(b"data"), b"datA")


def test_key_file_round_trip_is_0600_and_refuses_loose_modes(tmp_path: Path) -> None:
    """A saved key is created 0600, loads to the same key id, and a 0644 copy is refused."""
    key = SigningKey.generate()
    path = tmp_path / "signing.key"
    save_signing_key(key, path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_signing_key(path).key_id == key.key_id
    os.chmod(path, 0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        load_signing_key(path)


def test_existing_key_file_is_never_overwritten(tmp_path: Path) -> None:
    """Saving over an existing key file fails and leaves the old key in place."""
    path = tmp_path / "signing.key"
    first = SigningKey.generate()
    save_signing_key(first, path)
    with pytest.raises(FileExistsError):
        save_signing_key(SigningKey.generate(), path)
    assert load_signing_key(path).key_id == first.key_id
