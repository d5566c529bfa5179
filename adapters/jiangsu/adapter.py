"""The node's adapter to the Jiangsu platform (江苏政务服务网), speaking its dialect.

Implements ``node.platform.adapter.ProvinceAdapter`` (whose docstring has the rules every
adapter keeps; ``adapters.replies`` keeps the parts all four share). Particular to
Jiangsu:

1. Translations, both ways, are ``adapters.jiangsu.dialect``'s, the very functions the
   simulated platform uses; XML is read by ``adapters.jiangsu.strict_xml`` (defusedxml, no
   DTD, no entities, nesting bounded), so a reply carrying an entity bomb raises
   ``DialectError`` (``forbidden_xml``) before anything is expanded, and one nested too deep
   (``too_deep``) before its tree grows deeper.
2. A feed record (``<sq>``, ``<dt>``) that does not translate becomes a ``Malformed`` naming
   its ``sqbh`` or ``dtbh`` (``"?"`` when even that is unreadable); a reply that is not the
   dialect at all (not UTF-8, not well-formed, another root element, a broken page) raises
   ``DialectError``. A certificate is also checked by ``parse_certificate`` and the matter
   list by ``parse_catalog``: what the node receives is what its model accepts.
3. A 404 ``<cwxx>`` with ``not_found`` naming ``zzbs`` is "not in the library" (None); every
   other 4xx (a 404 for an unknown route or about another element too) is a
   ``DialectError`` carrying the platform's ``cwdm``; 5xx, timeouts and refused connections
   are ``PlatformUnavailable`` (``adapters.transport``).
4. A delivery's receipt must name the case (and update), or the application and the
   refusal, delivered; new or duplicate, both mean the platform has it.
5. ``credentials`` may hold ``access_token`` (sent as ``X-JSZW-Token``) and ``timeout``
   (seconds, default 10).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from adapters.jiangsu import dialect
from adapters.jiangsu.dialect import JIANGSU
from adapters.jiangsu.platform import BASE, CERTIFICATES, STATUS_CHANGES, TOKEN_HEADER
from adapters.jiangsu.strict_xml import Node, XmlRecord, read_document, to_xml
from adapters.replies import (
    FeedRecord,
    certificate_lookup,
    checked_matters,
    feed_cursor,
    translate_feed,
)
from adapters.transport import DEFAULT_TIMEOUT, PlatformClient, Reply
from node.platform.adapter import (
    ApplicationRefusal,
    CaseNotice,
    DialectError,
    InboundCase,
    Page,
    ProvinceAdapter,
)

CONTENT_TYPE = "application/xml; charset=utf-8"


class JiangsuAdapter:
    """``ProvinceAdapter`` for the Jiangsu dialect (rules in the module docstring)."""

    def __init__(
        self, base_url: str, *, access_token: str = "", timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        headers = {TOKEN_HEADER: access_token} if access_token else {}
        self._client = PlatformClient(
            base_url, platform=dialect.PROVINCE, timeout=timeout, headers=headers
        )

    async def poll_applications(self, cursor: str | None) -> Page:
        return await self._page(
            f"{BASE}/sq", ("sqlb", "sq"), cursor, JIANGSU.read_application_record, "sqbh"
        )

    async def acknowledge(self, reference: str, case_id: str) -> None:
        def check(fields: XmlRecord) -> None:
            if fields.text("sqbh", max_length=64) != reference:
                raise DialectError("invalid_field", "names another application", field="sqbh")
            if fields.text("ajbh", max_length=128) != case_id:
                raise DialectError("invalid_field", "names another case", field="ajbh")
            dialect.read_time(fields, "qrsj")
            fields.finish()

        path = f"{BASE}/sq/{quote(reference, safe='')}/qr"
        await self._send(path, ("qr", [("ajbh", case_id)]), "qrhz", check)

    async def reject_application(self, reference: str, refusal: ApplicationRefusal) -> None:
        path = f"{BASE}/sq/{quote(reference, safe='')}/th"
        await self._send(
            path,
            dialect.refusal_to_dialect(refusal),
            "thhz",
            lambda fields: dialect.read_refusal_receipt(fields, reference, refusal.code),
        )

    async def poll_events(self, cursor: str | None) -> Page:
        return await self._page(
            f"{BASE}/bjdt", ("dtlb", "dt"), cursor, JIANGSU.read_event_record, "dtbh"
        )

    async def deliver_case(self, case: InboundCase) -> None:
        await self._send(
            f"{BASE}/ajjs",
            dialect.case_to_dialect(case),
            "jshz",
            lambda fields: dialect.read_delivery_receipt(fields, case.case_id, None),
        )

    async def deliver_update(self, notice: CaseNotice) -> None:
        await self._send(
            f"{BASE}/ajtz",
            dialect.notice_to_dialect(notice),
            "tzhz",
            lambda fields: dialect.read_delivery_receipt(fields, notice.case_id, notice.sequence),
        )

    async def fetch_certificate(self, certificate_id: str) -> Mapping[str, Any] | None:
        read = certificate_lookup(
            dialect.read_error,
            lambda reply: JIANGSU.read_certificate(_document(reply, "zz")),
            noun="<zz>",
            field="zzbs",
        )
        path = f"{CERTIFICATES}/{quote(certificate_id, safe='')}"
        return await self._client.request("GET", path, read)

    async def list_revocations(self) -> Sequence[Mapping[str, Any]]:
        def read(reply: Reply) -> Sequence[Mapping[str, Any]]:
            fields = _document(reply, "ztbglb")
            records = fields.repeated("ztbg", max_items=100_000)
            fields.finish()
            return [JIANGSU.read_revocation(record) for record in records]

        return await self._client.request("GET", STATUS_CHANGES, read)

    async def list_matters(self) -> Sequence[Mapping[str, Any]]:
        def read(reply: Reply) -> Sequence[Mapping[str, Any]]:
            fields = _document(reply, "sxlb")
            matters = [JIANGSU.read_matter(item) for item in fields.repeated("sx", max_items=1000)]
            fields.finish()
            return checked_matters(matters, dialect.PROVINCE)

        return await self._client.request("GET", f"{BASE}/sxlb", read)

    async def close(self) -> None:
        await self._client.close()

    # -- plumbing ----------------------------------------------------------------------------

    async def _page(
        self,
        path: str,
        tags: tuple[str, str],
        cursor: str | None,
        read_record: Callable[[XmlRecord], FeedRecord],
        reference: str,
    ) -> Page:
        """One page of a feed from ``cursor``, a document ``<root>`` of ``<item>`` records
        (``tags``): the records as ``read_record`` translates them, each named by its child
        ``reference`` when it does not translate."""
        root, item = tags

        def read(reply: Reply) -> Page:
            fields = _document(reply, root)
            next_cursor = fields.text("xyyb", max_length=40)
            fields.code("sfyhx", dialect.YES_NO)
            records = fields.repeated(item, max_items=10_000)
            fields.finish()
            items = translate_feed(records, read_record, lambda record: record.peek(reference))
            return Page(items, feed_cursor(cursor, next_cursor, empty=not records))

        params = {"yb": cursor} if cursor is not None else {}
        return await self._client.request("GET", path, read, params=params)

    async def _send(
        self, path: str, body: Node, reply_root: str, check: Callable[[XmlRecord], None]
    ) -> None:
        """Post ``body``; its receipt, a ``<reply_root>`` document, must pass ``check``."""
        await self._client.request(
            "POST",
            path,
            lambda reply: check(_document(reply, reply_root)),
            body=to_xml(body),
            content_type=CONTENT_TYPE,
        )


def _document(reply: Reply, root: str) -> XmlRecord:
    if reply.status >= 400:
        raise dialect.read_error(reply.body, reply.status)
    return read_document(reply.body, root, what="reply")


def make_adapter(base_url: str, *, credentials: Mapping[str, str]) -> ProvinceAdapter:
    """The Jiangsu adapter for the platform at ``base_url`` (rule 5 for ``credentials``)."""
    timeout = float(credentials.get("timeout", DEFAULT_TIMEOUT))
    return JiangsuAdapter(
        base_url, access_token=credentials.get("access_token", ""), timeout=timeout
    )
