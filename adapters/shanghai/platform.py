"""The simulated Shanghai platform (一网通办) in its own dialect, on the shared engine.

Every handler decodes the request with ``adapters.shanghai.dialect``, calls one
``SimulatedPlatform`` method and encodes the answer; the engine keeps data and rules.
Rules kept:

1. Strict: a body that is not UTF-8 JSON, a missing or unknown field, an unknown code and a
   time that is not epoch milliseconds are refused with 400 and the dialect's error object
   (``{"errorCode", "errorType", "errorMsg", "errorField"}``) before anything is stored.
   A body must be sent as ``application/json`` (else 415).
2. When built with an ``access_token`` credential, the node's endpoints require it in the
   ``X-Access-Token`` header (401 otherwise); the citizen's endpoints (entering an
   application, following it) and ``/sim/fixtures`` do not.
3. Deliveries answer 201 the first time and 200 with ``"duplicate": true`` after that; a
   different case or notice under a known key is a 409 ``conflict``.
4. Paged lists answer ``{"records": [...], "nextCursor": "<position>", "hasMore": bool}``.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from adapters.shanghai import dialect
from adapters.simulation.platform import (
    DEFAULT_PAGE,
    MAX_PAGE,
    SIMULATION,
    PlatformRefusal,
    SimulatedPlatform,
    parse_cursor,
)
from adapters.strict_json import JsonObject, decode_json_object
from node.platform.adapter import DialectError

log = logging.getLogger(__name__)

BASE: Final = "/api/v1/crossProvince"
LICENSES: Final = "/api/v1/licenses"
REVOCATIONS: Final = "/api/v1/licenseRevocations"
TOKEN_HEADER: Final = "X-Access-Token"  # noqa: S105  (a header name, not a secret)
REFERENCE_PREFIX: Final = "SHYW"
"""Application numbers read ``SHYW<yyyymmdd><6 digits>`` (一网通办)."""

_CITIZEN_PATHS: Final = ("/sim/",)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_platform(
    store_path: str | Path,
    *,
    seed: int,
    officer_delay: float,
    clock: Callable[[], float] = time.time,
    credentials: Mapping[str, str] | None = None,
) -> web.Application:
    """The simulated Shanghai platform as an ``aiohttp`` application (its store opened).

    ``credentials`` is the mapping the node's adapter gets; ``access_token`` in it makes the
    node's endpoints require that token (rule 2).
    """
    access_token = (credentials or {}).get("access_token") or None
    platform = SimulatedPlatform.open(
        dialect.PROVINCE,
        store_path,
        seed=seed,
        officer_delay=officer_delay,
        clock=clock,
        reference_prefix=REFERENCE_PREFIX,
    )
    middlewares: list[Middleware] = [_errors, _token_check(access_token)]
    return platform.app(_routes(), middlewares=middlewares)


def _routes() -> list[web.RouteDef]:
    return [
        web.post(f"{BASE}/applications", submit_application),
        web.get(f"{BASE}/applications", list_applications),
        web.get(f"{BASE}/applications/{{applyNo}}", show_application),
        web.post(f"{BASE}/applications/{{applyNo}}/acknowledgement", acknowledge),
        web.get(f"{BASE}/events", list_events),
        web.post(f"{BASE}/inboundCases", deliver_case),
        web.post(f"{BASE}/caseNotices", deliver_notice),
        web.get(f"{BASE}/matters", list_matters),
        web.get(f"{LICENSES}/{{licenseId}}", show_license),
        web.get(REVOCATIONS, list_revocations),
    ]


# --- the citizen's side ---------------------------------------------------------------------


async def submit_application(request: web.Request) -> web.Response:
    fields = JsonObject(await _read_body(request))
    body = dialect.read_application_form(fields)
    fields.finish()
    stored = _platform(request).submit_application(body)
    return _json(
        {
            "applyNo": stored.reference,
            "applyTime": dialect.to_ms(stored.submitted_at),
            "caseStatus": 10,
        },
        status=201,
    )


async def show_application(request: web.Request) -> web.Response:
    progress = _platform(request).application_progress(request.match_info["applyNo"])
    stored = progress.application
    shape: dict[str, Any] = {
        "applyNo": stored.reference,
        "applyTime": dialect.to_ms(stored.submitted_at),
        "caseId": stored.case_id,
        "caseStatus": dialect.status_code(progress.status),
        "progress": [dialect.notice_to_dialect(n.notice) for n in progress.notices],
    }
    concluded = [n.notice for n in progress.notices if n.notice.result is not None]
    if concluded:
        shape["result"] = dialect.notice_to_dialect(concluded[-1])["result"]
    return _json(shape)


# --- the node's side ------------------------------------------------------------------------


async def list_applications(request: web.Request) -> web.Response:
    cursor, limit = _paging(request)
    records = _platform(request).applications_since(cursor, limit)
    return _page(
        [
            dialect.application_record(
                r.reference, r.body, r.submitted_at, r.case_id, r.acknowledged_at
            )
            for r in records
        ],
        records[-1].position if records else cursor,
        len(records) == limit,
    )


async def acknowledge(request: web.Request) -> web.Response:
    fields = JsonObject(await _read_body(request))
    case_id = fields.text("caseId", max_length=128)
    fields.finish()
    stored = _platform(request).acknowledge(request.match_info["applyNo"], case_id)
    assert stored.acknowledged_at is not None
    return _json(
        {
            "applyNo": stored.reference,
            "caseId": stored.case_id,
            "ackTime": dialect.to_ms(stored.acknowledged_at),
        }
    )


async def list_events(request: web.Request) -> web.Response:
    cursor, limit = _paging(request)
    events = _platform(request).events_since(cursor, limit)
    return _page(
        [dialect.event_record(e.event_id, e.case_id, e.body, e.created) for e in events],
        events[-1].position if events else cursor,
        len(events) == limit,
    )


async def deliver_case(request: web.Request) -> web.Response:
    fields = JsonObject(await _read_body(request))
    case = dialect.read_case(fields)
    created = _platform(request).deliver_case(case)
    return _json({"caseId": case.case_id, "duplicate": not created}, status=201 if created else 200)


async def deliver_notice(request: web.Request) -> web.Response:
    fields = JsonObject(await _read_body(request))
    notice = dialect.read_notice(fields)
    created = _platform(request).deliver_notice(notice)
    return _json(
        {"caseId": notice.case_id, "seqNo": notice.sequence, "duplicate": not created},
        status=201 if created else 200,
    )


async def list_matters(request: web.Request) -> web.Response:
    matters = _platform(request).matters()
    return _json({"records": [dialect.matter_to_dialect(matter) for matter in matters]})


async def show_license(request: web.Request) -> web.Response:
    certificate = _platform(request).certificate(request.match_info["licenseId"])
    if certificate is None:
        raise PlatformRefusal(
            "not_found", "the library holds no licence with this id", field="licenseId", status=404
        )
    return _json(dialect.certificate_to_dialect(certificate))


async def list_revocations(request: web.Request) -> web.Response:
    revocations = _platform(request).revocations()
    return _json({"records": [dialect.revocation_record(r) for r in revocations]})


# --- plumbing -------------------------------------------------------------------------------


def _platform(request: web.Request) -> SimulatedPlatform:
    return request.app[SIMULATION]


async def _read_body(request: web.Request) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise PlatformRefusal(
            "unsupported_media_type",
            "the body must be sent as application/json",
            field="Content-Type",
            status=415,
        )
    return decode_json_object(await request.read(), what="request body")


def _paging(request: web.Request) -> tuple[int, int]:
    cursor = parse_cursor(request.query.get("cursor"))
    text = request.query.get("limit", str(DEFAULT_PAGE))
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise PlatformRefusal(
            "invalid_field", f"limit must be a whole number from 1 to {MAX_PAGE}", field="limit"
        )
    return cursor, int(text)


def _page(records: list[dict[str, Any]], position: int, more: bool) -> web.Response:
    return _json({"records": records, "nextCursor": str(position), "hasMore": more})


def _json(data: dict[str, Any], *, status: int = 200) -> web.Response:
    return web.json_response(text=json.dumps(data, ensure_ascii=False), status=status)


def _error(status: int, code: str, detail: str, field: str = "") -> web.Response:
    return _json(dialect.error_body(code, detail, field=field, status=status), status=status)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except DialectError as error:
        return _error(400, error.code, error.detail, error.field)
    except PlatformRefusal as error:
        return _error(error.status, error.code, error.detail, dialect.dialect_field(error.field))
    except web.HTTPException as error:
        if error.status < 400:
            raise
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            error.status, f"http_{error.status}"
        )
        return _error(error.status, code, f"{request.method} {request.path}: {error.reason}")
    except Exception:
        log.exception("simulated Shanghai platform failed", extra={"path": request.path})
        return _error(500, "internal", "the platform failed; try again later")


def _token_check(token: str | None) -> Middleware:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        if token and not _is_open(request):
            given = request.headers.get(TOKEN_HEADER, "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return _error(401, "unauthorized", f"a valid {TOKEN_HEADER} header is required")
        return await handler(request)

    return check


def _is_open(request: web.Request) -> bool:
    if request.path.startswith(_CITIZEN_PATHS):
        return True
    citizen_submit = request.method == "POST" and request.path == f"{BASE}/applications"
    citizen_follow = request.method == "GET" and request.path.startswith(f"{BASE}/applications/")
    return citizen_submit or citizen_follow
