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
3. Deliveries answer 201 the first time and 200 with ``<sfcf>Y</sfcf>`` after that; a
   different case or notice under a known key is a 409 ``conflict``.
4. Paged lists take ``?yb=<cursor>&ts=<1-500>`` and answer the records with ``<xyyb>``
   (the next cursor) and ``<sfyhx>`` (whether the page was full).
"""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from adapters.jiangsu import dialect
from adapters.jiangsu.strict_xml import Node, XmlRecord, read_document, to_xml
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
    """The simulated Jiangsu platform as an ``aiohttp`` application (its store opened).

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
        web.post(f"{BASE}/sq", submit_application),
        web.get(f"{BASE}/sq", list_applications),
        web.get(f"{BASE}/sq/{{sqbh}}", show_application),
        web.post(f"{BASE}/sq/{{sqbh}}/qr", acknowledge),
        web.get(f"{BASE}/bjdt", list_events),
        web.post(f"{BASE}/ajjs", deliver_case),
        web.post(f"{BASE}/ajtz", deliver_notice),
        web.get(f"{BASE}/sxlb", list_matters),
        web.get(f"{CERTIFICATES}/{{zzbs}}", show_certificate),
        web.get(STATUS_CHANGES, list_status_changes),
    ]


# --- the citizen's side ---------------------------------------------------------------------


async def submit_application(request: web.Request) -> web.Response:
    fields = await _read_body(request, "sq")
    body = dialect.read_application_form(fields)
    fields.finish()
    stored = _platform(request).submit_application(body)
    receipt: Node = (
        "sqhz",
        [
            ("sqbh", stored.reference),
            ("sqsj", dialect.to_local(stored.submitted_at)),
            ("blzt", dialect.status_code("submitted")),
        ],
    )
    return _xml(receipt, status=201)


async def show_application(request: web.Request) -> web.Response:
    progress = _platform(request).application_progress(request.match_info["sqbh"])
    stored = progress.application
    children: list[Node] = [
        ("sqbh", stored.reference),
        ("sqsj", dialect.to_local(stored.submitted_at)),
    ]
    if stored.case_id is not None:
        children.append(("ajbh", stored.case_id))
    children.append(("blzt", dialect.status_code(progress.status)))
    concluded = [n.notice for n in progress.notices if n.notice.result is not None]
    if concluded:
        result = concluded[-1].result
        assert result is not None
        children.append(dialect.result_to_dialect(result))
    children.append(("tzlb", [dialect.notice_to_dialect(n.notice) for n in progress.notices]))
    return _xml(("sqjd", children))


# --- the node's side ------------------------------------------------------------------------


async def list_applications(request: web.Request) -> web.Response:
    cursor, limit = _paging(request)
    records = _platform(request).applications_since(cursor, limit)
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
    stored = _platform(request).acknowledge(request.match_info["sqbh"], case_id)
    assert stored.acknowledged_at is not None
    assert stored.case_id is not None
    receipt: Node = (
        "qrhz",
        [
            ("sqbh", stored.reference),
            ("ajbh", stored.case_id),
            ("qrsj", dialect.to_local(stored.acknowledged_at)),
        ],
    )
    return _xml(receipt)


async def list_events(request: web.Request) -> web.Response:
    cursor, limit = _paging(request)
    events = _platform(request).events_since(cursor, limit)
    return _page(
        "dtlb",
        [dialect.event_record(e.event_id, e.case_id, e.body, e.created) for e in events],
        events[-1].position if events else cursor,
        len(events) == limit,
    )


async def deliver_case(request: web.Request) -> web.Response:
    case = dialect.read_case(await _read_body(request, "aj"))
    created = _platform(request).deliver_case(case)
    receipt = dialect.delivery_receipt(case.case_id, duplicate=not created)
    return _xml(receipt, status=201 if created else 200)


async def deliver_notice(request: web.Request) -> web.Response:
    notice = dialect.read_notice(await _read_body(request, "tz"))
    created = _platform(request).deliver_notice(notice)
    receipt = dialect.notice_receipt(notice.case_id, notice.sequence, duplicate=not created)
    return _xml(receipt, status=201 if created else 200)


async def list_matters(request: web.Request) -> web.Response:
    matters = _platform(request).matters()
    return _xml(("sxlb", [dialect.matter_to_dialect(matter) for matter in matters]))


async def show_certificate(request: web.Request) -> web.Response:
    certificate = _platform(request).certificate(request.match_info["zzbs"])
    if certificate is None:
        raise PlatformRefusal(
            "not_found", "the library holds no certificate with this id", field="zzbs", status=404
        )
    return _xml(dialect.certificate_to_dialect(certificate))


async def list_status_changes(request: web.Request) -> web.Response:
    revocations = _platform(request).revocations()
    return _xml(("ztbglb", [dialect.revocation_record(r) for r in revocations]))


# --- plumbing -------------------------------------------------------------------------------


def _platform(request: web.Request) -> SimulatedPlatform:
    return request.app[SIMULATION]


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
    cursor = parse_cursor(request.query.get("yb"))
    text = request.query.get("ts", str(DEFAULT_PAGE))
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_PAGE:
        raise PlatformRefusal(
            "invalid_field", f"ts must be a whole number from 1 to {MAX_PAGE}", field="ts"
        )
    return cursor, int(text)


def _page(root: str, records: list[Node], position: int, more: bool) -> web.Response:
    return _xml((root, [("xyyb", str(position)), ("sfyhx", dialect.yes_no(more)), *records]))


def _xml(root: Node, *, status: int = 200) -> web.Response:
    return web.Response(
        body=to_xml(root), status=status, content_type="application/xml", charset="utf-8"
    )


def _error(status: int, code: str, detail: str, field: str = "") -> web.Response:
    return _xml(dialect.error_body(code, detail, field=field), status=status)


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
        log.exception("simulated Jiangsu platform failed", extra={"path": request.path})
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
    citizen_submit = request.method == "POST" and request.path == f"{BASE}/sq"
    citizen_follow = (
        request.method == "GET"
        and request.path.startswith(f"{BASE}/sq/")
        and "/" not in request.path.removeprefix(f"{BASE}/sq/")
    )
    return citizen_submit or citizen_follow
