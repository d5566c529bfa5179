"""What every adapter does, whatever its dialect: each case runs once per province
(``tests/dialects.py`` holds what differs), against the real simulated platform over
loopback HTTP, against a stub answering in broken or hostile dialect, or sans-I/O.

A hostile platform's reply (nested 200,000 deep, over the size cap, a 5,000-digit number, a
field of megabytes, a field of the wrong kind, not UTF-8, an HTML page, binary, cut short, a
redirect: ``tests/hostile.py``) is a ``DialectError`` naming the platform with a stable code
whose sentence never repeats the reply's values, and never another exception: one that
escaped would end the node's platform polling for good (issue 10).

What only one dialect does stays in ``tests/test_adapter_<province>.py``."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Final

import pytest
from aiohttp import web
from aiohttp.test_utils import BaseTestServer, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.registry import citizen
from adapters.registry import dialect as registered
from node.cases.catalog import load_catalog, matter_to_json
from node.cases.events import parse_event
from node.cases.submission import parse_new_case
from node.certificates.library import PlatformLibrary
from node.certificates.model import TYPES, parse_certificate
from node.identifiers import make_certificate_id, parse_certificate_id
from node.platform.adapter import (
    Application,
    ApplicationRefusal,
    CaseNotice,
    DialectError,
    Malformed,
    Page,
    PlatformEvent,
    PlatformUnavailable,
    ProvinceAdapter,
)
from tests import platforms
from tests.dialects import DIALECTS, SECRET, Dialect, Request, straight_through_cases
from tests.hostile import HTML, HUGE_NUMBER, KINDS, Answer, answering, code_of, good_page
from tests.platforms import (
    DEEP,
    FEDERATED,
    REFUSAL,
    STUB_TIMEOUT,
    T0,
    application_body,
    inbound_cases,
    mistyped,
    nested,
    notices,
)

each = pytest.mark.parametrize("d", DIALECTS, ids=str)
"""Runs a case once per dialect."""


def _serve(d: Dialect, tmp_path: Path) -> Any:
    return d.platform.serve(tmp_path)


def _body(d: Dialect, fixtures: dict[str, Any]) -> dict[str, Any]:
    return application_body(fixtures, handler=d.handler)


def _stub(d: Dialect, handler: platforms.Reply, *, timeout: float = STUB_TIMEOUT) -> Any:
    return platforms.stub(handler, lambda url: d.stub_adapter(url, timeout))


def _answering(body: bytes, content_type: str, status: int = 200) -> platforms.Reply:
    return answering(Answer(body, content_type, status))


@each
def test_registry_finds_the_dialect(d: Dialect) -> None:
    """``adapters.registry`` hands out the province package's two callables."""
    found = registered(d.name)
    package = importlib.import_module(f"adapters.{d.name}.adapter")
    assert (found.build_platform, found.make_adapter) == (
        d.platform.build_platform,
        package.make_adapter,
    )


# --- round trips against the real platform --------------------------------------------------


@each
async def test_application_round_trip(d: Dialect, tmp_path: Path) -> None:
    """An application the citizen enters in the dialect reaches the node as a valid
    POST /v1/cases body, once; the acknowledgement is idempotent, a conflicting one and one of
    an unknown application number are refused naming the field, and the citizen then sees
    the federation case."""
    async with _serve(d, tmp_path) as running:
        at_platform = citizen(d.name)
        body = _body(d, await running.fixtures())
        reference = await at_platform.enter_application(running.session, running.url, body)
        assert await at_platform.case_of(running.session, running.url, reference) is None

        page = await running.adapter.poll_applications(None)
        assert page.items == [Application(reference=reference, body=body)]
        case = parse_new_case(page.items[0].body, find_matter=FEDERATED.get, me=d.name)
        assert case.to_json() == body

        again = await running.adapter.poll_applications(page.cursor)
        assert again.items == [] and again.cursor == page.cursor

        case_id = f"{d.code}-20260302-0123456789abcdef"
        await running.adapter.acknowledge(reference, case_id)
        await running.adapter.acknowledge(reference, case_id)
        with pytest.raises(DialectError) as conflict:
            await running.adapter.acknowledge(reference, f"{d.code}-20260302-ffffffffffffffff")
        assert (conflict.value.code, conflict.value.field) == ("conflict", d.case_field)
        with pytest.raises(DialectError) as missing:
            await running.adapter.acknowledge(d.unknown_reference, case_id)
        assert (missing.value.code, missing.value.field) == ("not_found", d.reference_field)

        acknowledged = await running.adapter.poll_applications(None)
        assert acknowledged.items == page.items
        assert await at_platform.case_of(running.session, running.url, reference) == case_id
        with pytest.raises(ValueError, match="refused"):
            await at_platform.enter_application(
                running.session, running.url, {**body, "handler": d.name}
            )


@each
async def test_refusal_round_trip(d: Dialect, tmp_path: Path) -> None:
    """The federation's refusal of an application reaches the platform with its code, the
    field at fault in the dialect's words and the reason; a repeat changes nothing, while
    another refusal, an acknowledgement after it, a refusal of an application that became a
    case and one of an unknown application number are refused."""
    async with _serve(d, tmp_path) as running:
        fixtures = await running.fixtures()
        platform = running.platform
        stored = platform.submit_application(mistyped(_body(d, fixtures)), checked=False)
        [item] = (await running.adapter.poll_applications(None)).items
        assert isinstance(item, Application) and item.reference == stored.reference

        await running.adapter.reject_application(stored.reference, REFUSAL)
        await running.adapter.reject_application(stored.reference, REFUSAL)
        progress = platform.application_progress(stored.reference)
        assert progress.status == "refused" and progress.refusal is not None
        assert progress.refusal.refusal == ApplicationRefusal(
            "invalid_id_number", d.applicant_code_field, REFUSAL.reason, in_dialect=True
        )
        assert platform.store.counts()["refusals"] == 1
        assert stored.reference not in platform.store.open_work()[1]

        with pytest.raises(DialectError) as other:
            await running.adapter.reject_application(
                stored.reference, ApplicationRefusal("unknown_matter", "matter_code", "无此事项")
            )
        assert (other.value.code, other.value.field) == ("conflict", d.reference_field)
        case_id = f"{d.code}-20260302-0123456789abcdef"
        with pytest.raises(DialectError) as acknowledged:
            await running.adapter.acknowledge(stored.reference, case_id)
        assert acknowledged.value.code == "conflict"
        with pytest.raises(DialectError) as missing:
            await running.adapter.reject_application(d.unknown_reference, REFUSAL)
        assert (missing.value.code, missing.value.field) == ("not_found", d.reference_field)

        became = platform.submit_application(_body(d, fixtures)).reference
        await running.adapter.acknowledge(became, case_id)
        with pytest.raises(DialectError) as answered:
            await running.adapter.reject_application(became, REFUSAL)
        assert answered.value.code == "conflict"
        assert platform.store.counts()["refusals"] == 1


@each
async def test_empty_feeds_keep_the_cursor_unset(d: Dialect, tmp_path: Path) -> None:
    """Polling a platform with nothing in a feed yet leaves the node's cursor at None."""
    async with _serve(d, tmp_path) as running:
        applications = await running.adapter.poll_applications(None)
        events = await running.adapter.poll_events(None)
    assert (applications.items, applications.cursor) == ([], None)
    assert (events.items, events.cursor) == ([], None)


@each
async def test_officer_events_reach_the_node(d: Dialect, tmp_path: Path) -> None:
    """The officer's actions on a delivered case come through the adapter as event bodies the
    node accepts, in order, each once."""
    [case_id] = straight_through_cases(d, 1)
    async with _serve(d, tmp_path) as running:
        await running.adapter.deliver_case(d.inbound(case_id))
        for _ in range(2):  # accept, then complete, each an officer delay later
            running.clock.now += 7200
            running.platform.people.work()

        page = await running.adapter.poll_events(None)
        assert [type(item) for item in page.items] == [PlatformEvent, PlatformEvent]
        events = [item for item in page.items if isinstance(item, PlatformEvent)]
        assert [e.body["action"] for e in events] == ["accept", "complete"]
        assert events[1].body["result"]["kind"] == "document"
        assert all(e.case_id == case_id for e in events)
        for event in events:
            parse_event(event.body)
        assert len({e.event_id for e in events}) == 2
        after = await running.adapter.poll_events(page.cursor)
        assert after.items == [] and after.cursor == page.cursor


@each
async def test_deliveries_are_idempotent(d: Dialect, tmp_path: Path) -> None:
    """Delivering a case or a notice twice stores it once; a different case under a known id
    is refused as a conflict naming the case id."""
    async with _serve(d, tmp_path) as running:
        case = d.inbound(f"{d.accepting_code}-20260302-00000000000000c1")
        await running.adapter.deliver_case(case)
        await running.adapter.deliver_case(case)
        stored = running.platform.store.inbound_case(case.case_id)
        assert stored is not None and stored.case == case
        with pytest.raises(DialectError) as conflict:
            await running.adapter.deliver_case(d.inbound(case.case_id, matter=1))
        assert (conflict.value.code, conflict.value.field) == ("conflict", d.case_field)

        notice = CaseNotice(
            case.case_id, 2, "accept", "handling", "accepted", T0, due_at=T0 + 3 * 86400
        )
        await running.adapter.deliver_update(notice)
        await running.adapter.deliver_update(notice)
        assert [n.notice for n in running.platform.store.notices(case.case_id)] == [notice]
        counts = running.platform.store.counts()
        assert counts["inbound_cases"] == 1 and counts["notices"] == 1


@each
async def test_every_certificate_is_fetched_and_parses(d: Dialect, tmp_path: Path) -> None:
    """Every certificate of the library comes back through the dialect exactly as the library
    holds it, and a well-formed id the library lacks is None."""
    async with _serve(d, tmp_path) as running:
        library = running.platform.store.certificates()
        for held in library:
            fetched = await running.adapter.fetch_certificate(held["certificate_id"])
            assert fetched == held
            parse_certificate(dict(fetched))
        assert {c["status"] for c in library} == {"valid", "suspended", "revoked", "expired"}
        assert {c["type"] for c in library} == set(TYPES)
        first = parse_certificate_id(library[0]["certificate_id"])
        unknown = make_certificate_id(first.type_code, first.issuer_code, "ZZZ999")
        assert await running.adapter.fetch_certificate(str(unknown)) is None


@each
async def test_a_404_for_another_route_is_not_an_empty_library(d: Dialect, tmp_path: Path) -> None:
    """An adapter whose base URL has a path the platform does not serve gets a DialectError
    for a certificate, not None: only the lookup's own not_found (naming the certificate id
    field) means "not in the library"."""
    async with _serve(d, tmp_path) as running:
        held = running.platform.store.certificates()[0]["certificate_id"]
        adapter = d.platform.adapter(running.url + "/gateway", running.clock)
        try:
            with pytest.raises(DialectError) as refused:
                await adapter.fetch_certificate(held)
        finally:
            await adapter.close()
    assert (refused.value.code, refused.value.field) == ("not_found", "")


@each
@pytest.mark.parametrize("about", ["other", ""], ids=["another field", "no field"])
async def test_a_404_about_something_else_is_a_dialect_error(d: Dialect, about: str) -> None:
    """A certificate lookup answered 404 ``not_found`` in dialect, but about another field or
    none, is the platform's fault (DialectError), not a false "not in the library"; the
    same refusal naming the dialect's certificate id field is None."""
    for field, expected in ((about, "error"), (d.certificate_field, "none")):
        written = d.refusal("not_found", "no such thing", field)
        reply = _answering(written, d.content_type, status=404)
        async with _stub(d, reply) as adapter:
            if expected == "none":
                assert await adapter.fetch_certificate("x") is None
                continue
            with pytest.raises(DialectError) as refused:
                await adapter.fetch_certificate("x")
        assert (refused.value.code, refused.value.field, refused.value.platform) == (
            "not_found",
            about,
            d.name,
        )


@each
async def test_revocations_feed_the_issuers_list(d: Dialect, tmp_path: Path) -> None:
    """The library's revoked and suspended certificates reach the node's certificate library
    as revocation entries, with status, whole-second time and reason intact."""
    async with _serve(d, tmp_path) as running:
        entries = await PlatformLibrary(running.adapter).revocations()
        library = running.platform.store.certificates()
        held = running.platform.store.revocations()
    listed = {
        c["certificate_id"]: c["status"] for c in library if c["status"] in ("revoked", "suspended")
    }
    assert listed and {str(e.certificate_id): e.status.value for e in entries} == listed
    assert [e.to_json()["reason"] for e in entries] == [r["reason"] for r in held]
    assert [e.since for e in entries] == [r["since"] for r in held]


@each
async def test_matters(d: Dialect, tmp_path: Path) -> None:
    """The platform's matter list comes back in the catalog's JSON form."""
    async with _serve(d, tmp_path) as running:
        matters = await running.adapter.list_matters()
    assert list(matters) == [matter_to_json(m) for m in load_catalog(d.name).matters]


# --- bad input to the platform: a 400 in dialect, and nothing stored -------------------------


@each
@pytest.mark.parametrize(
    "text", list(platforms.NOT_NUMBERS.values()), ids=list(platforms.NOT_NUMBERS)
)
@pytest.mark.parametrize("feed", [0, 1], ids=["applications", "events"])
async def test_platform_paging_is_ascii_digits_only(
    d: Dialect, tmp_path: Path, feed: int, text: str
) -> None:
    """A cursor or page size in other digits than ASCII, or signed, is a 400 in dialect naming
    the parameter, never a 500, and changes nothing."""
    path, name, code = d.paging[feed]
    async with _serve(d, tmp_path) as running:
        before = running.platform.store.counts()
        status, reply = await running.get(path, **{name: text})
        assert (status, *d.error_of(status, reply)) == (400, code, name)
        assert running.platform.store.counts() == before


@pytest.mark.parametrize(
    ("d", "path", "data", "code", "field"),
    [
        pytest.param(d, path, data, code, field, id=f"{d}-{name}")
        for d in DIALECTS
        for name, path, data, code, field in d.bad_requests
    ],
)
async def test_platform_refuses_bad_requests(
    d: Dialect, tmp_path: Path, path: str, data: Request, code: str, field: str
) -> None:
    """A request (with the token or signature it needs) that is not good dialect gets 400 and
    the dialect's refusal naming the field, and changes nothing in the platform's store."""
    async with _serve(d, tmp_path) as running:
        if callable(data):
            data = data(_body(d, await running.fixtures()))
        before = running.platform.store.counts()
        status, reply = await running.post(path, data)
        assert (status, *d.error_of(status, reply)) == (400, code, field)
        assert running.platform.store.counts() == before


@each
async def test_platform_refuses_wrong_media_type_and_missing_credentials(
    d: Dialect, tmp_path: Path
) -> None:
    """A delivery not sent as the dialect's media type gets 415; one without the token (or
    signature) 401, and the node's adapter without its credentials a DialectError naming
    the refusal; none of them stores anything."""
    async with _serve(d, tmp_path) as running:
        before = running.platform.store.counts()
        data = d.case_request(d.inbound(f"{d.accepting_code}-20260302-00000000000000d3"))
        for content_type in d.wrong_media_types:
            status, reply = await running.post(d.deliver_path, data, content_type=content_type)
            assert (status, d.error_of(status, reply)[0]) == (415, "unsupported_media_type")
        status, reply = await running.post(d.deliver_path, data, token=False)
        assert (status, d.error_of(status, reply)[0]) == (401, d.unsigned_code)
        unauthorised = d.unauthorised(running.url, running.clock)
        try:
            with pytest.raises(DialectError) as refused:
                await unauthorised.poll_events(None)
        finally:
            await unauthorised.close()
        assert refused.value.code == d.unauthorised_code
        assert running.platform.store.counts() == before
        status, _ = await running.post(d.deliver_path, data)
        assert status == 201


# --- bad replies to the adapter, from a stub that speaks broken dialect ---------------------


@each
async def test_untranslatable_records_become_malformed(d: Dialect) -> None:
    """A feed record with an unknown code, a bad time or a missing field becomes a Malformed in
    its place, naming the record and the field; the good records around it come through."""
    spoilt = d.malformations()
    async with _stub(d, _answering(spoilt.page, d.content_type)) as adapter:
        page = await adapter.poll_events(None)
    assert page.cursor == spoilt.cursor
    assert [type(item).__name__ for item in page.items] == list(spoilt.kinds)
    malformed = [item for item in page.items if isinstance(item, Malformed)]
    assert [(m.reference, m.code, m.field) for m in malformed] == list(spoilt.malformed)
    assert all(m.detail for m in malformed)


@pytest.mark.parametrize(
    ("d", "body", "status", "code"),
    [
        pytest.param(d, body, status, code, id=f"{d}-{name}")
        for d in DIALECTS
        for name, body, status, code in d.undecodable
    ],
)
async def test_undecodable_replies_raise_dialect_error(
    d: Dialect, body: bytes, status: int, code: str
) -> None:
    """A reply that is not the dialect at all, or a refusal in it, raises DialectError and
    yields nothing."""
    async with _stub(d, _answering(body, d.content_type, status)) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.poll_applications(None)
    assert refused.value.code == code


@each
async def test_unknown_certificate_status_is_refused(d: Dialect, tmp_path: Path) -> None:
    """A certificate with a status outside the dialect's table is a DialectError, not a
    guess."""
    async with _serve(d, tmp_path) as running:
        held = running.platform.store.certificates()[0]
    reply = _answering(d.unknown_certificate_status(held), d.content_type)
    async with _stub(d, reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.fetch_certificate(held["certificate_id"])
    assert (refused.value.code, refused.value.field) == ("unknown_status", d.status_field)


@each
async def test_revocation_with_a_valid_status_is_refused(d: Dialect) -> None:
    """A revocation list naming a certificate as valid is not the dialect: DialectError."""
    async with _stub(d, _answering(d.valid_revocation, d.content_type)) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.list_revocations()
    assert (refused.value.code, refused.value.field) == (
        "unknown_status",
        d.valid_revocation_field,
    )


@each
@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_unavailable(d: Dialect, status: int) -> None:
    """A 5xx answer means the platform is unavailable: the node keeps the item and retries."""
    written = d.refusal("internal", "down", "")
    async with _stub(d, _answering(written, d.content_type, status)) as adapter:
        with pytest.raises(PlatformUnavailable):
            await adapter.deliver_case(d.inbound(f"{d.accepting_code}-20260302-00000000000000e1"))


@each
async def test_timeout_is_unavailable(d: Dialect) -> None:
    """A platform that does not answer within the timeout is unavailable."""
    never = asyncio.Event()

    async def reply(request: web.Request) -> web.Response:
        await never.wait()
        return web.json_response({})

    async with _stub(d, reply, timeout=0.2) as adapter:
        with pytest.raises(PlatformUnavailable):
            await adapter.list_matters()


@each
async def test_platform_down_is_unavailable(d: Dialect, tmp_path: Path) -> None:
    """When the platform's server has stopped, every call raises PlatformUnavailable."""
    async with _serve(d, tmp_path) as running:
        adapter = d.platform.adapter(running.url, running.clock)
        await adapter.list_matters()
    try:
        with pytest.raises(PlatformUnavailable):
            await adapter.deliver_case(d.inbound(f"{d.accepting_code}-20260302-00000000000000f1"))
        with pytest.raises(PlatformUnavailable):
            await adapter.poll_events(None)
    finally:
        await adapter.close()


# --- the dialect both ways (sans-I/O, property-based) -----------------------------------------


def _records(d: Dialect) -> dict[str, tuple[st.SearchStrategy[Any], Any, Any]]:
    """What each kind of record is drawn from, written with and read back with."""
    t = d.translation
    return {
        "case": (
            inbound_cases(d.instants, d.text, names=d.names),
            t.case_to_dialect,
            t.read_case,
        ),
        "notice": (
            notices(d.instants, d.text, extra_values=d.extra_values),
            t.notice_to_dialect,
            t.read_notice,
        ),
    }


@each
@pytest.mark.parametrize("kind", ["case", "notice"])
@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_records_round_trip(d: Dialect, kind: str, data: st.DataObject) -> None:
    """Every field of an inbound case or an update notice survives the dialect and back."""
    drawn, write, read = _records(d)[kind]
    record = data.draw(drawn)
    assert read(d.wire(kind, write(record))) == record


@each
@settings(max_examples=60, deadline=None)
@given(
    action=st.sampled_from(
        ["accept", "reject", "request_supplement", "supplement", "deny", "withdraw"]
    ),
    data=st.data(),
)
def test_event_round_trips(d: Dialect, action: str, data: st.DataObject) -> None:
    """An event body survives the dialect and back, also with a result or an evaluation."""
    reason = data.draw(st.one_of(st.none(), d.text))
    at = data.draw(d.instants)
    bodies: list[dict[str, Any]] = [
        {"action": action, **({"reason": reason} if reason else {})},
        {"action": "complete", "result": {"kind": "document", "document_sha256": "a" * 64}},
        {"action": "complete", "result": {"kind": "certificate", "certificate_id": "1.2.3"}},
        {"action": "evaluate", "level": 4, "comment": "快"},
        {"action": "evaluate", "level": 1},
        {"action": "evaluate", "level": 2},
    ]
    for body in bodies:
        record = d.wire("event", d.translation.event_record("e", "c", body, at))
        assert d.translation.read_event_record(record) == PlatformEvent("e", "c", body)


# --- a hostile platform ---------------------------------------------------------------------

POLLS: Final[dict[str, Callable[[ProvinceAdapter], Awaitable[Page]]]] = {
    "applications": lambda adapter: adapter.poll_applications(None),
    "events": lambda adapter: adapter.poll_events(None),
}


async def _refusal(
    d: Dialect, answer: Answer, call: Callable[[ProvinceAdapter], Awaitable[object]]
) -> DialectError:
    """What ``call`` of ``d``'s adapter raises against a server that always says ``answer``."""
    async with _stub(d, answering(answer), timeout=10) as adapter:
        with pytest.raises(DialectError) as refused:
            await call(adapter)
    error = refused.value
    assert SECRET not in str(error) and SECRET not in error.field
    return error


@each
@pytest.mark.parametrize("feed", list(POLLS))
async def test_the_unspoilt_page_is_read(d: Dialect, feed: str) -> None:
    """The page every hostile kind below spoils is read as one item, so each refusal is the
    spoiling's doing."""
    reply = _answering(good_page(d, feed).encode(), d.content_type)
    async with _stub(d, reply, timeout=10) as adapter:
        page = await POLLS[feed](adapter)
    assert len(page.items) == 1


@each
@pytest.mark.parametrize("feed", list(POLLS))
@pytest.mark.parametrize("kind", list(KINDS))
async def test_a_hostile_feed_page_is_a_dialect_error(d: Dialect, kind: str, feed: str) -> None:
    """A feed page of every hostile kind is a DialectError naming the platform with the kind's
    stable code, never another exception."""
    error = await _refusal(d, KINDS[kind](d, feed), POLLS[feed])
    assert (error.platform, error.code) == (d.name, code_of(d, kind))


def _notice() -> CaseNotice:
    return CaseNotice("310000-20260302-00000000000000a1", 2, "accept", "handling", "accepted", T0)


CALLS: Final[dict[str, Callable[[ProvinceAdapter], Awaitable[object]]]] = {
    "acknowledge": lambda a: a.acknowledge("R1", "310000-20260302-00000000000000a1"),
    "reject_application": lambda a: a.reject_application("R1", REFUSAL),
    "deliver_case": lambda a: a.deliver_case(
        platforms.inbound_case("anhui", "310000-20260302-00000000000000a1")
    ),
    "deliver_update": lambda a: a.deliver_update(_notice()),
    "fetch_certificate": lambda a: a.fetch_certificate("x"),
    "list_revocations": lambda a: a.list_revocations(),
    "list_matters": lambda a: a.list_matters(),
}


def _deep_document(d: Dialect) -> bytes:
    return nested(d.name, DEEP)[0]


def _huge_number_document(d: Dialect) -> bytes:
    return d.huge_number_refusal(HUGE_NUMBER)


@each
@pytest.mark.parametrize("call", list(CALLS))
async def test_every_reply_nested_too_deep_is_a_dialect_error(d: Dialect, call: str) -> None:
    """A reply nested 200,000 deep to any call is a DialectError too_deep naming the
    platform."""
    error = await _refusal(d, Answer(_deep_document(d), d.content_type), CALLS[call])
    assert (error.platform, error.code) == (d.name, "too_deep")


@each
@pytest.mark.parametrize("call", list(CALLS))
async def test_every_reply_as_html_is_a_dialect_error(d: Dialect, call: str) -> None:
    """An HTML page answered with 200 to any call is a DialectError html_reply naming the
    platform."""
    error = await _refusal(d, Answer(HTML.encode(), "text/html; charset=utf-8"), CALLS[call])
    assert (error.platform, error.code) == (d.name, "html_reply")


@each
@pytest.mark.parametrize(
    "document", [_deep_document, _huge_number_document], ids=["too-deep", "huge-number"]
)
@pytest.mark.parametrize("call", list(CALLS))
async def test_a_hostile_refusal_is_named_by_its_status(
    d: Dialect, call: str, document: Callable[[Dialect], bytes]
) -> None:
    """A 4xx refusal whose body is nested too deep or holds a huge number is a DialectError
    named by its HTTP status, naming the platform."""
    error = await _refusal(d, Answer(document(d), d.content_type, status=409), CALLS[call])
    assert (error.platform, error.code) == (d.name, "http_409")


@each
async def test_a_reply_cut_off_by_a_dropped_connection_is_unavailable(d: Dialect) -> None:
    """A reply whose connection drops before its announced length arrived is
    PlatformUnavailable: the node tries again later."""
    body = good_page(d, "events").encode()

    async def reply(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": d.content_type, "Content-Length": str(len(body))}
        )
        await response.prepare(request)
        await response.write(body[: len(body) // 2])
        assert request.transport is not None
        request.transport.close()
        return response

    async with _stub(d, reply, timeout=10) as adapter:
        with pytest.raises(PlatformUnavailable):
            await adapter.poll_events(None)


# --- redirects (issue 11) -------------------------------------------------------------------

CREDENTIAL: Final = "platform-token-7f3a"
"""The token (Zhejiang: the app key) each adapter sends its platform."""
REDIRECTED: Final = {
    "poll_applications": POLLS["applications"],
    "deliver_case": CALLS["deliver_case"],
    "fetch_certificate": CALLS["fetch_certificate"],
}


@asynccontextmanager
async def _elsewhere(reached: list[web.Request]) -> AsyncIterator[BaseTestServer]:
    async def collect(request: web.Request) -> web.Response:
        reached.append(request)
        return web.Response(status=200)

    other = web.Application()
    other.router.add_route("*", "/{tail:.*}", collect)
    async with TestServer(other, host="127.0.0.2") as sink:
        yield sink


@each
@pytest.mark.parametrize("call", list(REDIRECTED))
@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_not_followed(d: Dialect, status: int, call: str) -> None:
    """A platform answering 3xx to another host is a DialectError ``redirected`` naming that
    host and nothing more of the location; not one request, token, app key or signature
    reaches the other host."""
    reached: list[web.Request] = []
    asked: list[dict[str, str]] = []
    async with _elsewhere(reached) as sink:
        location = str(sink.make_url("/collect").with_query(name="王静", code=SECRET))

        async def redirect(request: web.Request) -> web.Response:
            asked.append(dict(request.headers))
            return web.Response(status=status, headers={"Location": location})

        async with platforms.stub(redirect, lambda url: d.credentialed(url, CREDENTIAL)) as adapter:
            with pytest.raises(DialectError) as refused:
                await REDIRECTED[call](adapter)
    error = refused.value
    assert (error.platform, error.code) == (d.name, "redirected")
    assert "127.0.0.2" in str(error) and str(status) in str(error)
    assert SECRET not in str(error) and "collect" not in str(error) and "王静" not in str(error)
    assert reached == []
    assert [CREDENTIAL in headers.values() for headers in asked] == [True]
