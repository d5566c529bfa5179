"""The node's adapter to the Shanghai platform (一网通办), speaking its dialect.

Implements ``node.platform.adapter.ProvinceAdapter`` (whose docstring has the rules every
adapter keeps; ``adapters.replies`` keeps the parts all four share). Particular to
Shanghai:

1. Translations, both ways, are ``adapters.shanghai.dialect``'s, the very ones the
   simulated platform uses.
2. A feed record that does not translate becomes a ``Malformed`` naming its ``applyNo`` or
   ``eventId`` (``"?"`` when even that is unreadable); a reply that is not the dialect at all
   raises ``DialectError``. A certificate is also checked by ``parse_certificate`` and the
   matter list by ``parse_catalog``: what the node receives is what its model accepts.
3. A 404 ``not_found`` naming ``licenseId`` is "not in the library" (None); every other 4xx
   (a 404 for an unknown route or about another field too) is a ``DialectError``
   carrying the platform's ``errorType``; 5xx, timeouts and refused connections are
   ``PlatformUnavailable`` (``adapters.transport``).
4. ``credentials`` may hold ``access_token`` (sent as ``X-Access-Token``) and ``timeout``
   (seconds, default 10).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from adapters.replies import (
    FeedRecord,
    certificate_lookup,
    checked_matters,
    feed_cursor,
    key,
    translate_feed,
)
from adapters.shanghai import dialect
from adapters.shanghai.dialect import SHANGHAI
from adapters.shanghai.platform import BASE, LICENSES, REVOCATIONS, TOKEN_HEADER
from adapters.strict_json import JsonObject, decode_json_object
from adapters.transport import DEFAULT_TIMEOUT, PlatformClient, Reply
from node.platform.adapter import (
    ApplicationRefusal,
    CaseNotice,
    DialectError,
    InboundCase,
    Page,
    ProvinceAdapter,
)


class ShanghaiAdapter:
    """``ProvinceAdapter`` for the Shanghai dialect (rules in the module docstring)."""

    def __init__(
        self, base_url: str, *, access_token: str = "", timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        headers = {TOKEN_HEADER: access_token} if access_token else {}
        self._client = PlatformClient(
            base_url, platform=dialect.PROVINCE, timeout=timeout, headers=headers
        )

    async def poll_applications(self, cursor: str | None) -> Page:
        return await self._page(
            f"{BASE}/applications", cursor, SHANGHAI.read_application_record, "applyNo"
        )

    async def acknowledge(self, reference: str, case_id: str) -> None:
        path = f"{BASE}/applications/{quote(reference, safe='')}/acknowledgement"
        await self._send("POST", path, {"caseId": case_id})

    async def reject_application(self, reference: str, refusal: ApplicationRefusal) -> None:
        path = f"{BASE}/applications/{quote(reference, safe='')}/rejection"
        await self._send("POST", path, SHANGHAI.refusal_to_dialect(refusal, dialect.dialect_field))

    async def poll_events(self, cursor: str | None) -> Page:
        return await self._page(f"{BASE}/events", cursor, SHANGHAI.read_event_record, "eventId")

    async def deliver_case(self, case: InboundCase) -> None:
        await self._send("POST", f"{BASE}/inboundCases", SHANGHAI.case_to_dialect(case))

    async def deliver_update(self, notice: CaseNotice) -> None:
        await self._send("POST", f"{BASE}/caseNotices", SHANGHAI.notice_to_dialect(notice))

    async def fetch_certificate(self, certificate_id: str) -> Mapping[str, Any] | None:
        read = certificate_lookup(
            dialect.read_error,
            lambda reply: SHANGHAI.read_certificate(JsonObject(_object(reply))),
            noun="licence",
            field="licenseId",
        )
        path = f"{LICENSES}/{quote(certificate_id, safe='')}"
        return await self._client.request("GET", path, read)

    async def list_revocations(self) -> Sequence[Mapping[str, Any]]:
        def read(reply: Reply) -> Sequence[Mapping[str, Any]]:
            fields = JsonObject(_object(reply))
            records = fields.objects("records", max_items=100_000)
            fields.finish()
            return [SHANGHAI.read_revocation(record) for record in records]

        return await self._client.request("GET", REVOCATIONS, read)

    async def list_matters(self) -> Sequence[Mapping[str, Any]]:
        def read(reply: Reply) -> Sequence[Mapping[str, Any]]:
            fields = JsonObject(_object(reply))
            records = fields.objects("records", max_items=1000)
            fields.finish()
            return checked_matters(
                [SHANGHAI.read_matter(item) for item in records], dialect.PROVINCE
            )

        return await self._client.request("GET", f"{BASE}/matters", read)

    async def close(self) -> None:
        await self._client.close()

    # -- plumbing ----------------------------------------------------------------------------

    async def _page(
        self,
        path: str,
        cursor: str | None,
        read_record: Callable[[JsonObject], FeedRecord],
        reference: str,
    ) -> Page:
        """One page of a feed from ``cursor``: its records as ``read_record`` translates them,
        each named by its field ``reference`` when it does not translate."""

        def read(reply: Reply) -> Page:
            fields = JsonObject(_object(reply))
            records = fields.raw("records")
            if not isinstance(records, list):
                raise DialectError("malformed_body", "records must be a list", field="records")
            next_cursor = fields.text("nextCursor", max_length=40)
            fields.boolean("hasMore")
            fields.finish()
            items = translate_feed(records, lambda r: read_record(JsonObject(r)), key(reference))
            return Page(items, feed_cursor(cursor, next_cursor, empty=not records))

        params = {"cursor": cursor} if cursor is not None else {}
        return await self._client.request("GET", path, read, params=params)

    async def _send(self, method: str, path: str, body: Mapping[str, Any]) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        await self._client.request(
            method, path, _object, body=data, content_type="application/json"
        )


def _object(reply: Reply) -> dict[str, Any]:
    if reply.status >= 400:
        raise dialect.read_error(reply.body, reply.status)
    return decode_json_object(reply.body, what="reply")


def make_adapter(base_url: str, *, credentials: Mapping[str, str]) -> ProvinceAdapter:
    """The Shanghai adapter for the platform at ``base_url`` (rule 4 for ``credentials``)."""
    timeout = float(credentials.get("timeout", DEFAULT_TIMEOUT))
    return ShanghaiAdapter(
        base_url, access_token=credentials.get("access_token", ""), timeout=timeout
    )
