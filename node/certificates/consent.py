"""Consent grants (授权): what a holder let be disclosed, signed by the node that asked them.

A holder consents at their province platform; that province's node signs a grant
(``POST /v1/consents``) and the platform hands it to the requester, who sends it with the
verification. The issuer reads it before it discloses anything but status. Rules kept:

1. A grant token is base64url without padding of a ``SignedConsent`` (protobuf): the
   ``ConsentGrant`` bytes exactly as signed, the signature over ``CONSENT_PREFIX + grant``
   and the signer's key id. Verifying uses the received bytes; nothing is re-encoded.
2. The grant names its grantor (a member's node id) and the key must be that member's,
   listed in the manifest, and usable when the grant was issued and still not revoked
   now. Only the holder's own province grants (``home_province``: the division in an ID
   number or a credit code), since only its platform knows the holder signed in; a
   province that signed for another's holder could approve its own requests.
3. A grant holds: its id (``grant_id``, safe in logs and usage records), the holder code,
   one purpose, the fields beyond status it allows (at least one), optionally one
   certificate and one requesting authority, when it was issued and when it ends (at most
   ``MAX_LIFETIME`` later).
4. Reading refuses, in order: size and shape (``consent_unverifiable``), grantor and key
   (``consent_unverifiable``), signature (``consent_unverifiable``), meaning of the signed
   values (``consent_unverifiable``), then time (``consent_expired``; a grant issued more
   than ``CLOCK_SKEW`` in the reader's future is ``consent_unverifiable``).
   Whether it covers a request (holder, purpose, fields, certificate, requester) is the
   disclosure policy's rule (``policy.decide_disclosure``).
5. Nothing here reads a clock or logs: ``now`` is passed in, and a grant holds an ID
   number, so its values never appear in a refusal's sentence.
6. What a grant's bytes say under one manifest never changes, so a token read once is not
   verified again under the same manifest object (``_READ``, at most ``READ_CACHE_SIZE``
   tokens, emptied when full): a repeated check costs a dict lookup instead of a signature.
   The time checks of rule 4 run on every read; a reloaded manifest (a revoked key) is
   another object, so every token is verified anew under it.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from google.protobuf.message import DecodeError

from node.certificates.model import TYPES, TypeSpec, disclosable_fields
from node.certificates.policy import SCENES, MatterLookup, PolicyRefusal, matter_for_purpose
from node.identifiers import (
    IdentifierError,
    parse_certificate_id,
    province_of_division,
    validate_holder_code,
)
from node.text import TextError, clean_text
from node.trust.keys import SigningKey
from node.trust.manifest import Manifest
from node.vocabulary import Refused
from node.wire import pb
from node.wire.instants import instant, stamp

CONSENT_PREFIX: Final = b"yrd.federation.v1/consent\0"
MAX_TOKEN_CHARS: Final = 2048
"""A grant of the longest purpose, 32 fields and a long requester is under 1 KiB."""
MAX_LIFETIME: Final = 90 * 86400.0
DEFAULT_LIFETIME: Final = 86400.0
CLOCK_SKEW: Final = 300.0
MAX_FIELDS: Final = 32
MAX_REQUESTER_LENGTH: Final = 100
GRANT_ID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{7,63}")

ConsentRefusalCode = Literal["consent_unverifiable", "consent_expired", "invalid_consent"]


class ConsentRefused(Refused):
    """A grant that cannot be relied on; ``field`` names the part at fault."""

    def __init__(self, code: ConsentRefusalCode, field: str, sentence: str) -> None:
        super().__init__(code, f"{field}: {sentence}", field=field)
        self.code: ConsentRefusalCode = code


@dataclass(frozen=True)
class ConsentGrant:
    """A grant as read (and checked) from its token."""

    grant_id: str
    grantor: str
    holder_code: str
    purpose: str
    fields: tuple[str, ...]
    issued_at: float
    expires_at: float
    certificate_id: str | None = None
    requester: str | None = None
    token: str = ""
    """The token it was read from, to be passed on exactly as signed."""

    def to_wire(self) -> pb.ConsentGrant:
        return pb.ConsentGrant(
            grant_id=self.grant_id,
            grantor=self.grantor,
            holder_code=self.holder_code,
            purpose=self.purpose,
            fields=list(self.fields),
            certificate_id=self.certificate_id or "",
            requester=self.requester or "",
            issued_at=stamp(self.issued_at),
            expires_at=stamp(self.expires_at),
        )


def new_grant_id() -> str:
    return "cg-" + secrets.token_hex(12)


def sign_grant(grant: ConsentGrant, key: SigningKey) -> str:
    """The token of ``grant`` signed with ``key`` (the grantor's signing key)."""
    body = grant.to_wire().SerializeToString(deterministic=True)
    signed = pb.SignedConsent(
        grant=body, signature=key.sign(CONSENT_PREFIX + body), key_id=key.key_id
    )
    return grant_token(signed.SerializeToString())


READ_CACHE_SIZE: Final = 4096
_READ: dict[str, tuple[Manifest, ConsentGrant]] = {}
"""Tokens read under a manifest (rule 6): token -> (that manifest object, the grant)."""


def read_grant(token: object, *, manifest: Manifest, now: float) -> ConsentGrant:
    """The grant in ``token``, checked by rules 1-4; raises ConsentRefused."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_CHARS:
        raise ConsentRefused(
            "consent_unverifiable",
            "consent.grant",
            f"must be a grant token of 1 to {MAX_TOKEN_CHARS} characters",
        )
    cached = _READ.get(token)
    if cached is not None and cached[0] is manifest:
        read = cached[1]
    else:
        read = _verified(token, manifest)
        if len(_READ) >= READ_CACHE_SIZE:
            _READ.clear()
        _READ[token] = (manifest, read)
    if read.issued_at > now + CLOCK_SKEW:
        raise ConsentRefused("consent_unverifiable", "consent.grant", "it was issued in the future")
    if now >= read.expires_at:
        raise ConsentRefused(
            "consent_expired", "consent.grant", f"grant {read.grant_id} has expired; ask again"
        )
    return read


def _verified(token: str, manifest: Manifest) -> ConsentGrant:
    """Rules 1-3 and the parts of rule 4 that do not depend on the time."""
    field = "consent.grant"
    try:
        raw = grant_bytes(token)
        signed = pb.SignedConsent.FromString(raw)
        grant = pb.ConsentGrant.FromString(signed.grant)
    except (binascii.Error, ValueError, DecodeError):
        raise ConsentRefused(
            "consent_unverifiable", field, "is not a consent grant a member node signed"
        ) from None
    member = manifest.member(grant.grantor)
    entry = member.key(signed.key_id) if member is not None else None
    issued_at = instant(grant.issued_at) if grant.HasField("issued_at") else math.nan
    if entry is None or entry.revoked or not entry.usable_at(issued_at):
        raise ConsentRefused(
            "consent_unverifiable",
            field,
            "is not signed by a current key of the member node it names as grantor",
        )
    assert member is not None
    if home_province(grant.holder_code) != member.province:
        raise ConsentRefused(
            "consent_unverifiable",
            field,
            "is not signed by the holder's own province, the only one that may grant",
        )
    if not entry.verify_key.verify(signed.signature, CONSENT_PREFIX + signed.grant):
        raise ConsentRefused("consent_unverifiable", field, "its signature does not verify")
    return _meaning(grant, token)


def _meaning(grant: pb.ConsentGrant, token: str) -> ConsentGrant:
    def bad(what: str) -> ConsentRefused:
        return ConsentRefused("consent_unverifiable", "consent.grant", f"its {what} is malformed")

    if not GRANT_ID.fullmatch(grant.grant_id):
        raise bad("grant id")
    if not grant.holder_code or len(grant.holder_code) > 32:
        raise bad("holder code")
    if not grant.purpose or len(grant.purpose) > 64:
        raise bad("purpose")
    fields = tuple(dict.fromkeys(grant.fields))
    if not fields or len(fields) > MAX_FIELDS or not all(0 < len(f) <= 64 for f in fields):
        raise bad("field list")
    if len(grant.requester) > MAX_REQUESTER_LENGTH or len(grant.certificate_id) > 128:
        raise bad("scope")
    if not grant.HasField("expires_at"):
        raise bad("expiry")
    issued_at, expires_at = instant(grant.issued_at), instant(grant.expires_at)
    if not issued_at < expires_at <= issued_at + MAX_LIFETIME:
        raise bad("lifetime")
    return ConsentGrant(
        grant_id=grant.grant_id,
        grantor=grant.grantor,
        holder_code=grant.holder_code.upper(),
        purpose=grant.purpose,
        fields=fields,
        issued_at=issued_at,
        expires_at=expires_at,
        certificate_id=grant.certificate_id or None,
        requester=grant.requester or None,
        token=token,
    )


def grant_bytes(token: str) -> bytes:
    """The ``SignedConsent`` bytes of a token read by ``read_grant``."""
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def grant_token(signed: bytes) -> str:
    """The token of ``SignedConsent`` bytes as they travel on the wire."""
    return base64.urlsafe_b64encode(signed).rstrip(b"=").decode()


def home_province(holder_code: str) -> str | None:
    """The province a holder belongs to: the division an ID number starts with, or the one
    a unified social credit code holds at characters 3-8; None outside the federation or
    for a code that is neither."""
    for code_type, division in (("111", slice(0, 6)), ("001", slice(2, 8))):
        try:
            code = validate_holder_code(code_type, holder_code)
        except IdentifierError:
            continue
        return province_of_division(code[division])
    return None


def parse_consent_request(
    body: Mapping[str, Any],
    *,
    grantor: str,
    province: str,
    now: float,
    find_matter: MatterLookup,
) -> ConsentGrant:
    """A ``POST /v1/consents`` body as the grant to sign (unsigned yet); raises
    ConsentRefused (``invalid_consent``) naming the field at fault."""
    allowed = {"holder_code", "purpose", "fields", "certificate_id", "requester", "expires_at"}
    for key in body:
        if key not in allowed:
            raise ConsentRefused("invalid_consent", key, "is not a field here")
    certificate_id = body.get("certificate_id")
    types = list(TYPES.values())
    if certificate_id is not None:
        try:
            parsed = parse_certificate_id(certificate_id)
        except IdentifierError as error:
            raise ConsentRefused("invalid_consent", error.field, error.detail) from None
        certificate_id = str(parsed)
        types = [t for t in types if t.type_code == parsed.type_code] or types
    holder_code = _holder(body.get("holder_code"), types)
    if home_province(holder_code) != province:
        raise ConsentRefused(
            "invalid_consent",
            "holder_code",
            f"is not a holder of {province}: a holder consents at their own province's node",
        )
    purpose = body.get("purpose")
    if not isinstance(purpose, str) or not purpose:
        raise ConsentRefused("invalid_consent", "purpose", "is required")
    if purpose not in SCENES:
        try:
            matter_for_purpose(purpose, find_matter)
        except PolicyRefusal as error:
            raise ConsentRefused("invalid_consent", "purpose", error.detail) from None
    fields = body.get("fields")
    known = {name for spec in types for name in disclosable_fields(spec.name)}
    if not isinstance(fields, list) or not 1 <= len(fields) <= MAX_FIELDS:
        raise ConsentRefused(
            "invalid_consent", "fields", f"must list 1 to {MAX_FIELDS} fields beyond status"
        )
    for index, name in enumerate(fields):
        if not isinstance(name, str) or name not in known:
            raise ConsentRefused(
                "invalid_consent", f"fields[{index}]", "is not a field such a certificate has"
            )
    requester = body.get("requester")
    if requester is not None:
        if not isinstance(requester, str) or not requester:
            raise ConsentRefused(
                "invalid_consent",
                "requester",
                f"must be the requesting authority, 1 to {MAX_REQUESTER_LENGTH} characters",
            )
        try:
            requester = clean_text(requester, field="requester", max_length=MAX_REQUESTER_LENGTH)
        except TextError as error:
            raise ConsentRefused("invalid_consent", "requester", error.detail) from None
    expires_at = _expiry(body.get("expires_at"), now)
    return ConsentGrant(
        grant_id=new_grant_id(),
        grantor=grantor,
        holder_code=holder_code,
        purpose=purpose,
        fields=tuple(dict.fromkeys(fields)),
        issued_at=float(math.floor(now)),
        expires_at=expires_at,
        certificate_id=certificate_id,
        requester=requester,
    )


def _holder(value: object, types: list[TypeSpec]) -> str:
    if not isinstance(value, str) or not value:
        raise ConsentRefused("invalid_consent", "holder_code", "is required")
    errors: list[IdentifierError] = []
    for code_type in dict.fromkeys(c for spec in types for c in spec.holder_code_types):
        try:
            return validate_holder_code(code_type, value, field="holder_code")
        except IdentifierError as error:
            errors.append(error)
    raise ConsentRefused("invalid_consent", "holder_code", errors[0].detail)


def _expiry(value: object, now: float) -> float:
    if value is None:
        return float(math.floor(now + DEFAULT_LIFETIME))
    moment = None
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            moment = None
    if moment is None or moment.tzinfo is None:
        raise ConsentRefused(
            "invalid_consent", "expires_at", "must be an RFC 3339 time with its offset"
        )
    expires_at = float(math.floor(moment.timestamp()))
    if not now < expires_at <= now + MAX_LIFETIME:
        raise ConsentRefused(
            "invalid_consent",
            "expires_at",
            f"must be in the future and at most {MAX_LIFETIME / 86400:.0f} days away",
        )
    return expires_at
