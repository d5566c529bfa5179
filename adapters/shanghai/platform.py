"""The simulated Shanghai platform (一网通办) in its own dialect, on the shared engine.

Every handler decodes the request with ``adapters.shanghai.dialect``, calls one
``SimulatedPlatform`` method and encodes the answer; the engine keeps data and rules (and
answers every refusal, ``adapters.simulation.platform.refusals``). Rules kept:

1. Strict: a body that is not UTF-8 JSON, a missing or unknown field, an unknown code and a
   time that is not epoch milliseconds are refused with 400 and the dialect's error object
   (``{"errorCode", "errorType", "errorMsg", "errorField"}``) before anything is stored.
   A body must be sent as ``application/json`` (else 415).
2. When built with an ``access_token`` credential, the node's endpoints require it in the
   ``X-Access-Token`` header (401 otherwise); the citizen's endpoints (entering an
   application, following it) and ``/sim/fixtures`` do not.
3. Deliveries (a case, a notice, the federation's refusal of an application) answer 201
   the first time and 200 with ``"duplicate": true`` after that; a different case, notice
   or refusal under a known key, and a refusal of an application that became a case, is a
   409 ``conflict``.
4. Paged lists answer ``{"records": [...], "nextCursor": "<position>", "hasMore": bool}``.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from adapters.shanghai import dialect
from adapters.shanghai.dialect import SHANGHAI
from adapters.simulation.platform import (
    Front,
    PlatformRefusal,
    TokenGate,
    parse_cursor,
    parse_limit,
    platform_of,
    read_json_body,
)
from adapters.strict_json import JsonObject

BASE: Final = "/api/v1/crossProvince"
LICENSES: Final = "/api/v1/licenses"
REVOCATIONS: Final = "/api/v1/licenseRevocations"
TOKEN_HEADER: Final = "X-Access-Token"  # noqa: S105  (a header name, not a secret)
REFERENCE_PREFIX: Final = "SHYW"
"""Application numbers read ``SHYW<yyyymmdd><6 digits>`` (一网通办)."""


def _routes() -> list[web.RouteDef]:
    return [
        web.post(f"{BASE}/applications", submit_application),
        web.get(f"{BASE}/applications", list_applications),
        web.get(f"{BASE}/applications/{{applyNo}}", show_application),
        web.post(f"{BASE}/applications/{{applyNo}}/acknowledgement", acknowledge),
        web.post(f"{BASE}/applications/{{applyNo}}/rejection", reject_application),
        web.get(f"{BASE}/events", list_events),
        web.post(f"{BASE}/inboundCases", deliver_case),
        web.post(f"{BASE}/caseNotices", deliver_notice),
        web.get(f"{BASE}/matters", list_matters),
        web.get(f"{LICENSES}/{{licenseId}}", show_license),
        web.get(REVOCATIONS, list_revocations),
    ]


def _is_citizens(request: web.Request) -> bool:
    """Entering an application and following it are the citizen's, without a token."""
    citizen_submit = request.method == "POST" and request.path == f"{BASE}/applications"
    citizen_follow = request.method == "GET" and request.path.startswith(f"{BASE}/applications/")
    return citizen_submit or citizen_follow


# --- the citizen's side ---------------------------------------------------------------------


async def submit_application(request: web.Request) -> web.Response:
    fields = JsonObject(await read_json_body(request))
    body = SHANGHAI.read_application_form(fields)
    fields.finish()
    stored = platform_of(request).submit_application(body)
    return _json(SHANGHAI.application_receipt(stored.reference, stored.submitted_at), status=201)


async def show_application(request: web.Request) -> web.Response:
    progress = platform_of(request).application_progress(request.match_info["applyNo"])
    stored = progress.application
    shape: dict[str, Any] = {
        "applyNo": stored.reference,
        "applyTime": dialect.to_ms(stored.submitted_at),
        "caseId": stored.case_id,
        "caseStatus": dialect.APPLICATION_STATUS_CODES.code_of(progress.status),
        "progress": [SHANGHAI.notice_to_dialect(n.notice) for n in progress.notices],
    }
    if progress.result is not None:
        shape["result"] = SHANGHAI.result_to_dialect(progress.result)
    if progress.refusal is not None:
        held = progress.refusal
        shape["rejection"] = SHANGHAI.refusal_record(held.refusal, held.refused_at)
    return _json(shape)


# --- the node's side ------------------------------------------------------------------------


async def list_applications(request: web.Request) -> web.Response:
    cursor, limit = _paging(request)
    records = platform_of(request).applications_since(cursor, limit)
    return _page(
        [
            SHANGHAI.application_record(
                r.reference, r.body, r.submitted_at, r.case_id, r.acknowledged_at
            )
            for r in records
        ],
        records[-1].position if records else cursor,
        len(records) == limit,
    )


async def acknowledge(request: web.Request) -> web.Response:
    fields = JsonObject(await read_json_body(request))
    case_id = fields.text("caseId", max_length=128)
    fields.finish()
    stored = platform_of(request).acknowledge(request.match_info["applyNo"], case_id)
    assert stored.acknowledged_at is not None
    assert stored.case_id is not None
    return _json(SHANGHAI.acknowledgement(stored.reference, stored.case_id, stored.acknowledged_at))


async def reject_application(request: web.Request) -> web.Response:
    refusal = SHANGHAI.read_refusal(JsonObject(await read_json_body(request)))
    reference = request.match_info["applyNo"]
    held, created = platform_of(request).refuse_application(reference, refusal)
    receipt = SHANGHAI.refusal_receipt(
        reference, held.refusal.code, held.refused_at, duplicate=not created
    )
    return _json(receipt, status=201 if created else 200)


async def list_events(request: web.Request) -> web.Response:
    cursor, limit = _paging(request)
    events = platform_of(request).events_since(cursor, limit)
    return _page(
        [SHANGHAI.event_record(e.event_id, e.case_id, e.body, e.created) for e in events],
        events[-1].position if events else cursor,
        len(events) == limit,
    )


async def deliver_case(request: web.Request) -> web.Response:
    case = SHANGHAI.read_case(JsonObject(await read_json_body(request)))
    created = platform_of(request).deliver_case(case)
    receipt = SHANGHAI.delivery_receipt(case.case_id, None, duplicate=not created)
    return _json(receipt, status=201 if created else 200)


async def deliver_notice(request: web.Request) -> web.Response:
    notice = SHANGHAI.read_notice(JsonObject(await read_json_body(request)))
    created = platform_of(request).deliver_notice(notice)
    receipt = SHANGHAI.delivery_receipt(notice.case_id, notice.sequence, duplicate=not created)
    return _json(receipt, status=201 if created else 200)


async def list_matters(request: web.Request) -> web.Response:
    matters = platform_of(request).matters()
    return _json({"records": [SHANGHAI.matter_to_dialect(matter) for matter in matters]})


async def show_license(request: web.Request) -> web.Response:
    certificate = platform_of(request).certificate(request.match_info["licenseId"])
    if certificate is None:
        raise PlatformRefusal(
            "not_found", "the library holds no licence with this id", field="licenseId", status=404
        )
    return _json(SHANGHAI.certificate_to_dialect(certificate))


async def list_revocations(request: web.Request) -> web.Response:
    revocations = platform_of(request).revocations()
    return _json({"records": [SHANGHAI.revocation_record(r) for r in revocations]})


# --- plumbing -------------------------------------------------------------------------------


def _paging(request: web.Request) -> tuple[int, int]:
    cursor = parse_cursor(request.query.get("cursor"))
    return cursor, parse_limit(request.query.get("limit"), field="limit")


def _page(records: list[dict[str, Any]], position: int, more: bool) -> web.Response:
    return _json({"records": records, "nextCursor": str(position), "hasMore": more})


def _json(data: dict[str, Any], *, status: int = 200) -> web.Response:
    return web.json_response(text=json.dumps(data, ensure_ascii=False), status=status)


def _error(status: int, code: str, detail: str, field: str) -> web.Response:
    return _json(dialect.error_body(code, detail, field=field, status=status), status=status)


FRONT: Final = Front(
    province=dialect.PROVINCE,
    reference_prefix=REFERENCE_PREFIX,
    routes=_routes,
    error_reply=_error,
    dialect_field=dialect.dialect_field,
    gate=TokenGate(TOKEN_HEADER, credential="access_token", is_open=_is_citizens),
)
build_platform: Final = FRONT.build_platform
"""The simulated Shanghai platform as an ``aiohttp`` application (its store opened);
``access_token`` in ``credentials`` makes the node's endpoints require it (rule 2)."""
