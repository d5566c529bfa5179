"""The simulated Jiangsu platform (江苏政务服务网) in its own dialect, on the shared engine.

Every handler decodes the request with ``adapters.jiangsu.dialect``, calls one
``SimulatedPlatform`` method and encodes the answer; the engine keeps data and rules.
Rules kept:

1. Strict: a body that is not UTF-8, not well-formed XML, carries a DTD or an entity
   declaration (the billion laughs, an external entity), misses an element, holds an unknown
   one or an unknown code, or a time not ``yyyyMMddHHmmss``, is refused with 400 and the
   dialect's ``<cwxx>`` before anything is stored. A body must be sent as
   ``application/xml`` or ``text/xml``, UTF-8 if a charset is named (else 415).
2. When built with an ``access_token`` credential, the node's endpoints require it in the
   ``X-JSZW-Token`` header (401 otherwise); the citizen's endpoints (entering an application,
   following it) and ``/sim/fixtures`` do not.
3. Deliveries (a case ``<aj>``, a notice ``<tz>``, the federation's refusal of an
   application ``<th>``) answer 201 the first time and 200 with ``<sfcf>Y</sfcf>`` after
   that; a different case, notice or refusal under a known key, and a refusal of an
   application that became a case, is a 409 ``conflict``.
4. Paged lists take ``?yb=<cursor>&ts=<1-500>`` and answer the records with ``<xyyb>``
   (the next cursor) and ``<sfyhx>`` (whether the page was full).
"""

from __future__ import annotations

from typing import Final

from aiohttp import web

from adapters.jiangsu import dialect
from adapters.jiangsu.dialect import JIANGSU
from adapters.jiangsu.strict_xml import Node, XmlRecord, read_document, to_xml
from adapters.simulation.platform import (
    Front,
    PlatformRefusal,
    TokenGate,
    parse_cursor,
    parse_limit,
    platform_of,
)

BASE: Final = "/jszwfw/kstb"
"""跨省通办: applications, the event feed, deliveries and matters."""
CERTIFICATES: Final = "/jszwfw/dzzz/zz"
"""电子证照: one certificate by its identifier."""
STATUS_CHANGES: Final = "/jszwfw/dzzz/ztbg"
"""证照状态变更: the revoked and suspended certificates."""
TOKEN_HEADER: Final = "X-JSZW-Token"  # noqa: S105  (a header name, not a secret)
REFERENCE_PREFIX: Final = "JSZW"
"""Application numbers read ``JSZW<yyyymmdd><6 digits>`` (江苏政务)."""
XML_TYPES: Final = ("application/xml", "text/xml")


def _routes() -> list[web.RouteDef]:
    return [
        web.post(f"{BASE}/sq", submit_application),
        web.get(f"{BASE}/sq", list_applications),
        web.get(f"{BASE}/sq/{{sqbh}}", show_application),
        web.post(f"{BASE}/sq/{{sqbh}}/qr", acknowledge),
        web.post(f"{BASE}/sq/{{sqbh}}/th", reject_application),
        web.get(f"{BASE}/bjdt", list_events),
        web.post(f"{BASE}/ajjs", deliver_case),
        web.post(f"{BASE}/ajtz", deliver_notice),
        web.get(f"{BASE}/sxlb", list_matters),
        web.get(f"{CERTIFICATES}/{{zzbs}}", show_certificate),
        web.get(STATUS_CHANGES, list_status_changes),
    ]


def _is_citizens(request: web.Request) -> bool:
    """Entering an application and following it are the citizen's, without a token."""
    citizen_submit = request.method == "POST" and request.path == f"{BASE}/sq"
    citizen_follow = (
        request.method == "GET"
        and request.path.startswith(f"{BASE}/sq/")
        and "/" not in request.path.removeprefix(f"{BASE}/sq/")
    )
    return citizen_submit or citizen_follow


# --- the citizen's side ---------------------------------------------------------------------


async def submit_application(request: web.Request) -> web.Response:
    fields = await _read_body(request, "sq")
    body = JIANGSU.read_application_form(fields)
    fields.finish()
    stored = platform_of(request).submit_application(body)
    return _xml(dialect.application_receipt(stored.reference, stored.submitted_at), status=201)


async def show_application(request: web.Request) -> web.Response:
    progress = platform_of(request).application_progress(request.match_info["sqbh"])
    stored = progress.application
    children: list[Node] = [
        ("sqbh", stored.reference),
        ("sqsj", dialect.to_local(stored.submitted_at)),
    ]
    if stored.case_id is not None:
        children.append(("ajbh", stored.case_id))
    children.append(("blzt", dialect.APPLICATION_STATUS_CODES.code_of(progress.status)))
    if progress.result is not None:
        children.append(dialect.result_to_dialect(progress.result))
    if progress.refusal is not None:
        held = progress.refusal
        children.append(dialect.refusal_record(held.refusal, held.refused_at))
    children.append(("tzlb", [dialect.notice_to_dialect(n.notice) for n in progress.notices]))
    return _xml(("sqjd", children))


# --- the node's side ------------------------------------------------------------------------


async def list_applications(request: web.Request) -> web.Response:
    cursor, limit = _paging(request)
    records = platform_of(request).applications_since(cursor, limit)
    return _page(
        "sqlb",
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
    fields = await _read_body(request, "qr")
    case_id = fields.text("ajbh", max_length=128)
    fields.finish()
    stored = platform_of(request).acknowledge(request.match_info["sqbh"], case_id)
    assert stored.acknowledged_at is not None
    assert stored.case_id is not None
    return _xml(dialect.acknowledgement(stored.reference, stored.case_id, stored.acknowledged_at))


async def reject_application(request: web.Request) -> web.Response:
    refusal = JIANGSU.read_refusal(await _read_body(request, "th"))
    reference = request.match_info["sqbh"]
    held, created = platform_of(request).refuse_application(reference, refusal)
    receipt = dialect.refusal_receipt(
        reference, held.refusal.code, held.refused_at, duplicate=not created
    )
    return _xml(receipt, status=201 if created else 200)


async def list_events(request: web.Request) -> web.Response:
    cursor, limit = _paging(request)
    events = platform_of(request).events_since(cursor, limit)
    return _page(
        "dtlb",
        [dialect.event_record(e.event_id, e.case_id, e.body, e.created) for e in events],
        events[-1].position if events else cursor,
        len(events) == limit,
    )


async def deliver_case(request: web.Request) -> web.Response:
    case = JIANGSU.read_case(await _read_body(request, "aj"))
    created = platform_of(request).deliver_case(case)
    receipt = dialect.delivery_receipt(case.case_id, duplicate=not created)
    return _xml(receipt, status=201 if created else 200)


async def deliver_notice(request: web.Request) -> web.Response:
    notice = JIANGSU.read_notice(await _read_body(request, "tz"))
    created = platform_of(request).deliver_notice(notice)
    receipt = dialect.notice_receipt(notice.case_id, notice.sequence, duplicate=not created)
    return _xml(receipt, status=201 if created else 200)


async def list_matters(request: web.Request) -> web.Response:
    matters = platform_of(request).matters()
    return _xml(("sxlb", [dialect.matter_to_dialect(matter) for matter in matters]))


async def show_certificate(request: web.Request) -> web.Response:
    certificate = platform_of(request).certificate(request.match_info["zzbs"])
    if certificate is None:
        raise PlatformRefusal(
            "not_found", "the library holds no certificate with this id", field="zzbs", status=404
        )
    return _xml(dialect.certificate_to_dialect(certificate))


async def list_status_changes(request: web.Request) -> web.Response:
    revocations = platform_of(request).revocations()
    return _xml(("ztbglb", [dialect.revocation_record(r) for r in revocations]))


# --- plumbing -------------------------------------------------------------------------------


async def _read_body(request: web.Request, root: str) -> XmlRecord:
    charset = (request.charset or "utf-8").lower()
    if request.content_type not in XML_TYPES or charset not in ("utf-8", "utf8"):
        raise PlatformRefusal(
            "unsupported_media_type",
            "the body must be sent as application/xml; charset=utf-8",
            field="Content-Type",
            status=415,
        )
    return read_document(await request.read(), root, what="request body")


def _paging(request: web.Request) -> tuple[int, int]:
    return parse_cursor(request.query.get("yb")), parse_limit(request.query.get("ts"), field="ts")


def _page(root: str, records: list[Node], position: int, more: bool) -> web.Response:
    return _xml(
        (root, [("xyyb", str(position)), ("sfyhx", dialect.YES_NO.code_of(more)), *records])
    )


def _xml(root: Node, *, status: int = 200) -> web.Response:
    return web.Response(
        body=to_xml(root), status=status, content_type="application/xml", charset="utf-8"
    )


def _error(status: int, code: str, detail: str, field: str) -> web.Response:
    return _xml(dialect.error_body(code, detail, field=field), status=status)


FRONT: Final = Front(
    province=dialect.PROVINCE,
    reference_prefix=REFERENCE_PREFIX,
    routes=_routes,
    error_reply=_error,
    dialect_field=dialect.dialect_field,
    gate=TokenGate(TOKEN_HEADER, credential="access_token", is_open=_is_citizens),
)
build_platform: Final = FRONT.build_platform
"""The simulated Jiangsu platform as an ``aiohttp`` application (its store opened);
``access_token`` in ``credentials`` makes the node's endpoints require it (rule 2)."""
