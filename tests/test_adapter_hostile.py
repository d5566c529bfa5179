"""Every adapter against a hostile platform: a real aiohttp server on 127.0.0.1 that answers
the adapter's requests with a reply no dialect allows (nested 200,000 deep, over the size cap,
a 5,000-digit number, a field of megabytes, a field of the wrong kind, not UTF-8, an HTML
page, binary, cut short). Each is a ``DialectError`` naming the platform with a stable code
whose sentence never repeats the reply's values, and never another exception: one that
escaped would end the node's platform polling for good (issue 10)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from adapters.anhui.adapter import AnhuiAdapter
from adapters.anhui.dialect import ANHUI
from adapters.jiangsu.adapter import JiangsuAdapter
from adapters.jiangsu.dialect import JIANGSU
from adapters.jiangsu.strict_xml import DECLARATION, element, to_xml
from adapters.shanghai.adapter import ShanghaiAdapter
from adapters.shanghai.dialect import SHANGHAI
from adapters.translation import Translation
from adapters.transport import MAX_REPLY_BYTES
from adapters.zhejiang.adapter import ZhejiangAdapter
from adapters.zhejiang.dialect import ZHEJIANG
from node.platform.adapter import (
    CaseNotice,
    DialectError,
    Page,
    PlatformUnavailable,
    ProvinceAdapter,
)
from tests import platforms
from tests.platforms import DEEP, REFUSAL, T0, inbound_case, nested

SECRET: Final = "320506199211030025"
"""An ID number planted in every hostile reply: no refusal sentence may repeat it."""
REASON: Final = f"王静 {SECRET}"
HUGE_NUMBER: Final = (SECRET * 300)[:5000]
"""Over the 4,300 digits Python's ``int()`` refuses with ValueError (issue 10)."""
HUGE_TEXT: Final = SECRET * 300_000
"""About 5.4 MB: under the reply cap, far over any field's length."""
HTML: Final = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    f"<body><h1>统一身份认证</h1><p>{REASON}</p></body></html>"
)
PNG: Final = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 16


# --- each dialect's feed page, written with holes for the hostile parts ---------------------


def _json_deep(feed: str) -> str:
    return "[" * DEEP + "]" * DEEP


@dataclass(frozen=True)
class Dialect:
    """How one dialect writes a feed page, and the node's adapter to a URL (JSON unless
    said otherwise)."""

    name: str
    adapter: Callable[[str], ProvinceAdapter]
    page: Callable[[str, str, str], str]
    """(feed, the records as the dialect writes a list of them, the cursor as written) →
    the page's text; feed is "applications" or "events"."""
    records: Callable[[str], str]
    """The written records of a good page of a feed: one event whose reason is ``REASON``."""
    deep: Callable[[str], str] = _json_deep
    """Written records nested ``DEEP`` levels."""
    cursor: Callable[[str], str] = json.dumps
    """A cursor as written, from its text."""
    wrong_cursor: str = "1"
    """A cursor of the wrong kind, as written: a number, or elements where text belongs."""
    number_code: str = "number_too_large"
    """What ``HUGE_NUMBER`` written as the cursor is refused as."""
    content_type: str = "application/json"


def _json_records(translation: Translation[Any]) -> Callable[[str], str]:
    def records(feed: str) -> str:
        record = translation.event_record("e1", "c-1", {"action": "accept", "reason": REASON}, T0)
        return json.dumps([record], ensure_ascii=False)

    return records


_XML_ROOTS: Final = {"applications": ("sqlb", "sq"), "events": ("dtlb", "dt")}


def _xml_page(feed: str, records: str, cursor: str) -> str:
    root = _XML_ROOTS[feed][0]
    return DECLARATION.decode() + f"<{root}><xyyb>{cursor}</xyyb><sfyhx>N</sfyhx>{records}</{root}>"


def _xml_records(feed: str) -> str:
    record = JIANGSU.event_record("e1", "c-1", {"action": "accept", "reason": REASON}, T0)
    document = to_xml(element(_XML_ROOTS[feed][1], record))
    return document.removeprefix(DECLARATION).decode()


def _xml_deep(feed: str) -> str:
    item = _XML_ROOTS[feed][1]
    return f"<{item}>" + "<a>" * DEEP + "</a>" * DEEP + f"</{item}>"


DIALECTS: Final = (
    Dialect(
        "shanghai",
        lambda url: ShanghaiAdapter(url, timeout=10),
        lambda feed, records, cursor: (
            f'{{"records": {records}, "nextCursor": {cursor}, "hasMore": false}}'
        ),
        _json_records(SHANGHAI),
    ),
    Dialect(
        "jiangsu",
        lambda url: JiangsuAdapter(url, timeout=10),
        _xml_page,
        _xml_records,
        deep=_xml_deep,
        cursor=lambda text: text,
        wrong_cursor="<yb>1</yb>",
        # XML has no numbers: the cursor is text of at most 40 characters.
        number_code="invalid_field",
        content_type="application/xml; charset=utf-8",
    ),
    Dialect(
        "zhejiang",
        lambda url: ZhejiangAdapter(url, app_key="app", app_secret="secret", timeout=10),
        lambda feed, records, cursor: (
            '{"code": "0", "msg": "success", "data": {"items": '
            f'{records}, "page_size": 100, "has_more": false, "next_page_token": {cursor}}}}}'
        ),
        _json_records(ZHEJIANG),
    ),
    Dialect(
        "anhui",
        lambda url: AnhuiAdapter(url, timeout=10),
        lambda feed, records, cursor: (
            '{"flag": true, "message": "成功", "result": {"rows": '
            f'{records}, "nextCursor": {cursor}, "hasMore": false}}}}'
        ),
        _json_records(ANHUI),
    ),
)


# --- the hostile kinds ----------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    body: bytes
    content_type: str
    status: int = 200


def _good(d: Dialect, feed: str) -> str:
    return d.page(feed, d.records(feed), d.cursor("1"))


def _too_large(d: Dialect, feed: str) -> Answer:
    # Trailing whitespace is allowed after a JSON value and after an XML root element.
    text = _good(d, feed)
    return Answer(text.encode().ljust(MAX_REPLY_BYTES + 1, b" "), d.content_type)


KINDS: Final[dict[str, Callable[[Dialect, str], Answer]]] = {
    "too-deep": lambda d, feed: Answer(
        d.page(feed, d.deep(feed), d.cursor("1")).encode(), d.content_type
    ),
    "too-large": _too_large,
    "huge-number": lambda d, feed: Answer(
        d.page(feed, d.records(feed), HUGE_NUMBER).encode(), d.content_type
    ),
    "huge-text": lambda d, feed: Answer(
        d.page(feed, d.records(feed), d.cursor(HUGE_TEXT)).encode(), d.content_type
    ),
    "wrong-types": lambda d, feed: Answer(
        d.page(feed, d.records(feed), d.wrong_cursor).encode(), d.content_type
    ),
    "wrong-encoding": lambda d, feed: Answer(_good(d, feed).encode("gbk"), d.content_type),
    "html": lambda d, feed: Answer(HTML.encode(), "text/html; charset=utf-8"),
    "binary": lambda d, feed: Answer(PNG, "image/png"),
    "truncated": lambda d, feed: Answer(
        _good(d, feed)[: len(_good(d, feed)) // 2].encode(), d.content_type
    ),
}
CODES: Final = {
    "too-deep": "too_deep",
    "too-large": "reply_too_large",
    "huge-number": None,  # the dialect's ``number_code``
    "huge-text": "invalid_field",
    "wrong-types": "invalid_field",
    "wrong-encoding": "not_utf8",
    "html": "html_reply",
    "binary": "not_utf8",
    "truncated": "malformed_body",
}
POLLS: Final[dict[str, Callable[[ProvinceAdapter], Awaitable[Page]]]] = {
    "applications": lambda adapter: adapter.poll_applications(None),
    "events": lambda adapter: adapter.poll_events(None),
}


def _answering(answer: Answer) -> platforms.Reply:
    async def reply(request: web.Request) -> web.Response:
        return web.Response(
            body=answer.body, status=answer.status, headers={"Content-Type": answer.content_type}
        )

    return reply


async def _refusal(
    d: Dialect, answer: Answer, call: Callable[[ProvinceAdapter], Awaitable[object]]
) -> DialectError:
    """What ``call`` of ``d``'s adapter raises against a server that always says ``answer``."""
    async with platforms.stub(_answering(answer), d.adapter) as adapter:
        with pytest.raises(DialectError) as refused:
            await call(adapter)
    error = refused.value
    assert SECRET not in str(error) and SECRET not in error.field
    return error


DIALECT_IDS: Final = [d.name for d in DIALECTS]


@pytest.mark.parametrize("feed", list(POLLS))
@pytest.mark.parametrize("d", DIALECTS, ids=DIALECT_IDS)
async def test_the_unspoilt_page_is_read(d: Dialect, feed: str) -> None:
    """The page every hostile kind below spoils is read as one item, so each refusal is the
    spoiling's doing."""
    answer = Answer(_good(d, feed).encode(), d.content_type)
    async with platforms.stub(_answering(answer), d.adapter) as adapter:
        page = await POLLS[feed](adapter)
    assert len(page.items) == 1


@pytest.mark.parametrize("feed", list(POLLS))
@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("d", DIALECTS, ids=DIALECT_IDS)
async def test_a_hostile_feed_page_is_a_dialect_error(d: Dialect, kind: str, feed: str) -> None:
    """A feed page of every hostile kind is a DialectError naming the platform with the kind's
    stable code, never another exception."""
    error = await _refusal(d, KINDS[kind](d, feed), POLLS[feed])
    assert (error.platform, error.code) == (d.name, CODES[kind] or d.number_code)


def _notice() -> CaseNotice:
    return CaseNotice("310000-20260302-00000000000000a1", 2, "accept", "handling", "accepted", T0)


CALLS: Final[dict[str, Callable[[ProvinceAdapter], Awaitable[object]]]] = {
    "acknowledge": lambda a: a.acknowledge("R1", "310000-20260302-00000000000000a1"),
    "reject_application": lambda a: a.reject_application("R1", REFUSAL),
    "deliver_case": lambda a: a.deliver_case(
        inbound_case("anhui", "310000-20260302-00000000000000a1")
    ),
    "deliver_update": lambda a: a.deliver_update(_notice()),
    "fetch_certificate": lambda a: a.fetch_certificate("x"),
    "list_revocations": lambda a: a.list_revocations(),
    "list_matters": lambda a: a.list_matters(),
}


def _deep_document(d: Dialect) -> bytes:
    return nested(d.name)[0]


def _huge_number_document(d: Dialect) -> bytes:
    if d.name == "jiangsu":
        return f"<cwxx><cwdm>{HUGE_NUMBER}</cwdm><cwms>x</cwms></cwxx>".encode()
    return f'{{"x": {HUGE_NUMBER}}}'.encode()


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("d", DIALECTS, ids=DIALECT_IDS)
async def test_every_reply_nested_too_deep_is_a_dialect_error(d: Dialect, call: str) -> None:
    """A reply nested 200,000 deep to any call is a DialectError too_deep naming the
    platform."""
    answer = Answer(_deep_document(d), d.content_type)
    error = await _refusal(d, answer, CALLS[call])
    assert (error.platform, error.code) == (d.name, "too_deep")


@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("d", DIALECTS, ids=DIALECT_IDS)
async def test_every_reply_as_html_is_a_dialect_error(d: Dialect, call: str) -> None:
    """An HTML page answered with 200 to any call is a DialectError html_reply naming the
    platform."""
    answer = Answer(HTML.encode(), "text/html; charset=utf-8")
    error = await _refusal(d, answer, CALLS[call])
    assert (error.platform, error.code) == (d.name, "html_reply")


@pytest.mark.parametrize(
    "document", [_deep_document, _huge_number_document], ids=["too-deep", "huge-number"]
)
@pytest.mark.parametrize("call", list(CALLS))
@pytest.mark.parametrize("d", DIALECTS, ids=DIALECT_IDS)
async def test_a_hostile_refusal_is_named_by_its_status(
    d: Dialect, call: str, document: Callable[[Dialect], bytes]
) -> None:
    """A 4xx refusal whose body is nested too deep or holds a huge number is a DialectError
    named by its HTTP status, naming the platform."""
    answer = Answer(document(d), d.content_type, status=409)
    error = await _refusal(d, answer, CALLS[call])
    assert (error.platform, error.code) == (d.name, "http_409")


@pytest.mark.parametrize("d", DIALECTS, ids=DIALECT_IDS)
async def test_a_reply_cut_off_by_a_dropped_connection_is_unavailable(d: Dialect) -> None:
    """A reply whose connection drops before its announced length arrived is
    PlatformUnavailable: the node tries again later."""
    body = _good(d, "events").encode()

    async def reply(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": d.content_type, "Content-Length": str(len(body))}
        )
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        assert request.transport is not None
        request.transport.close()
        return response

    async with platforms.stub(reply, d.adapter) as adapter:
        with pytest.raises(PlatformUnavailable):
            await adapter.poll_events(None)


# --- redirects (issue 11) -------------------------------------------------------------------

PLATFORM_TOKEN: Final = "platform-token-7f3a"
APP_KEY: Final = "zj-app-key-7f3a"
CREDENTIALED: Final[dict[str, Callable[[str], ProvinceAdapter]]] = {
    "shanghai": lambda url: ShanghaiAdapter(url, access_token=PLATFORM_TOKEN, timeout=10),
    "jiangsu": lambda url: JiangsuAdapter(url, access_token=PLATFORM_TOKEN, timeout=10),
    "zhejiang": lambda url: ZhejiangAdapter(url, app_key=APP_KEY, app_secret="s", timeout=10),
    "anhui": lambda url: AnhuiAdapter(url, token=PLATFORM_TOKEN, timeout=10),
}
"""Each dialect's adapter with the credentials it sends its platform."""
REDIRECTED: Final = {
    "poll_applications": POLLS["applications"],
    "deliver_case": CALLS["deliver_case"],
    "fetch_certificate": CALLS["fetch_certificate"],
}


@pytest.mark.parametrize("call", list(REDIRECTED))
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("province", list(CREDENTIALED))
async def test_a_redirect_is_not_followed(province: str, status: int, call: str) -> None:
    """A platform answering 3xx to another host is a DialectError ``redirected`` naming that
    host and nothing more of the location; not one request, token, app key or signature
    reaches the other host."""
    reached: list[web.Request] = []

    async def elsewhere(request: web.Request) -> web.Response:
        reached.append(request)
        return web.Response(status=200)

    other = web.Application()
    other.router.add_route("*", "/{tail:.*}", elsewhere)
    asked: list[dict[str, str]] = []
    async with TestServer(other, host="127.0.0.2") as sink:
        location = str(sink.make_url("/collect").with_query(name="王静", code=SECRET))

        async def redirect(request: web.Request) -> web.Response:
            asked.append(dict(request.headers))
            return web.Response(status=status, headers={"Location": location})

        async with platforms.stub(redirect, CREDENTIALED[province]) as adapter:
            with pytest.raises(DialectError) as refused:
                await REDIRECTED[call](adapter)
    error = refused.value
    assert (error.platform, error.code) == (province, "redirected")
    assert "127.0.0.2" in str(error) and str(status) in str(error)
    assert SECRET not in str(error) and "collect" not in str(error) and "王静" not in str(error)
    assert reached == []
    credential = APP_KEY if province == "zhejiang" else PLATFORM_TOKEN
    assert [credential in headers.values() for headers in asked] == [True]
