"""Certificate mutual recognition (电子证照互认) as a node does it (DESIGN.md §7): the
service the Node holds, wiring its parts.

Each part has its own module and takes only what it uses: the requester (``requester``:
asking issuers, the cache, checking offline presentations), the issuer (``issuer``:
answering verifications with attestations, issuing presentations, usage records) and the
revocation-list exchange (``revocation_exchange``). Here: how they are built and share the
library, the payload handlers they take from peers, and the consent grants (同意授权) this
node signs for holders who signed in at its province platform.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from monitoring.metrics import NodeMetrics
from node.certificates.consent import ConsentRefused, parse_consent_request, sign_grant
from node.certificates.issuer import Issuer
from node.certificates.library import CertificateLibrary
from node.certificates.policy import MatterLookup
from node.certificates.requester import Requester
from node.certificates.revocation import RevocationList
from node.certificates.revocation_exchange import RevocationExchange
from node.certificates.verification import (
    VerificationRefused,
    Verified,
    VerifyQuestion,
    VerifyRequest,
)
from node.peers.courier import Courier, CredentialsView
from node.peers.inbound import PayloadHandler
from node.store.database import Database
from node.trust.manifest import format_time

log = logging.getLogger(__name__)


class CertificateRecognition:
    """The certificate service of one node: its parts, built from what each one uses."""

    def __init__(
        self,
        *,
        node_id: str,
        province: str,
        db: Callable[[], Database],
        clock: Callable[[], float],
        credentials: Callable[[], CredentialsView],
        courier: Courier,
        peers: Collection[str],
        library: CertificateLibrary,
        find_matter: MatterLookup,
        metrics: NodeMetrics,
    ) -> None:
        self.me = province
        self.library = library
        """Where this province's certificates are read: the node's own store, or the
        province platform once the link to it is up (swapped then)."""
        self._node_id = node_id
        self._clock = clock
        self._credentials = credentials
        self._find_matter = find_matter
        self._metrics = metrics
        self.revocations = RevocationExchange(
            province=province,
            db=db,
            clock=clock,
            credentials=credentials,
            courier=courier,
            peers=peers,
            library=lambda: self.library,
        )
        self.issuer = Issuer(
            province=province,
            db=db,
            clock=clock,
            credentials=credentials,
            library=lambda: self.library,
            find_matter=find_matter,
            metrics=metrics,
        )
        self.requester = Requester(
            node_id=node_id,
            province=province,
            db=db,
            clock=clock,
            credentials=credentials,
            courier=courier,
            issuer=self.issuer,
            held_list=self.revocations.held_list,
            metrics=metrics,
        )

    def handlers(self) -> dict[str, PayloadHandler]:
        """How this service takes its payload types from peers (see ``peers.inbound``)."""
        return {
            "certificate_verify": PayloadHandler(
                validate=self.issuer.validate_verify, respond=self.issuer.answer_verify
            ),
            **self.revocations.handlers(),
        }

    # -- the requester -----------------------------------------------------------------------

    def request(self, question: VerifyQuestion | Mapping[str, Any]) -> VerifyRequest:
        """A question read and checked (``Requester.request``); raises VerificationRefused."""
        return self.requester.request(question)

    async def verify(self, request: VerifyRequest) -> Verified:
        """The issuer's answer (``Requester.verify``); raises VerificationRefused."""
        return await self.requester.verify(request)

    async def verify_each(self, items: Sequence[Any]) -> list[Verified | VerificationRefused]:
        """Each question answered or refused on its own (``Requester.verify_each``)."""
        return await self.requester.verify_each(items)

    async def check_presentation(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.requester.check_presentation(body)

    # -- the issuer --------------------------------------------------------------------------

    async def issue(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return await self.issuer.issue(body)

    def usage(self, certificate_id: str) -> dict[str, Any]:
        return self.issuer.usage(certificate_id)

    # -- revocation lists --------------------------------------------------------------------

    def held_list(self, province: str) -> RevocationList | None:
        return self.revocations.held_list(province)

    async def publish(self) -> bool:
        return await self.revocations.publish()

    async def pull(self, province: str) -> bool:
        return await self.revocations.pull(province)

    def list_ages(self) -> dict[str, float]:
        return self.revocations.list_ages()

    # -- consent grants ----------------------------------------------------------------------

    def grant_consent(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """``POST /v1/consents``: sign what a holder signed in at our platform consented to."""
        try:
            grant = parse_consent_request(
                body,
                grantor=self._node_id,
                province=self.me,
                now=self._clock(),
                find_matter=self._find_matter,
            )
        except ConsentRefused as error:
            raise VerificationRefused(error.code, error.detail, field=error.field) from None
        token = sign_grant(grant, self._credentials().signing_key)
        self._metrics.consents_granted.inc()
        log.info("consent granted", extra={"grant_id": grant.grant_id, "purpose": grant.purpose})
        return {
            "grant": token,
            "grant_id": grant.grant_id,
            "expires_at": format_time(grant.expires_at),
            "fields": list(grant.fields),
            "purpose": grant.purpose,
        }
