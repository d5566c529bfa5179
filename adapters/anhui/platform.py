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
3. Deliveries (a case, a notice, the federation's refusal of an application) answer 201
   the first time and 200 with ``"sfcf": "是"`` (a repeat) after that; a different case,
   notice or refusal under a known key, and a refusal of an application that became a case,
   is a 409 ``conflict``.
4. Success is ``{"flag": true, "message": "成功", "result": ...}``; paged lists put
   ``{"rows": [...], "nextCursor": "<position>", "hasMore": bool}`` in ``result``.
"""

from __future__ import annotations

import json
from typing import Any, Final

from aiohttp import web

from adapters.anhui import dialect
from adapters.anhui.dialect import ANHUI
from adapters.anhui.form import FormFields, parse_form
from adapters.simulation.platform import (
    Front,
    PlatformRefusal,
    TokenGate,
    parse_cursor,
    parse_limit,
    platform_of,
)
from node.platform.adapter import DialectError

BASE: Final = "/wst/api/kstb"
"""跨省通办: applications, events, inbound cases, notices, matters."""
LICENSES: Final = "/wst/api/dzzz/zz"
"""电子证照: the certificate library."""
TOKEN_HEADER: Final = "X-WST-Token"  # noqa: S105  (a header name, not a secret)
FORM_TYPE: Final = "application/x-www-form-urlencoded"
REFERENCE_PREFIX: Final = "WSTB"
"""Application numbers read ``WSTB<yyyymmdd><6 digits>`` (皖事通办)."""

_CITIZEN_PATHS: Final = frozenset({f"{BASE}/sq/tj", f"{BASE}/sq/xq"})


def _routes() -> list[web.RouteDef]:
    return [
        web.post(f"{BASE}/sq/tj", submit_application),
        web.get(f"{BASE}/sq/xq", show_application),
        web.get(f"{BASE}/sq/lb", list_applications),
        web.post(f"{BASE}/sq/qr", acknowledge),
        web.post(f"{BASE}/sq/th", reject_application),
        web.get(f"{BASE}/bjdt/lb", list_events),
        web.post(f"{BASE}/bj/js", deliver_case),
        web.post(f"{BASE}/bj/ztgx", deliver_notice),
        web.get(f"{BASE}/sx/lb", list_matters),
        web.get(f"{LICENSES}/xq", show_license),
        web.get(f"{LICENSES}/zxlb", list_revocations),
    ]


def _is_citizens(request: web.Request) -> bool:
    """Entering an application and following it are the citizen's, without a token."""
    return request.path in _CITIZEN_PATHS


# --- the citizen's side ---------------------------------------------------------------------


async def submit_application(request: web.Request) -> web.Response:
    fields = await _read_form(request)
    body = ANHUI.read_application_form(fields)
    fields.finish()
    stored = platform_of(request).submit_application(body)
    return _ok(ANHUI.application_receipt(stored.reference, stored.submitted_at), status=201)


async def show_application(request: web.Request) -> web.Response:
    progress = platform_of(request).application_progress(_query(request, "sqbh"))
    stored = progress.application
    shape: dict[str, Any] = {
        "sqbh": stored.reference,
        "sqsj": dialect.format_time(stored.submitted_at),
    }
    if stored.case_id is not None:
        shape["bjbh"] = stored.case_id
    shape["bjzt"] = dialect.APPLICATION_STATUS_LABELS.code_of(progress.status)
    if progress.result is not None:
        shape["jg"] = ANHUI.result_to_dialect(progress.result)
    if progress.refusal is not None:
        held = progress.refusal
        shape["th"] = ANHUI.refusal_record(held.refusal, held.refused_at)
    shape["jd"] = [ANHUI.notice_to_dialect(n.notice) for n in progress.notices]
    return _ok(shape)


# --- the node's side ------------------------------------------------------------------------


async def list_applications(request: web.Request) -> web.Response:
    cursor, limit = _paging(request)
    records = platform_of(request).applications_since(cursor, limit)
    return _page(
        [
            ANHUI.application_record(
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
    stored = platform_of(request).acknowledge(reference, case_id)
    assert stored.acknowledged_at is not None
    assert stored.case_id is not None
    return _ok(ANHUI.acknowledgement(stored.reference, stored.case_id, stored.acknowledged_at))


async def reject_application(request: web.Request) -> web.Response:
    fields = await _read_form(request)
    reference = fields.text("sqbh", max_length=64)
    refusal = ANHUI.read_refusal(fields)
    held, created = platform_of(request).refuse_application(reference, refusal)
    receipt = ANHUI.refusal_receipt(
        reference, held.refusal.code, held.refused_at, duplicate=not created
    )
    return _ok(receipt, status=201 if created else 200)


async def list_events(request: web.Request) -> web.Response:
    cursor, limit = _paging(request)
    events = platform_of(request).events_since(cursor, limit)
    return _page(
        [ANHUI.event_record(e.event_id, e.case_id, e.body, e.created) for e in events],
        events[-1].position if events else cursor,
        len(events) == limit,
    )


async def deliver_case(request: web.Request) -> web.Response:
    case = ANHUI.read_case(await _read_form(request))
    created = platform_of(request).deliver_case(case)
    receipt = ANHUI.delivery_receipt(case.case_id, None, duplicate=not created)
    return _ok(receipt, status=201 if created else 200)


async def deliver_notice(request: web.Request) -> web.Response:
    notice = ANHUI.read_notice(await _read_form(request))
    created = platform_of(request).deliver_notice(notice)
    receipt = ANHUI.delivery_receipt(notice.case_id, notice.sequence, duplicate=not created)
    return _ok(receipt, status=201 if created else 200)


async def list_matters(request: web.Request) -> web.Response:
    matters = platform_of(request).matters()
    return _ok({"rows": [ANHUI.matter_to_dialect(matter) for matter in matters]})


async def show_license(request: web.Request) -> web.Response:
    certificate = platform_of(request).certificate(_query(request, "zzbs"))
    if certificate is None:
        raise PlatformRefusal(
            "not_found", "the library holds no licence with this id", field="zzbs", status=404
        )
    return _ok(ANHUI.certificate_to_dialect(certificate))


async def list_revocations(request: web.Request) -> web.Response:
    revocations = platform_of(request).revocations()
    return _ok({"rows": [ANHUI.revocation_record(r) for r in revocations]})


# --- plumbing -------------------------------------------------------------------------------


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
    return cursor, parse_limit(request.query.get("limit"), field="limit")


def _page(rows: list[dict[str, Any]], position: int, more: bool) -> web.Response:
    return _ok({"rows": rows, "nextCursor": str(position), "hasMore": more})


def _ok(result: Any, *, status: int = 200) -> web.Response:
    return _json(dialect.ok_body(result), status=status)


def _json(data: dict[str, Any], *, status: int) -> web.Response:
    return web.json_response(text=json.dumps(data, ensure_ascii=False), status=status)


def _error(status: int, code: str, detail: str, field: str) -> web.Response:
    return _json(dialect.error_body(code, detail, field=field), status=status)


FRONT: Final = Front(
    province=dialect.PROVINCE,
    reference_prefix=REFERENCE_PREFIX,
    routes=_routes,
    error_reply=_error,
    dialect_field=dialect.dialect_field,
    gate=TokenGate(TOKEN_HEADER, credential="token", is_open=_is_citizens),
)
build_platform: Final = FRONT.build_platform
"""The simulated Anhui platform as an ``aiohttp`` application (its store opened); ``token``
in ``credentials`` makes the node's endpoints require it (rule 2)."""
