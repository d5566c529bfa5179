"""Certificate mutual recognition (电子证照互认) as a node does it (DESIGN.md §7).

Rules kept here:
1. Online verification goes to the node of the province that issued the certificate, found
   from the identifier; a verification of our own province's certificate is answered here,
   by the same code. The issuer reads the certificate from its province's library, checks
   the holder, decides the disclosure (``policy``) and answers with a signed Attestation
   carrying the digest of the request, so it cannot be replayed as another answer.
   Before all that, the manifest must let the requester ask for the certificate's type and
   the purpose (``policy.check_may_verify``): the requester checks its own policy before it
   sends anything, the issuer the requester's before it stores or reads anything, and a
   refusal is ``certificate_not_permitted`` (HTTP 403, gRPC PERMISSION_DENIED).
2. Every disclosure is recorded at the issuer (用证记录) in the transaction that stores the
   request and the attestation, before the attestation leaves; a refusal records nothing.
3. The requester checks the attestation (signature, issuer, the request digest) and caches
   it until its ``valid_until`` or until a newer revocation list of the issuer names the
   certificate, which the issuer bounds by the certificate's validity and
   by the consent that let it disclose fields; a cached answer is served only for the same
   question (the same certificate, holder, purpose, fields and consent) while that consent
   holds.
4. An issuer publishes its revocation list, signed and versioned, to every peer whenever the
   revoked or suspended certificates of its library change, and at least every
   ``REPUBLISH_AFTER`` so its age says how fresh it is; peers also pull it periodically.
   A node keeps only a newer version than the one it holds.
5. Offline presentations are issued by the issuer's node for a valid certificate of its
   holder, and verified anywhere with the issuer's key from the manifest and the issuer's
   latest revocation list held here.
6. A request's ``requester`` is free text, judged by ``node.text.clean_text``
   (``invalid_text``) and kept in Unicode normal form C: it is shown to the holder.
"""

from __future__ import annotations

import base64
import logging
import math
import sqlite3
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as day_start
from typing import TYPE_CHECKING, Any

from node.certificates.consent import (
    ConsentGrant,
    ConsentRefused,
    grant_bytes,
    grant_token,
    parse_consent_request,
    read_grant,
    sign_grant,
)
from node.certificates.issuers import manifest_issuer_keys
from node.certificates.library import CertificateLibrary, LibraryUnavailable
from node.certificates.model import (
    CHINA_STANDARD_TIME,
    TYPES,
    CertificateError,
    CertificateStatus,
    check_holder,
    china_date,
    effective_status,
    same_name,
)
from node.certificates.policy import (
    SCENES,
    PolicyRefusal,
    certificate_type_of,
    check_may_verify,
    decide_disclosure,
)
from node.certificates.presentation import (
    PresentationError,
    check_offline,
    issue_presentation,
    read_presentation,
)
from node.certificates.revocation import (
    RevocationEntry,
    RevocationError,
    RevocationList,
    read_revocation_list,
    sign_revocation_list,
)
from node.identifiers import (
    CertificateId,
    IdentifierError,
    issuer_province,
    parse_certificate_id,
    validate_holder_code,
)
from node.peers.courier import (
    AskFailed,
    Courier,
    PeerUnanswered,
    ReplyRefused,
    UnknownPeer,
    record_exchange,
)
from node.peers.inbound import Answer, PayloadHandler, Received
from node.protocol.checks import Authenticated
from node.protocol.faults import FaultCode, Refusal
from node.store import certificates as store
from node.text import TextError, clean_text
from node.trust.manifest import PROVINCES, Manifest, format_time
from node.wire import pb
from node.wire.instants import instant, stamp

if TYPE_CHECKING:
    from node.runtime.node import Node

log = logging.getLogger(__name__)

ATTESTATION_TTL = 600.0
"""How long a requester may rely on an attestation: an issuer's revocation reaches it
through the attestation's expiry at the latest."""
REPUBLISH_AFTER = 3600.0
VERIFY_TIMEOUT = 10.0
CACHE_SIZE = 10_000
MAX_FIELDS = 32
MAX_REQUESTER_LENGTH = 100
MAX_HOLDER_NAME_LENGTH = 100

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
_CODE_OF_PROVINCE = {name: code for name, (code, _) in PROVINCES.items()}
_PROVINCE_OF_CODE = {code: name for name, code in _CODE_OF_PROVINCE.items()}


class VerificationRefused(Exception):
    """A verification, presentation or usage query was refused; nothing was disclosed.

    ``code`` is stable (the issuer's fault code, or a local one), ``field`` names the part of
    the request at fault, ``status`` is the HTTP status that fits.
    """

    def __init__(self, code: str, detail: str, *, field: str = "", status: int = 422) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.field = field
        self.status = status


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

    def to_json(self, *, cached: bool) -> dict[str, Any]:
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
            "attestation": base64.urlsafe_b64encode(self.envelope).rstrip(b"=").decode(),
            "cached": cached,
        }


# --- parsing requests -----------------------------------------------------------------------


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
            status=403,
        )
    try:
        return read_grant(data["grant"], manifest=manifest, now=now)
    except ConsentRefused as error:
        raise VerificationRefused(error.code, error.detail, field=error.field, status=403) from None


def _from_wire(message: pb.CertificateVerify, *, manifest: Manifest, now: float) -> VerifyRequest:
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


# --- the service ----------------------------------------------------------------------------


class CertificateRecognition:
    def __init__(self, node: Node, library: CertificateLibrary, *, courier: Courier) -> None:
        self._node = node
        self._courier = courier
        self.library = library
        self._cache: OrderedDict[tuple[Any, ...], Verified] = OrderedDict()
        self._parsed_lists: dict[tuple[str, int, int], RevocationList] = {}

    @property
    def me(self) -> str:
        return self._node.config.province

    def handlers(self) -> dict[str, PayloadHandler]:
        """How this service takes its payload types from peers (see ``peers.inbound``)."""
        return {
            "certificate_verify": PayloadHandler(
                validate=self.validate_verify, respond=self.answer_verify
            ),
            "revocation_list": PayloadHandler(validate=self.validate_list, effect=self.on_list),
            "revocation_list_request": PayloadHandler(respond=self.answer_list_request),
        }

    # -- requester side ----------------------------------------------------------------------

    async def verify(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Answer ``POST /v1/certificates/verify``: from the cache, this node, or the issuer."""
        node = self._node
        now = node.clock()
        request = parse_verify_request(body, now=now, manifest=node.credentials.manifest)
        try:
            # Before the cache too: it may hold answers from before the manifest narrowed
            # what this node may ask.
            self._check_own_policy(request)
        except VerificationRefused as refusal:
            self._count(request, refusal.code)
            raise
        key = request.cache_key()
        cached = self._cache.get(key)
        consent_holds = request.consent is None or request.consent.expires_at > now
        if cached is not None and cached.status == "valid" and self._listed(request):
            cached = None  # revoked or suspended since: the newer list outranks the cache
        if cached is not None and cached.valid_until > now and consent_holds:
            self._count(request, cached.status)
            return cached.to_json(cached=True)
        try:
            if request.issuer == self.me:
                verified = await self._verify_here(request, now)
            else:
                verified = await self._verify_remote(request)
        except VerificationRefused as refusal:
            self._count(request, refusal.code)
            raise
        self._cache[key] = verified
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        self._count(request, verified.status)
        return verified.to_json(cached=False)

    def _check_own_policy(self, request: VerifyRequest) -> None:
        """Refuse, sending nothing, a question this node's manifest policy does not let it
        ask; the issuer would refuse it the same way."""
        node = self._node
        me = node.credentials.manifest.member(node.config.node_id)
        if me is None:
            raise VerificationRefused(
                "certificate_not_permitted",
                f"{node.config.node_id} is not a member of its manifest; it may ask for nothing",
                status=403,
            )
        try:
            check_may_verify(me, certificate_type_of(request.certificate_id), request.purpose)
        except PolicyRefusal as error:
            raise VerificationRefused(
                error.code, error.detail, field=error.field, status=403
            ) from None

    def _listed(self, request: VerifyRequest) -> bool:
        """Whether the issuer's latest list held here names the certificate."""
        parsed = self.held_list(request.issuer)
        return parsed is not None and parsed.status_of(request.certificate_id) is not None

    def _count(self, request: VerifyRequest, result: str) -> None:
        purpose = request.purpose if request.purpose in _SCENE_NAMES else "matter"
        self._node.metrics.certificate_verifications.labels(result, purpose).inc()

    async def _verify_here(self, request: VerifyRequest, now: float) -> Verified:
        """Our own province's certificate: the issuer's answer, signed here, to ourselves."""
        node = self._node
        courier = self._courier
        sealed = courier.seal_to_self("certificate_verify", request.to_wire(), now=now)
        try:
            attestation, usage = await self._attest(
                request, sealed.digest, sealed.message_id, self.me, now
            )
        except Refusal as refusal:
            raise _refused(refusal.code.value, refusal.text, refusal.field) from None
        reply = courier.seal_to_self(
            "attestation", attestation, now=now, in_reply_to=sealed.message_id
        )

        def record(conn: sqlite3.Connection) -> None:
            usage(conn)
            record_exchange(conn, self.me, sealed, reply.envelope, now)

        await node.db.write(record)
        return _verified(attestation, self.me, reply.envelope)

    async def _verify_remote(self, request: VerifyRequest) -> Verified:
        try:
            answered = await self._courier.ask(
                request.issuer, "certificate_verify", request.to_wire(), timeout=VERIFY_TIMEOUT
            )
        except UnknownPeer:
            raise VerificationRefused(
                "unknown_issuer", f"{request.issuer} is not a peer of this node", status=422
            ) from None
        except PeerUnanswered as failure:
            raise VerificationRefused(
                "issuer_unreachable",
                f"the issuer's node ({request.issuer}) did not answer: {failure.error}",
                status=503,
            ) from None
        except ReplyRefused as failure:
            refusal = failure.refusal
            raise VerificationRefused(
                "bad_attestation",
                f"the issuer's answer failed its checks: {refusal.code.value}: {refusal.text}",
                status=502,
            ) from None
        reply, raw = answered.reply, answered.raw
        if reply.payload_type == "fault":
            fault = reply.message.fault
            raise _refused(fault.code, fault.text, fault.field)
        if reply.payload_type != "attestation":
            raise VerificationRefused(
                "bad_attestation", f"the issuer answered with a {reply.payload_type}", status=502
            )
        attestation = reply.message.attestation
        if attestation.certificate_id != str(request.certificate_id):
            raise VerificationRefused(
                "bad_attestation", "the attestation is about another certificate", status=502
            )
        return _verified(attestation, request.issuer, raw)

    # -- issuer side -------------------------------------------------------------------------

    def validate_verify(self, message: Authenticated) -> None:
        try:
            request = _from_wire(
                message.message.certificate_verify,
                manifest=self._manifest(),
                now=self._node.clock(),
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
        # purpose_not_allowed and the rest, decided in _attest): it is the federation's
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

    async def answer_verify(self, message: Authenticated, now: float) -> Answer:
        request = _from_wire(message.message.certificate_verify, manifest=self._manifest(), now=now)
        try:
            attestation, usage = await self._attest(
                request, message.digest, message.message_id, message.sender.province, now
            )
        except Refusal as refusal:
            refusal.message_id, refusal.digest = message.message_id, message.digest
            raise
        self._node.metrics.certificate_disclosures.labels(message.sender.province).inc()

        def effect(conn: sqlite3.Connection, received: Received) -> None:
            usage(conn)

        return Answer(("attestation", attestation), effect)

    async def _attest(
        self,
        request: VerifyRequest,
        digest: bytes,
        message_id: str,
        requester_province: str,
        now: float,
    ) -> tuple[pb.Attestation, Any]:
        """The attestation for a request, and the usage record to store with it."""
        try:
            certificate = await self.library.get(str(request.certificate_id))
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
                find_matter=self._node.cases.find_matter,
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

        def usage(conn: sqlite3.Connection) -> None:
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

    # -- usage records -----------------------------------------------------------------------

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
                status=404,
            )
        records = store.usage(self._node.db.reader(), str(parsed))
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

    # -- consent grants ----------------------------------------------------------------------

    def grant_consent(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/consents``: sign what a holder signed in at our platform consented to."""
        node = self._node
        try:
            grant = parse_consent_request(
                body,
                grantor=node.config.node_id,
                province=node.config.province,
                now=node.clock(),
                find_matter=node.cases.find_matter,
            )
        except ConsentRefused as error:
            raise VerificationRefused(error.code, error.detail, field=error.field) from None
        token = sign_grant(grant, node.credentials.signing_key)
        node.metrics.consents_granted.inc()
        log.info("consent granted", extra={"grant_id": grant.grant_id, "purpose": grant.purpose})
        return {
            "grant": token,
            "grant_id": grant.grant_id,
            "expires_at": format_time(grant.expires_at),
            "fields": list(grant.fields),
            "purpose": grant.purpose,
        }

    # -- presentations -----------------------------------------------------------------------

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
            certificate = await self.library.get(str(parsed))
        except LibraryUnavailable as error:
            raise VerificationRefused("library_unavailable", str(error), status=503) from None
        if certificate is None:
            raise VerificationRefused(
                "certificate_not_found",
                "the certificate library holds no such certificate",
                field="certificate_id",
                status=404,
            )
        if not isinstance(body.get("holder_code"), str) or not body.get("holder_code"):
            raise VerificationRefused(
                "missing_field", "holder_code is required", field="holder_code"
            )
        try:
            check_holder(certificate, body.get("holder_code"))
        except CertificateError as error:
            status = 403 if error.code == "holder_mismatch" else 422
            raise VerificationRefused(
                error.code, error.detail, field=error.field, status=status
            ) from None
        now = self._node.clock()
        current = effective_status(certificate, china_date(now))
        if current is not CertificateStatus.VALID:
            raise VerificationRefused(
                "certificate_not_valid",
                f"the certificate is {current.value}; only a valid one can be presented",
                field="certificate_id",
                status=409,
            )
        token = issue_presentation(certificate, self._node.credentials.signing_key, now=now)
        decoded = read_presentation(token, manifest_issuer_keys(self._manifest(), now), now=now)
        self._node.metrics.presentations_issued.inc()
        return {
            "token": token,
            "expires_at": format_time(decoded.expires_at),
            "certificate_id": str(parsed),
            "size_bytes": len(token),
        }

    async def check_presentation(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/presentations/verify``: the token checked offline, against the issuer's
        key in the manifest and its latest revocation list held here."""
        token = body.get("token")
        if set(body) - {"token"}:
            key = sorted(set(body) - {"token"})[0]
            raise VerificationRefused("unknown_field", f"{key} is not a field here", field=key)
        if not isinstance(token, str):
            raise VerificationRefused("missing_field", "token is required", field="token")
        now = self._node.clock()
        keys = manifest_issuer_keys(self._manifest(), now)
        try:
            presentation = read_presentation(token, keys, now=now)
        except PresentationError as error:
            self._node.metrics.presentations_checked.labels(error.code).inc()
            raise VerificationRefused(error.code, error.detail, field="token") from None
        revocations = self.held_list(presentation.issuer_province)
        checked = check_offline(presentation, revocations, now=now)
        self._node.metrics.presentations_checked.labels(checked.status.value).inc()
        return {
            "valid": checked.valid,
            "status": checked.status.value,
            "issuer": checked.issuer_province,
            "certificate_id": str(presentation.certificate_id),
            "certificate_type": presentation.certificate_type,
            "expires_at": format_time(presentation.expires_at),
            "revocation_list_age_seconds": None
            if checked.revocation_list_age_seconds is None
            else round(checked.revocation_list_age_seconds, 1),
            "revocation_list_version": revocations.version if revocations else None,
            "fields": {k: v for k, v in checked.fields.items()},
        }

    def _manifest(self) -> Manifest:
        return self._node.credentials.manifest

    # -- revocation lists --------------------------------------------------------------------

    def held_list(self, province: str) -> RevocationList | None:
        """The newest list of ``province`` held here, checked (each version once)."""
        held = store.held_list(self._node.db.reader(), province)
        if held is None:
            return None
        # Checked once per list version under each manifest: a manifest that revokes the
        # key a held list was signed with voids the list the moment it is loaded.
        manifest = self._manifest()
        cached = (province, held.version, manifest.version)
        parsed = self._parsed_lists.get(cached)
        if parsed is not None:
            return parsed
        keys = manifest_issuer_keys(manifest, self._node.clock())
        try:
            parsed = read_revocation_list(held.signed, keys)
            self._parsed_lists = {
                key: value for key, value in self._parsed_lists.items() if key[0] != province
            }
            self._parsed_lists[cached] = parsed
            return parsed
        except RevocationError as error:
            # Held lists were checked on arrival; a key revoked since then voids them.
            log.warning(
                "held revocation list no longer verifies",
                extra={"peer": province, "reason": str(error)},
            )
            return None

    async def publish(self) -> bool:
        """Sign and announce a new version of our list if the library changed or the held one
        is older than REPUBLISH_AFTER; return whether one was published."""
        node = self._node
        try:
            entries = await self.library.revocations()
        except LibraryUnavailable as error:
            log.warning("cannot read revocations from the library", extra={"reason": str(error)})
            return False
        now = node.clock()
        current = self.held_list(self.me)
        listed = {(str(e.certificate_id), e.status) for e in entries}
        if current is not None:
            same = listed == {(str(e.certificate_id), e.status) for e in current.entries}
            if same and now - current.issued_at < REPUBLISH_AFTER:
                return False
        version = 1 if current is None else current.version + 1
        issued_at = math.floor(now)
        revocations = RevocationList(
            self.me, version, issued_at, tuple(_clamped(e, issued_at) for e in entries)
        )
        signed = sign_revocation_list(revocations, node.credentials.signing_key)
        announce = pb.RevocationListAnnounce(
            province=_CODE_OF_PROVINCE[self.me], signed_list=signed, version=version
        )
        courier = self._courier
        correlation = f"revocation-list:{version}"
        sealed = {
            province: courier.seal(
                province, [("revocation_list", announce)], correlation_id=correlation
            )
            for province in node.peers
        }

        def record(conn: sqlite3.Connection) -> None:
            store.keep_list(
                conn,
                province=self.me,
                version=version,
                signed=signed,
                issued_at=issued_at,
                received_at=now,
            )
            for province, messages in sealed.items():
                courier.enqueue(conn, province, messages, correlation_id=correlation)

        await node.db.write(record)
        log.info("revocation list published", extra={"version": version, "count": len(entries)})
        return True

    def validate_list(self, message: Authenticated) -> None:
        announce = message.message.revocation_list
        try:
            self._read_announce(announce, message.sender.province)
        except (RevocationError, ValueError) as error:
            raise Refusal(
                FaultCode.INVALID_PAYLOAD,
                f"revocation_list: {error}",
                field="body.revocation_list.signed_list",
                message_id=message.message_id,
                digest=message.digest,
            ) from None

    def _read_announce(self, announce: pb.RevocationListAnnounce, sender: str) -> RevocationList:
        if _PROVINCE_OF_CODE.get(announce.province) != sender:
            raise ValueError(f"province {announce.province!r} is not the sender's ({sender})")
        keys = manifest_issuer_keys(self._manifest(), self._node.clock())
        revocations = read_revocation_list(announce.signed_list, keys)
        if revocations.issuer_province != sender or revocations.version != announce.version:
            raise ValueError("the signed list's issuer or version differs from the announcement")
        return revocations

    def on_list(self, conn: sqlite3.Connection, received: Received) -> None:
        message = received.message
        revocations = self._read_announce(message.message.revocation_list, message.sender.province)
        store.keep_list(
            conn,
            province=revocations.issuer_province,
            version=revocations.version,
            signed=message.message.revocation_list.signed_list,
            issued_at=revocations.issued_at,
            received_at=received.received_at,
        )

    async def answer_list_request(self, message: Authenticated, now: float) -> Answer:
        held = store.held_list(self._node.db.reader(), self.me)
        announce = pb.RevocationListAnnounce(province=_CODE_OF_PROVINCE[self.me])
        if held is not None:
            announce.signed_list = held.signed
            announce.version = held.version
        return Answer(("revocation_list", announce), store=False)

    async def pull(self, province: str) -> bool:
        """Ask a peer for its current list; keep it if newer. Return whether it was kept."""
        node = self._node
        if province not in node.peers:
            return False
        held = store.held_list(node.db.reader(), province)
        request = pb.RevocationListRequest(held_version=held.version if held else 0)
        try:
            answered = await self._courier.ask(
                province, "revocation_list_request", request, timeout=VERIFY_TIMEOUT, record=False
            )
        except (AskFailed, Refusal) as error:
            log.info("revocation list pull failed", extra={"peer": province, "error": str(error)})
            return False
        reply = answered.reply
        if reply.payload_type != "revocation_list" or not reply.message.revocation_list.signed_list:
            return False
        try:
            revocations = self._read_announce(reply.message.revocation_list, province)
        except (RevocationError, ValueError) as error:
            log.warning(
                "peer's revocation list refused", extra={"peer": province, "reason": str(error)}
            )
            return False
        now = node.clock()
        return await node.db.write(
            lambda conn: store.keep_list(
                conn,
                province=province,
                version=revocations.version,
                signed=reply.message.revocation_list.signed_list,
                issued_at=revocations.issued_at,
                received_at=now,
            )
        )

    def list_ages(self) -> dict[str, float]:
        """Seconds since each held list was issued, by issuing province."""
        now = self._node.clock()
        return {
            h.province: max(0.0, now - h.issued_at)
            for h in store.held_lists(self._node.db.reader())
        }


# --- helpers --------------------------------------------------------------------------------

_SCENE_NAMES = frozenset(SCENES)


def _verified(attestation: pb.Attestation, issuer: str, envelope: bytes) -> Verified:
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


def _refused(code: str, text: str, field: str) -> VerificationRefused:
    status = {
        "certificate_not_found": 404,
        "certificate_not_permitted": 403,
        "holder_mismatch": 403,
        "purpose_not_allowed": 403,
        "field_not_allowed": 403,
        "consent_required": 403,
        "consent_expired": 403,
        "consent_mismatch": 403,
        "consent_unverifiable": 403,
        "library_unavailable": 503,
    }.get(code, 422)
    return VerificationRefused(
        code, text, field=field.removeprefix("body.certificate_verify."), status=status
    )


def _end_of_day(day: date) -> float:
    """The first instant after ``day`` in Beijing: a certificate valid until then."""
    next_day = datetime.combine(day + timedelta(days=1), day_start(), tzinfo=CHINA_STANDARD_TIME)
    return next_day.timestamp()


def _clamped(entry: RevocationEntry, issued_at: int) -> RevocationEntry:
    if entry.since <= issued_at:
        return entry
    return RevocationEntry(entry.certificate_id, entry.status, issued_at, entry.reason)
