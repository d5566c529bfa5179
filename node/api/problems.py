"""RFC 9457 problem documents: every HTTP error names its code, what is wrong and the field."""

from __future__ import annotations

import json

from aiohttp import web

PROBLEM_TYPE_BASE = "https://yrd.example/problems/"


def problem(status: int, code: str, detail: str, *, field: str | None = None) -> web.Response:
    body: dict[str, object] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": code.replace("_", " "),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if field:
        body["field"] = field
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False),
        content_type="application/problem+json",
    )


class ProblemError(Exception):
    """Raised by handlers; the middleware turns it into a problem document."""

    def __init__(self, status: int, code: str, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
