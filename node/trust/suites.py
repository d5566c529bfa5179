"""Algorithm suites: how a key signs, verifies, digests, is named and is stored.

A suite is a signature algorithm together with the hash that names what it signs (DESIGN §3,
§4). Two exist:

- ``ed25519``: Ed25519 signatures (RFC 8032) made and checked in libsodium, SHA-256 digests.
- ``sm2``: SM2 signatures (GB/T 32918) with the GM/T 0009 default user id
  ``1234567812345678``, DER-encoded ``SEQUENCE {INTEGER r, INTEGER s}``, and SM3 digests
  (GB/T 32905), computed in gmalglib's C code.

Rules kept here:
- Keys travel as bytes: a secret is the 32-byte Ed25519 seed or the 32-byte SM2 scalar; a
  public key is the 32-byte Ed25519 key or the 65-byte uncompressed SM2 point ``04||x||y``.
  Compressed and hybrid points are refused so that one key has one encoding, and so one id.
- A key id is ``<suite>:<fingerprint>``, the fingerprint the first 32 hex digits of SHA-256
  over the public key bytes, for both suites: the id only names a key (it is never signed as
  a digest), and Ed25519 ids stay exactly what they have always been.
- ``verify`` never raises on what a peer sends: a key or signature of the wrong length, the
  wrong suite, malformed or non-canonical DER, ``r`` or ``s`` outside ``[1, n-1]``, a point
  off the curve or at infinity are all just ``False``. ``check_public`` is the loud variant,
  for parsing a manifest: a malformed key is a ``ValueError`` that says what is wrong.
- Private key files are PKCS#8 PEM (``-----BEGIN PRIVATE KEY-----``) for both suites, so the
  file names its own suite and OpenSSL reads it: Ed25519 as ``cryptography`` writes it, SM2
  as id-ecPublicKey on curve sm2p256v1 wrapping an RFC 5915 ECPrivateKey, as OpenSSL 3 does.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from abc import ABC, abstractmethod
from functools import lru_cache
from typing import Final

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)
from gmalglib.sm2 import SM2 as _GmSM2  # type: ignore[import-untyped]
from gmalglib.sm3 import SM3 as _GmSM3  # type: ignore[import-untyped]
from nacl.bindings import (
    crypto_core_ed25519_is_valid_point,
    crypto_sign,
    crypto_sign_BYTES,
    crypto_sign_open,
    crypto_sign_seed_keypair,
)
from nacl.exceptions import BadSignatureError

ED25519: Final = "ed25519"
SM2: Final = "sm2"

SM2_DEFAULT_UID: Final = b"1234567812345678"
"""GM/T 0009's default user id: the ``ID_A`` hashed into ``Z_A`` for every SM2 signature."""

SM2_N: Final = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
"""The order of the sm2p256v1 base point (GB/T 32918.5)."""

FINGERPRINT_HEX_DIGITS: Final = 32

FIXED_SIGNATURE_LENGTH: Final = 64
"""An Ed25519 signature as it is; an SM2 signature as (r, s), 32 bytes each, big-endian."""

# The longest DER signature: SEQUENCE of two INTEGERs of 33 bytes (a leading 0x00 when the top
# bit of a 32-byte value is set). Anything longer is refused before it is parsed.
_SM2_DER_SIGNATURE_MAX: Final = 2 + 2 * (2 + 33)

# DER encodings (tag, length, value) of the object identifiers a key file may name.
_OID_ED25519: Final = bytes.fromhex("06032b6570")  # 1.3.101.112
_OID_EC_PUBLIC_KEY: Final = bytes.fromhex("06072a8648ce3d0201")  # 1.2.840.10045.2.1
_OID_SM2P256V1: Final = bytes.fromhex("06082a811ccf5501822d")  # 1.2.156.10197.1.301

_PEM_BEGIN: Final = b"-----BEGIN PRIVATE KEY-----"
_PEM_END: Final = b"-----END PRIVATE KEY-----"


class Suite(ABC):
    """One signature algorithm and its hash; every signature in the project goes through one."""

    name: str
    """The suite's name, the prefix of its key ids: ``ed25519`` or ``sm2``."""

    public_length: int
    """The length in bytes of an encoded public key."""

    @abstractmethod
    def hash(self, data: bytes) -> bytes:
        """The digest that names signed messages and builds RFC 9162 trees (32 bytes)."""

    @abstractmethod
    def generate(self) -> bytes:
        """A new secret key, from the operating system's random source."""

    @abstractmethod
    def public_of(self, secret: bytes) -> bytes:
        """The encoded public key of a secret key."""

    @abstractmethod
    def sign(self, secret: bytes, data: bytes) -> bytes:
        """A signature over ``data`` (the whole statement, never a digest of it)."""

    @abstractmethod
    def verify(self, public: bytes, signature: bytes, data: bytes) -> bool:
        """Whether ``signature`` is this suite's signature over ``data`` by ``public``.

        Never raises on malformed keys or signatures: they are simply not valid."""

    @abstractmethod
    def to_fixed(self, signature: bytes) -> bytes:
        """One of this suite's own signatures in ``FIXED_SIGNATURE_LENGTH`` bytes, for a
        format with no room for a length (an offline presentation's QR code)."""

    @abstractmethod
    def from_fixed(self, fixed: bytes) -> bytes:
        """The signature ``verify`` takes, from its fixed-length form; never raises (what
        comes back from hostile bytes simply does not verify)."""

    @abstractmethod
    def check_public(self, public: bytes) -> None:
        """Raise ``ValueError`` with a sentence saying what is wrong unless ``public`` is a
        well-formed public key of this suite."""

    @abstractmethod
    def private_pem(self, secret: bytes) -> bytes:
        """The secret key as an unencrypted PKCS#8 PEM file that names its algorithm."""

    def fingerprint(self, public: bytes) -> str:
        """The first 32 hex digits of SHA-256 over the encoded public key."""
        return hashlib.sha256(public).hexdigest()[:FINGERPRINT_HEX_DIGITS]

    def key_id(self, public: bytes) -> str:
        """``<suite>:<fingerprint>``, the id signatures are published under."""
        return f"{self.name}:{self.fingerprint(public)}"

    def __repr__(self) -> str:
        return f"<Suite {self.name}>"


class Ed25519Suite(Suite):
    """Ed25519 in libsodium (twice OpenSSL's speed here), SHA-256 digests."""

    name = ED25519
    public_length = 32

    def hash(self, data: bytes) -> bytes:
        return hashlib.sha256(data).digest()

    def generate(self) -> bytes:
        return secrets.token_bytes(32)

    def public_of(self, secret: bytes) -> bytes:
        return _ed25519_keypair(_ed25519_seed(secret))[0]

    def sign(self, secret: bytes, data: bytes) -> bytes:
        expanded = _ed25519_keypair(_ed25519_seed(secret))[1]
        return bytes(crypto_sign(data, expanded)[:crypto_sign_BYTES])

    def verify(self, public: bytes, signature: bytes, data: bytes) -> bool:
        if len(public) != self.public_length or len(signature) != crypto_sign_BYTES:
            return False
        try:
            crypto_sign_open(signature + data, public)
        except (BadSignatureError, ValueError, TypeError):
            return False
        return True

    def to_fixed(self, signature: bytes) -> bytes:
        return bytes(signature)

    def from_fixed(self, fixed: bytes) -> bytes:
        return bytes(fixed)

    def check_public(self, public: bytes) -> None:
        if len(public) != self.public_length:
            raise ValueError(
                f"an Ed25519 public key is {self.public_length} bytes, not {len(public)}"
            )
        # libsodium refuses to verify under a non-canonical or small-order key; refusing it
        # when the manifest is read says so once, instead of failing every signature later.
        if not crypto_core_ed25519_is_valid_point(public):
            raise ValueError(
                "the Ed25519 public key is not a valid curve point "
                "(non-canonical, of small order, or off the prime-order subgroup)"
            )

    def private_pem(self, secret: bytes) -> bytes:
        private = Ed25519PrivateKey.from_private_bytes(_ed25519_seed(secret))
        return private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def _ed25519_seed(secret: bytes) -> bytes:
    if len(secret) != 32:
        raise ValueError(f"an Ed25519 secret key is a 32-byte seed, not {len(secret)} bytes")
    return bytes(secret)


@lru_cache(maxsize=64)
def _ed25519_keypair(seed: bytes) -> tuple[bytes, bytes]:
    # Expanding the seed is a scalar multiplication, as costly as the signature itself; a
    # node signs with one or two keys, so keep their expansions.
    public, expanded = crypto_sign_seed_keypair(seed)
    return bytes(public), bytes(expanded)


class Sm2Suite(Suite):
    """SM2 with the default user id and DER signatures, SM3 digests; gmalglib's C code."""

    name = SM2
    public_length = 65

    def hash(self, data: bytes) -> bytes:
        return bytes(_GmSM3(data).digest())

    def generate(self) -> bytes:
        # GB/T 32918.1 §6.1: d in [1, n-2], so that 1 + d is invertible mod n.
        return (secrets.randbelow(SM2_N - 2) + 1).to_bytes(32, "big")

    def public_of(self, secret: bytes) -> bytes:
        _check_sm2_secret(secret)
        return bytes(_GmSM2.get_pk(secret))

    def sign(self, secret: bytes, data: bytes) -> bytes:
        raw = bytes(_sm2_signer(_check_sm2_secret(secret)).sign(data))
        r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        return encode_dss_signature(r, s)

    def verify(self, public: bytes, signature: bytes, data: bytes) -> bool:
        raw = _sm2_raw_signature(signature)
        if raw is None or not _sm2_public_is_valid(public):
            return False
        try:
            return bool(_sm2_verifier(bytes(public)).verify(data, raw))
        except (ValueError, TypeError, AttributeError, OverflowError):
            return False

    def to_fixed(self, signature: bytes) -> bytes:
        raw = _sm2_raw_signature(signature)
        if raw is None:
            raise ValueError("not a canonical DER SM2 signature")
        return raw

    def from_fixed(self, fixed: bytes) -> bytes:
        if len(fixed) != FIXED_SIGNATURE_LENGTH:
            return b""
        return encode_dss_signature(
            int.from_bytes(fixed[:32], "big"), int.from_bytes(fixed[32:], "big")
        )

    def check_public(self, public: bytes) -> None:
        if len(public) != self.public_length:
            raise ValueError(
                "an SM2 public key is the 65-byte uncompressed point 04||x||y, "
                f"not {len(public)} bytes"
            )
        if public[0] != 0x04:
            raise ValueError(
                f"the SM2 public key starts with 0x{public[0]:02x}; only the uncompressed "
                "form (0x04) is accepted"
            )
        if not _GmSM2.is_pk_valid(bytes(public)):
            raise ValueError("the SM2 public key is not a point on the sm2p256v1 curve")

    def private_pem(self, secret: bytes) -> bytes:
        d = _check_sm2_secret(secret)
        point = self.public_of(d)
        ec_private_key = _der(
            0x30,
            _der(0x02, b"\x01")  # ecPrivkeyVer1
            + _der(0x04, d)
            + _der(0xA1, _der(0x03, b"\x00" + point)),
        )
        pkcs8 = _der(
            0x30,
            _der(0x02, b"\x00")
            + _der(0x30, _OID_EC_PUBLIC_KEY + _OID_SM2P256V1)
            + _der(0x04, ec_private_key),
        )
        body = base64.b64encode(pkcs8)
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        return b"\n".join([_PEM_BEGIN, *lines, _PEM_END]) + b"\n"


def _check_sm2_secret(secret: bytes) -> bytes:
    if len(secret) != 32:
        raise ValueError(f"an SM2 secret key is 32 bytes, not {len(secret)}")
    if not _GmSM2.is_sk_valid(bytes(secret)):
        raise ValueError("an SM2 secret key must lie in [1, n-2]")
    return bytes(secret)


def _sm2_public_is_valid(public: bytes) -> bool:
    # gmalglib raises on a wrong length and accepts compressed (02/03) and hybrid (06/07)
    # points; only the uncompressed form is ours, so check length and prefix first.
    if len(public) != 65 or public[0] != 0x04:
        return False
    try:
        return bool(_GmSM2.is_pk_valid(bytes(public)))
    except (ValueError, TypeError):
        return False


def _sm2_raw_signature(signature: bytes) -> bytes | None:
    """The 64-byte ``r||s`` of a canonical DER signature with r, s in [1, n-1], else None."""
    if not 8 <= len(signature) <= _SM2_DER_SIGNATURE_MAX:
        return None
    try:
        r, s = decode_dss_signature(bytes(signature))
    except (ValueError, TypeError, OverflowError):
        return None
    if not (1 <= r < SM2_N and 1 <= s < SM2_N):
        return None
    # One signature, one encoding: re-encoding refuses long-form lengths, padded integers and
    # trailing bytes, whatever the parser tolerates.
    if encode_dss_signature(r, s) != signature:
        return None
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


# gmalglib computes Z_A (an SM3 over the curve, the user id and the key) and decodes the point
# when an SM2 object is made; a node signs with one key and verifies a handful, so keep them.
# Only validated keys reach these caches; gmalglib holds the GIL, so sharing them is safe.
@lru_cache(maxsize=8)
def _sm2_signer(secret: bytes) -> _GmSM2:
    return _GmSM2(sk=secret, uid=SM2_DEFAULT_UID)


@lru_cache(maxsize=256)
def _sm2_verifier(public: bytes) -> _GmSM2:
    return _GmSM2(pk=public, uid=SM2_DEFAULT_UID)


ED25519_SUITE: Final = Ed25519Suite()
SM2_SUITE: Final = Sm2Suite()
SUITES: Final[dict[str, Suite]] = {ED25519: ED25519_SUITE, SM2: SM2_SUITE}


def suite_named(name: str) -> Suite:
    """The suite called ``name``; ``ValueError`` naming the known ones otherwise."""
    try:
        return SUITES[name]
    except KeyError:
        known = ", ".join(sorted(SUITES))
        raise ValueError(f"unknown signature suite {name!r}; known suites: {known}") from None


def suite_of_key_id(key_id: str) -> Suite:
    """The suite a key id (``<suite>:<fingerprint>``) names."""
    name, sep, fingerprint = key_id.partition(":")
    if not sep or not fingerprint:
        raise ValueError(f"key id {key_id!r} is not of the form <suite>:<fingerprint>")
    return suite_named(name)


def load_private_pem(data: bytes) -> tuple[Suite, bytes]:
    """The suite and secret key of a PKCS#8 PEM file (as ``private_pem`` or OpenSSL writes).

    Raises ``ValueError`` with a sentence saying what is wrong."""
    der = _pem_body(data)
    try:
        version, algorithm, private, *extra = _der_sequence(der, "the PKCS#8 structure", at_least=3)
        if version not in ((0x02, b"\x00"), (0x02, b"\x01")):
            raise ValueError("the PKCS#8 version is neither 0 nor 1")
        if algorithm[0] != 0x30 or private[0] != 0x04:
            raise ValueError("the PKCS#8 structure is not {version, algorithm, key}")
        identifier = _der_parts(algorithm[1], "the algorithm identifier")
        if not identifier or identifier[0][0] != 0x06 or len(identifier) > 2:
            raise ValueError("the algorithm identifier is not {OID, parameters}")
        oid = _der(*identifier[0])
        if oid == _OID_ED25519:
            return ED25519_SUITE, _load_ed25519(der)
        if oid == _OID_EC_PUBLIC_KEY:
            curve = _der(*identifier[1]) if len(identifier) == 2 else b""
            if curve != _OID_SM2P256V1:
                raise ValueError("the EC key is not on curve sm2p256v1 (1.2.156.10197.1.301)")
            if extra:
                # Attributes or a second copy of the public key outside the ECPrivateKey:
                # OpenSSL writes neither, and an unchecked copy could disagree with the key.
                raise ValueError("the SM2 key file has fields after the private key")
            return SM2_SUITE, _load_sm2(private[1])
        raise ValueError(f"the key's algorithm (OID {_oid_text(oid)}) is neither Ed25519 nor SM2")
    except _DerError as exc:
        raise ValueError(f"the private key is not well-formed DER: {exc}") from None


def _pem_body(data: bytes) -> bytes:
    text = bytes(data).strip()
    if not text.startswith(_PEM_BEGIN) or not text.endswith(_PEM_END):
        first = text.split(b"\n", 1)[0][:64].decode("ascii", "replace")
        raise ValueError(
            f"a private key file is an unencrypted PKCS#8 PEM ({_PEM_BEGIN.decode()}); "
            f"this one begins {first!r}"
        )
    body = b"".join(text[len(_PEM_BEGIN) : -len(_PEM_END)].split())
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the PEM body is not base64: {exc}") from None


def _load_ed25519(der: bytes) -> bytes:
    try:
        private = serialization.load_der_private_key(der, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ValueError(f"the Ed25519 key file does not load: {exc}") from None
    if not isinstance(private, Ed25519PrivateKey):
        raise ValueError("the key file names Ed25519 but holds another kind of key")
    return private.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def _load_sm2(ec_private_key: bytes) -> bytes:
    version, key, *optional = _der_sequence(ec_private_key, "the ECPrivateKey", at_least=2)
    if version != (0x02, b"\x01") or key[0] != 0x04:
        raise ValueError("the ECPrivateKey is not {version 1, private key, ...} (RFC 5915)")
    if not 1 <= len(key[1]) <= 32:
        raise ValueError(f"the SM2 private key is {len(key[1])} bytes, at most 32")
    secret = key[1].rjust(32, b"\x00")
    if not _GmSM2.is_sk_valid(secret):
        raise ValueError("the SM2 private key is not in [1, n-2]")
    tags = [tag for tag, _ in optional]
    if tags not in ([], [0xA0], [0xA1], [0xA0, 0xA1]):
        raise ValueError("the ECPrivateKey has fields other than [0] parameters, [1] public key")
    for tag, value in optional:
        if tag == 0xA0 and value != _OID_SM2P256V1:
            raise ValueError("the ECPrivateKey's parameters name a curve other than sm2p256v1")
        if tag == 0xA1:
            bits = _der_parts(value, "the ECPrivateKey's public key")
            public = SM2_SUITE.public_of(secret)
            if bits != [(0x03, b"\x00" + public)]:
                raise ValueError("the ECPrivateKey's public key does not match its private key")
    return secret


class _DerError(ValueError):
    pass


def _der(tag: int, value: bytes) -> bytes:
    size = len(value)
    if size < 0x80:
        return bytes([tag, size]) + value
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + value


def _der_parts(data: bytes, what: str) -> list[tuple[int, bytes]]:
    """The (tag, value) elements one after another in ``data``, read as strict DER."""
    parts: list[tuple[int, bytes]] = []
    at = 0
    while at < len(data):
        if at + 2 > len(data):
            raise _DerError(f"{what} ends inside a header")
        tag, first = data[at], data[at + 1]
        if tag & 0x1F == 0x1F:
            raise _DerError(f"{what} uses a multi-byte tag")
        at += 2
        if first < 0x80:
            size = first
        else:
            count = first & 0x7F
            if count == 0 or count > 4 or at + count > len(data):
                raise _DerError(f"{what} has an indefinite or oversized length")
            size = int.from_bytes(data[at : at + count], "big")
            if size < 0x80 or data[at] == 0:
                raise _DerError(f"{what} has a length not in its shortest form")
            at += count
        if at + size > len(data):
            raise _DerError(f"{what} is truncated")
        parts.append((tag, data[at : at + size]))
        at += size
    return parts


def _der_sequence(data: bytes, what: str, *, at_least: int) -> list[tuple[int, bytes]]:
    outer = _der_parts(data, what)
    if len(outer) != 1 or outer[0][0] != 0x30:
        raise _DerError(f"{what} is not one SEQUENCE")
    inner = _der_parts(outer[0][1], what)
    if len(inner) < at_least:
        raise _DerError(f"{what} has {len(inner)} fields, expected at least {at_least}")
    return inner


def _oid_text(encoded: bytes) -> str:
    body = encoded[2:]
    if not body:
        return "?"
    arcs: list[int] = []
    value = 0
    for byte in body:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        return "?"
    first = min(arcs[0] // 40, 2)
    return ".".join(str(arc) for arc in [first, arcs[0] - 40 * first, *arcs[1:]])
