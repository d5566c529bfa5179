"""The province-neutral simulated platform: what a dialect's HTTP handlers call.

A dialect (``adapters/<province>/platform.py``) decodes a request in its own dialect into the
engine's neutral values, calls one ``SimulatedPlatform`` method, and encodes the answer
back; a ``PlatformRefusal`` it renders in its own error format. The engine keeps the data,
the rules and the simulated people; the dialect keeps only the translation.

What a dialect author uses:

- ``SimulatedPlatform.open(province, store_path, seed=..., officer_delay=..., clock=...,
  reference_prefix=...)``: open (and on first use seed) the platform's SQLite file.
- ``platform.app(routes, middlewares=...)``: the ``aiohttp`` application, with the dialect's
  routes, ``GET /sim/fixtures`` and the simulated people as a background task. Handlers find
  the platform with ``platform_of(request)``.
- Applications (this province accepts): ``submit_application`` (a tester enters one; checked
  as the node's ``POST /v1/cases`` would check it, unless the tester asks for an unchecked
  one), ``applications_since``, ``acknowledge`` or ``refuse_application`` (the node's answer:
  the case it became, or the federation's refusal), ``application_progress``.
- Inbound (this province handles): ``deliver_case``, ``deliver_notice`` (both idempotent).
- The event feed: ``events_since``.
- Library and catalog: ``certificate``, ``revocations``, ``matters``; ``fixtures`` for
  testers.
- The HTTP front: a dialect describes its own as a ``Front`` (routes, error reply, field
  names, ``Gate``) whose ``build_platform`` opens the platform and answers every refusal in
  the dialect (``refusals``); ``TokenGate`` is the gate of a platform that wants a token.
  Handlers parse paging with ``parse_cursor`` and ``parse_limit``, a JSON body with
  ``read_json_body``, and find the platform with ``platform_of``.

Rules kept:

1. A refusal raises ``PlatformRefusal`` with a stable ``code``, the ``field`` at fault (in the
   engine's neutral names; the dialect maps them) and the HTTP status to answer, and
   changes nothing in the store.
2. Cursors are positions (integers, 0 = from the beginning); a page holds at most
   ``MAX_PAGE`` records; both are read from ASCII digits only (``node.text.ascii_integer``),
   anything else is the dialect's 400; the next cursor is the last position returned, or
   the same cursor when nothing new arrived.
3. Refusal sentences name fields, never values (names and ID numbers are personal data).
4. Every refusal is answered in the dialect: a ``DialectError`` (the request is not the
   dialect) with 400, a ``PlatformRefusal`` with its status and its field in the dialect's
   names, aiohttp's own 4xx (unknown path, method, a body too large) by a stable code, and
   anything else with 500 ``internal``, logged without the request's body.
5. A platform built with a token refuses a node endpoint without it (401
   ``unauthorized``); the citizen's endpoints (the dialect says which) and ``/sim/…`` are
   open.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from aiohttp import web
from aiohttp.typedefs import Middleware

from adapters.simulation.officer import Clock, SimulatedPeople
from adapters.simulation.seed import make_seed
from adapters.simulation.store import (
    FeedEvent,
    PlatformStore,
    StoreConflict,
    StoredApplication,
    StoredNotice,
    StoredRefusal,
)
from adapters.strict_json import decode_json_object
from node.cases.catalog import PROVINCES, Matter, load_catalog, matter_to_json
from node.cases.submission import CaseInputError, parse_new_case
from node.certificates.model import CHINA_STANDARD_TIME
from node.platform.adapter import ApplicationRefusal, CaseNotice, DialectError, InboundCase
from node.text import ascii_integer

log = logging.getLogger(__name__)

MAX_PAGE: Final = 500
DEFAULT_PAGE: Final = 100


class PlatformRefusal(Exception):
    """A request the simulated platform refuses; nothing was stored (rule 1)."""

    def __init__(self, code: str, detail: str, *, field: str = "", status: int = 400) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail
        self.field = field
        self.status = status


@dataclass(frozen=True)
class ApplicationProgress:
    """An application as its applicant sees it: the case it became and what happened since."""

    application: StoredApplication
    status: str
    """The latest status the node reported, ``submitted`` before any notice, or ``refused``
    when the federation refused the application (then ``refusal`` says why)."""
    notices: tuple[StoredNotice, ...]
    refusal: StoredRefusal | None = None

    @property
    def result(self) -> Mapping[str, Any] | None:
        """What the applicant was given: the result of the latest notice that carried one."""
        results = [n.notice.result for n in self.notices if n.notice.result is not None]
        return results[-1] if results else None


class SimulatedPlatform:
    """One province's simulated platform (rules in the module docstring)."""

    def __init__(
        self,
        province: str,
        store: PlatformStore,
        *,
        seed: int,
        officer_delay: float,
        clock: Clock = time.time,
        reference_prefix: str,
    ) -> None:
        self.province = province
        self.store = store
        self.seed = seed
        self.clock = clock
        self.reference_prefix = reference_prefix
        self.people = SimulatedPeople(
            store, province=province, seed=seed, delay=officer_delay, clock=clock
        )
        self._own = load_catalog(province)
        self._federated = {m.code: m for p in PROVINCES for m in load_catalog(p).matters}

    @classmethod
    def open(
        cls,
        province: str,
        store_path: str | Path,
        *,
        seed: int,
        officer_delay: float,
        clock: Clock = time.time,
        reference_prefix: str,
    ) -> SimulatedPlatform:
        """Open the platform's store, seeding it on first use; refuse another seed's store."""
        if province not in PROVINCES:
            raise ValueError(f"unknown province {province!r}; one of {', '.join(PROVINCES)}")
        store = PlatformStore.open(store_path)
        seeded = store.seeded_with()
        if seeded is None:
            store.load_seed(make_seed(province, seed))
        elif seeded != (province, seed):
            store.close()
            raise ValueError(
                f"{store_path} holds the {seeded[0]} platform seeded with {seeded[1]}, "
                f"not {province} with {seed}"
            )
        return cls(
            province,
            store,
            seed=seed,
            officer_delay=officer_delay,
            clock=clock,
            reference_prefix=reference_prefix,
        )

    # -- the aiohttp application -------------------------------------------------------------

    def app(
        self, routes: Iterable[web.AbstractRouteDef], *, middlewares: Sequence[Middleware] = ()
    ) -> web.Application:
        """The platform's HTTP application: the dialect's routes plus ``GET /sim/fixtures``."""
        app = web.Application(middlewares=list(middlewares))
        app[SIMULATION] = self
        app.router.add_get("/sim/fixtures", _fixtures)
        app.add_routes(routes)
        app.cleanup_ctx.append(self._background)
        return app

    async def _background(self, app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(self.people.run(), name=f"{self.province}-simulated-people")
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self.store.close()

    # -- applications (this province accepts) ------------------------------------------------

    def submit_application(
        self, body: Mapping[str, Any], *, checked: bool = True
    ) -> StoredApplication:
        """Take an application (a ``POST /v1/cases`` body) entered at this platform.

        ``checked=False`` (testers only) stores it as given, as a platform whose own checks
        are laxer than the federation's would: the node then refuses it and says so."""
        if checked:
            try:
                case = parse_new_case(body, find_matter=self._federated.get, me=self.province)
            except CaseInputError as error:
                raise PlatformRefusal(error.code, error.detail, field=error.field) from None
            body = case.to_json()
        stored = self.store.add_application(body, self.clock(), self._reference)
        log.info("application entered", extra={"reference": stored.reference})
        return stored

    def _reference(self, position: int) -> str:
        day = datetime.fromtimestamp(self.clock(), CHINA_STANDARD_TIME).strftime("%Y%m%d")
        return f"{self.reference_prefix}{day}{position:06d}"

    def applications_since(self, cursor: int, limit: int = DEFAULT_PAGE) -> list[StoredApplication]:
        return self.store.applications_since(cursor, _page_size(limit))

    def acknowledge(self, reference: str, case_id: str) -> StoredApplication:
        """Record which federation case an application became (idempotent)."""
        try:
            stored = self.store.acknowledge(reference, case_id, self.clock())
        except StoreConflict as error:
            raise PlatformRefusal("conflict", str(error), field="case_id", status=409) from None
        if stored is None:
            raise PlatformRefusal(
                "not_found", "no application has this reference", field="reference", status=404
            )
        self.people.wake()
        return stored

    def refuse_application(
        self, reference: str, refusal: ApplicationRefusal
    ) -> tuple[StoredRefusal, bool]:
        """Record that the federation refused an application; the refusal held and whether
        it is new. The same refusal again changes nothing; another one, or one of an
        application that became a case, is a 409 ``conflict``."""
        try:
            answer = self.store.refuse_application(reference, refusal, self.clock())
        except StoreConflict as error:
            raise PlatformRefusal("conflict", str(error), field="reference", status=409) from None
        if answer is None:
            raise PlatformRefusal(
                "not_found", "no application has this reference", field="reference", status=404
            )
        held, created = answer
        if created:
            log.info(
                "application refused by the federation",
                extra={"reference": reference, "code": refusal.code},
            )
        return held, created

    def application_progress(self, reference: str) -> ApplicationProgress:
        stored = self.store.application(reference)
        if stored is None:
            raise PlatformRefusal(
                "not_found", "no application has this reference", field="reference", status=404
            )
        refusal = self.store.refusal(reference)
        if refusal is not None:
            return ApplicationProgress(stored, "refused", (), refusal)
        notices = tuple(self.store.notices(stored.case_id)) if stored.case_id else ()
        status = notices[-1].notice.status if notices else "submitted"
        return ApplicationProgress(stored, status, notices)

    # -- deliveries from the node (this province handles) ------------------------------------

    def deliver_case(self, case: InboundCase) -> bool:
        """Take a case to handle; False if exactly this case was delivered before."""
        if self._own.get(case.matter_code) is None:
            raise PlatformRefusal(
                "unknown_matter",
                f"{self.province} does not handle this matter code",
                field="matter_code",
            )
        if case.accepting == self.province or case.accepting not in PROVINCES:
            raise PlatformRefusal(
                "invalid_province",
                "the accepting province must be another member of the federation",
                field="accepting",
            )
        try:
            created = self.store.add_inbound_case(case, self.clock())
        except StoreConflict as error:
            raise PlatformRefusal("conflict", str(error), field="case_id", status=409) from None
        if created:
            log.info("case delivered", extra={"case_id": case.case_id})
            self.people.wake()
        return created

    def deliver_notice(self, notice: CaseNotice) -> bool:
        """Take an update notice; False if exactly this one was delivered before."""
        try:
            created = self.store.add_notice(notice, self.clock())
        except StoreConflict as error:
            raise PlatformRefusal("conflict", str(error), field="sequence", status=409) from None
        if created:
            log.info(
                "notice delivered",
                extra={"case_id": notice.case_id, "sequence": notice.sequence},
            )
            self.people.wake()
        return created

    # -- the feed, the library and the catalog -----------------------------------------------

    def events_since(self, cursor: int, limit: int = DEFAULT_PAGE) -> list[FeedEvent]:
        return self.store.events_since(cursor, _page_size(limit))

    def certificate(self, certificate_id: str) -> dict[str, Any] | None:
        return self.store.certificate(certificate_id)

    def revocations(self) -> list[dict[str, Any]]:
        """The library's revoked and suspended certificates (``certificate_id``, ``status``,
        ``since`` in epoch seconds, ``reason``), for the issuer's revocation list."""
        return self.store.revocations()

    def matters(self) -> list[dict[str, Any]]:
        """This province's cross-province matters, in the catalog's JSON form."""
        return [matter_to_json(matter) for matter in self._own.matters]

    def matter(self, code: str) -> Matter | None:
        """A matter of any member's packaged catalog (for dialects that show names)."""
        return self._federated.get(code)

    def fixtures(self) -> dict[str, Any]:
        """The seeded data for testers (DESIGN.md §8)."""
        return {
            "province": self.province,
            "seed": self.seed,
            "persons": self.store.persons(),
            "companies": self.store.companies(),
            "certificates": [
                {
                    "certificate_id": c["certificate_id"],
                    "type": c["type"],
                    "holder_code_type": c["holder_code_type"],
                    "holder_code": c["holder_code"],
                    "holder_name": c["holder_name"],
                    "status": c["status"],
                    "valid_until": c["valid_until"],
                }
                for c in self.store.certificates()
            ],
        }


SIMULATION: Final = web.AppKey("simulation", SimulatedPlatform)


async def _fixtures(request: web.Request) -> web.Response:
    text = json.dumps(request.app[SIMULATION].fixtures(), ensure_ascii=False)
    return web.json_response(text=text)


def platform_of(request: web.Request) -> SimulatedPlatform:
    """The simulated platform a dialect's handler serves."""
    return request.app[SIMULATION]


def parse_cursor(value: str | None) -> int:
    """A cursor as the engine keeps it: absent or empty is 0; anything else a position."""
    if value is None or value == "":
        return 0
    position = ascii_integer(value)
    if position is None:
        raise PlatformRefusal(
            "invalid_cursor",
            "the cursor must be a non-negative integer in ASCII digits",
            field="cursor",
        )
    return position


def _page_size(limit: int) -> int:
    return max(1, min(limit, MAX_PAGE))


def parse_limit(value: str | None, *, field: str) -> int:
    """A page size as the query gives it: absent is ``DEFAULT_PAGE``; else 1 to ``MAX_PAGE``."""
    if value is None:
        return DEFAULT_PAGE
    size = ascii_integer(value, low=1, high=MAX_PAGE)
    if size is None:
        raise PlatformRefusal(
            "invalid_field",
            f"{field} must be a whole number from 1 to {MAX_PAGE} in ASCII digits",
            field=field,
        )
    return size


async def read_json_body(request: web.Request) -> dict[str, Any]:
    """The JSON object a JSON dialect's request carries (``adapters.strict_json``)."""
    if request.content_type != "application/json":
        raise PlatformRefusal(
            "unsupported_media_type",
            "the body must be sent as application/json",
            field="Content-Type",
            status=415,
        )
    return decode_json_object(await request.read(), what="request body")


# --- the HTTP front: refusals and the token -------------------------------------------------

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
ErrorReply = Callable[[int, str, str, str], web.Response]
"""How a dialect answers a refusal: (HTTP status, code, sentence, field) → its reply."""

_HTTP_CODES: Final = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


def refusals(reply: ErrorReply, *, dialect_field: Callable[[str], str]) -> Middleware:
    """Every refusal answered in the dialect, ``dialect_field`` naming the engine's fields in
    the dialect's words (rule 4)."""

    @web.middleware
    async def answer(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except DialectError as error:
            return reply(400, error.code, error.detail, error.field)
        except PlatformRefusal as error:
            return reply(error.status, error.code, error.detail, dialect_field(error.field))
        except web.HTTPException as error:
            if error.status < 400:
                raise
            code = _HTTP_CODES.get(error.status, f"http_{error.status}")
            return reply(error.status, code, f"{request.method} {request.path}: {error.reason}", "")
        except Exception:
            log.exception(
                "simulated platform failed",
                extra={"province": platform_of(request).province, "path": request.path},
            )
            return reply(500, "internal", "the platform failed; try again later", "")

    return answer


Gate = Callable[[Mapping[str, str], Clock, ErrorReply], Middleware]
"""What a platform demands of the node's requests (a token, a signature), made from the
credentials the node's adapter gets and the platform's clock; it refuses with the reply."""


@dataclass(frozen=True)
class TokenGate:
    """A node endpoint needs the credential ``credential`` in the header ``header`` when the
    platform was given one; ``/sim/…`` and what ``is_open`` names (the citizen's endpoints)
    do not (rule 5)."""

    header: str
    credential: str
    is_open: Callable[[web.Request], bool]

    def __call__(
        self, credentials: Mapping[str, str], clock: Clock, reply: ErrorReply
    ) -> Middleware:
        token = credentials.get(self.credential) or None
        header, is_open = self.header, self.is_open

        @web.middleware
        async def check(request: web.Request, handler: Handler) -> web.StreamResponse:
            if token and not (request.path.startswith("/sim/") or is_open(request)):
                given = request.headers.get(header, "")
                if not hmac.compare_digest(given.encode(), token.encode()):
                    return reply(401, "unauthorized", f"a valid {header} header is required", "")
            return await handler(request)

        return check


@dataclass(frozen=True)
class Front:
    """What a dialect adds to the engine (``adapters/<province>/platform.py``): its routes,
    its error reply, its names for the engine's fields and what it demands of the node."""

    province: str
    reference_prefix: str
    """Application numbers read ``<prefix><yyyymmdd><6 digits>``."""
    routes: Callable[[], Iterable[web.AbstractRouteDef]]
    error_reply: ErrorReply
    dialect_field: Callable[[str], str]
    gate: Gate

    def build_platform(
        self,
        store_path: str | Path,
        *,
        seed: int,
        officer_delay: float,
        clock: Clock = time.time,
        credentials: Mapping[str, str] | None = None,
    ) -> web.Application:
        """The simulated platform as an ``aiohttp`` application, its store opened
        (``adapters.registry``'s ``build_platform``); ``credentials`` make the gate."""
        gate = self.gate(credentials or {}, clock, self.error_reply)
        platform = SimulatedPlatform.open(
            self.province,
            store_path,
            seed=seed,
            officer_delay=officer_delay,
            clock=clock,
            reference_prefix=self.reference_prefix,
        )
        errors = refusals(self.error_reply, dialect_field=self.dialect_field)
        return platform.app(self.routes(), middlewares=[errors, gate])
