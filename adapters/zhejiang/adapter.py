"""The node's adapter to the Zhejiang platform (浙里办 open platform), speaking its dialect.

Implements ``node.platform.adapter.ProvinceAdapter`` (whose docstring has the rules every
adapter keeps; ``adapters.replies`` keeps the parts all four share). Particular to
Zhejiang:

1. Translations, both ways, are ``adapters.zhejiang.dialect``'s, the very functions the
   simulated platform uses; every request is signed with ``adapters.zhejiang.signing``
   (a fresh nonce and timestamp each time, so a retried delivery is a new request).
2. The node's cursor for a feed is the platform's ``next_page_token`` (``None`` until the
   platform has given one); one poll reads one page of ``page_size`` records. Matters and
   revocations are read page after page to the last.
3. A feed record that does not translate becomes a ``Malformed`` naming its ``apply_no``
   or ``event_id`` (``"?"`` when even that is unreadable); an answer that is not the
   dialect at all (not the envelope, not UTF-8, a page that does not advance) raises
   ``DialectError``. A certificate is also checked by ``parse_certificate`` and the matter
   list by ``parse_catalog``: what the node receives is what its model accepts.
4. A refusal (HTTP 4xx, or any non-zero ``code``) is a ``DialectError`` carrying the
   platform's stable error name (``bad_signature``, ``conflict`` …), except ``not_found``
   on field ``license_id``, which is "not in the library" (None); 5xx, timeouts and
   refused connections are ``PlatformUnavailable`` (``adapters.transport``).
5. ``credentials`` holds ``app_key`` and ``app_secret`` (both required) and may hold
   ``timeout`` (seconds, default 10). The app secret is never logged or sent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar
from urllib.parse import quote, urlencode, urlsplit

from adapters.replies import (
    FeedItem,
    FeedRecord,
    checked_certificate,
    checked_matters,
    key,
    translate_feed,
)
from adapters.strict_json import JsonObject
from adapters.transport import DEFAULT_TIMEOUT, PlatformClient
from adapters.zhejiang import dialect
from adapters.zhejiang.dialect import ZHEJIANG
from adapters.zhejiang.platform import BASE, LICENSES, REVOCATIONS
from adapters.zhejiang.signing import signed_headers
from node.platform.adapter import (
    ApplicationRefusal,
    CaseNotice,
    DialectError,
    InboundCase,
    Page,
    ProvinceAdapter,
)

T = TypeVar("T")

PAGE_SIZE: Final = 100
MAX_PAGES: Final = 1000
"""Most pages a snapshot list may take: a guard against a platform that never ends one."""


class ZhejiangAdapter:
    """``ProvinceAdapter`` for the Zhejiang dialect (rules in the module docstring)."""

    def __init__(
        self,
        base_url: str,
        *,
        app_key: str,
        app_secret: str,
        timeout: float = DEFAULT_TIMEOUT,
        page_size: int = PAGE_SIZE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not app_key or not app_secret:
            raise ValueError("the Zhejiang adapter needs an app_key and an app_secret")
        self._client = PlatformClient(base_url, platform=dialect.PROVINCE, timeout=timeout)
        # The signature covers the request target as sent, so a base URL's own path
        # (a gateway prefix) is part of it.
        self._prefix = urlsplit(base_url).path.rstrip("/")
        self._app_key = app_key
        self._app_secret = app_secret
        self._page_size = page_size
        self._clock = clock

    async def poll_applications(self, cursor: str | None) -> Page:
        return await self._feed(
            f"{BASE}/applications", cursor, ZHEJIANG.read_application_record, "apply_no"
        )

    async def acknowledge(self, reference: str, case_id: str) -> None:
        target = f"{BASE}/applications/{quote(reference, safe='')}/acknowledge"
        await self._call("POST", target, _taken, {"case_id": case_id})

    async def reject_application(self, reference: str, refusal: ApplicationRefusal) -> None:
        target = f"{BASE}/applications/{quote(reference, safe='')}/refuse"
        body = ZHEJIANG.refusal_to_dialect(refusal, dialect.dialect_field)
        await self._call("POST", target, _taken, body)

    async def poll_events(self, cursor: str | None) -> Page:
        return await self._feed(f"{BASE}/events", cursor, ZHEJIANG.read_event_record, "event_id")

    async def deliver_case(self, case: InboundCase) -> None:
        await self._call("POST", f"{BASE}/inbound_cases", _taken, ZHEJIANG.case_to_dialect(case))

    async def deliver_update(self, notice: CaseNotice) -> None:
        body = ZHEJIANG.notice_to_dialect(notice)
        await self._call("POST", f"{BASE}/case_notices", _taken, body)

    async def fetch_certificate(self, certificate_id: str) -> Mapping[str, Any] | None:
        def read(data: JsonObject) -> Mapping[str, Any]:
            return checked_certificate(ZHEJIANG.read_certificate(data), noun="licence")

        try:
            return await self._call("GET", f"{LICENSES}/{quote(certificate_id, safe='')}", read)
        except DialectError as error:
            # Only the licence lookup's own refusal means "not in the library"; a 404 for
            # the route itself (a wrong base URL) must not read as an empty library.
            if (error.code, error.field) == ("not_found", "license_id"):
                return None
            raise

    async def list_revocations(self) -> Sequence[Mapping[str, Any]]:
        return await self._snapshot(REVOCATIONS, ZHEJIANG.read_revocation)

    async def list_matters(self) -> Sequence[Mapping[str, Any]]:
        matters = await self._snapshot(f"{BASE}/matters", ZHEJIANG.read_matter)
        return checked_matters(matters, dialect.PROVINCE)

    async def close(self) -> None:
        await self._client.close()

    # -- plumbing ----------------------------------------------------------------------------

    async def _feed(
        self,
        path: str,
        cursor: str | None,
        read_record: Callable[[JsonObject], FeedRecord],
        reference: str,
    ) -> Page:
        """One page of a feed from ``cursor``, and the cursor after it (rule 2): its records
        as ``read_record`` translates them, each named by its field ``reference`` when it
        does not translate."""

        def read(items: list[object]) -> list[FeedItem]:
            return translate_feed(items, lambda r: read_record(JsonObject(r)), key(reference))

        items, _, token = await self._page(path, cursor or "", read)
        return Page(items, token or None)

    async def _snapshot(self, path: str, read_item: Callable[[JsonObject], T]) -> list[T]:
        """Every item of a snapshot list, page after page, as ``read_item`` reads it
        (rule 2)."""

        def read(items: list[object]) -> list[T]:
            return [read_item(JsonObject(item)) for item in items]

        collected: list[T] = []
        token = ""
        for _ in range(MAX_PAGES):
            items, more, next_token = await self._page(path, token, read)
            collected.extend(items)
            if not more:
                return collected
            if not next_token or next_token == token:
                raise DialectError(
                    "invalid_page",
                    "has_more is true but the next page token does not advance",
                    field="data.next_page_token",
                    platform=dialect.PROVINCE,
                )
            token = next_token
        raise DialectError(
            "invalid_page", f"the list runs past {MAX_PAGES} pages", platform=dialect.PROVINCE
        )

    async def _page(
        self, path: str, token: str, read_items: Callable[[list[object]], list[T]]
    ) -> tuple[list[T], bool, str]:
        """One page from ``token``: its items as ``read_items`` reads them, ``has_more`` and
        the next page token."""

        def read(data: JsonObject) -> tuple[list[T], bool, str]:
            items, more, next_token = dialect.read_page(data)
            return read_items(items), more, next_token

        query = {"page_size": str(self._page_size), **({"page_token": token} if token else {})}
        return await self._call("GET", f"{path}?{urlencode(query, quote_via=quote)}", read)

    async def _call(
        self,
        method: str,
        target: str,
        read: Callable[[JsonObject], T],
        body: Mapping[str, Any] | None = None,
    ) -> T:
        """One signed exchange; what ``read`` makes of the ``data`` of its answer (rules 1
        and 4)."""
        data = b"" if body is None else json.dumps(body, ensure_ascii=False).encode()
        headers = signed_headers(
            self._app_key, self._app_secret, method, self._prefix + target, data, now=self._clock()
        )
        return await self._client.request(
            method,
            target,
            lambda reply: read(dialect.read_reply(reply.body, reply.status)),
            body=data if body is not None else None,
            content_type="application/json" if body is not None else None,
            headers=headers,
        )


def _taken(data: JsonObject) -> None:
    """What a delivery's answer holds beside the platform's success: nothing the node reads."""


def make_adapter(base_url: str, *, credentials: Mapping[str, str]) -> ProvinceAdapter:
    """The Zhejiang adapter for the platform at ``base_url`` (rule 5 for ``credentials``)."""
    missing = [key for key in ("app_key", "app_secret") if not credentials.get(key)]
    if missing:
        raise ValueError(f"the Zhejiang adapter's credentials need {' and '.join(missing)}")
    return ZhejiangAdapter(
        base_url,
        app_key=credentials["app_key"],
        app_secret=credentials["app_secret"],
        timeout=float(credentials.get("timeout", DEFAULT_TIMEOUT)),
    )
