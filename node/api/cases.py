"""The case routes of the REST API (DESIGN.md §9): submit, read, list and move cases.

Rules kept here:
- Every refusal is a problem document with a stable code and the field at fault: 422 for
  a malformed or invalid body or query (numbers in the query are ASCII digits only; text
  with control, format or invisible characters is ``invalid_text``), 404 for an unknown
  case, 403 for an action that belongs to the other side, 409 for an action the case's
  status does not allow, a request still awaiting its answer, or an Idempotency-Key
  reused with another body.
- ``POST /v1/cases`` with an ``Idempotency-Key`` returns the case the first request with
  that key created, however many times and however concurrently it is retried.
- Events of the handling side are applied at once (200); events of the accepting side are
  requests to the handling node (202) whose answer shows in the case's ``requests``.
"""

from __future__ import annotations

import re
from typing import Any, Final

from aiohttp import web

from node.api.problems import ProblemError
from node.api.requests import NODE_KEY, json_response, read_json
from node.cases.exchange import CaseConflict, CaseNotFound
from node.cases.lifecycle import Role, Status, TransitionRefused
from node.cases.submission import CaseInputError
from node.store import cases as cases_store
from node.text import ascii_integer

MAX_PAGE: Final = 200
DEFAULT_PAGE: Final = 50
_IDEMPOTENCY_KEY: Final = re.compile(r"[\x21-\x7e]{1,200}")
_STATUSES: Final = frozenset(s.value for s in Status)
_ROLES: Final = frozenset(r.value for r in Role)
_TRANSITION_STATUS: Final = {
    "illegal_transition": 409,
    "wrong_side": 403,
    "missing_field": 422,
    "unexpected_field": 422,
}


async def submit_case(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    key = request.headers.get("Idempotency-Key")
    if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
        raise ProblemError(
            422,
            "invalid_idempotency_key",
            "Idempotency-Key must be 1 to 200 visible ASCII characters",
            field="Idempotency-Key",
        )
    body = await read_json(request)
    try:
        case, created = await node.cases.submit(body, idempotency_key=key)
    except CaseInputError as error:
        raise ProblemError(422, error.code, str(error), field=error.field) from None
    except CaseConflict as error:
        raise ProblemError(409, error.code, error.detail, field=error.field) from None
    headers = {"Location": f"/v1/cases/{case.case_id}"}
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return json_response(node.case_views.view(case), status=201, headers=headers)


async def get_case(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    try:
        case = node.case_views.get(request.match_info["case_id"])
    except CaseNotFound:
        raise _unknown(request.match_info["case_id"]) from None
    return json_response(node.case_views.view(case))


async def list_cases(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    query = request.query
    role = _choice(query, "role", _ROLES)
    status = _choice(query, "status", _STATUSES)
    peer = _choice(query, "peer", frozenset(node.peers))
    overdue = query.get("overdue")
    if overdue not in (None, "true", "false"):
        raise ProblemError(422, "invalid_query", "overdue must be true or false", field="overdue")
    limit = _integer(query, "limit", DEFAULT_PAGE, 1, MAX_PAGE)
    cursor = query.get("cursor")
    before = None
    if cursor is not None:
        before = ascii_integer(cursor)
        if before is None:
            raise ProblemError(
                422, "invalid_query", "cursor is not one this API gave", field="cursor"
            )
    rows = cases_store.list_cases(
        node.db.reader(),
        role=role,
        status=status,
        peer=peer,
        overdue=None if overdue is None else overdue == "true",
        now=node.clock(),
        before=before,
        limit=limit + 1,
    )
    page = rows[:limit]
    next_cursor = str(page[-1][0]) if len(rows) > limit else None
    return json_response(
        {
            "cases": [node.case_views.view(case, history=False) for _, case in page],
            "next_cursor": next_cursor,
        }
    )


async def post_event(request: web.Request) -> web.Response:
    node = request.app[NODE_KEY]
    case_id = request.match_info["case_id"]
    body = await read_json(request)
    try:
        _, request_id = await node.cases.act(case_id, body)
    except CaseNotFound:
        raise _unknown(case_id) from None
    except CaseInputError as error:
        raise ProblemError(422, error.code, str(error), field=error.field) from None
    except TransitionRefused as refusal:
        raise ProblemError(
            _TRANSITION_STATUS.get(refusal.code, 409),
            refusal.code,
            refusal.detail,
            field=refusal.field,
        ) from None
    except CaseConflict as error:
        raise ProblemError(409, error.code, error.detail, field=error.field) from None
    shown = node.case_views.view(node.case_views.get(case_id))
    if request_id is None:
        return json_response(shown)
    return json_response({**shown, "request_id": request_id}, status=202)


def _unknown(case_id: str) -> ProblemError:
    return ProblemError(404, "unknown_case", f"no case {case_id!r} is known to this node")


def _choice(query: Any, name: str, allowed: frozenset[str]) -> str | None:
    value = query.get(name)
    if value is not None and value not in allowed:
        raise ProblemError(
            422, "invalid_query", f"{name} must be one of {sorted(allowed)}", field=name
        )
    return value  # type: ignore[no-any-return]


def _integer(query: Any, name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None:
        return default
    value = ascii_integer(text, low=low, high=high)
    if value is None:
        raise ProblemError(
            422,
            "invalid_query",
            f"{name} must be a whole number from {low} to {high} in ASCII digits",
            field=name,
        )
    return value


def add_routes(app: web.Application) -> None:
    app.router.add_post("/v1/cases", submit_case)
    app.router.add_get("/v1/cases", list_cases)
    app.router.add_get("/v1/cases/{case_id}", get_case)
    app.router.add_post("/v1/cases/{case_id}/events", post_event)
