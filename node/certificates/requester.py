"""The requester's side of certificate mutual recognition (DESIGN.md §7, rules 1, 3 and 5):
this node relying on another's certificate.

Online verification goes to the node of the province that issued the certificate, found
from the identifier; a verification of our own province's certificate is answered here, by
the issuer's own code (``Issuer.attest``). Before anything is sent, the manifest must let
this node ask for the certificate's type and the purpose (``policy.check_may_verify``); a
refusal is ``certificate_not_permitted``. The requester checks the attestation (signature,
issuer, the request digest, through the courier) and caches it until its ``valid_until`` or
until a newer revocation list of the issuer names the certificate; a cached answer is served
only for the same question (the same certificate, holder, purpose, fields and consent)
while that consent holds. The same question asked again while it is in flight joins it:
one question to the issuer, one usage record there.

Offline presentations are checked here too, with the issuer's key from the manifest and the
issuer's latest revocation list held here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from monitoring.metrics import NodeMetrics
from node.certificates.issuer import Issuer
from node.certificates.issuers import manifest_issuer_keys
from node.certificates.policy import SCENES, PolicyRefusal, certificate_type_of, check_may_verify
from node.certificates.presentation import PresentationError, check_offline, read_presentation
from node.certificates.revocation import RevocationList
from node.certificates.verification import (
    VerificationRefused,
    Verified,
    VerifyQuestion,
    VerifyRequest,
    parse_verify_request,
    verified,
)
from node.peers.courier import (
    Courier,
    CredentialsView,
    PeerUnanswered,
    ReplyRefused,
    UnknownPeer,
    record_exchange,
)
from node.protocol.faults import Refusal
from node.store.connection import Connection
from node.store.database import Database
from node.trust.manifest import format_time

log = logging.getLogger(__name__)

VERIFY_TIMEOUT = 10.0
CACHE_SIZE = 10_000
_SCENE_NAMES = frozenset(SCENES)

HeldList = Callable[[str], RevocationList | None]
"""The newest revocation list of a province held here, checked (``RevocationExchange``)."""


class Requester:
    """Asks issuers about certificates, caches their answers, checks presentations."""

    def __init__(
        self,
        *,
        node_id: str,
        province: str,
        db: Callable[[], Database],
        clock: Callable[[], float],
        credentials: Callable[[], CredentialsView],
        courier: Courier,
        issuer: Issuer,
        held_list: HeldList,
        metrics: NodeMetrics,
    ) -> None:
        self._node_id = node_id
        self.me = province
        self._db = db
        self._clock = clock
        self._credentials = credentials
        self._courier = courier
        self._issuer = issuer
        self._held_list = held_list
        self._metrics = metrics
        self._cache: OrderedDict[tuple[Any, ...], Verified] = OrderedDict()
        self._asking: dict[tuple[Any, ...], asyncio.Future[Verified]] = {}
        """Questions in flight, by ``cache_key``: the same question asked meanwhile joins."""

    def request(self, question: VerifyQuestion | Mapping[str, Any]) -> VerifyRequest:
        """A question (a case's, or a ``POST /v1/certificates/verify`` body) read and
        checked; raises VerificationRefused."""
        body = question.to_body() if isinstance(question, VerifyQuestion) else question
        return parse_verify_request(body, now=self._clock(), manifest=self._credentials().manifest)

    async def verify(self, request: VerifyRequest) -> Verified:
        """The issuer's answer to ``request``: from the cache, this node, or the issuer."""
        now = self._clock()
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
            return dataclasses.replace(cached, cached=True)
        asking = self._asking.get(key)
        joined = asking is not None
        if asking is None:
            asking = self._asking[key] = asyncio.ensure_future(self._ask(request, key, now))
            asking.add_done_callback(functools.partial(self._asked, key))
        try:
            # Shielded: one asker giving up does not withdraw the question from the others.
            answer = await asyncio.shield(asking)
        except VerificationRefused as refusal:
            self._count(request, refusal.code)
            raise
        self._count(request, answer.status)
        # An asker who joined a question in flight relies on an answer it did not cause:
        # one disclosure, one usage record, like an answer from the cache.
        return dataclasses.replace(answer, cached=True) if joined else answer

    def _asked(self, key: tuple[Any, ...], asking: asyncio.Future[Verified]) -> None:
        self._asking.pop(key, None)
        if not asking.cancelled():
            asking.exception()  # heard by its askers; retrieved here should all have left

    async def _ask(self, request: VerifyRequest, key: tuple[Any, ...], now: float) -> Verified:
        """The issuer's answer to a question not in the cache, kept there."""
        if request.issuer == self.me:
            answer = await self._verify_here(request, now)
        else:
            answer = await self._verify_remote(request)
        self._cache[key] = answer
        self._cache.move_to_end(key)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)
        return answer

    async def verify_each(self, items: Sequence[Any]) -> list[Verified | VerificationRefused]:
        """Each item (a ``POST /v1/certificates/verify`` body) answered or refused on its
        own, in order; asked at once, so the questions to one issuer travel together."""

        async def one(item: Any) -> Verified | VerificationRefused:
            if not isinstance(item, Mapping):
                return VerificationRefused(
                    "invalid_item", "each item must be a JSON object: a verification question"
                )
            try:
                return await self.verify(self.request(item))
            except VerificationRefused as refusal:
                return refusal

        return list(await asyncio.gather(*(one(item) for item in items)))

    def _check_own_policy(self, request: VerifyRequest) -> None:
        """Refuse, sending nothing, a question this node's manifest policy does not let it
        ask; the issuer would refuse it the same way."""
        me = self._credentials().manifest.member(self._node_id)
        if me is None:
            raise VerificationRefused(
                "certificate_not_permitted",
                f"{self._node_id} is not a member of its manifest; it may ask for nothing",
            )
        try:
            check_may_verify(me, certificate_type_of(request.certificate_id), request.purpose)
        except PolicyRefusal as error:
            raise VerificationRefused(error.code, error.detail, field=error.field) from None

    def _listed(self, request: VerifyRequest) -> bool:
        """Whether the issuer's latest list held here names the certificate."""
        parsed = self._held_list(request.issuer)
        return parsed is not None and parsed.status_of(request.certificate_id) is not None

    def _count(self, request: VerifyRequest, result: str) -> None:
        purpose = request.purpose if request.purpose in _SCENE_NAMES else "matter"
        self._metrics.certificate_verifications.labels(result, purpose).inc()

    async def _verify_here(self, request: VerifyRequest, now: float) -> Verified:
        """Our own province's certificate: the issuer's answer, signed here, to ourselves."""
        courier = self._courier
        sealed = courier.seal_to_self("certificate_verify", request.to_wire(), now=now)
        try:
            attestation, usage = await self._issuer.attest(
                request, sealed.digest, sealed.message_id, self.me, now
            )
        except Refusal as refusal:
            raise _refused(refusal.code.value, refusal.text, refusal.field) from None
        reply = courier.seal_to_self(
            "attestation", attestation, now=now, in_reply_to=sealed.message_id
        )

        def record(conn: Connection) -> None:
            usage(conn)
            record_exchange(conn, self.me, sealed, reply.envelope, now)

        await self._db().write(record)
        return verified(attestation, self.me, reply.envelope)

    async def _verify_remote(self, request: VerifyRequest) -> Verified:
        try:
            answered = await self._courier.ask(
                request.issuer, "certificate_verify", request.to_wire(), timeout=VERIFY_TIMEOUT
            )
        except UnknownPeer:
            raise VerificationRefused(
                "unknown_issuer", f"{request.issuer} is not a peer of this node"
            ) from None
        except PeerUnanswered as failure:
            # The transport's words (gRPC status, addresses) are for the operator's log; the
            # asker gets a sentence that names the province.
            log.warning(
                "issuer did not answer a verification",
                extra={"peer": request.issuer, "error": str(failure.error)},
            )
            raise VerificationRefused(
                "issuer_unreachable",
                f"the issuer's node ({request.issuer}) did not answer; ask again once it is up",
            ) from None
        except ReplyRefused as failure:
            refusal = failure.refusal
            raise VerificationRefused(
                "bad_attestation",
                f"the issuer's answer failed its checks: {refusal.code.value}: {refusal.text}",
            ) from None
        reply, raw = answered.reply, answered.raw
        if reply.payload_type == "fault":
            fault = reply.message.fault
            raise _refused(fault.code, fault.text, fault.field)
        if reply.payload_type != "attestation":
            raise VerificationRefused(
                "bad_attestation", f"the issuer answered with a {reply.payload_type}"
            )
        attestation = reply.message.attestation
        if attestation.certificate_id != str(request.certificate_id):
            raise VerificationRefused(
                "bad_attestation", "the attestation is about another certificate"
            )
        return verified(attestation, request.issuer, raw)

    async def check_presentation(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/presentations/verify``: the token checked offline, against the issuer's
        key in the manifest and its latest revocation list held here."""
        token = body.get("token")
        if set(body) - {"token"}:
            key = sorted(set(body) - {"token"})[0]
            raise VerificationRefused("unknown_field", f"{key} is not a field here", field=key)
        if not isinstance(token, str):
            raise VerificationRefused("missing_field", "token is required", field="token")
        now = self._clock()
        keys = manifest_issuer_keys(self._credentials().manifest, now)
        try:
            presentation = read_presentation(token, keys, now=now)
        except PresentationError as error:
            self._metrics.presentations_checked.labels(error.code).inc()
            raise VerificationRefused(error.code, error.detail, field="token") from None
        revocations = self._held_list(presentation.issuer_province)
        checked = check_offline(presentation, revocations, now=now)
        self._metrics.presentations_checked.labels(checked.status.value).inc()
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


def _refused(code: str, text: str, field: str) -> VerificationRefused:
    """The issuer's refusal (a fault's code, text and field) as this node's."""
    return VerificationRefused(code, text, field=field.removeprefix("body.certificate_verify."))
