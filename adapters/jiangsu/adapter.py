"""The node's adapter to the Jiangsu platform (江苏政务服务网), speaking its dialect.

Implements ``node.platform.adapter.ProvinceAdapter`` (whose docstring has the rules every
adapter keeps; ``adapters.replies`` keeps the parts all four share). Particular to
Jiangsu:

1. Translations, both ways, are ``adapters.jiangsu.dialect``'s, the very functions the
   simulated platform uses; XML is read by ``adapters.jiangsu.strict_xml`` (defusedxml, no
   DTD, no entities), so a reply carrying an entity bomb raises ``DialectError``
   (``forbidden_xml``) before anything is expanded.
2. A feed record (``<sq>``, ``<dt>``) that does not translate becomes a ``Malformed`` naming
   its ``sqbh`` or ``dtbh`` (``"?"`` when even that is unreadable); a reply that is not the
   dialect at all (not UTF-8, not well-formed, another root element, a broken page) raises
   ``DialectError``. A certificate is also checked by ``parse_certificate`` and the matter
   list by ``parse_catalog``: what the node receives is what its model accepts.
3. A 404 for a certificate is "not in the library" (None); every other 4xx is a
   ``DialectError`` carrying the platform's ``cwdm``; 5xx, timeouts and refused connections
   are ``PlatformUnavailable`` (``adapters.transport``).
4. A delivery's receipt must name the case (and update), or the application and the
   refusal, delivered; new or duplicate, both mean the platform has it.
5. ``credentials`` may hold ``access_token`` (sent as ``X-JSZW-Token``) and ``timeout``
   (seconds, default 10).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

from adapters.jiangsu import dialect
from adapters.jiangsu.dialect import JIANGSU
from adapters.jiangsu.platform import BASE, CERTIFICATES, STATUS_CHANGES, TOKEN_HEADER
from adapters.jiangsu.strict_xml import Node, XmlRecord, read_document, to_xml
from adapters.replies import checked_certificate, checked_matters, feed_cursor, translate_feed
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
        self._client = PlatformClient(base_url, timeout=timeout, headers=headers)

    async def poll_applications(self, cursor: str | None) -> Page:
        records, next_cursor = await self._page(f"{BASE}/sq", "sqlb", "sq", cursor)
        items = translate_feed(
            records, JIANGSU.read_application_record, lambda record: record.peek("sqbh")
        )
        return Page(items, next_cursor)

    async def acknowledge(self, reference: str, case_id: str) -> None:
        path = f"{BASE}/sq/{quote(reference, safe='')}/qr"
        fields = await self._send(path, ("qr", [("ajbh", case_id)]), "qrhz")
        if fields.text("sqbh", max_length=64) != reference:
            raise DialectError("invalid_field", "names another application", field="sqbh")
        if fields.text("ajbh", max_length=128) != case_id:
            raise DialectError("invalid_field", "names another case", field="ajbh")
        dialect.read_time(fields, "qrsj")
        fields.finish()

    async def reject_application(self, reference: str, refusal: ApplicationRefusal) -> None:
        path = f"{BASE}/sq/{quote(reference, safe='')}/th"
        fields = await self._send(path, dialect.refusal_to_dialect(refusal), "thhz")
        dialect.read_refusal_receipt(fields, reference, refusal.code)

    async def poll_events(self, cursor: str | None) -> Page:
        records, next_cursor = await self._page(f"{BASE}/bjdt", "dtlb", "dt", cursor)
        items = translate_feed(
            records, JIANGSU.read_event_record, lambda record: record.peek("dtbh")
        )
        return Page(items, next_cursor)

    async def deliver_case(self, case: InboundCase) -> None:
        fields = await self._send(f"{BASE}/ajjs", dialect.case_to_dialect(case), "jshz")
        dialect.read_delivery_receipt(fields, case.case_id, None)

    async def deliver_update(self, notice: CaseNotice) -> None:
        fields = await self._send(f"{BASE}/ajtz", dialect.notice_to_dialect(notice), "tzhz")
        dialect.read_delivery_receipt(fields, notice.case_id, notice.sequence)

    async def fetch_certificate(self, certificate_id: str) -> Mapping[str, Any] | None:
        path = f"{CERTIFICATES}/{quote(certificate_id, safe='')}"
        reply = await self._client.request("GET", path)
        if reply.status == 404:
            error = dialect.read_error(reply.body, reply.status)
            if error.code == "not_found":
                return None
            raise error
        data = JIANGSU.read_certificate(_document(reply, "zz"))
        return checked_certificate(data, noun="<zz>")

    async def list_revocations(self) -> Sequence[Mapping[str, Any]]:
        reply = await self._client.request("GET", STATUS_CHANGES)
        fields = _document(reply, "ztbglb")
        records = fields.repeated("ztbg", max_items=100_000)
        fields.finish()
        return [JIANGSU.read_revocation(record) for record in records]

    async def list_matters(self) -> Sequence[Mapping[str, Any]]:
        reply = await self._client.request("GET", f"{BASE}/sxlb")
        fields = _document(reply, "sxlb")
        matters = [JIANGSU.read_matter(item) for item in fields.repeated("sx", max_items=1000)]
        fields.finish()
        return checked_matters(matters, dialect.PROVINCE)

    async def close(self) -> None:
        await self._client.close()

    # -- plumbing ----------------------------------------------------------------------------

    async def _page(
        self, path: str, root: str, item: str, cursor: str | None
    ) -> tuple[list[XmlRecord], str | None]:
        params = {"yb": cursor} if cursor is not None else {}
        reply = await self._client.request("GET", path, params=params)
        fields = _document(reply, root)
        next_cursor = fields.text("xyyb", max_length=40)
        fields.code("sfyhx", dialect.YES_NO)
        records = fields.repeated(item, max_items=10_000)
        fields.finish()
        return records, feed_cursor(cursor, next_cursor, empty=not records)

    async def _send(self, path: str, body: Node, reply_root: str) -> XmlRecord:
        reply = await self._client.request(
            "POST", path, body=to_xml(body), content_type=CONTENT_TYPE
        )
        return _document(reply, reply_root)


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
