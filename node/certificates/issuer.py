"""The issuer's side of certificate mutual recognition (DESIGN.md §7, rules 1, 2 and 5).

The node of the province that issued a certificate answers for it: a peer's
``certificate_verify`` is checked before it is stored (``validate_verify``: the manifest
must let the requester ask for the certificate's type and purpose), then answered with a
signed Attestation carrying the digest of the request, so it cannot be replayed as another
answer. The certificate is read from the province's library, the holder checked, the
disclosure decided (``policy``). Every disclosure is recorded (用证记录) in the transaction
that stores the request and the attestation, before the attestation leaves; a refusal
records nothing. This node's own verifications of its own certificates go through the same
``attest``. The issuer also issues offline presentations of its certificates and answers
who has seen them (``usage``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from datetime import time as day_start
from typing import Any

from monitoring.metrics import NodeMetrics
from node.certificates.issuers import manifest_issuer_keys
from node.certificates.library import CertificateLibrary, LibraryUnavailable
from node.certificates.model import (
    CHINA_STANDARD_TIME,
    CertificateError,
    CertificateStatus,
    check_holder,
    china_date,
    effective_status,
    same_name,
)
from node.certificates.policy import (
    MatterLookup,
    PolicyRefusal,
    certificate_type_of,
    check_may_verify,
    decide_disclosure,
)
from node.certificates.presentation import issue_presentation, read_presentation
from node.certificates.verification import VerificationRefused, VerifyRequest, from_wire
from node.identifiers import IdentifierError, issuer_province, parse_certificate_id
from node.peers.courier import CredentialsView
from node.peers.inbound import Answer, Received
from node.protocol.checks import Authenticated
from node.protocol.faults import FaultCode, Refusal
from node.store import certificates as store
from node.store.connection import Connection
from node.store.database import Database
from node.trust.manifest import format_time
from node.wire import pb
from node.wire.instants import stamp

ATTESTATION_TTL = 600.0
"""How long a requester may rely on an attestation: an issuer's revocation reaches it
through the attestation's expiry at the latest."""

_POLICY_FAULTS = {
    "purpose_not_allowed": FaultCode.PURPOSE_NOT_ALLOWED,
    "field_not_allowed": FaultCode.FIELD_NOT_ALLOWED,
    "consent_required": FaultCode.CONSENT_REQUIRED,
    "consent_expired": FaultCode.CONSENT_EXPIRED,
    "consent_purpose_mismatch": FaultCode.CONSENT_MISMATCH,
    "consent_holder_mismatch": FaultCode.CONSENT_MISMATCH,
    "consent_fields_mismatch": FaultCode.CONSENT_MISMATCH,
    "consent_certificate_mismatch": FaultCode.CONSENT_MISMATCH,
    "consent_requester_mismatch": FaultCode.CONSENT_MISMATCH,
}
_CONSENT_FAULTS = {
    "consent_unverifiable": FaultCode.CONSENT_UNVERIFIABLE,
    "consent_expired": FaultCode.CONSENT_EXPIRED,
}

READ_REQUESTS_KEPT = 4096
"""Most validated requests kept for their answer (a refused frame's are never taken)."""

UsageRecord = Callable[[Connection], None]
"""Stores the usage record (用证记录) of one attestation, in the transaction that keeps it."""


class Issuer:
    """Answers for the certificates of this node's province: verifications, presentations
    and their usage records."""

    def __init__(
        self,
        *,
        province: str,
        db: Callable[[], Database],
        clock: Callable[[], float],
        credentials: Callable[[], CredentialsView],
        library: Callable[[], CertificateLibrary],
        find_matter: MatterLookup,
        metrics: NodeMetrics,
    ) -> None:
        self.me = province
        self._db = db
        self._clock = clock
        self._credentials = credentials
        self._library = library
        self._find_matter = find_matter
        self._metrics = metrics
        self._read: dict[bytes, VerifyRequest] = {}
        """Requests the validator read, by message digest, until their answer takes them."""

    # -- verifications -----------------------------------------------------------------------

    def validate_verify(self, message: Authenticated) -> None:
        self._read[message.digest] = self._checked(message)
        while len(self._read) > READ_REQUESTS_KEPT:
            self._read.pop(next(iter(self._read)))

    def _checked(self, message: Authenticated) -> VerifyRequest:
        """The request read and checked before anything is stored (raises ``Refusal``)."""
        try:
            request = from_wire(
                message.message.certificate_verify,
                manifest=self._credentials().manifest,
                now=self._clock(),
            )
        except VerificationRefused as refusal:
            code = (
                FaultCode.UNKNOWN_ISSUER
                if refusal.code == "unknown_issuer"
                else _CONSENT_FAULTS.get(refusal.code, FaultCode.INVALID_PAYLOAD)
            )
            raise Refusal(
                code,
                refusal.detail,
                field=f"body.certificate_verify.{refusal.field}",
                message_id=message.message_id,
                digest=message.digest,
            ) from None
        if request.issuer != self.me:
            raise Refusal(
                FaultCode.UNKNOWN_ISSUER,
                f"the certificate was issued in {request.issuer}, not {self.me}; ask its node",
                field="body.certificate_verify.certificate_id",
                message_id=message.message_id,
                digest=message.digest,
            )
        # The manifest's word on this requester comes before every refusal about the
        # certificate (not found, holder_mismatch, and the disclosure policy's
        # purpose_not_allowed and the rest, decided in attest): it is the federation's
        # decision on who may ask what at all, so a requester outside its policy learns
        # nothing of the certificate (whether it exists, whose it is, what a purpose would
        # see) and the library, perhaps a province platform, is never called. Validators run
        # before the message is stored: the refusal leaves no inbox row, evidence-log entry
        # or usage record (用证记录).
        try:
            check_may_verify(
                message.sender, certificate_type_of(request.certificate_id), request.purpose
            )
        except PolicyRefusal as error:
            raise Refusal(
                FaultCode.CERTIFICATE_NOT_PERMITTED,
                error.detail,
                field=f"body.certificate_verify.{error.field}",
                message_id=message.message_id,
                digest=message.digest,
            ) from None
        return request

    async def answer_verify(self, message: Authenticated, now: float) -> Answer:
        # Read (its consent grant's signature checked) once, by the validator just before.
        request = self._read.pop(message.digest, None) or from_wire(
            message.message.certificate_verify, manifest=self._credentials().manifest, now=now
        )
        try:
            attestation, usage = await self.attest(
                request, message.digest, message.message_id, message.sender.province, now
            )
        except Refusal as refusal:
            refusal.message_id, refusal.digest = message.message_id, message.digest
            raise
        self._metrics.certificate_disclosures.labels(message.sender.province).inc()

        def effect(conn: Connection, received: Received) -> None:
            usage(conn)

        return Answer(("attestation", attestation), effect)

    async def attest(
        self,
        request: VerifyRequest,
        digest: bytes,
        message_id: str,
        requester_province: str,
        now: float,
    ) -> tuple[pb.Attestation, UsageRecord]:
        """The attestation for a request, and the usage record to store with it."""
        try:
            certificate = await self._library().get(str(request.certificate_id))
        except LibraryUnavailable as error:
            raise Refusal(
                FaultCode.LIBRARY_UNAVAILABLE, f"the certificate library: {error}"
            ) from None
        if certificate is None:
            raise Refusal(
                FaultCode.CERTIFICATE_NOT_FOUND,
                f"{self.me}'s certificate library holds no certificate with this identifier",
                field="certificate_id",
            )
        try:
            check_holder(certificate, request.holder_code)
        except CertificateError as error:
            raise Refusal(FaultCode.HOLDER_MISMATCH, error.detail, field="holder_code") from None
        try:
            disclosure = decide_disclosure(
                certificate.type,
                request.purpose,
                request.fields,
                request.consent,
                now,
                find_matter=self._find_matter,
                holder_code=request.holder_code,
                certificate_id=str(request.certificate_id),
                requester=request.requester,
            )
        except PolicyRefusal as error:
            code = _POLICY_FAULTS.get(error.code, FaultCode.INVALID_PAYLOAD)
            raise Refusal(code, error.detail, field=error.field) from None
        status = effective_status(certificate, china_date(now))
        values = {k: v or "" for k, v in disclosure.values(certificate).items()}
        valid_until = now + ATTESTATION_TTL
        if certificate.valid_until is not None:
            valid_until = min(valid_until, _end_of_day(certificate.valid_until))
        if disclosure.fields and request.consent is not None:
            # Fields seen under consent may not be relied on after the consent ends.
            valid_until = min(valid_until, request.consent.expires_at)
        valid_until = max(now, valid_until)
        attestation = pb.Attestation(
            request_digest=digest,
            certificate_id=str(certificate.certificate_id),
            certificate_type=certificate.type,
            status=status.value,
            checked_at=stamp(now),
            valid_until=stamp(valid_until),
            fields=values,
            purpose=request.purpose,
            holder_name_match=(
                pb.NAME_NOT_ASKED
                if not request.holder_name
                else pb.NAME_MATCHES
                if same_name(request.holder_name, certificate.holder_name)
                else pb.NAME_DIFFERS
            ),
        )

        def usage(conn: Connection) -> None:
            store.record_usage(
                conn,
                certificate_id=str(certificate.certificate_id),
                requester_province=requester_province,
                requester=request.requester,
                purpose=request.purpose,
                fields=["status", *disclosure.fields],
                consent_grant_id=disclosure.consent_grant_id,
                status=status.value,
                message_id=message_id,
                at=now,
            )

        return attestation, usage

    # -- offline presentations and usage records ---------------------------------------------

    async def issue(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/presentations``: a short-lived signed presentation of our certificate."""
        for key in body:
            if key not in ("certificate_id", "holder_code"):
                raise VerificationRefused("unknown_field", f"{key} is not a field here", field=key)
        try:
            parsed = parse_certificate_id(body.get("certificate_id"))  # type: ignore[arg-type]
            issuer = issuer_province(parsed)
        except IdentifierError as error:
            raise VerificationRefused(error.code, error.detail, field=error.field) from None
        if issuer != self.me:
            raise VerificationRefused(
                "not_issuer",
                f"a presentation is issued by the certificate's issuer ({issuer}); ask its node",
                field="certificate_id",
            )
        try:
            certificate = await self._library().get(str(parsed))
        except LibraryUnavailable as error:
            raise VerificationRefused("library_unavailable", str(error)) from None
        if certificate is None:
            raise VerificationRefused(
                "certificate_not_found",
                "the certificate library holds no such certificate",
                field="certificate_id",
            )
        if not isinstance(body.get("holder_code"), str) or not body.get("holder_code"):
            raise VerificationRefused(
                "missing_field", "holder_code is required", field="holder_code"
            )
        try:
            check_holder(certificate, body.get("holder_code"))
        except CertificateError as error:
            raise VerificationRefused(error.code, error.detail, field=error.field) from None
        now = self._clock()
        current = effective_status(certificate, china_date(now))
        if current is not CertificateStatus.VALID:
            raise VerificationRefused(
                "certificate_not_valid",
                f"the certificate is {current.value}; only a valid one can be presented",
                field="certificate_id",
            )
        token = issue_presentation(certificate, self._credentials().signing_key, now=now)
        decoded = read_presentation(
            token, manifest_issuer_keys(self._credentials().manifest, now), now=now
        )
        self._metrics.presentations_issued.inc()
        return {
            "token": token,
            "expires_at": format_time(decoded.expires_at),
            "certificate_id": str(parsed),
            "size_bytes": len(token),
        }

    def usage(self, certificate_id: str) -> dict[str, Any]:
        try:
            parsed = parse_certificate_id(certificate_id)
            issuer = issuer_province(parsed)
        except IdentifierError as error:
            raise VerificationRefused(error.code, error.detail, field=error.field) from None
        if issuer != self.me:
            raise VerificationRefused(
                "not_issuer",
                f"usage of this certificate is recorded by its issuer's node ({issuer})",
                field="certificate_id",
            )
        records = store.usage(self._db().reader(), str(parsed))
        return {
            "certificate_id": str(parsed),
            "issuer": issuer,
            "usage": [
                {
                    "at": format_time(r.at),
                    "requester_province": r.requester_province,
                    "requester": r.requester,
                    "purpose": r.purpose,
                    "fields": r.fields,
                    "consent_grant_id": r.consent_grant_id,
                    "status": r.status,
                    "message_id": r.message_id,
                }
                for r in records
            ],
        }


def _end_of_day(day: date) -> float:
    """The first instant after ``day`` in Beijing: a certificate valid until then."""
    next_day = datetime.combine(day + timedelta(days=1), day_start(), tzinfo=CHINA_STANDARD_TIME)
    return next_day.timestamp()
