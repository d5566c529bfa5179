"""A hostile platform's replies to a feed poll, one of each kind, written in each dialect:
nested 200,000 deep, over the size cap, a 5,000-digit number, a field of megabytes, a field
of the wrong kind, not UTF-8, an HTML page, binary, cut short, a redirect to another host.

Each is a ``DialectError`` with the kind's code at the adapter
(``tests/test_adapter_contract.py``) and leaves a real node's platform polling alive
(``tests/test_platform_hostile.py``): the two suites share this one table. Every reply
carries ``SECRET``, which no refusal may repeat."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from aiohttp import web
from yarl import URL

from adapters.transport import MAX_REPLY_BYTES
from tests import platforms
from tests.dialects import SECRET, Dialect

HUGE_NUMBER: Final = (SECRET * 300)[:5000]
"""Over the 4,300 digits Python's ``int()`` refuses with ValueError (issue 10)."""
HUGE_TEXT: Final = SECRET * 300_000
"""About 5.4 MB: under the reply cap, far over any field's length."""
HTML: Final = (
    "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head>"
    f"<body><h1>统一身份认证</h1><p>王静 {SECRET}</p></body></html>"
)
PNG: Final = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 16
ELSEWHERE: Final = str(URL("http://127.0.0.2:9/collect").with_query(code=SECRET))
"""Where a redirect points: another host, nothing listening."""


@dataclass(frozen=True)
class Answer:
    body: bytes
    content_type: str
    status: int = 200
    location: str | None = None

    def response(self) -> web.Response:
        headers = {"Content-Type": self.content_type}
        if self.location is not None:
            headers["Location"] = self.location
        return web.Response(body=self.body, status=self.status, headers=headers)


def answering(answer: Answer) -> platforms.Reply:
    """A stub platform's handler answering every request with ``answer``."""

    async def reply(request: web.Request) -> web.Response:
        return answer.response()

    return reply


def good_page(d: Dialect, feed: str) -> str:
    """The feed page (one event) every kind below spoils."""
    return d.page(feed, d.records(feed), d.cursor("1"))


def _too_large(d: Dialect, feed: str) -> Answer:
    # Trailing whitespace is allowed after a JSON value and after an XML root element.
    text = good_page(d, feed)
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
    "wrong-encoding": lambda d, feed: Answer(good_page(d, feed).encode("gbk"), d.content_type),
    "html": lambda d, feed: Answer(HTML.encode(), "text/html; charset=utf-8"),
    "binary": lambda d, feed: Answer(PNG, "image/png"),
    "truncated": lambda d, feed: Answer(
        good_page(d, feed)[: len(good_page(d, feed)) // 2].encode(), d.content_type
    ),
    "redirect": lambda d, feed: Answer(
        HTML.encode(), "text/html; charset=utf-8", status=302, location=ELSEWHERE
    ),
}
"""Each kind's reply to a poll of ``feed`` ("applications" or "events") in ``d``'s dialect."""
_CODES: Final = {
    "too-deep": "too_deep",
    "too-large": "reply_too_large",
    "huge-number": None,  # the dialect's ``number_code``
    "huge-text": "invalid_field",
    "wrong-types": "invalid_field",
    "wrong-encoding": "not_utf8",
    "html": "html_reply",
    "binary": "not_utf8",
    "truncated": "malformed_body",
    "redirect": "redirected",
}


def code_of(d: Dialect, kind: str) -> str:
    """The code of the ``DialectError`` a reply of ``kind`` is in ``d``'s dialect."""
    return _CODES[kind] or d.number_code
