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
3. Deliveries (a case, a notice, the federation's refusal of an application) answer 201
   the first time and 200 with ``"duplicate": true`` after that; a different case, notice
   or refusal under a known key, and a refusal of an application that became a case, is a
   409 ``conflict``.
4. Lists are paged by token. The feeds (applications, events) answer a token naming the
   last position returned, or the token sent when nothing is new, and ``has_more`` is
   exact; the snapshots (matters, revocations) answer an offset token, ``""`` after the
   last page.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from adapters.simulation.officer import Clock
from adapters.simulation.platform import (
    MAX_PAGE,
    ErrorReply,
    Front,
    Handler,
    PlatformRefusal,
    parse_cursor,
    parse_limit,
    platform_of,
    read_json_body,
)
from adapters.strict_json import JsonObject
from adapters.zhejiang import dialect
from adapters.zhejiang.dialect import ZHEJIANG
from adapters.zhejiang.signing import SignatureCheck
from node.platform.adapter import DialectError

SIGNED_PREFIX: Final = "/zlb/open/"
BASE: Final = "/zlb/open/v2/cross_province"
LICENSES: Final = "/zlb/open/v2/licenses"
REVOCATIONS: Final = "/zlb/open/v2/license_revocations"
APP_BASE: Final = "/zlb/app/v1/cross_province"
"""The citizen's 浙里办 app front end (unsigned; rule 1)."""
REFERENCE_PREFIX: Final = "ZLB"
"""Application numbers read ``ZLB<yyyymmdd><6 digits>`` (浙里办)."""

_PAGE_PARAMETERS: Final = frozenset({"page_size", "page_token"})


def _routes() -> list[web.RouteDef]:
    return [
        web.post(f"{APP_BASE}/applications", submit_application),
        web.get(f"{APP_BASE}/applications/{{apply_no}}", show_application),
        web.get(f"{BASE}/applications", list_applications),
        web.post(f"{BASE}/applications/{{apply_no}}/acknowledge", acknowledge),
        web.post(f"{BASE}/applications/{{apply_no}}/refuse", refuse_application),
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
    fields = JsonObject(await read_json_body(request))
    body = ZHEJIANG.read_application_form(fields)
    fields.finish()
    stored = platform_of(request).submit_application(body)
    return _json(ZHEJIANG.application_receipt(stored.reference, stored.submitted_at), status=201)


async def show_application(request: web.Request) -> web.Response:
    _no_query(request)
    progress = platform_of(request).application_progress(request.match_info["apply_no"])
    stored = progress.application
    shape: dict[str, Any] = {
        "apply_no": stored.reference,
        "apply_time": dialect.to_instant(stored.submitted_at),
        "case_id": stored.case_id,
        "case_status": dialect.APPLICATION_STATUSES.code_of(progress.status),
        "progress": [ZHEJIANG.notice_to_dialect(n.notice) for n in progress.notices],
    }
    if progress.result is not None:
        shape["result"] = ZHEJIANG.result_to_dialect(progress.result)
    if progress.refusal is not None:
        held = progress.refusal
        shape["refusal"] = ZHEJIANG.refusal_record(held.refusal, held.refused_at)
    return _json(shape)


# --- the node's side ------------------------------------------------------------------------


async def list_applications(request: web.Request) -> web.Response:
    token, position, size = _paging(request)
    platform = platform_of(request)
    records = platform.applications_since(position, size)
    last = records[-1].position if records else position
    return _json(
        dialect.page(
            [
                ZHEJIANG.application_record(
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
    fields = JsonObject(await read_json_body(request))
    case_id = fields.text("case_id", max_length=128)
    fields.finish()
    stored = platform_of(request).acknowledge(request.match_info["apply_no"], case_id)
    assert stored.acknowledged_at is not None
    assert stored.case_id is not None
    return _json(ZHEJIANG.acknowledgement(stored.reference, stored.case_id, stored.acknowledged_at))


async def refuse_application(request: web.Request) -> web.Response:
    _no_query(request)
    refusal = ZHEJIANG.read_refusal(JsonObject(await read_json_body(request)))
    reference = request.match_info["apply_no"]
    held, created = platform_of(request).refuse_application(reference, refusal)
    receipt = ZHEJIANG.refusal_receipt(
        reference, held.refusal.code, held.refused_at, duplicate=not created
    )
    return _json(receipt, status=201 if created else 200)


async def list_events(request: web.Request) -> web.Response:
    token, position, size = _paging(request)
    platform = platform_of(request)
    events = platform.events_since(position, size)
    last = events[-1].position if events else position
    return _json(
        dialect.page(
            [ZHEJIANG.event_record(e.event_id, e.case_id, e.body, e.created) for e in events],
            size,
            bool(events) and bool(platform.events_since(last, 1)),
            str(last) if events else token,
        )
    )


async def deliver_case(request: web.Request) -> web.Response:
    _no_query(request)
    case = ZHEJIANG.read_case(JsonObject(await read_json_body(request)))
    created = platform_of(request).deliver_case(case)
    receipt = ZHEJIANG.delivery_receipt(case.case_id, None, duplicate=not created)
    return _json(receipt, status=201 if created else 200)


async def deliver_notice(request: web.Request) -> web.Response:
    _no_query(request)
    notice = ZHEJIANG.read_notice(JsonObject(await read_json_body(request)))
    created = platform_of(request).deliver_notice(notice)
    receipt = ZHEJIANG.delivery_receipt(notice.case_id, notice.sequence, duplicate=not created)
    return _json(receipt, status=201 if created else 200)


async def list_matters(request: web.Request) -> web.Response:
    matters = [ZHEJIANG.matter_to_dialect(m) for m in platform_of(request).matters()]
    return _json(_snapshot_page(request, matters))


async def show_license(request: web.Request) -> web.Response:
    _no_query(request)
    certificate = platform_of(request).certificate(request.match_info["license_id"])
    if certificate is None:
        raise PlatformRefusal(
            "not_found", "the library holds no licence with this id", field="license_id", status=404
        )
    return _json(ZHEJIANG.certificate_to_dialect(certificate))


async def list_revocations(request: web.Request) -> web.Response:
    revocations = [ZHEJIANG.revocation_record(r) for r in platform_of(request).revocations()]
    return _json(_snapshot_page(request, revocations))


# --- plumbing -------------------------------------------------------------------------------


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
    try:
        size = parse_limit(request.query.get("page_size"), field="page_size")
    except PlatformRefusal:
        raise PlatformRefusal(
            "invalid_page", f"must be a whole number from 1 to {MAX_PAGE}", field="page_size"
        ) from None
    return token, position, size


def _snapshot_page(request: web.Request, items: list[dict[str, Any]]) -> dict[str, Any]:
    _, offset, size = _paging(request)
    end = offset + size
    more = end < len(items)
    return dialect.page(items[offset:end], size, more, str(end) if more else "")


def _json(data: Mapping[str, Any], *, status: int = 200) -> web.Response:
    text = json.dumps(dialect.success(data), ensure_ascii=False)
    return web.json_response(text=text, status=status)


def _error(status: int, code: str, detail: str, field: str) -> web.Response:
    body = dialect.error_body(code, detail, field=field, status=status)
    return web.json_response(text=json.dumps(body, ensure_ascii=False), status=status)


def _signature_gate(credentials: Mapping[str, str], clock: Clock, reply: ErrorReply) -> Middleware:
    """Every request to the open platform passes ``SignatureCheck`` for the one app the
    credentials name (``app_key``, ``app_secret``: both required), its timestamp window
    measured by the platform's clock (rule 1); a refusal is a ``PlatformRefusal``."""
    missing = [key for key in ("app_key", "app_secret") if not credentials.get(key)]
    if missing:
        raise ValueError(
            "the Zhejiang open platform checks every request's signature: its credentials "
            "need " + " and ".join(missing)
        )
    check = SignatureCheck(credentials["app_key"], credentials["app_secret"], clock=clock)

    @web.middleware
    async def signed(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(SIGNED_PREFIX):
            body = await request.read()
            check.verify(request.method, request.raw_path, request.headers, body)
        return await handler(request)

    return signed


FRONT: Final = Front(
    province=dialect.PROVINCE,
    reference_prefix=REFERENCE_PREFIX,
    routes=_routes,
    error_reply=_error,
    dialect_field=dialect.dialect_field,
    gate=_signature_gate,
)
build_platform: Final = FRONT.build_platform
"""The simulated Zhejiang platform as an ``aiohttp`` application (its store opened);
``credentials`` must hold ``app_key`` and ``app_secret``, the one app allowed to call the
platform, and ``clock`` also measures the timestamp window (rule 1)."""
