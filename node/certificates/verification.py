"""A verification's question and answer, as both sides read them (DESIGN.md §7).

Pure rules, no clock, storage or network (``now`` and the manifest are passed in): a
``POST /v1/certificates/verify`` body or a case's ``VerifyQuestion`` is read into a checked
``VerifyRequest`` (the requester's), a ``certificate_verify`` message into the same (the
issuer's); the issuer's attestation is read into ``Verified``. Any refusal is a
``VerificationRefused`` with a stable code; ``retry_later`` tells the refusals that say
nothing of the certificate (the issuer or its library could not answer now) from those that
do.

A request's ``requester`` is free text, judged by ``node.text.clean_text`` (``invalid_text``)
and kept in Unicode normal form C: it is shown to the holder.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from node.certificates.consent import (
    ConsentGrant,
    ConsentRefused,
    grant_bytes,
    grant_token,
    read_grant,
)
from node.certificates.model import TYPES
from node.identifiers import (
    CertificateId,
    IdentifierError,
    issuer_province,
    parse_certificate_id,
    validate_holder_code,
)
from node.text import TextError, clean_text
from node.trust.manifest import Manifest, format_time
from node.vocabulary import Refused
from node.wire import pb
from node.wire.instants import instant

MAX_FIELDS = 32
MAX_REQUESTER_LENGTH = 100
MAX_HOLDER_NAME_LENGTH = 100

RETRY_LATER: Final = frozenset({"issuer_unreachable", "library_unavailable", "bad_attestation"})
"""Refusals that say nothing of the certificate: the issuer's node did not answer, its
library did not, or its answer failed this node's checks (a key being rotated, say). The
same question may be answered later; a case's check of the certificate waits for it."""


class VerificationRefused(Refused):
    """A verification, presentation or usage query was refused; nothing was disclosed.

    ``code`` is stable (the issuer's fault code, or a local one), ``field`` names the part of
    the request at fault. What HTTP status a code takes is ``node.api.problems``'s.
    """

    @property
    def retry_later(self) -> bool:
        """Whether the same question may be answered later (``RETRY_LATER``): nothing was
        decided about the certificate."""
        return self.code in RETRY_LATER


@dataclass(frozen=True)
class VerifyQuestion:
    """What a caller inside this node (a case's certificate material) asks, before it is
    checked; ``request`` of the certificate service reads it like a REST body."""

    certificate_id: str
    holder_code: str
    purpose: str
    requester: str = ""
    holder_name: str = ""
    fields: tuple[str, ...] = ()

    def to_body(self) -> dict[str, Any]:
        """The question as a ``POST /v1/certificates/verify`` body."""
        body: dict[str, Any] = {
            "certificate_id": self.certificate_id,
            "holder_code": self.holder_code,
            "purpose": self.purpose,
            "requester": self.requester,
        }
        if self.holder_name:
            body["holder_name"] = self.holder_name
        if self.fields:
            body["fields"] = list(self.fields)
        return body


@dataclass(frozen=True)
class VerifyRequest:
    certificate_id: CertificateId
    holder_code: str
    purpose: str
    fields: tuple[str, ...]
    consent: ConsentGrant | None
    requester: str
    holder_name: str = ""
    """The name the requester holds for the holder; the issuer says whether it is the
    certificate's (without disclosing it). Empty: not asked."""

    @property
    def issuer(self) -> str:
        province = self.certificate_id.issuer_province
        assert province is not None, "parse_verify_request refuses any other"
        return province

    def cache_key(self) -> tuple[Any, ...]:
        # The requester too: each authority's check is a disclosure the issuer records.
        consent = self.consent.token if self.consent else None  # the whole signed grant
        return (
            str(self.certificate_id),
            self.holder_code,
            self.purpose,
            self.fields,
            consent,
            self.requester,
            self.holder_name,
        )

    def to_wire(self) -> pb.CertificateVerify:
        message = pb.CertificateVerify(
            certificate_id=str(self.certificate_id),
            holder_code=self.holder_code,
            purpose=self.purpose,
            fields=list(self.fields),
            requester=self.requester,
            holder_name=self.holder_name,
        )
        if self.consent is not None:
            message.consent_grant = grant_bytes(self.consent.token)
        return message


@dataclass(frozen=True)
class Verified:
    """An attestation as the requester relies on it."""

    status: str
    fields: Mapping[str, str]
    certificate_type: str
    checked_at: float
    valid_until: float
    issuer: str
    envelope: bytes
    holder_name_matches: bool | None = None
    """Whether the name asked about is the holder's (None: no name was asked about)."""
    cached: bool = False
    """Whether this answer came from the requester's cache, not from the issuer just now."""

    @property
    def attestation(self) -> str:
        """The signed attestation (its envelope), base64url without padding."""
        return base64.urlsafe_b64encode(self.envelope).rstrip(b"=").decode()

    def to_json(self) -> dict[str, Any]:
        shown: dict[str, Any] = {}
        if self.holder_name_matches is not None:
            shown["holder_name_matches"] = self.holder_name_matches
        return {
            **shown,
            "status": self.status,
            "fields": dict(self.fields),
            "certificate_type": self.certificate_type,
            "issuer": self.issuer,
            "checked_at": format_time(self.checked_at),
            "valid_until": format_time(self.valid_until),
            "attestation": self.attestation,
            "cached": self.cached,
        }


# --- reading requests ---------------------------------------------------------------------


def parse_verify_request(
    body: Mapping[str, Any], *, now: float, manifest: Manifest
) -> VerifyRequest:
    """A ``POST /v1/certificates/verify`` body, checked (a consent grant against
    ``manifest``); raises VerificationRefused."""
    allowed = {
        "certificate_id",
        "holder_code",
        "purpose",
        "fields",
        "consent",
        "requester",
        "holder_name",
    }
    for key in body:
        if key not in allowed:
            raise VerificationRefused("unknown_field", f"{key} is not a field here", field=key)
    try:
        certificate_id = parse_certificate_id(body.get("certificate_id"))  # type: ignore[arg-type]
        issuer_province(certificate_id)
    except IdentifierError as error:
        raise VerificationRefused(error.code, error.detail, field=error.field) from None
    holder_code = _holder_code(body.get("holder_code"), certificate_id)
    purpose = body.get("purpose")
    if not isinstance(purpose, str) or not purpose:
        raise VerificationRefused("missing_field", "purpose is required", field="purpose")
    fields = body.get("fields", [])
    if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
        raise VerificationRefused(
            "invalid_fields", f"fields must be a list of at most {MAX_FIELDS}", field="fields"
        )
    for index, name in enumerate(fields):
        if not isinstance(name, str):
            raise VerificationRefused("invalid_fields", "must be text", field=f"fields[{index}]")
    requester = body.get("requester", "")
    if not isinstance(requester, str) or len(requester) > MAX_REQUESTER_LENGTH:
        raise VerificationRefused(
            "invalid_requester",
            f"requester must be text of at most {MAX_REQUESTER_LENGTH} characters",
            field="requester",
        )
    try:
        requester = clean_text(requester, field="requester", max_length=MAX_REQUESTER_LENGTH)
    except TextError as error:
        raise VerificationRefused(error.code, error.detail, field=error.field) from None
    consent = _consent(body.get("consent"), manifest, now)
    holder_name = body.get("holder_name", "")
    if not isinstance(holder_name, str):
        raise VerificationRefused(
            "invalid_holder_name", "holder_name must be text", field="holder_name"
        )
    if holder_name:
        try:
            holder_name = clean_text(
                holder_name, field="holder_name", max_length=MAX_HOLDER_NAME_LENGTH
            )
        except TextError as error:
            raise VerificationRefused(error.code, error.detail, field=error.field) from None
    return VerifyRequest(
        certificate_id,
        holder_code.upper(),
        purpose,
        tuple(dict.fromkeys(fields)),
        consent,
        requester,
        holder_name,
    )


def _holder_code(value: object, certificate_id: CertificateId) -> str:
    """The holder code, checked by the holder-code type the certificate's type takes."""
    if not isinstance(value, str) or not value:
        raise VerificationRefused("missing_field", "holder_code is required", field="holder_code")
    spec = next((t for t in TYPES.values() if t.type_code == certificate_id.type_code), None)
    if spec is None:
        return value.upper()  # a type this node does not know: the issuer answers for it
    errors: list[IdentifierError] = []
    for code_type in spec.holder_code_types:
        try:
            return validate_holder_code(code_type, value, field="holder_code")
        except IdentifierError as error:
            errors.append(error)
    raise VerificationRefused(errors[0].code, errors[0].detail, field="holder_code")


def _consent(data: object, manifest: Manifest, now: float) -> ConsentGrant | None:
    """``{"grant": "<token>"}``: the holder's consent, read and its signature checked."""
    if data is None:
        return None
    if not isinstance(data, Mapping) or set(data) != {"grant"}:
        raise VerificationRefused(
            "consent_unverifiable",
            'consent must be {"grant": "<token>"}: a grant a member node signed '
            "(POST /v1/consents); an asserted grant id is not accepted",
            field="consent",
        )
    try:
        return read_grant(data["grant"], manifest=manifest, now=now)
    except ConsentRefused as error:
        raise VerificationRefused(error.code, error.detail, field=error.field) from None


def from_wire(message: pb.CertificateVerify, *, manifest: Manifest, now: float) -> VerifyRequest:
    if message.HasField("consent"):
        raise VerificationRefused(
            "consent_unverifiable",
            "an asserted consent is not accepted; send the signed grant (consent_grant)",
            field="consent",
        )
    body: dict[str, Any] = {
        "certificate_id": message.certificate_id,
        "holder_code": message.holder_code,
        "purpose": message.purpose,
        "fields": list(message.fields),
        "requester": message.requester,
        "holder_name": message.holder_name,
    }
    if message.consent_grant:
        body["consent"] = {"grant": grant_token(message.consent_grant)}
    return parse_verify_request(body, now=now, manifest=manifest)


def verified(attestation: pb.Attestation, issuer: str, envelope: bytes) -> Verified:
    """The answer a requester relies on, from the issuer's attestation and its envelope."""
    return Verified(
        status=attestation.status,
        fields=dict(attestation.fields),
        certificate_type=attestation.certificate_type,
        checked_at=instant(attestation.checked_at),
        valid_until=instant(attestation.valid_until),
        issuer=issuer,
        envelope=envelope,
        holder_name_matches=_NAME_MATCHES.get(attestation.holder_name_match),
    )


_NAME_MATCHES = {pb.NAME_MATCHES: True, pb.NAME_DIFFERS: False}
