"""RFC 9457 problem documents: every HTTP error names its code, what is wrong and the field.

A refusal of the domain (``node.vocabulary.Refused``: a code, the field, a sentence) knows no
HTTP; ``REFUSAL_STATUS`` is the one table of the HTTP status each code takes (422, the
request cannot be followed, for any code it does not name), and ``refusal_problem`` renders
one. The problem type is ``PROBLEM_TYPE_BASE`` and the code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from aiohttp import web

from node.vocabulary import Refused

PROBLEM_TYPE_BASE = "https://yrd.example/problems/"

REFUSAL_STATUS: Final[Mapping[str, int]] = MappingProxyType(
    {
        # The holder, the purpose, the fields or the consent do not let this be disclosed,
        # or the manifest does not let this node ask for it at all.
        "certificate_not_permitted": 403,
        "holder_mismatch": 403,
        "purpose_not_allowed": 403,
        "field_not_allowed": 403,
        "consent_required": 403,
        "consent_expired": 403,
        "consent_mismatch": 403,
        "consent_unverifiable": 403,
        "certificate_not_found": 404,
        # The certificate is there but its state forbids it (a presentation of a revoked one).
        "certificate_not_valid": 409,
        # The issuer's node answered, but not with what this node can rely on.
        "bad_attestation": 502,
        # The issuer's node or its province's library did not answer: ask again later.
        "issuer_unreachable": 503,
        "library_unavailable": 503,
    }
)
"""The HTTP status of a domain refusal's code; any other code is 422."""


def problem_body(
    status: int, code: str, detail: str, *, field: str | None = None
) -> dict[str, object]:
    """A problem document as JSON data (a response's body, or one item's of a bulk answer)."""
    body: dict[str, object] = {
        "type": PROBLEM_TYPE_BASE + code,
        "title": code.replace("_", " "),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if field:
        body["field"] = field
    return body


def problem(status: int, code: str, detail: str, *, field: str | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(problem_body(status, code, detail, field=field), ensure_ascii=False),
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


def refusal_status(code: str) -> int:
    return REFUSAL_STATUS.get(code, 422)


def refusal_problem(
    refusal: Refused, *, statuses: Mapping[str, int] = MappingProxyType({})
) -> ProblemError:
    """The problem document for ``refusal``: its status from ``REFUSAL_STATUS``, unless the
    route gives the code another (``statuses``: a refusal about the resource a path names is
    404 there, where the same refusal of a body is 422)."""
    status = statuses.get(refusal.code) or refusal_status(refusal.code)
    return ProblemError(status, refusal.code, refusal.detail, field=refusal.field or None)
