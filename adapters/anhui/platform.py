"""The simulated Anhui platform (安徽政务服务网 / 皖事通) in its own dialect, on the shared engine.

Every handler decodes the request with ``adapters.anhui.form`` and ``adapters.anhui.dialect``,
calls one ``SimulatedPlatform`` method and encodes the answer; the engine keeps data and
rules. Rules kept:

1. Strict: a body that is not a UTF-8 form (``charset`` other than UTF-8, GBK bytes, a
   broken pair or escape, a key given twice), a missing or unknown field, an unknown label
   and a time that is not ``yyyy-MM-dd HH:mm:ss`` are refused with 400 and the dialect's
   error object (``{"flag": false, "code", "message", "field"}``) before anything is stored.
   A body must be sent as ``application/x-www-form-urlencoded`` (else 415).
2. When built with a ``token`` credential, the node's endpoints require it in the
   ``X-WST-Token`` header (401 otherwise); the citizen's endpoints (entering an application,
   following it) and ``/sim/fixtures`` do not.
3. Deliveries answer 201 the first time and 200 with ``"sfcf": "是"`` (a repeat) after that;
   a different case or notice under a known key is a 409 ``conflict``.
4. Success is ``{"flag": true, "message": "成功", "result": ...}``; paged lists put
   ``{"rows": [...], "nextCursor": "<position>", "hasMore": bool}`` in ``result``.
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

from adapters.anhui import dialect
from adapters.anhui.form import FormFields, parse_form
from adapters.simulation.platform import (
    DEFAULT_PAGE,
    MAX_PAGE,
    SIMULATION,
    PlatformRefusal,
    SimulatedPlatform,
    parse_cursor,
)
from node.platform.adapter import DialectError

log = logging.getLogger(__name__)

BASE: Final = "/wst/api/kstb"
"""跨省通办: applications, events, inbound cases, notices, matters."""
LICENSES: Final = "/wst/api/dzzz/zz"
"""电子证照: the certificate library."""
TOKEN_HEADER: Final = "X-WST-Token"  # noqa: S105  (a header name, not a secret)
FORM_TYPE: Final = "application/x-www-form-urlencoded"
REFERENCE_PREFIX: Final = "WSTB"
"""Application numbers read ``WSTB<yyyymmdd><6 digits>`` (皖事通办)."""

_CITIZEN_PATHS: Final = frozenset({f"{BASE}/sq/tj", f"{BASE}/sq/xq"})
_REPEAT: Final = {True: "否", False: "是"}
"""``sfcf`` (是否重复) by whether the delivery created something."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_platform(
    store_path: str | Path,
    *,
    seed: int,
    officer_delay: float,
    clock: Callable[[], float] = time.time,
    credentials: Mapping[str, str] | None = None,
) -> web.Application:
    """The simulated Anhui platform as an ``aiohttp`` application (its store opened).

    ``credentials`` is the mapping the node's adapter gets; ``token`` in it makes the node's
    endpoints require that token (rule 2).
    """
    token = (credentials or {}).get("token") or None
    platform = SimulatedPlatform.open(
        dialect.PROVINCE,
        store_path,
        seed=seed,
        officer_delay=officer_delay,
        clock=clock,
        reference_prefix=REFERENCE_PREFIX,
    )
    middlewares: list[Middleware] = [_errors, _token_check(token)]
    return platform.app(_routes(), middlewares=middlewares)


def _routes() -> list[web.RouteDef]:
    return [
        web.post(f"{BASE}/sq/tj", submit_application),
        web.get(f"{BASE}/sq/xq", show_application),
        web.get(f"{BASE}/sq/lb", list_applications),
        web.post(f"{BASE}/sq/qr", acknowledge),
        web.get(f"{BASE}/bjdt/lb", list_events),
        web.post(f"{BASE}/bj/js", deliver_case),
        web.post(f"{BASE}/bj/ztgx", deliver_notice),
        web.get(f"{BASE}/sx/lb", list_matters),
        web.get(f"{LICENSES}/xq", show_license),
        web.get(f"{LICENSES}/zxlb", list_revocations),
    ]


# --- the citizen's side ---------------------------------------------------------------------


async def submit_application(request: web.Request) -> web.Response:
    fields = await _read_form(request)
    body = dialect.read_application_form(fields)
    fields.finish()
    stored = _platform(request).submit_application(body)
    return _ok(
        {
            "sqbh": stored.reference,
            "sqsj": dialect.format_time(stored.submitted_at),
            "bjzt": dialect.status_label("submitted"),
        },
        status=201,
    )


async def show_application(request: web.Request) -> web.Response:
    progress = _platform(request).application_progress(_query(request, "sqbh"))
    stored = progress.application
    shape: dict[str, Any] = {
        "sqbh": stored.reference,
        "sqsj": dialect.format_time(stored.submitted_at),
    }
    if stored.case_id is not None:
        shape["bjbh"] = stored.case_id
    shape["bjzt"] = dialect.status_label(progress.status)
    concluded = [n.notice for n in progress.notices if n.notice.result is not None]
    if concluded:
        shape["jg"] = dialect.notice_to_dialect(concluded[-1])["jg"]
    shape["jd"] = [dialect.notice_to_dialect(n.notice) for n in progress.notices]
    return _ok(shape)


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
    fields = await _read_form(request)
    reference = fields.text("sqbh", max_length=64)
    case_id = fields.text("bjbh", max_length=128)
    fields.finish()
    stored = _platform(request).acknowledge(reference, case_id)
    assert stored.acknowledged_at is not None
    assert stored.case_id is not None
    return _ok(
        {
            "sqbh": stored.reference,
            "bjbh": stored.case_id,
            "qrsj": dialect.format_time(stored.acknowledged_at),
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
    case = dialect.read_case(await _read_form(request))
    created = _platform(request).deliver_case(case)
    return _ok({"bjbh": case.case_id, "sfcf": _REPEAT[created]}, status=201 if created else 200)


async def deliver_notice(request: web.Request) -> web.Response:
    notice = dialect.read_notice(await _read_form(request))
    created = _platform(request).deliver_notice(notice)
    return _ok(
        {"bjbh": notice.case_id, "xh": str(notice.sequence), "sfcf": _REPEAT[created]},
        status=201 if created else 200,
    )


async def list_matters(request: web.Request) -> web.Response:
    matters = _platform(request).matters()
    return _ok({"rows": [dialect.matter_to_dialect(matter) for matter in matters]})


async def show_license(request: web.Request) -> web.Response:
    certificate = _platform(request).certificate(_query(request, "zzbs"))
    if certificate is None:
        raise PlatformRefusal(
            "not_found", "the library holds no licence with this id", field="zzbs", status=404
        )
    return _ok(dialect.certificate_to_dialect(certificate))


async def list_revocations(request: web.Request) -> web.Response:
    revocations = _platform(request).revocations()
    return _ok({"rows": [dialect.revocation_record(r) for r in revocations]})


# --- plumbing -------------------------------------------------------------------------------


def _platform(request: web.Request) -> SimulatedPlatform:
    return request.app[SIMULATION]


async def _read_form(request: web.Request) -> FormFields:
    if request.content_type != FORM_TYPE:
        raise PlatformRefusal(
            "unsupported_media_type",
            f"the body must be sent as {FORM_TYPE}",
            field="Content-Type",
            status=415,
        )
    charset = request.charset
    if charset is not None and charset.lower().replace("-", "") != "utf8":
        raise DialectError(
            "not_utf8",
            "form bodies are UTF-8; send charset=UTF-8 or no charset",
            field="Content-Type",
        )
    return FormFields(parse_form(await request.read()))


def _query(request: web.Request, name: str) -> str:
    value = request.query.get(name, "")
    if not value:
        raise DialectError("missing_field", "is required in the query", field=name)
    return value


def _paging(request: web.Request) -> tuple[int, int]:
    cursor = parse_cursor(request.query.get("cursor"))
    text = request.query.get("limit", str(DEFAULT_PAGE))
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE:
        raise PlatformRefusal(
            "invalid_field", f"limit must be a whole number from 1 to {MAX_PAGE}", field="limit"
        )
    return cursor, int(text)


def _page(rows: list[dict[str, Any]], position: int, more: bool) -> web.Response:
    return _ok({"rows": rows, "nextCursor": str(position), "hasMore": more})


def _ok(result: Any, *, status: int = 200) -> web.Response:
    return _json(dialect.ok_body(result), status=status)


def _json(data: dict[str, Any], *, status: int) -> web.Response:
    return web.json_response(text=json.dumps(data, ensure_ascii=False), status=status)


def _error(status: int, code: str, detail: str, field: str = "") -> web.Response:
    return _json(dialect.error_body(code, detail, field=field), status=status)


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
        log.exception("simulated Anhui platform failed", extra={"path": request.path})
        return _error(500, "internal", "the platform failed; try again later")


def _token_check(token: str | None) -> Middleware:
    @web.middleware
    async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
        open_path = request.path.startswith("/sim/") or request.path in _CITIZEN_PATHS
        if token and not open_path:
            given = request.headers.get(TOKEN_HEADER, "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return _error(401, "unauthorized", f"a valid {TOKEN_HEADER} header is required")
        return await handler(request)

    return check
