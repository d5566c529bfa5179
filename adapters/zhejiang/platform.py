"""The simulated Zhejiang platform (浙里办 open platform) in its own dialect, on the shared
engine.

Every handler decodes the request with ``adapters.zhejiang.dialect``, calls one
``SimulatedPlatform`` method and encodes the answer in the ``{code, msg, data}`` envelope;
the engine keeps data and rules. Rules kept:

1. Signed: every request to the open platform (``/zlb/open/…``, what the node calls) passes
   ``adapters.zhejiang.signing``'s check (app key, timestamp window, HMAC-SHA256
   signature, fresh nonce) before its body is decoded; a refusal is 401 (403 for an
   unknown app key) and stores nothing. The citizen's 浙里办 app front end
   (``/zlb/app/…``: entering an application, following it) and the engine's
   ``GET /sim/fixtures`` for testers are not the open platform and are not signed.
2. Strict: a body that is not UTF-8 JSON, a missing or unknown field, an unknown word and a
   time not in the dialect's form are refused with 400 and the dialect's error envelope
   before anything is stored. A body must be sent as ``application/json`` (else 415); an
   unknown query parameter is refused too.
3. Deliveries answer 201 the first time and 200 with ``"duplicate": true`` after that; a
   different case or notice under a known key is a 409 ``conflict``.
4. Lists are paged by token. The feeds (applications, events) answer a token naming the
   last position returned, or the token sent when nothing is new, and ``has_more`` is
   exact; the snapshots (matters, revocations) answer an offset token, ``""`` after the
   last page.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from adapters.simulation.platform import (
    DEFAULT_PAGE,
    MAX_PAGE,
    SIMULATION,
    PlatformRefusal,
    SimulatedPlatform,
    parse_cursor,
)
from adapters.strict_json import JsonObject, decode_json_object
from adapters.zhejiang import dialect
from adapters.zhejiang.signing import SignatureCheck
from node.platform.adapter import DialectError

log = logging.getLogger(__name__)

SIGNED_PREFIX: Final = "/zlb/open/"
BASE: Final = "/zlb/open/v2/cross_province"
LICENSES: Final = "/zlb/open/v2/licenses"
REVOCATIONS: Final = "/zlb/open/v2/license_revocations"
APP_BASE: Final = "/zlb/app/v1/cross_province"
"""The citizen's 浙里办 app front end (unsigned; rule 1)."""
REFERENCE_PREFIX: Final = "ZLB"
"""Application numbers read ``ZLB<yyyymmdd><6 digits>`` (浙里办)."""

_PAGE_PARAMETERS: Final = frozenset({"page_size", "page_token"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def build_platform(
    store_path: str | Path,
    *,
    seed: int,
    officer_delay: float,
    clock: Callable[[], float] = time.time,
    credentials: Mapping[str, str] | None = None,
) -> web.Application:
    """The simulated Zhejiang platform as an ``aiohttp`` application (its store opened).

    ``credentials`` is the mapping the node's adapter gets and must hold ``app_key`` and
    ``app_secret``: the one app allowed to call the platform (rule 1). ``clock`` is also
    the clock the timestamp window is measured by.
    """
    given = credentials or {}
    missing = [key for key in ("app_key", "app_secret") if not given.get(key)]
    if missing:
        raise ValueError(
            "the Zhejiang open platform checks every request's signature: its credentials "
            "need " + " and ".join(missing)
        )
    check = SignatureCheck(given["app_key"], given["app_secret"], clock=clock)
    platform = SimulatedPlatform.open(
        dialect.PROVINCE,
        store_path,
        seed=seed,
        officer_delay=officer_delay,
        clock=clock,
        reference_prefix=REFERENCE_PREFIX,
    )
    middlewares: list[Middleware] = [_errors, _signature_check(check)]
    return platform.app(_routes(), middlewares=middlewares)


def _routes() -> list[web.RouteDef]:
    return [
        web.post(f"{APP_BASE}/applications", submit_application),
        web.get(f"{APP_BASE}/applications/{{apply_no}}", show_application),
        web.get(f"{BASE}/applications", list_applications),
        web.post(f"{BASE}/applications/{{apply_no}}/acknowledge", acknowledge),
        web.get(f"{BASE}/events", list_events),
        web.post(f"{BASE}/inbound_cases", deliver_case),
        web.post(f"{BASE}/case_notices", deliver_notice),
        web.get(f"{BASE}/matters", list_matters),
        web.get(f"{LICENSES}/{{license_id}}", show_license),
        web.get(REVOCATIONS, list_revocations),
    ]


# --- the citizen's side (the 浙里办 app front end) --------------------------------------------


async def submit_application(request: web.Request) -> web.Response:
    _no_query(request)
    fields = JsonObject(await _read_body(request))
    body = dialect.read_application_form(fields)
    fields.finish()
    stored = _platform(request).submit_application(body)
    return _json(
        {
            "apply_no": stored.reference,
            "apply_time": dialect.to_instant(stored.submitted_at),
            "case_status": dialect.status_word("submitted"),
        },
        status=201,
    )


async def show_application(request: web.Request) -> web.Response:
    _no_query(request)
    progress = _platform(request).application_progress(request.match_info["apply_no"])
    stored = progress.application
    shape: dict[str, Any] = {
        "apply_no": stored.reference,
        "apply_time": dialect.to_instant(stored.submitted_at),
        "case_id": stored.case_id,
        "case_status": dialect.status_word(progress.status),
        "progress": [dialect.notice_to_dialect(n.notice) for n in progress.notices],
    }
    concluded = [n.notice for n in progress.notices if n.notice.result is not None]
    if concluded:
        shape["result"] = dialect.notice_to_dialect(concluded[-1])["result"]
    return _json(shape)


# --- the node's side ------------------------------------------------------------------------


async def list_applications(request: web.Request) -> web.Response:
    token, position, size = _paging(request)
    platform = _platform(request)
    records = platform.applications_since(position, size)
    last = records[-1].position if records else position
    return _json(
        dialect.page(
            [
                dialect.application_record(
                    r.reference, r.body, r.submitted_at, r.case_id, r.acknowledged_at
                )
                for r in records
            ],
            size,
            bool(records) and bool(platform.applications_since(last, 1)),
            str(last) if records else token,
        )
    )


async def acknowledge(request: web.Request) -> web.Response:
    _no_query(request)
    fields = JsonObject(await _read_body(request))
    case_id = fields.text("case_id", max_length=128)
    fields.finish()
    stored = _platform(request).acknowledge(request.match_info["apply_no"], case_id)
    assert stored.acknowledged_at is not None
    return _json(
        {
            "apply_no": stored.reference,
            "case_id": stored.case_id,
            "ack_time": dialect.to_instant(stored.acknowledged_at),
        }
    )


async def list_events(request: web.Request) -> web.Response:
    token, position, size = _paging(request)
    platform = _platform(request)
    events = platform.events_since(position, size)
    last = events[-1].position if events else position
    return _json(
        dialect.page(
            [dialect.event_record(e.event_id, e.case_id, e.body, e.created) for e in events],
            size,
            bool(events) and bool(platform.events_since(last, 1)),
            str(last) if events else token,
        )
    )


async def deliver_case(request: web.Request) -> web.Response:
    _no_query(request)
    fields = JsonObject(await _read_body(request))
    case = dialect.read_case(fields)
    created = _platform(request).deliver_case(case)
    return _json(
        {"case_id": case.case_id, "duplicate": not created}, status=201 if created else 200
    )


async def deliver_notice(request: web.Request) -> web.Response:
    _no_query(request)
    fields = JsonObject(await _read_body(request))
    notice = dialect.read_notice(fields)
    created = _platform(request).deliver_notice(notice)
    return _json(
        {"case_id": notice.case_id, "seq_no": notice.sequence, "duplicate": not created},
        status=201 if created else 200,
    )


async def list_matters(request: web.Request) -> web.Response:
    matters = [dialect.matter_to_dialect(m) for m in _platform(request).matters()]
    return _json(_snapshot_page(request, matters))


async def show_license(request: web.Request) -> web.Response:
    _no_query(request)
    certificate = _platform(request).certificate(request.match_info["license_id"])
    if certificate is None:
        raise PlatformRefusal(
            "not_found", "the library holds no licence with this id", field="license_id", status=404
        )
    return _json(dialect.certificate_to_dialect(certificate))


async def list_revocations(request: web.Request) -> web.Response:
    revocations = [dialect.revocation_record(r) for r in _platform(request).revocations()]
    return _json(_snapshot_page(request, revocations))


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


def _no_query(request: web.Request) -> None:
    _known_query(request, frozenset())


def _known_query(request: web.Request, known: frozenset[str]) -> None:
    for name in request.query:
        if name not in known:
            raise DialectError("unknown_field", "is not a query parameter here", field=name[:60])


def _paging(request: web.Request) -> tuple[str, int, int]:
    """The page token as sent, the position it names and the page size (rule 4)."""
    _known_query(request, _PAGE_PARAMETERS)
    token = request.query.get("page_token", "")
    try:
        position = parse_cursor(token)
    except PlatformRefusal:
        raise PlatformRefusal(
            "invalid_page", "is not a page token this platform gave", field="page_token"
        ) from None
    text = request.query.get("page_size", str(DEFAULT_PAGE))
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE:
        raise PlatformRefusal(
            "invalid_page", f"must be a whole number from 1 to {MAX_PAGE}", field="page_size"
        )
    return token, position, int(text)


def _snapshot_page(request: web.Request, items: list[dict[str, Any]]) -> dict[str, Any]:
    _, offset, size = _paging(request)
    end = offset + size
    more = end < len(items)
    return dialect.page(items[offset:end], size, more, str(end) if more else "")


def _json(data: Mapping[str, Any], *, status: int = 200) -> web.Response:
    text = json.dumps(dialect.success(data), ensure_ascii=False)
    return web.json_response(text=text, status=status)


def _error(status: int, code: str, detail: str, field: str = "") -> web.Response:
    body = dialect.error_body(code, detail, field=field, status=status)
    return web.json_response(text=json.dumps(body, ensure_ascii=False), status=status)


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
        log.exception("simulated Zhejiang platform failed", extra={"path": request.path})
        return _error(500, "internal", "the platform failed; try again later")


def _signature_check(check: SignatureCheck) -> Middleware:
    @web.middleware
    async def signed(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(SIGNED_PREFIX):
            body = await request.read()
            check.verify(request.method, request.raw_path, request.headers, body)
        return await handler(request)

    return signed
