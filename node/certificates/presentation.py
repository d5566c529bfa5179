"""Offline presentations (亮证): short-lived signed tokens a holder shows as a QR code.

The holder's issuing node signs a presentation of one certificate; any node, or any
verifier with the manifest, reads it offline with the issuer's key and judges it against
the issuer's latest revocation list (DESIGN.md §7). Rules kept:

1. A token is base64url without padding of ``payload || signature``; the signature is
   the issuer key's suite's (Ed25519, or SM2 carried as its 64-byte (r, s)) over
   ``PRESENTATION_PREFIX + payload`` by a key that speaks for the province
   that issued the certificate (``issuers``). Verifying uses the received bytes; nothing is
   re-encoded to verify.
2. The payload is a fixed binary layout, version 1, integers big-endian::

       u8   format version (1)
       u8   certificate type, position in ``WIRE_TYPES``
       u8   status at issue, position in ``WIRE_STATUSES``
       u32  issued_at, epoch seconds
       u16  lifetime, seconds (expires_at = issued_at + lifetime)
       u8   key algorithm (1 = ed25519, 2 = sm2), then the key id's 16-byte fingerprint
       8    nonce
       16   holder digest: SHA-256(HOLDER_PREFIX + nonce + holder code)[:16]
       u8   n, then n ASCII bytes: the certificate identifier after "1.2.156.3005.2."
       u8   field count, then per field: u8 position in ``model.disclosable_fields``
            (strictly increasing), u16 n, n bytes UTF-8 (n = 0: no value, e.g. 长期)

   A layout of our own rather than JSON or CBOR: it has one encoding per value, needs no
   parser dependency, and is smaller (the resident ID card below: 190 bytes signed, against
   295 for the same content as short-key JSON), so the QR code is coarser and scans
   sooner. Reading refuses anything left over, out of range or out of order.
3. The holder code is bound, not shown: the token carries a digest salted with its own
   nonce, so a verifier who reads the number off the holder's card or asks for it can check
   it (``Presentation.holder_matches``) while a bystander who scans the code does not read
   an ID number. It is a binding, not a secret: an ID number is guessable from a region,
   a birth date and ~1000 sequence numbers, so the token is still personal data.
4. The fields carried are ``policy.PRESENTATION_FIELDS`` for the type (what a verifier
   looking at the holder needs); a reader accepts any disclosable fields the issuer signed.
5. Status at issue is the effective status on the issuing day (Beijing time). Lifetime is
   1 s to ``MAX_LIFETIME``, by default ``DEFAULT_LIFETIME`` (5 minutes), so a screenshot
   is soon worthless. A reader refuses a token issued more than ``clock_skew`` seconds in
   its future (``not_yet_valid``) and one at or after its expiry (``expired``); no skew
   is granted at the expiry end.
6. Reading checks, in order: shape and size, layout (``malformed``), key
   (``unknown_key``), signature (``bad_signature``), meaning of the signed values
   (``malformed``), then time (``not_yet_valid``, ``expired``).
7. Size: a typical resident ID card presentation (three-character name, sex, an
   8-character serial) is 190 bytes, a 254-character token (measured in
   ``tests/test_presentation.py``); 64 of those bytes are the signature. A QR code of version
   40 holds 2953 bytes in byte mode; a token that would not fit is refused (``too_large``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final, Literal

from node.certificates.issuers import IssuerKeys
from node.certificates.model import (
    TYPES,
    Certificate,
    CertificateStatus,
    CertificateType,
    china_date,
    disclosable_fields,
    effective_status,
)
from node.certificates.policy import PRESENTATION_FIELDS
from node.certificates.revocation import RevocationList
from node.identifiers import (
    CERTIFICATE_ID_PREFIX,
    CertificateId,
    IdentifierError,
    parse_certificate_id,
)
from node.trust.keys import SigningKey
from node.trust.suites import ED25519, FIXED_SIGNATURE_LENGTH, SM2
from node.vocabulary import Refused

__all__ = [
    "DEFAULT_LIFETIME",
    "PRESENTATION_PREFIX",
    "QR_BYTE_CAPACITY",
    "OfflineCheck",
    "Presentation",
    "PresentationError",
    "check_offline",
    "issue_presentation",
    "read_presentation",
]

PRESENTATION_PREFIX: Final = b"yrd-presentation-v1\x00"
HOLDER_PREFIX: Final = b"yrd-presentation-holder-v1\x00"
FORMAT_VERSION: Final = 1
DEFAULT_LIFETIME: Final = 300
MAX_LIFETIME: Final = 3600
DEFAULT_CLOCK_SKEW: Final = 60.0
QR_BYTE_CAPACITY: Final = 2953
"""Bytes a QR code of version 40, error correction L, holds in byte mode."""

WIRE_TYPES: Final[tuple[CertificateType, ...]] = (
    "resident_id_card",
    "business_licence",
    "driving_licence",
    "vehicle_licence",
    "marriage_certificate",
    "residence_permit",
    "birth_medical_certificate",
)
"""Type numbers on the wire; append only."""
WIRE_STATUSES: Final[tuple[CertificateStatus, ...]] = (
    CertificateStatus.VALID,
    CertificateStatus.SUSPENDED,
    CertificateStatus.REVOKED,
    CertificateStatus.EXPIRED,
)
"""Status numbers on the wire; append only."""

PresentationErrorCode = Literal[
    "malformed",
    "bad_signature",
    "unknown_key",
    "expired",
    "not_yet_valid",
    "unsupported_key",
    "invalid_lifetime",
    "too_large",
    "issuer_mismatch",
]

_ALGORITHMS: Final = {1: ED25519, 2: SM2}
_ALGORITHM_NUMBERS: Final = {name: number for number, name in _ALGORITHMS.items()}
_KEY_ID: Final = re.compile(rf"({ED25519}|{SM2}):([0-9a-f]{{32}})")
_TOKEN: Final = re.compile(r"[A-Za-z0-9_-]+")
_HEAD: Final = struct.Struct(">BBBIHB16s8s16s")
_SIGNATURE_LENGTH: Final = FIXED_SIGNATURE_LENGTH
_NONCE_LENGTH: Final = 8
_U32_MAX: Final = 2**32 - 1

if set(WIRE_TYPES) != set(TYPES):  # pragma: no cover - guards the two tables
    raise RuntimeError("WIRE_TYPES must number every certificate type")


class PresentationError(Refused, ValueError):
    """A presentation could not be issued or was refused.

    ``code`` is stable and machine-readable; ``field`` names the input at fault (``token``
    for anything read from one); ``detail`` (also ``str(error)``) starts with it.
    """

    def __init__(self, code: PresentationErrorCode, field: str, sentence: str) -> None:
        super().__init__(code, f"{field}: {sentence}", field=field)
        self.code: PresentationErrorCode = code


@dataclass(frozen=True)
class Presentation:
    """A verified presentation: what the issuer signed about one certificate."""

    certificate_id: CertificateId
    certificate_type: CertificateType
    status: CertificateStatus
    """The effective status on the day the presentation was issued."""
    fields: Mapping[str, str | None] = field(hash=False)
    """Disclosed fields by name; None is no value (a long-term ``valid_until``)."""
    issued_at: int
    expires_at: int
    key_id: str
    nonce: bytes
    holder_digest: bytes

    @property
    def issuer_province(self) -> str:
        province = self.certificate_id.issuer_province
        assert province is not None  # read_presentation refuses any other
        return province

    def holder_matches(self, holder_code: str) -> bool:
        """Whether ``holder_code`` is the code of the holder this presentation was issued to."""
        expected = _holder_digest(self.nonce, holder_code.upper())
        return hmac.compare_digest(expected, self.holder_digest)


@dataclass(frozen=True)
class OfflineCheck:
    """The answer to an offline verification (``POST /v1/presentations/verify``)."""

    valid: bool
    status: CertificateStatus
    issuer_province: str
    revocation_list_age_seconds: float | None
    """None when no revocation list of the issuer is held."""
    fields: Mapping[str, str | None]


def issue_presentation(
    certificate: Certificate,
    signing_key: SigningKey,
    *,
    now: float,
    lifetime: int = DEFAULT_LIFETIME,
    nonce: bytes | None = None,
) -> str:
    """Sign a presentation of ``certificate`` valid for ``lifetime`` seconds from ``now``.

    ``expires_at`` is ``int(now) + lifetime``. ``nonce`` is drawn at random unless given
    (tests pass one to get a fixed token).
    """
    match = _KEY_ID.fullmatch(signing_key.key_id)
    if match is None:
        raise PresentationError(
            "unsupported_key", "key_id", f"presentations are signed with {ED25519} or {SM2} keys"
        )
    if isinstance(lifetime, bool) or not isinstance(lifetime, int):
        raise PresentationError("invalid_lifetime", "lifetime", "must be whole seconds")
    if not 1 <= lifetime <= MAX_LIFETIME:
        raise PresentationError(
            "invalid_lifetime", "lifetime", f"must be 1 to {MAX_LIFETIME} seconds"
        )
    issued_at = int(now)
    if not 0 <= issued_at <= _U32_MAX - lifetime:
        raise PresentationError("invalid_lifetime", "now", "is outside what the format holds")
    nonce = secrets.token_bytes(_NONCE_LENGTH) if nonce is None else nonce
    if len(nonce) != _NONCE_LENGTH:
        raise ValueError(f"nonce must be {_NONCE_LENGTH} bytes")

    certificate_type = certificate.type
    status = effective_status(certificate, china_date(now))
    head = _HEAD.pack(
        FORMAT_VERSION,
        WIRE_TYPES.index(certificate_type),
        WIRE_STATUSES.index(status),
        issued_at,
        lifetime,
        _ALGORITHM_NUMBERS[match.group(1)],
        bytes.fromhex(match.group(2)),
        nonce,
        _holder_digest(nonce, certificate.holder_code),
    )
    cert_id = str(certificate.certificate_id).removeprefix(CERTIFICATE_ID_PREFIX + ".")
    parts = [head, bytes([len(cert_id)]), cert_id.encode("ascii")]
    values = certificate.disclosable_values()
    carried = PRESENTATION_FIELDS[certificate_type]
    names = disclosable_fields(certificate_type)
    parts.append(bytes([len(carried)]))
    for position, name in enumerate(names):
        if name not in carried:
            continue
        value = (values[name] or "").encode("utf-8")
        parts.append(struct.pack(">BH", position, len(value)) + value)
    payload = b"".join(parts)
    signature = signing_key.suite.to_fixed(signing_key.sign(PRESENTATION_PREFIX + payload))
    token = base64.urlsafe_b64encode(payload + signature).rstrip(b"=").decode("ascii")
    if len(token) > QR_BYTE_CAPACITY:
        raise PresentationError(
            "too_large",
            "certificate",
            f"the presentation would be {len(token)} characters; a QR code holds "
            f"{QR_BYTE_CAPACITY}",
        )
    return token


def read_presentation(
    token: str,
    issuer_keys: IssuerKeys,
    *,
    now: float,
    clock_skew: float = DEFAULT_CLOCK_SKEW,
) -> Presentation:
    """Verify a token and return what it says, or refuse it (rule 6)."""
    raw = _decode(token)
    if len(raw) < _HEAD.size + 1 + _SIGNATURE_LENGTH:
        raise _malformed("is too short to be a presentation")
    payload, signature = raw[:-_SIGNATURE_LENGTH], raw[-_SIGNATURE_LENGTH:]
    head = _HEAD.unpack_from(payload)
    version, type_number, status_number, issued_at, lifetime, algorithm = head[:6]
    fingerprint, nonce, digest = head[6:]
    if version != FORMAT_VERSION:
        raise _malformed(f"format version {version} is not one this node reads ({FORMAT_VERSION})")
    if algorithm not in _ALGORITHMS:
        raise _malformed(f"key algorithm {algorithm} is not one this node knows")
    reader = _Reader(payload, _HEAD.size)
    cert_text = reader.take(reader.u8(), "certificate identifier")
    count = reader.u8()
    raw_fields = [(reader.u8(), reader.take(reader.u16(), "field value")) for _ in range(count)]
    reader.finish()

    cert_id = _certificate_id(cert_text)
    province = cert_id.issuer_province
    if province is None:
        raise _malformed("the certificate was issued outside the federation")
    key_id = f"{_ALGORITHMS[algorithm]}:{fingerprint.hex()}"
    key = issuer_keys(province, key_id)
    if key is None:
        raise PresentationError(
            "unknown_key",
            "token",
            f"signed by {key_id}, which is not a current signing key of {province} in the manifest",
        )
    if not key.verify(key.suite.from_fixed(signature), PRESENTATION_PREFIX + payload):
        raise PresentationError(
            "bad_signature", "token", "the signature does not verify: the token was altered"
        )

    # Signed by the issuer from here on; a refusal now means the issuer wrote nonsense.
    if type_number >= len(WIRE_TYPES):
        raise _malformed(f"certificate type {type_number} is not one this node knows")
    if status_number >= len(WIRE_STATUSES):
        raise _malformed(f"status {status_number} is not one this node knows")
    certificate_type = WIRE_TYPES[type_number]
    if cert_id.type_code != TYPES[certificate_type].type_code:
        raise _malformed(f"the identifier's type code is not that of a {certificate_type}")
    if not 1 <= lifetime <= MAX_LIFETIME:
        raise _malformed(f"a lifetime of {lifetime} s is outside 1 to {MAX_LIFETIME} s")
    fields = _fields(certificate_type, raw_fields)

    if issued_at > now + clock_skew:
        raise PresentationError(
            "not_yet_valid",
            "token",
            f"issued {issued_at - now:.0f} s in the future; more than the {clock_skew:.0f} s "
            "clock skew allowed",
        )
    expires_at = issued_at + lifetime
    if now >= expires_at:
        raise PresentationError(
            "expired", "token", f"expired {now - expires_at:.0f} s ago; ask the holder to refresh"
        )
    return Presentation(
        certificate_id=cert_id,
        certificate_type=certificate_type,
        status=WIRE_STATUSES[status_number],
        fields=MappingProxyType(fields),
        issued_at=issued_at,
        expires_at=expires_at,
        key_id=key_id,
        nonce=nonce,
        holder_digest=digest,
    )


def check_offline(
    presentation: Presentation, revocations: RevocationList | None, *, now: float
) -> OfflineCheck:
    """Judge a verified presentation against the issuer's latest revocation list.

    A revocation in the list stands whatever the presentation says (revocation is final).
    A suspension stands unless the presentation was issued after the list: then the issuer
    knew more when it signed (a suspension is lifted by a later list). Without a list the
    status at issue stands, and the age is None.
    """
    status = presentation.status
    age: float | None = None
    if revocations is not None:
        if revocations.issuer_province != presentation.issuer_province:
            raise PresentationError(
                "issuer_mismatch",
                "revocation_list",
                f"is {revocations.issuer_province}'s; the certificate was issued in "
                f"{presentation.issuer_province}",
            )
        age = revocations.age_seconds(now)
        listed = revocations.status_of(presentation.certificate_id)
        if listed is CertificateStatus.REVOKED or (
            listed is CertificateStatus.SUSPENDED
            and revocations.issued_at >= presentation.issued_at
        ):
            status = listed
    return OfflineCheck(
        valid=status is CertificateStatus.VALID,
        status=status,
        issuer_province=presentation.issuer_province,
        revocation_list_age_seconds=age,
        fields=presentation.fields,
    )


# --- reading --------------------------------------------------------------------------------


class _Reader:
    def __init__(self, data: bytes, offset: int) -> None:
        self._data = data
        self._offset = offset

    def take(self, length: int, what: str) -> bytes:
        end = self._offset + length
        if end > len(self._data):
            raise _malformed(f"ends inside the {what}")
        chunk = self._data[self._offset : end]
        self._offset = end
        return chunk

    def u8(self) -> int:
        return self.take(1, "field list")[0]

    def u16(self) -> int:
        value: int = struct.unpack(">H", self.take(2, "field list"))[0]
        return value

    def finish(self) -> None:
        if self._offset != len(self._data):
            raise _malformed(f"has {len(self._data) - self._offset} bytes after the last field")


def _decode(token: object) -> bytes:
    if not isinstance(token, str):
        raise _malformed("must be text")
    if len(token) > QR_BYTE_CAPACITY:
        raise _malformed(
            f"has {len(token)} characters; a presentation has at most {QR_BYTE_CAPACITY}"
        )
    if not _TOKEN.fullmatch(token) or len(token) % 4 == 1:
        raise _malformed("is not base64url text without padding")
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        raise _malformed("is not base64url text without padding") from None
    # Unused low bits must be zero, so that each payload has exactly one token.
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != token:
        raise _malformed("is not canonical base64url")
    return raw


def _certificate_id(text: bytes) -> CertificateId:
    try:
        return parse_certificate_id(
            CERTIFICATE_ID_PREFIX + "." + text.decode("ascii"), field="token"
        )
    except (UnicodeDecodeError, IdentifierError):
        raise _malformed("does not hold a valid certificate identifier") from None


def _fields(
    certificate_type: CertificateType, raw_fields: list[tuple[int, bytes]]
) -> dict[str, str | None]:
    names = disclosable_fields(certificate_type)
    fields: dict[str, str | None] = {}
    previous = -1
    for position, value in raw_fields:
        if position <= previous or position >= len(names):
            raise _malformed("field positions must increase and name fields of the type")
        previous = position
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise _malformed("a field value is not UTF-8") from None
        fields[names[position]] = text or None
    return fields


def _holder_digest(nonce: bytes, holder_code: str) -> bytes:
    return hashlib.sha256(HOLDER_PREFIX + nonce + holder_code.encode("utf-8")).digest()[:16]


def _malformed(sentence: str) -> PresentationError:
    return PresentationError("malformed", "token", sentence)
