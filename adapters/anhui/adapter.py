"""The node's adapter to the Anhui platform (安徽政务服务网 / 皖事通), speaking its dialect.

Implements ``node.platform.adapter.ProvinceAdapter`` (whose docstring has the rules every
adapter keeps). Particular to Anhui:

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
4. A 404 ``not_found`` for a licence is "not in the library" (None); every other 4xx is a
   ``DialectError``; 5xx, timeouts and refused connections are ``PlatformUnavailable``
   (``adapters.transport``).
5. Times on the wire are whole seconds of Beijing local time: what the node sends is
   truncated to the second, what it receives is a whole epoch second.
6. ``credentials`` may hold ``token`` (sent as ``X-WST-Token``) and ``timeout`` (seconds,
   default 10).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adapters.anhui import dialect
from adapters.anhui.form import FormFields, encode_form
from adapters.anhui.platform import BASE, FORM_TYPE, LICENSES, TOKEN_HEADER
from adapters.strict_json import JsonObject, decode_json_object
from adapters.transport import DEFAULT_TIMEOUT, PlatformClient, Reply
from node.cases.catalog import CatalogError, matter_to_json, parse_catalog
from node.certificates.model import CertificateError, parse_certificate, to_json
from node.platform.adapter import (
    Application,
    CaseNotice,
    DialectError,
    InboundCase,
    Malformed,
    Page,
    PlatformEvent,
    ProvinceAdapter,
)


class AnhuiAdapter:
    """``ProvinceAdapter`` for the Anhui dialect (rules in the module docstring)."""

    def __init__(self, base_url: str, *, token: str = "", timeout: float = DEFAULT_TIMEOUT) -> None:
        headers = {TOKEN_HEADER: token} if token else {}
        self._client = PlatformClient(base_url, timeout=timeout, headers=headers)

    async def poll_applications(self, cursor: str | None) -> Page:
        rows, next_cursor = await self._page(f"{BASE}/sq/lb", cursor)
        items: list[Application | PlatformEvent | Malformed] = []
        for row in rows:
            try:
                items.append(dialect.read_application_record(row))
            except DialectError as error:
                items.append(_malformed(row, "sqbh", error))
        return Page(items, next_cursor)

    async def acknowledge(self, reference: str, case_id: str) -> None:
        await self._send(f"{BASE}/sq/qr", {"sqbh": reference, "bjbh": case_id})

    async def poll_events(self, cursor: str | None) -> Page:
        rows, next_cursor = await self._page(f"{BASE}/bjdt/lb", cursor)
        items: list[Application | PlatformEvent | Malformed] = []
        for row in rows:
            try:
                items.append(dialect.read_event_record(row))
            except DialectError as error:
                items.append(_malformed(row, "dtbh", error))
        return Page(items, next_cursor)

    async def deliver_case(self, case: InboundCase) -> None:
        await self._send(f"{BASE}/bj/js", dialect.case_to_dialect(case))

    async def deliver_update(self, notice: CaseNotice) -> None:
        await self._send(f"{BASE}/bj/ztgx", dialect.notice_to_dialect(notice))

    async def fetch_certificate(self, certificate_id: str) -> Mapping[str, Any] | None:
        reply = await self._client.request("GET", f"{LICENSES}/xq", params={"zzbs": certificate_id})
        if reply.status == 404:
            error = dialect.read_error(reply.body, reply.status)
            if error.code == "not_found":
                return None
            raise error
        data = dialect.read_certificate(FormFields(_result(reply)))
        try:
            return to_json(parse_certificate(data))
        except CertificateError as error:
            raise DialectError(
                "invalid_certificate", f"the licence is not a valid certificate: {error.detail}"
            ) from None

    async def list_revocations(self) -> Sequence[Mapping[str, Any]]:
        reply = await self._client.request("GET", f"{LICENSES}/zxlb")
        return [dialect.read_revocation(row) for row in _rows(_result(reply), 100_000)]

    async def list_matters(self) -> Sequence[Mapping[str, Any]]:
        reply = await self._client.request("GET", f"{BASE}/sx/lb")
        matters = [dialect.read_matter(row) for row in _rows(_result(reply), 1000)]
        document = {"province": dialect.PROVINCE, "version": 1, "matters": matters}
        try:
            catalog = parse_catalog(document, dialect.PROVINCE)
        except CatalogError as error:
            raise DialectError("invalid_matter", error.detail, field=error.field) from None
        return [matter_to_json(matter) for matter in catalog.matters]

    async def close(self) -> None:
        await self._client.close()

    # -- plumbing ----------------------------------------------------------------------------

    async def _page(self, path: str, cursor: str | None) -> tuple[list[object], str | None]:
        params = {"cursor": cursor} if cursor is not None else {}
        reply = await self._client.request("GET", path, params=params)
        page = JsonObject(_result(reply), "result")
        rows = page.raw("rows")
        if not isinstance(rows, list):
            raise DialectError("malformed_body", "must be a list", field=page.path("rows"))
        next_cursor = page.text("nextCursor", max_length=40)
        page.boolean("hasMore")
        page.finish()
        if not rows and cursor is None and next_cursor == "0":
            return [], None
        return rows, next_cursor

    async def _send(self, path: str, form: Mapping[str, Any]) -> None:
        reply = await self._client.request(
            "POST", path, body=encode_form(form), content_type=f"{FORM_TYPE}; charset=UTF-8"
        )
        _result(reply)


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


def _malformed(row: object, key: str, error: DialectError) -> Malformed:
    reference = row.get(key) if isinstance(row, dict) else None
    shown = reference if isinstance(reference, str) and 0 < len(reference) <= 200 else "?"
    return Malformed(reference=shown, code=error.code, field=error.field, detail=error.detail)


def make_adapter(base_url: str, *, credentials: Mapping[str, str]) -> ProvinceAdapter:
    """The Anhui adapter for the platform at ``base_url`` (rule 6 for ``credentials``)."""
    timeout = float(credentials.get("timeout", DEFAULT_TIMEOUT))
    return AnhuiAdapter(base_url, token=credentials.get("token", ""), timeout=timeout)
