"""The node's adapter to the Anhui platform (安徽政务服务网 / 皖事通), speaking its dialect.

Implements ``node.platform.adapter.ProvinceAdapter`` (whose docstring has the rules every
adapter keeps; ``adapters.replies`` keeps the parts all four share). Particular to
Anhui:

1. Translations, both ways, are ``adapters.anhui.dialect``'s, the very functions the
   simulated platform uses; requests go out as UTF-8 forms (``adapters.anhui.form``).
2. A reply is ``{"flag": true, "message", "result"}``; ``"flag": false`` (at any HTTP
   status) is the platform's refusal and raises ``DialectError`` with its ``code``.
3. A feed row that does not translate becomes a ``Malformed`` naming its ``sqbh`` or
   ``dtbh`` (``"?"`` when even that is unreadable); a reply that is not the dialect at all
   raises ``DialectError``. A certificate is also checked by ``parse_certificate`` and the
   matter list by ``parse_catalog``: what the node receives is what its model accepts.
   Identifiers whose issuer code is a six-digit area code (one Anhui system issues them)
   are accepted as well as those with an 18-character credit code.
4. A 404 ``not_found`` naming ``zzbs`` is "not in the library" (None); every other 4xx (a
   404 for an unknown route or about another field too) is a ``DialectError``; 5xx,
   timeouts and refused connections are ``PlatformUnavailable`` (``adapters.transport``).
5. Times on the wire are whole seconds of Beijing local time: what the node sends is
   truncated to the second, what it receives is a whole epoch second.
6. ``credentials`` may hold ``token`` (sent as ``X-WST-Token``) and ``timeout`` (seconds,
   default 10).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from adapters.anhui import dialect
from adapters.anhui.dialect import ANHUI
from adapters.anhui.form import FormFields, encode_form
from adapters.anhui.platform import BASE, FORM_TYPE, LICENSES, TOKEN_HEADER
from adapters.replies import (
    FeedRecord,
    certificate_lookup,
    checked_matters,
    feed_cursor,
    key,
    translate_feed,
)
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


class AnhuiAdapter:
    """``ProvinceAdapter`` for the Anhui dialect (rules in the module docstring)."""

    def __init__(self, base_url: str, *, token: str = "", timeout: float = DEFAULT_TIMEOUT) -> None:
        headers = {TOKEN_HEADER: token} if token else {}
        self._client = PlatformClient(
            base_url, platform=dialect.PROVINCE, timeout=timeout, headers=headers
        )

    async def poll_applications(self, cursor: str | None) -> Page:
        return await self._page(f"{BASE}/sq/lb", cursor, ANHUI.read_application_record, "sqbh")

    async def acknowledge(self, reference: str, case_id: str) -> None:
        await self._send(f"{BASE}/sq/qr", {"sqbh": reference, "bjbh": case_id})

    async def reject_application(self, reference: str, refusal: ApplicationRefusal) -> None:
        form = {"sqbh": reference, **ANHUI.refusal_to_dialect(refusal, dialect.dialect_field)}
        await self._send(f"{BASE}/sq/th", form)

    async def poll_events(self, cursor: str | None) -> Page:
        return await self._page(f"{BASE}/bjdt/lb", cursor, ANHUI.read_event_record, "dtbh")

    async def deliver_case(self, case: InboundCase) -> None:
        await self._send(f"{BASE}/bj/js", ANHUI.case_to_dialect(case))

    async def deliver_update(self, notice: CaseNotice) -> None:
        await self._send(f"{BASE}/bj/ztgx", ANHUI.notice_to_dialect(notice))

    async def fetch_certificate(self, certificate_id: str) -> Mapping[str, Any] | None:
        read = certificate_lookup(
            dialect.read_error,
            lambda reply: ANHUI.read_certificate(FormFields(_result(reply))),
            noun="licence",
            field="zzbs",
        )
        params = {"zzbs": certificate_id}
        return await self._client.request("GET", f"{LICENSES}/xq", read, params=params)

    async def list_revocations(self) -> Sequence[Mapping[str, Any]]:
        def read(reply: Reply) -> Sequence[Mapping[str, Any]]:
            return [ANHUI.read_revocation(row) for row in _rows(_result(reply), 100_000)]

        return await self._client.request("GET", f"{LICENSES}/zxlb", read)

    async def list_matters(self) -> Sequence[Mapping[str, Any]]:
        def read(reply: Reply) -> Sequence[Mapping[str, Any]]:
            matters = [ANHUI.read_matter(row) for row in _rows(_result(reply), 1000)]
            return checked_matters(matters, dialect.PROVINCE)

        return await self._client.request("GET", f"{BASE}/sx/lb", read)

    async def close(self) -> None:
        await self._client.close()

    # -- plumbing ----------------------------------------------------------------------------

    async def _page(
        self,
        path: str,
        cursor: str | None,
        read_row: Callable[[FormFields], FeedRecord],
        reference: str,
    ) -> Page:
        """One page of a feed from ``cursor``: its rows as ``read_row`` translates them, each
        named by its field ``reference`` when it does not translate."""

        def read(reply: Reply) -> Page:
            page = JsonObject(_result(reply), "result")
            rows = page.raw("rows")
            if not isinstance(rows, list):
                raise DialectError("malformed_body", "must be a list", field=page.path("rows"))
            next_cursor = page.text("nextCursor", max_length=40)
            page.boolean("hasMore")
            page.finish()
            items = translate_feed(rows, lambda row: read_row(FormFields(row)), key(reference))
            return Page(items, feed_cursor(cursor, next_cursor, empty=not rows))

        params = {"cursor": cursor} if cursor is not None else {}
        return await self._client.request("GET", path, read, params=params)

    async def _send(self, path: str, form: Mapping[str, Any]) -> None:
        await self._client.request(
            "POST",
            path,
            _result,
            body=encode_form(form),
            content_type=f"{FORM_TYPE}; charset=UTF-8",
        )


def _result(reply: Reply) -> Any:
    """The ``result`` of a successful reply; a refusal raises ``DialectError`` (rule 2)."""
    if reply.status >= 400:
        raise dialect.read_error(reply.body, reply.status)
    envelope = JsonObject(decode_json_object(reply.body, what="reply"))
    if envelope.raw("flag") is False:
        raise dialect.read_error(reply.body, reply.status)
    envelope.boolean("flag")
    envelope.text("message", max_length=500)
    result = envelope.raw("result")
    envelope.finish()
    return result


def _rows(result: Any, max_items: int) -> list[FormFields]:
    page = JsonObject(result, "result")
    rows = page.raw("rows")
    if not isinstance(rows, list):
        raise DialectError("malformed_body", "must be a list", field=page.path("rows"))
    if len(rows) > max_items:
        raise DialectError(
            "invalid_field", f"must hold at most {max_items} rows", field=page.path("rows")
        )
    page.finish()
    return [FormFields(row, f"rows[{index}]") for index, row in enumerate(rows)]


def make_adapter(base_url: str, *, credentials: Mapping[str, str]) -> ProvinceAdapter:
    """The Anhui adapter for the platform at ``base_url`` (rule 6 for ``credentials``)."""
    timeout = float(credentials.get("timeout", DEFAULT_TIMEOUT))
    return AnhuiAdapter(base_url, token=credentials.get("token", ""), timeout=timeout)
