"""Algorithm suites: published vectors, agreement with independent implementations (snowland-smx,
OpenSSL, cryptography), Ed25519 unchanged, and hostile keys and signatures refused without a
crash.

Published vectors used here:
- SM3: GB/T 32905-2016 Appendix A (examples 1 and 2).
- SM2 on the recommended curve sm2p256v1, over a whole message: RustCrypto/elliptic-curves,
  ``sm2/tests/sm2dsa.rs`` and ``sm2/tests/examples/pkcs8-private-key.pem`` (user id
  ``example@rustcrypto.org``; the signature was made by OpenSSL, so two implementations
  stand behind it).
- SM2 on sm2p256v1 over a digest ``e``: OpenSSL,
  ``test/recipes/30-test_evp_data/evppkey_sm2.txt`` (key ``SM2_key1``, ``Verify`` entries).
GB/T 32918's own signature example uses its example curve and user id ``ALICE123@YAHOO.COM``,
not the recommended curve; the default user id ``1234567812345678`` is covered by the
cross-library checks below instead.

A C-level crash in gmalglib would kill the pytest process running these tests, which fails
the run: the fuzz tests need no subprocess to catch one.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from gmalglib.sm2 import SM2 as GmSM2
from hypothesis import given, settings
from hypothesis import strategies as st
from pysmx.SM2 import Sign as smx_sign
from pysmx.SM2 import Verify as smx_verify

from node.trust.keys import SigningKey
from node.trust.suites import (
    ED25519_SUITE,
    SM2_DEFAULT_UID,
    SM2_N,
    SM2_SUITE,
    SUITES,
    Suite,
    load_private_pem,
    suite_named,
    suite_of_key_id,
)

SM2_P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF

# GB/T 32905-2016 Appendix A.
SM3_ABC = "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
SM3_ABCD_16 = "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"

# RustCrypto/elliptic-curves sm2/tests/sm2dsa.rs and sm2/tests/examples/pkcs8-private-key.pem.
RUSTCRYPTO_PUBLIC = bytes.fromhex(
    "0408D77AE04C01CC4C1104360DD8AF6B6F7DF334283D7C1A6AFD5652407B87BEE5"
    "014E2A57C36C150D16324DC664E31E6432359609C4E79847A5B161C8C7364C8A"
)
RUSTCRYPTO_UID = b"example@rustcrypto.org"
RUSTCRYPTO_MESSAGE = b"testing"
RUSTCRYPTO_SIGNATURE = bytes.fromhex(
    "d1dcccedd9fb785e0f67c16b7c52901625c0b69de9bca2144acc7be713cad2fc"
    "f7d1eae6e3a157b36c65f672f738ca8b46298bf149a6510072c431b49cd88b1c"
)
RUSTCRYPTO_PEM = b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqBHM9VAYItBG0wawIBAQQgS7jfUFciKZWSy+1C
g7NUoT/10/7rOgZgxb3zyHxVlJmhRANCAAQI13rgTAHMTBEENg3Yr2tvffM0KD18
Gmr9VlJAe4e+5QFOKlfDbBUNFjJNxmTjHmQyNZYJxOeYR6WxYcjHNkyK
-----END PRIVATE KEY-----
"""

# OpenSSL test/recipes/30-test_evp_data/evppkey_sm2.txt: SM2_key1 and its SM3 Verify entries.
OPENSSL_SM2_KEY1 = b"""-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqBHM9VAYItBG0wawIBAQQg0JFWczAXva2An9m7
2MaT9gIwWTFptvlKrxyO4TjMmbWhRANCAAQ5OirZ4n5DrKqrhaGdO4VZHhRAYVcX
Wt3Te/d/8Mr57Tf886i09VwDhSMmH8pmNq/mp6+ioUgqYG9cs6GLLioe
-----END PRIVATE KEY-----
"""
OPENSSL_SM2_DIGEST_VECTORS = [
    (
        "D7AD397F6FFA5D4F7F11E7217F241607DC30618C236D2C09C1B9EA8FDADEE2E8",
        "3046022100AB1DB64DE7C40EDBDE6651C9B8EBDB804673DB836E5D5C7FE15DCF9ED2725037"
        "022100EBA714451FF69B0BB930B379E192E7CD5FA6E3C41C7FBD8303B799AB54A54621",
    ),
    (
        "B1139602C6ECC9E15E2F3F9C635A1AFE737058BC15387479C1EA0D0B3D90E9E5",
        "3045022100E6E0414EBD3A656C35602AF14AB20287DBF30D57AF75C49A188ED4B42391F224"
        "02202F54F277C606F4605E1CE9514947FFDDF94C67A539804A4ED17F852288BDBE2E",
    ),
]


def _raw(der: bytes) -> bytes:
    r, s = decode_dss_signature(der)
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _der(raw: bytes) -> bytes:
    return encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))


def _cryptography_sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


@pytest.fixture(scope="module")
def sm2_key() -> tuple[bytes, bytes]:
    secret = SM2_SUITE.generate()
    return secret, SM2_SUITE.public_of(secret)


@pytest.fixture(scope="module")
def ed25519_key() -> tuple[bytes, bytes]:
    secret = ED25519_SUITE.generate()
    return secret, ED25519_SUITE.public_of(secret)


# --- lookup and naming ---------------------------------------------------------------------


def test_suites_are_found_by_name_and_by_key_id() -> None:
    """Each suite is found under its name and under the prefix of its key ids; anything else
    is a ValueError that names the known suites."""
    assert set(SUITES) == {"ed25519", "sm2"}
    for name, suite in SUITES.items():
        assert suite_named(name) is suite and suite.name == name
        secret = suite.generate()
        assert suite_of_key_id(suite.key_id(suite.public_of(secret))) is suite
    with pytest.raises(ValueError, match="known suites: ed25519, sm2"):
        suite_named("rsa")
    for bad in ("sm2", "sm2:", "ecdsa:abcd", ""):
        with pytest.raises(ValueError, match=r"not of the form|unknown signature suite"):
            suite_of_key_id(bad)


def test_sm2_key_id_is_sha256_of_the_uncompressed_point(sm2_key: tuple[bytes, bytes]) -> None:
    """An SM2 key id follows the Ed25519 rule over the 65-byte point."""
    _, public = sm2_key
    assert len(public) == 65 and public[0] == 0x04
    assert SM2_SUITE.key_id(public) == "sm2:" + hashlib.sha256(public).hexdigest()[:32]


# --- SM3 -------------------------------------------------------------------------------------


def test_sm3_published_vectors() -> None:
    """GB/T 32905-2016 Appendix A, examples 1 and 2."""
    assert SM2_SUITE.hash(b"abc").hex() == SM3_ABC
    assert SM2_SUITE.hash(b"abcd" * 16).hex() == SM3_ABCD_16
    assert _cryptography_sm3(b"abc").hex() == SM3_ABC


@given(st.binary(max_size=300))
def test_sm3_agrees_with_cryptography(data: bytes) -> None:
    """gmalglib's SM3 and OpenSSL's (through cryptography) agree on any input."""
    assert SM2_SUITE.hash(data) == _cryptography_sm3(data)


def test_ed25519_suite_hashes_with_sha256() -> None:
    """The Ed25519 suite's trees and digests stay SHA-256."""
    assert ED25519_SUITE.hash(b"abc") == hashlib.sha256(b"abc").digest()


# --- SM2 published vectors -------------------------------------------------------------------


def test_sm2_published_message_vector_verifies_in_both_implementations() -> None:
    """RustCrypto's OpenSSL-made vector (recommended curve, its own user id) verifies in
    gmalglib and in snowland-smx, and fails under the default user id."""
    gm = GmSM2(pk=RUSTCRYPTO_PUBLIC, uid=RUSTCRYPTO_UID)
    assert gm.verify(RUSTCRYPTO_MESSAGE, RUSTCRYPTO_SIGNATURE) is True
    assert smx_verify(
        RUSTCRYPTO_SIGNATURE, RUSTCRYPTO_MESSAGE, RUSTCRYPTO_PUBLIC[1:], 64, uid=RUSTCRYPTO_UID
    )
    der = _der(RUSTCRYPTO_SIGNATURE)
    assert SM2_SUITE.verify(RUSTCRYPTO_PUBLIC, der, RUSTCRYPTO_MESSAGE) is False


def test_sm2_published_key_file_loads_with_its_public_point() -> None:
    """RustCrypto's PKCS#8 SM2 key loads as an SM2 secret whose point is the published one,
    and writing it back gives the same file."""
    suite, secret = load_private_pem(RUSTCRYPTO_PEM)
    assert suite is SM2_SUITE
    assert SM2_SUITE.public_of(secret) == RUSTCRYPTO_PUBLIC
    assert SM2_SUITE.private_pem(secret) == RUSTCRYPTO_PEM


@pytest.mark.parametrize(("digest", "signature"), OPENSSL_SM2_DIGEST_VECTORS)
def test_sm2_published_digest_vectors(digest: str, signature: str) -> None:
    """OpenSSL's SM2_key1 vectors: the key file loads, its DER signatures are canonical, and
    each verifies over its digest e; a changed digest does not."""
    suite, secret = load_private_pem(OPENSSL_SM2_KEY1)
    assert suite is SM2_SUITE
    public = SM2_SUITE.public_of(secret)
    der = bytes.fromhex(signature)
    assert _der(_raw(der)) == der
    verifier = GmSM2(pk=public)
    assert verifier.verify_digest(bytes.fromhex(digest), _raw(der)) is True
    assert verifier.verify_digest(bytes(32), _raw(der)) is False


# --- SM2 round trips and cross-library checks -------------------------------------------------


def test_sm2_signs_and_verifies(sm2_key: tuple[bytes, bytes]) -> None:
    """A signature is canonical DER with r, s in range, verifies, and fails for other data,
    another key, or another user id."""
    secret, public = sm2_key
    signature = SM2_SUITE.sign(secret, b"statement")
    r, s = decode_dss_signature(signature)
    assert 1 <= r < SM2_N and 1 <= s < SM2_N
    assert encode_dss_signature(r, s) == signature
    assert SM2_SUITE.verify(public, signature, b"statement") is True
    assert SM2_SUITE.verify(public, signature, b"statemenT") is False
    other = SM2_SUITE.public_of(SM2_SUITE.generate())
    assert SM2_SUITE.verify(other, signature, b"statement") is False
    assert GmSM2(pk=public, uid=b"another").verify(b"statement", _raw(signature)) is False


def test_sm2_signatures_verify_under_snowland_smx(sm2_key: tuple[bytes, bytes]) -> None:
    """What we sign, snowland-smx verifies with the default user id (e = SM3(Z_A || M))."""
    secret, public = sm2_key
    for message in (b"", b"yrd.federation.v1/batch\0" + bytes(40), secrets.token_bytes(200)):
        raw = _raw(SM2_SUITE.sign(secret, message))
        assert smx_verify(raw, message, public[1:], 64, uid=SM2_DEFAULT_UID)
        assert not smx_verify(raw, message + b"x", public[1:], 64, uid=SM2_DEFAULT_UID)


def test_snowland_smx_signatures_verify_under_ours(sm2_key: tuple[bytes, bytes]) -> None:
    """What snowland-smx signs with the default user id, our verify accepts, and snowland-smx
    derives the same public key from the secret."""
    secret, public = sm2_key
    for message in (b"", b"receipt", secrets.token_bytes(200)):
        nonce = f"{secrets.randbelow(SM2_N - 1) + 1:064x}"
        raw = smx_sign(message, secret, nonce, 64, uid=SM2_DEFAULT_UID)
        assert raw is not None
        assert SM2_SUITE.verify(public, _der(raw), message) is True
        assert SM2_SUITE.verify(public, _der(raw), message + b"x") is False


def test_sm2_secret_range() -> None:
    """Generated secrets lie in [1, n-2]; secrets outside it, or of the wrong length, are
    refused with a ValueError before anything is signed."""
    for _ in range(20):
        assert 1 <= int.from_bytes(SM2_SUITE.generate(), "big") <= SM2_N - 2
    for bad in (bytes(32), (SM2_N - 1).to_bytes(32, "big"), SM2_N.to_bytes(32, "big"), b"\x01"):
        with pytest.raises(ValueError, match="SM2 secret"):
            SM2_SUITE.sign(bad, b"x")
        with pytest.raises(ValueError, match="SM2 secret"):
            SM2_SUITE.public_of(bad)
    assert SM2_SUITE.public_of((SM2_N - 2).to_bytes(32, "big"))[0] == 0x04


def test_sm2_key_file_round_trips(sm2_key: tuple[bytes, bytes]) -> None:
    """An SM2 key file is PKCS#8 (id-ecPublicKey, sm2p256v1, RFC 5915 inside) and loads back."""
    secret, public = sm2_key
    pem = SM2_SUITE.private_pem(secret)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----\n")
    assert load_private_pem(pem) == (SM2_SUITE, secret)
    assert public.hex() in pem_to_der(pem).hex()


def pem_to_der(pem: bytes) -> bytes:
    return base64.b64decode(b"".join(pem.strip().splitlines()[1:-1]))


# --- Ed25519 stays what it was ---------------------------------------------------------------


def test_ed25519_is_what_it_was() -> None:
    """On the same seed, the suite's key id, public key, signatures and key file are what
    node.trust.keys made before the suites (checked against cryptography's Ed25519): ids,
    manifests and key files written before stay valid."""
    seed = bytes(range(32))
    private = Ed25519PrivateKey.from_private_bytes(seed)
    raw = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    key = SigningKey(ED25519_SUITE.key_id(raw), seed, ED25519_SUITE)
    assert ED25519_SUITE.public_of(seed) == raw == key.verify_key.public_bytes
    assert key.key_id == "ed25519:" + hashlib.sha256(raw).hexdigest()[:32]
    for data in (b"", b"yrd.federation.v1/envelope\0message"):
        assert key.sign(data) == private.sign(data)  # Ed25519 signatures are deterministic
        assert key.verify_key.verify(private.sign(data), data)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert key.private_pem() == pem
    assert load_private_pem(pem) == (ED25519_SUITE, seed)


def test_ed25519_round_trip(ed25519_key: tuple[bytes, bytes]) -> None:
    """A generated Ed25519 key signs, verifies, refuses changed data, and its file loads."""
    secret, public = ed25519_key
    signature = ED25519_SUITE.sign(secret, b"statement")
    assert ED25519_SUITE.verify(public, signature, b"statement")
    assert not ED25519_SUITE.verify(public, signature, b"statemenT")
    assert load_private_pem(ED25519_SUITE.private_pem(secret)) == (ED25519_SUITE, secret)
    with pytest.raises(ValueError, match="32-byte seed"):
        ED25519_SUITE.sign(secret[:31], b"x")


# --- hostile input ---------------------------------------------------------------------------


def test_signature_of_the_other_suite_is_refused(
    sm2_key: tuple[bytes, bytes], ed25519_key: tuple[bytes, bytes]
) -> None:
    """An Ed25519 signature given to SM2 verify, an SM2 one to Ed25519 verify, and each
    suite's key given to the other's verify are all just False."""
    sm2_secret, sm2_public = sm2_key
    ed_secret, ed_public = ed25519_key
    ed_signature = ED25519_SUITE.sign(ed_secret, b"m")
    sm2_signature = SM2_SUITE.sign(sm2_secret, b"m")
    assert SM2_SUITE.verify(sm2_public, ed_signature, b"m") is False
    assert ED25519_SUITE.verify(ed_public, sm2_signature, b"m") is False
    assert SM2_SUITE.verify(ed_public, sm2_signature, b"m") is False
    assert ED25519_SUITE.verify(sm2_public, ed_signature, b"m") is False
    # A 64-byte r||s is the right length for Ed25519 and still not an Ed25519 signature.
    assert ED25519_SUITE.verify(ed_public, _raw(sm2_signature), b"m") is False


def _malformed_der(signature: bytes) -> dict[str, bytes]:
    r, s = decode_dss_signature(signature)
    # The INTEGER contents as the signature has them (minimal, 0x00 before a high bit).
    r_content = signature[4 : 4 + signature[3]]
    s_content = signature[6 + len(r_content) :]
    assert signature[5 + len(r_content)] == len(s_content)

    def integer(content: bytes) -> bytes:
        return b"\x02" + bytes([len(content)]) + content

    def sequence(body: bytes) -> bytes:
        return b"\x30" + bytes([len(body)]) + body

    def signed(value: int) -> bytes:
        return value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True)

    body = signature[2:]
    return {
        "empty": b"",
        "truncated by one": signature[:-1],
        "truncated header": signature[:3],
        "raw r||s": r.to_bytes(32, "big") + s.to_bytes(32, "big"),
        "trailing zero": signature + b"\x00",
        "trailing garbage": signature + b"garbage",
        "long-form sequence length": b"\x30\x81" + bytes([len(body)]) + body,
        "indefinite length": b"\x30\x80" + body + b"\x00\x00",
        "wrong outer tag": b"\x31" + signature[1:],
        "sequence length one too long": b"\x30" + bytes([len(body) + 1]) + body,
        "sequence length one too short": b"\x30" + bytes([len(body) - 1]) + body,
        "long-form integer length": sequence(
            b"\x02\x81" + bytes([len(r_content)]) + r_content + integer(s_content)
        ),
        "r padded with a zero": sequence(integer(b"\x00" + r_content) + integer(s_content)),
        "s padded with a zero": sequence(integer(r_content) + integer(b"\x00" + s_content)),
        "r padded to 34 bytes": sequence(
            integer(r_content.rjust(34, b"\x00")) + integer(s_content)
        ),
        "r zero": encode_dss_signature(0, s),
        "s zero": encode_dss_signature(r, 0),
        "r empty integer": sequence(b"\x02\x00" + integer(s_content)),
        "r negative": sequence(integer(signed(-r)) + integer(s_content)),
        "s negative": sequence(integer(r_content) + integer(signed(-s))),
        "r negative, 33 bytes": sequence(integer(signed(r - 2**263)) + integer(s_content)),
        "r = n": encode_dss_signature(SM2_N, s),
        "s = n": encode_dss_signature(r, SM2_N),
        "r = n + r": encode_dss_signature(SM2_N + r, s),
        "s = n + s": encode_dss_signature(r, SM2_N + s),
        "r + s = n": encode_dss_signature(r, SM2_N - r),
        "r = 2^256 - 1": encode_dss_signature(2**256 - 1, s),
        "huge r": encode_dss_signature(2**600 + r, s),
        "three integers": sequence(integer(r_content) + integer(s_content) + integer(b"\x01")),
        "one integer": sequence(integer(r_content)),
        "octet strings": sequence(b"\x04" + body[1:]),
        "r and s swapped": encode_dss_signature(s, r),
    }


def test_malformed_der_signatures_are_refused(sm2_key: tuple[bytes, bytes]) -> None:
    """Every malformed, non-canonical or out-of-range DER form of a valid signature is False,
    never an exception."""
    secret, public = sm2_key
    signature = SM2_SUITE.sign(secret, b"m")
    assert SM2_SUITE.verify(public, signature, b"m") is True
    for name, bad in _malformed_der(signature).items():
        assert SM2_SUITE.verify(public, bad, b"m") is False, name


def _hostile_sm2_points(public: bytes) -> dict[str, bytes]:
    x, y = public[1:33], public[33:]
    y_int = int.from_bytes(y, "big")
    return {
        "empty": b"",
        "infinity as one zero byte": b"\x00",
        "infinity as 04||0||0": b"\x04" + bytes(64),
        "all zeros": bytes(65),
        "raw x||y": x + y,
        "compressed": bytes(GmSM2.convert_pk(public, 1)),
        "compressed, other parity": bytes([0x03 - (y_int & 1)]) + x,
        "hybrid": bytes(GmSM2.convert_pk(public, 2)),
        "hybrid by hand": bytes([0x06 + (y_int & 1)]) + x + y,
        "prefix 05": b"\x05" + x + y,
        "one byte too long": public + b"\x00",
        "one byte too short": public[:-1],
        "off the curve": b"\x04" + x + (y_int ^ 1).to_bytes(32, "big"),
        "y reversed": b"\x04" + x + y[::-1],
        "x = p": b"\x04" + SM2_P.to_bytes(32, "big") + y,
        "x, y all ones": b"\x04" + b"\xff" * 64,
        "y = p": b"\x04" + x + SM2_P.to_bytes(32, "big"),
    }


def test_hostile_sm2_public_keys_are_refused(sm2_key: tuple[bytes, bytes]) -> None:
    """Points off the curve, at infinity, compressed or hybrid, and wrong lengths: verify is
    False and check_public raises a ValueError with a sentence."""
    secret, public = sm2_key
    SM2_SUITE.check_public(public)
    signature = SM2_SUITE.sign(secret, b"m")
    for name, bad in _hostile_sm2_points(public).items():
        assert SM2_SUITE.verify(bad, signature, b"m") is False, name
        with pytest.raises(ValueError, match=r"SM2 public key .{10,}"):
            SM2_SUITE.check_public(bad)


def test_sm2_refusals_say_what_is_wrong(sm2_key: tuple[bytes, bytes]) -> None:
    """check_public names the length, the prefix or the curve."""
    _, public = sm2_key
    with pytest.raises(ValueError, match="65-byte uncompressed point 04\\|\\|x\\|\\|y, not 33"):
        SM2_SUITE.check_public(bytes(GmSM2.convert_pk(public, 1)))
    with pytest.raises(ValueError, match="starts with 0x06; only the uncompressed"):
        SM2_SUITE.check_public(b"\x06" + public[1:])
    with pytest.raises(ValueError, match="not a point on the sm2p256v1 curve"):
        SM2_SUITE.check_public(public[:-1] + bytes([public[-1] ^ 1]))


def test_hostile_ed25519_public_keys_are_refused(ed25519_key: tuple[bytes, bytes]) -> None:
    """Wrong lengths, small-order and non-canonical points: verify is False and check_public
    raises a ValueError."""
    secret, public = ed25519_key
    ED25519_SUITE.check_public(public)
    signature = ED25519_SUITE.sign(secret, b"m")
    identity = b"\x01" + bytes(31)
    p = 2**255 - 19
    for name, bad in {
        "empty": b"",
        "short": public[:31],
        "long": public + b"\x00",
        "identity (small order)": identity,
        "order 2 point": (p - 1).to_bytes(32, "little"),
        "non-canonical y = p + 1": (p + 1).to_bytes(32, "little"),
        "an SM2 point": SM2_SUITE.public_of(SM2_SUITE.generate()),
    }.items():
        assert ED25519_SUITE.verify(bad, signature, b"m") is False, name
        with pytest.raises(ValueError, match="Ed25519 public key"):
            ED25519_SUITE.check_public(bad)


def as_pem(body: bytes) -> bytes:
    return b"\n".join([PEM_BEGIN, base64.b64encode(body), PEM_END])


PEM_BEGIN = b"-----BEGIN PRIVATE KEY-----"
PEM_END = b"-----END PRIVATE KEY-----"


def test_hostile_key_files_are_refused() -> None:
    """Key files that are not unencrypted PKCS#8 Ed25519 or SM2 keys are a ValueError naming
    the problem: other curves, other algorithms, other PEM labels, bad base64, bad DER, and an
    SM2 file whose public key is not its private key's."""
    p256 = ec.generate_private_key(ec.SECP256R1())
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    pkcs8 = serialization.PrivateFormat.PKCS8
    pem = serialization.Encoding.PEM
    none = serialization.NoEncryption()
    good = SM2_SUITE.private_pem(SM2_SUITE.generate())
    der = pem_to_der(good)
    other_point = SM2_SUITE.public_of(SM2_SUITE.generate())
    mismatched = der.replace(der[-65:], other_point)

    cases = {
        "P-256": (p256.private_bytes(pem, pkcs8, none), "sm2p256v1"),
        "RSA": (rsa_key.private_bytes(pem, pkcs8, none), r"OID 1\.2\.840\.113549\.1\.1\.1"),
        "SEC1 label": (
            p256.private_bytes(pem, serialization.PrivateFormat.TraditionalOpenSSL, none),
            "BEGIN EC PRIVATE KEY",
        ),
        "encrypted": (
            p256.private_bytes(pem, pkcs8, serialization.BestAvailableEncryption(b"pw")),
            "ENCRYPTED",
        ),
        "empty": (b"", "PKCS#8"),
        "bad base64": (good.replace(b"MIGH", b"M!GH"), "base64"),
        "truncated DER": (as_pem(der[:-10]), "DER"),
        "trailing DER": (as_pem(der + b"\x00"), "DER"),
        "public key mismatch": (as_pem(mismatched), "does not match"),
        "zero secret": (as_pem(der.replace(der[36:68], bytes(32))), r"\[1, n-2\]"),
        "outer public key": (
            as_pem(der[:1] + bytes([der[1], der[2] + 68]) + der[3:] + b"\x81\x42\x00" + der[-65:]),
            "fields after the private key",
        ),
    }
    for name, (data, message) in cases.items():
        with pytest.raises(ValueError, match=message):
            load_private_pem(data)
        assert name, message


# --- fuzz ------------------------------------------------------------------------------------


@settings(max_examples=400)
@given(st.sampled_from(sorted(SUITES)), st.binary(max_size=100), st.binary(max_size=100))
def test_verify_never_raises_on_random_bytes(name: str, public: bytes, signature: bytes) -> None:
    """Any bytes as key and signature give a bool, never an exception or a crash."""
    assert SUITES[name].verify(public, signature, b"m") is False


@settings(max_examples=300)
@given(
    st.sampled_from(sorted(SUITES)),
    st.one_of(
        st.binary(max_size=100),
        st.binary(min_size=64, max_size=64).map(lambda b: b"\x04" + b),
        st.binary(min_size=32, max_size=32).map(lambda b: b"\x02" + b),
    ),
)
def test_check_public_raises_only_value_error(name: str, public: bytes) -> None:
    """check_public on any bytes accepts a key of the suite's length or raises ValueError."""
    suite: Suite = SUITES[name]
    try:
        suite.check_public(public)
    except ValueError:
        return
    assert len(public) == suite.public_length


def _mutations(data: bytes) -> st.SearchStrategy[bytes]:
    flips = st.tuples(st.integers(0, len(data) - 1), st.integers(1, 255)).map(
        lambda t: data[: t[0]] + bytes([data[t[0]] ^ t[1]]) + data[t[0] + 1 :]
    )
    cuts = st.integers(0, len(data) - 1).map(lambda i: data[:i] + data[i + 1 :])
    inserts = st.tuples(st.integers(0, len(data)), st.binary(min_size=1, max_size=3)).map(
        lambda t: data[: t[0]] + t[1] + data[t[0] :]
    )
    return st.one_of(flips, cuts, inserts)


_FUZZ_SECRET = SM2_SUITE.generate()
_FUZZ_PUBLIC = SM2_SUITE.public_of(_FUZZ_SECRET)
_FUZZ_SIGNATURE = SM2_SUITE.sign(_FUZZ_SECRET, b"m")


@settings(max_examples=400)
@given(_mutations(_FUZZ_SIGNATURE), _mutations(_FUZZ_PUBLIC))
def test_mutated_sm2_signatures_and_keys_are_refused(signature: bytes, public: bytes) -> None:
    """One byte changed, removed or added in a valid DER signature, or in the key, never
    verifies and never raises."""
    assert SM2_SUITE.verify(_FUZZ_PUBLIC, signature, b"m") is False
    assert SM2_SUITE.verify(public, _FUZZ_SIGNATURE, b"m") is False


@settings(max_examples=200)
@given(st.integers(1, SM2_N - 1), st.integers(1, SM2_N - 1))
def test_random_in_range_sm2_signatures_are_refused(r: int, s: int) -> None:
    """Canonical DER with r and s in range reaches gmalglib's arithmetic, which says no."""
    assert SM2_SUITE.verify(_FUZZ_PUBLIC, encode_dss_signature(r, s), b"m") is False


_FUZZ_PEM = SM2_SUITE.private_pem(_FUZZ_SECRET)


@settings(max_examples=300)
@given(st.one_of(st.binary(max_size=300), _mutations(pem_to_der(_FUZZ_PEM))))
def test_load_private_pem_raises_only_value_error(body: bytes) -> None:
    """Random or mutated key-file contents load or raise ValueError, nothing else."""
    try:
        suite, secret = load_private_pem(as_pem(body))
    except ValueError:
        return
    assert suite.public_of(secret)


# --- OpenSSL ---------------------------------------------------------------------------------

OPENSSL = shutil.which("openssl")
DISTID = f"distid:{SM2_DEFAULT_UID.decode()}"


def _openssl(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    assert OPENSSL is not None
    return subprocess.run([OPENSSL, *args], input=data, capture_output=True, timeout=60)


openssl_only = pytest.mark.skipif(OPENSSL is None, reason="openssl is not installed")


@pytest.mark.slow
@openssl_only
def test_openssl_reads_our_sm2_key_file(tmp_path: Path, sm2_key: tuple[bytes, bytes]) -> None:
    """openssl pkey reads our key file as an SM2 key with the same secret and public point."""
    secret, public = sm2_key
    path = tmp_path / "key.pem"
    path.write_bytes(SM2_SUITE.private_pem(secret))
    shown = _openssl("pkey", "-in", str(path), "-noout", "-text")
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout.decode()
    assert "ASN1 OID: SM2" in text

    def field(name: str) -> str:
        match = re.search(rf"^{name}:\n((?:\s+[0-9a-f:]+\n)+)", text, re.M)
        assert match is not None, text
        return re.sub(r"[\s:]", "", match.group(1))

    assert field("pub") == public.hex()
    assert int(field("priv"), 16) == int.from_bytes(secret, "big")


@pytest.mark.slow
@openssl_only
@pytest.mark.parametrize(
    "generate",
    [
        ("genpkey", "-algorithm", "SM2"),
        ("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:SM2"),
    ],
)
def test_openssl_sm2_keys_and_signatures_interoperate(
    tmp_path: Path, generate: tuple[str, ...]
) -> None:
    """A key OpenSSL generates loads with our loader; what OpenSSL signs (SM3, default
    distinguishing id) we verify, and what we sign OpenSSL verifies."""
    key = tmp_path / "key.pem"
    made = _openssl(*generate, "-out", str(key))
    assert made.returncode == 0, made.stderr
    suite, secret = load_private_pem(key.read_bytes())
    assert suite is SM2_SUITE
    public = SM2_SUITE.public_of(secret)
    message = tmp_path / "message"
    message.write_bytes(b"yrd.federation.v1/envelope\0" + secrets.token_bytes(100))
    sign = ("pkeyutl", "-sign", "-rawin", "-digest", "sm3", "-inkey", str(key))
    signed = _openssl(*sign, "-pkeyopt", DISTID, "-in", str(message))
    assert signed.returncode == 0, signed.stderr
    assert SM2_SUITE.verify(public, signed.stdout, message.read_bytes()) is True

    ours = tmp_path / "ours.sig"
    ours.write_bytes(SM2_SUITE.sign(secret, message.read_bytes()))
    verify = ("pkeyutl", "-verify", "-rawin", "-digest", "sm3", "-inkey", str(key))
    checked = _openssl(*verify, "-pkeyopt", DISTID, "-in", str(message), "-sigfile", str(ours))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # OpenSSL 3 hashes an empty id when none is given: the default id must be passed.
    other = _openssl(*verify, "-in", str(message), "-sigfile", str(ours))
    assert other.returncode != 0


@pytest.mark.slow
@openssl_only
def test_openssl_verifies_with_our_key_file(tmp_path: Path, sm2_key: tuple[bytes, bytes]) -> None:
    """OpenSSL, given only our key file, verifies our signature and signs what we verify."""
    secret, public = sm2_key
    key = tmp_path / "key.pem"
    key.write_bytes(SM2_SUITE.private_pem(secret))
    message = tmp_path / "message"
    message.write_bytes(b"evidence bundle")
    sig = tmp_path / "sig"
    sig.write_bytes(SM2_SUITE.sign(secret, message.read_bytes()))
    common = ("-rawin", "-digest", "sm3", "-inkey", str(key), "-pkeyopt", DISTID)
    checked = _openssl("pkeyutl", "-verify", *common, "-in", str(message), "-sigfile", str(sig))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    signed = _openssl("pkeyutl", "-sign", *common, "-in", str(message))
    assert signed.returncode == 0, signed.stderr
    assert SM2_SUITE.verify(public, signed.stdout, b"evidence bundle") is True


# --- benchmark -------------------------------------------------------------------------------


@pytest.mark.slow
def test_suite_benchmark_runs() -> None:
    """bench/suites.py --quick --json prints a rate for every suite and operation and the
    SM2 / Ed25519 ratios (figures are not judged here)."""
    bench = Path(__file__).resolve().parents[1] / "bench" / "suites.py"
    result = subprocess.run(
        [sys.executable, str(bench), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    figures = json.loads(result.stdout)
    for name in SUITES:
        for operation in ("sign", "verify", "hash"):
            assert figures["per_second"][name][operation] > 0
    assert set(figures["ratio_sm2_over_ed25519"]) == {"sign", "verify", "hash"}
