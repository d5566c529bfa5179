"""The Shanghai adapter against a real simulated Shanghai platform over loopback HTTP, and
against a stub that answers in broken dialect."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.shanghai import dialect
from adapters.shanghai.adapter import ShanghaiAdapter, make_adapter
from adapters.shanghai.dialect import SHANGHAI
from adapters.shanghai.platform import BASE, TOKEN_HEADER, build_platform
from adapters.simulation.officer import plan_for
from adapters.strict_json import JsonObject
from node.cases.catalog import load_catalog, matter_to_json
from node.cases.exchange import _parse_event
from node.cases.submission import parse_new_case
from node.certificates.library import PlatformLibrary
from node.certificates.model import parse_certificate
from node.identifiers import make_certificate_id, parse_certificate_id
from node.platform.adapter import (
    Application,
    ApplicationRefusal,
    CaseNotice,
    DialectError,
    InboundCase,
    Malformed,
    PlatformEvent,
    PlatformUnavailable,
)
from tests import platforms
from tests.platforms import (
    FEDERATED,
    REFUSAL,
    STUB_TIMEOUT,
    T0,
    Platform,
    Reply,
    application_body,
    inbound_cases,
    json_body,
    json_wire,
    mistyped,
    notices,
)

TOKEN = "sh-test-token"
PLATFORM = Platform(
    build_platform,
    credentials={"access_token": TOKEN},
    adapter=lambda url, clock: make_adapter(url, credentials={"access_token": TOKEN}),
    token=(TOKEN_HEADER, TOKEN),
)
shanghai = PLATFORM.serve
inbound_case = partial(platforms.inbound_case, "shanghai")


# --- round trips against the real platform --------------------------------------------------


async def test_application_round_trip(tmp_path: Path) -> None:
    """An application entered in the dialect reaches the node as a valid POST /v1/cases body,
    once, and the acknowledgement is visible to the applicant."""
    async with shanghai(tmp_path) as sh:
        body = application_body(await sh.fixtures())
        status, reply = await sh.post(
            f"{BASE}/applications", json_body(SHANGHAI.application_form(body)), token=False
        )
        assert status == 201, reply
        reference = reply["applyNo"]
        assert reference.startswith("SHYW20260302") and reply["caseStatus"] == 10

        page = await sh.adapter.poll_applications(None)
        assert page.items == [Application(reference=reference, body=body)]
        case = parse_new_case(page.items[0].body, find_matter=FEDERATED.get, me="shanghai")
        assert case.to_json() == body

        again = await sh.adapter.poll_applications(page.cursor)
        assert again.items == [] and again.cursor == page.cursor

        await sh.adapter.acknowledge(reference, "310000-20260302-0123456789abcdef")
        await sh.adapter.acknowledge(reference, "310000-20260302-0123456789abcdef")
        with pytest.raises(DialectError) as conflict:
            await sh.adapter.acknowledge(reference, "310000-20260302-ffffffffffffffff")
        assert conflict.value.code == "conflict"
        with pytest.raises(DialectError) as missing:
            await sh.adapter.acknowledge("SHYW0", "310000-20260302-0123456789abcdef")
        assert missing.value.code == "not_found"

        async with sh.session.get(f"{sh.url}{BASE}/applications/{reference}") as response:
            progress = await response.json()
        assert progress["caseId"] == "310000-20260302-0123456789abcdef"
        assert progress["caseStatus"] == 10 and progress["progress"] == []


async def test_refusal_round_trip(tmp_path: Path) -> None:
    """The federation's refusal of an application reaches the platform with its code (and
    numeric kind), the field at fault in the dialect's words and the reason, and the
    applicant sees it; a repeat changes nothing, while another refusal, an acknowledgement
    after it, a refusal of an application that became a case and one of an unknown
    application number are refused."""
    async with shanghai(tmp_path) as sh:
        fixtures = await sh.fixtures()
        stored = sh.platform.submit_application(mistyped(application_body(fixtures)), checked=False)
        [item] = (await sh.adapter.poll_applications(None)).items
        assert isinstance(item, Application) and item.reference == stored.reference

        await sh.adapter.reject_application(stored.reference, REFUSAL)
        await sh.adapter.reject_application(stored.reference, REFUSAL)
        progress = sh.platform.application_progress(stored.reference)
        assert progress.status == "refused" and progress.refusal is not None
        assert progress.refusal.refusal == ApplicationRefusal(
            "invalid_id_number", "applicant.certNo", REFUSAL.reason, in_dialect=True
        )
        assert sh.platform.store.counts()["refusals"] == 1
        assert stored.reference not in sh.platform.store.open_work()[1]

        status, shown = await sh.get(f"{BASE}/applications/{stored.reference}", token=False)
        assert status == 200
        assert (shown["caseId"], shown["caseStatus"], shown["progress"]) == (None, 90, [])
        assert shown["rejection"] == {
            "rejectCode": 60100,
            "rejectType": "invalid_id_number",
            "rejectField": "applicant.certNo",
            "rejectReason": REFUSAL.reason,
            "rejectTime": 1_772_416_800_000,
        }
        status, again = await sh.post(
            f"{BASE}/applications/{stored.reference}/rejection",
            json_body(SHANGHAI.refusal_to_dialect(REFUSAL, dialect.dialect_field)),
        )
        assert (status, again["duplicate"], again["rejectType"]) == (200, True, "invalid_id_number")

        with pytest.raises(DialectError) as other:
            await sh.adapter.reject_application(
                stored.reference, ApplicationRefusal("unknown_matter", "matter_code", "无此事项")
            )
        assert (other.value.code, other.value.field) == ("conflict", "applyNo")
        with pytest.raises(DialectError) as acknowledged:
            await sh.adapter.acknowledge(stored.reference, "310000-20260302-0123456789abcdef")
        assert acknowledged.value.code == "conflict"
        with pytest.raises(DialectError) as missing:
            await sh.adapter.reject_application("SHYW0", REFUSAL)
        assert (missing.value.code, missing.value.field) == ("not_found", "applyNo")

        became = sh.platform.submit_application(application_body(fixtures)).reference
        await sh.adapter.acknowledge(became, "310000-20260302-0123456789abcdef")
        with pytest.raises(DialectError) as answered:
            await sh.adapter.reject_application(became, REFUSAL)
        assert answered.value.code == "conflict"

        # The adapter's own Malformed names the field as the dialect does: sent as it is.
        unreadable = sh.platform.submit_application(application_body(fixtures)).reference
        own = ApplicationRefusal("unknown_code", "handleMode", "is not a code", in_dialect=True)
        await sh.adapter.reject_application(unreadable, own)
        status, shown = await sh.get(f"{BASE}/applications/{unreadable}", token=False)
        assert (shown["rejection"]["rejectCode"], shown["rejection"]["rejectField"]) == (
            60400,
            "handleMode",
        )
        assert sh.platform.store.counts()["refusals"] == 2


async def test_refusal_of_the_wrong_kind_is_refused(tmp_path: Path) -> None:
    """A refusal whose numeric kind is not its code's, or whose code is not a stable code,
    is refused with 400 and the field at fault, and nothing is stored."""
    async with shanghai(tmp_path) as sh:
        reference = sh.platform.submit_application(application_body(await sh.fixtures())).reference
        good = SHANGHAI.refusal_to_dialect(REFUSAL, dialect.dialect_field)
        path = f"{BASE}/applications/{reference}/rejection"
        for body, field in (
            ({**good, "rejectCode": 60300}, "rejectCode"),
            ({**good, "rejectCode": 12345}, "rejectCode"),
            ({**good, "rejectType": "Invalid ID"}, "rejectType"),
            ({k: v for k, v in good.items() if k != "rejectReason"}, "rejectReason"),
        ):
            status, refused = await sh.post(path, json_body(body))
            assert status == 400 and refused["errorField"] == field, refused
        status, _ = await sh.post(path, json_body(good), token=False)
        assert status == 401
        assert sh.platform.store.counts()["refusals"] == 0


async def test_officer_events_reach_the_node(tmp_path: Path) -> None:
    """The officer's actions on a delivered case come through the adapter as event bodies the
    node accepts, in order, each once."""
    case_id = next(
        f"320000-20260302-{n:016x}"
        for n in range(1000)
        if plan_for(11, f"320000-20260302-{n:016x}").accept
        and not plan_for(11, f"320000-20260302-{n:016x}").supplement
    )
    async with shanghai(tmp_path) as sh:
        await sh.adapter.deliver_case(inbound_case(case_id))
        for _ in range(2):  # accept, then complete, each an officer delay later
            sh.clock.now += 7200
            sh.platform.people.work()

        page = await sh.adapter.poll_events(None)
        assert [type(item) for item in page.items] == [PlatformEvent, PlatformEvent]
        events = [item for item in page.items if isinstance(item, PlatformEvent)]
        assert [e.body["action"] for e in events] == ["accept", "complete"]
        assert all(e.case_id == case_id for e in events)
        for event in events:
            _parse_event(event.body)
        assert len({e.event_id for e in events}) == 2
        after = await sh.adapter.poll_events(page.cursor)
        assert after.items == [] and after.cursor == page.cursor


async def test_deliveries_are_idempotent(tmp_path: Path) -> None:
    """Delivering a case or a notice twice stores it once; a different case under a known id
    is refused as a conflict."""
    async with shanghai(tmp_path) as sh:
        case = inbound_case("320000-20260302-00000000000000c1")
        await sh.adapter.deliver_case(case)
        await sh.adapter.deliver_case(case)
        stored = sh.platform.store.inbound_case(case.case_id)
        assert stored is not None and stored.case == case
        with pytest.raises(DialectError) as conflict:
            await sh.adapter.deliver_case(inbound_case(case.case_id, matter=1))
        assert conflict.value.code == "conflict"

        notice = CaseNotice(
            case.case_id, 2, "accept", "handling", "accepted", T0, due_at=T0 + 3 * 86400
        )
        await sh.adapter.deliver_update(notice)
        await sh.adapter.deliver_update(notice)
        assert [n.notice for n in sh.platform.store.notices(case.case_id)] == [notice]
        counts = sh.platform.store.counts()
        assert counts["inbound_cases"] == 1 and counts["notices"] == 1


async def test_every_certificate_is_fetched_and_parses(tmp_path: Path) -> None:
    """Every certificate of the library comes back through the dialect exactly as the library
    holds it, and a well-formed id the library lacks is None."""
    async with shanghai(tmp_path) as sh:
        library = sh.platform.store.certificates()
        for held in library:
            fetched = await sh.adapter.fetch_certificate(held["certificate_id"])
            assert fetched == held
            parse_certificate(dict(fetched))
        statuses = {c["status"] for c in library}
        assert statuses == {"valid", "suspended", "revoked", "expired"}
        first = parse_certificate_id(library[0]["certificate_id"])
        unknown = make_certificate_id(first.type_code, first.issuer_code, "ZZZ999")
        assert await sh.adapter.fetch_certificate(str(unknown)) is None


async def test_revocations_feed_the_issuers_list(tmp_path: Path) -> None:
    """The library's revoked and suspended licences reach the node's certificate library as
    revocation entries, with status, whole-second time and reason intact."""
    async with shanghai(tmp_path) as sh:
        entries = await PlatformLibrary(sh.adapter).revocations()
        library = sh.platform.store.certificates()
        held = sh.platform.store.revocations()
    listed = {c["certificate_id"]: c["status"] for c in library if c["status"] in
              ("revoked", "suspended")}  # fmt: skip
    assert {str(e.certificate_id): e.status.value for e in entries} == listed
    assert [e.to_json()["reason"] for e in entries] == [r["reason"] for r in held]
    assert [e.since for e in entries] == [r["since"] for r in held]


async def test_matters(tmp_path: Path) -> None:
    """The platform's matter list comes back in the catalog's JSON form."""
    async with shanghai(tmp_path) as sh:
        matters = await sh.adapter.list_matters()
    assert list(matters) == [matter_to_json(m) for m in load_catalog("shanghai").matters]


# --- bad input to the platform: a 400 in dialect, and nothing stored -------------------------


def _notice_json(**changes: Any) -> bytes:
    base = SHANGHAI.notice_to_dialect(
        CaseNotice("320000-20260302-00000000000000d1", 2, "accept", "handling", "accepted", T0)
    )
    base.update(changes)
    return json_body({k: v for k, v in base.items() if v is not None})


def _case_json(**changes: Any) -> bytes:
    base = SHANGHAI.case_to_dialect(inbound_case("320000-20260302-00000000000000d2"))
    base.update(changes)
    return json_body({k: v for k, v in base.items() if v is not None})


BAD_REQUESTS = [
    ("malformed JSON", "/inboundCases", b'{"caseId": "x",', "malformed_body", ""),
    ("not an object", "/inboundCases", b"[1, 2]", "malformed_body", ""),
    ("missing field", "/inboundCases", _case_json(caseId=None), "missing_field", "caseId"),
    ("unknown field", "/caseNotices", _notice_json(colour="red"), "unknown_field", "colour"),
    (
        "unknown status code",
        "/caseNotices",
        _notice_json(caseStatus=99),
        "unknown_status",
        "caseStatus",
    ),
    ("unknown action", "/caseNotices", _notice_json(actionCode=999), "unknown_code", "actionCode"),
    (
        "time in seconds",
        "/caseNotices",
        _notice_json(noticeTime=int(T0)),
        "bad_time",
        "noticeTime",
    ),
    (
        "time as text",
        "/inboundCases",
        _case_json(submitTime="2026-03-02 10:00:00"),
        "bad_time",
        "submitTime",
    ),
    (
        "time as float",
        "/caseNotices",
        _notice_json(noticeTime=T0 * 1000 + 0.5),
        "bad_time",
        "noticeTime",
    ),
    (
        "non-UTF-8",
        "/inboundCases",
        _case_json(matterCode="上海").replace("上海".encode(), "上海".encode("gbk")),
        "not_utf8",
        "",
    ),
    ("duplicate key", "/caseNotices", b'{"caseId": "a", "caseId": "b"}', "malformed_body", ""),
    (
        "nested too deep",
        "/inboundCases",
        platforms.nested("shanghai", platforms.BEYOND_RECURSION)[0],
        "too_deep",
        "",
    ),
    ("huge number", "/caseNotices", b'{"seqNo": ' + b"9" * 5000 + b"}", "number_too_large", ""),
    (
        "bad applicant code",
        "/applications",
        b"",  # filled in by the test from the fixtures
        "invalid_id_number",
        "applicant.certNo",
    ),
]


@pytest.mark.parametrize(
    ("path", "data", "code", "field"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
async def test_platform_refuses_bad_requests(
    tmp_path: Path, path: str, data: bytes, code: str, field: str
) -> None:
    """A request that is not good Shanghai dialect gets 400 and a dialect error naming the
    field, and changes nothing in the platform's store."""
    async with shanghai(tmp_path) as sh:
        if not data:
            form = SHANGHAI.application_form(application_body(await sh.fixtures()))
            number = form["applicant"]["certNo"]
            form["applicant"]["certNo"] = number[:-1] + ("1" if number[-1] == "0" else "0")
            data = json_body(form)
        before = sh.platform.store.counts()
        status, reply = await sh.post(BASE + path, data)
        assert status == 400, reply
        assert reply["errorType"] == code
        assert reply["errorField"] == field
        assert isinstance(reply["errorCode"], int) and reply["errorMsg"]
        assert sh.platform.store.counts() == before


async def test_platform_refuses_wrong_media_type_and_missing_token(tmp_path: Path) -> None:
    """A body not sent as JSON gets 415; a node endpoint without the token gets 401."""
    async with shanghai(tmp_path) as sh:
        before = sh.platform.store.counts()
        status, reply = await sh.post(
            f"{BASE}/inboundCases", _case_json(), content_type="text/plain"
        )
        assert (status, reply["errorType"]) == (415, "unsupported_media_type")
        status, reply = await sh.post(f"{BASE}/inboundCases", _case_json(), token=False)
        assert (status, reply["errorType"]) == (401, "unauthorized")
        unauthorised = make_adapter(sh.url, credentials={})
        with pytest.raises(DialectError) as refused:
            await unauthorised.poll_events(None)
        await unauthorised.close()
        assert refused.value.code == "unauthorized"
        assert sh.platform.store.counts() == before


# --- bad replies to the adapter, from a stub that speaks broken dialect ---------------------


def stub(
    handler: Reply, *, timeout: float = STUB_TIMEOUT
) -> AbstractAsyncContextManager[ShanghaiAdapter]:
    return platforms.stub(handler, lambda url: ShanghaiAdapter(url, timeout=timeout))


def _good_event(n: int) -> dict[str, Any]:
    return SHANGHAI.event_record(f"e{n}", "c", {"action": "accept", "reason": "ok"}, T0)


async def test_untranslatable_records_become_malformed(tmp_path: Path) -> None:
    """A feed record with an unknown code, a bad time or a missing field becomes a Malformed in
    its place, naming the record and the field; the good records around it come through."""
    records = [
        _good_event(1),
        {**_good_event(2), "actionCode": 999},
        {**_good_event(3), "eventTime": int(T0)},
        {k: v for k, v in _good_event(4).items() if k != "caseId"},
        "not a record",
        _good_event(5),
    ]

    async def feed(request: web.Request) -> web.Response:
        return web.json_response({"records": records, "nextCursor": "6", "hasMore": False})

    async with stub(feed) as adapter:
        page = await adapter.poll_events(None)
    assert page.cursor == "6"
    kinds = [type(item).__name__ for item in page.items]
    assert kinds == ["PlatformEvent", "Malformed", "Malformed", "Malformed", "Malformed",
                     "PlatformEvent"]  # fmt: skip
    assert page.items[1] == Malformed("e2", "unknown_code", "actionCode", page.items[1].detail)  # type: ignore[union-attr]
    assert (page.items[2].code, page.items[2].field) == ("bad_time", "eventTime")  # type: ignore[union-attr]
    assert (page.items[3].code, page.items[3].field) == ("missing_field", "caseId")  # type: ignore[union-attr]
    assert page.items[4].reference == "?"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("body", "content_type", "code"),
    [
        (b"\xff\xfe{}", "application/json", "not_utf8"),
        (b"{not json", "application/json", "malformed_body"),
        (b"[]", "application/json", "malformed_body"),
        (b'{"records": []}', "application/json", "missing_field"),
        (
            b'{"records": [], "nextCursor": "1", "hasMore": false, "x": 1}',
            "application/json",
            "unknown_field",
        ),
    ],
    ids=["non-utf8", "malformed", "array", "missing nextCursor", "unknown field"],
)
async def test_undecodable_replies_raise_dialect_error(
    body: bytes, content_type: str, code: str
) -> None:
    """A reply that is not the dialect at all raises DialectError and yields nothing."""

    async def reply(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type=content_type)

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.poll_applications(None)
    assert refused.value.code == code


async def test_unknown_certificate_status_is_refused(tmp_path: Path) -> None:
    """A licence with a status code outside the table is a DialectError, not a guess."""
    async with shanghai(tmp_path) as sh:
        held = sh.platform.store.certificates()[0]
    licence = {**SHANGHAI.certificate_to_dialect(held), "licenseStatus": 9}

    async def reply(request: web.Request) -> web.Response:
        return web.json_response(licence)

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.fetch_certificate(held["certificate_id"])
    assert (refused.value.code, refused.value.field) == ("unknown_status", "licenseStatus")


async def test_revocation_with_a_valid_status_is_refused() -> None:
    """A revocation list naming a licence as valid is not the dialect: DialectError."""
    record = SHANGHAI.revocation_record(
        {"certificate_id": "x", "status": "revoked", "since": T0, "reason": "lost"}
    )

    async def reply(request: web.Request) -> web.Response:
        return web.json_response({"records": [{**record, "licenseStatus": 1}]})

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.list_revocations()
    assert (refused.value.code, refused.value.field) == (
        "unknown_status",
        "records[0].licenseStatus",
    )


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_unavailable(status: int) -> None:
    """A 5xx answer means the platform is unavailable: the node keeps the item and retries."""

    async def reply(request: web.Request) -> web.Response:
        return web.json_response({"errorType": "internal"}, status=status)

    async with stub(reply) as adapter:
        with pytest.raises(PlatformUnavailable):
            await adapter.deliver_case(inbound_case("320000-20260302-00000000000000e1"))


async def test_timeout_is_unavailable() -> None:
    """A platform that does not answer within the timeout is unavailable."""
    never = asyncio.Event()

    async def reply(request: web.Request) -> web.Response:
        await never.wait()
        return web.json_response({})

    async with stub(reply, timeout=0.2) as adapter:
        with pytest.raises(PlatformUnavailable):
            await adapter.list_matters()


async def test_platform_down_is_unavailable(tmp_path: Path) -> None:
    """When the platform's server has stopped, every call raises PlatformUnavailable."""
    async with shanghai(tmp_path) as sh:
        adapter = make_adapter(sh.url, credentials={"access_token": TOKEN})
        await adapter.list_matters()
    try:
        with pytest.raises(PlatformUnavailable):
            await adapter.deliver_case(inbound_case("320000-20260302-00000000000000f1"))
        with pytest.raises(PlatformUnavailable):
            await adapter.poll_events(None)
    finally:
        await adapter.close()


# --- the dialect both ways (sans-I/O, property-based) -----------------------------------------

_instant = st.integers(min_value=dialect.EARLIEST_MS, max_value=dialect.LATEST_MS - 1).map(
    lambda ms: ms / 1000
)


@settings(max_examples=60, deadline=None)
@given(case=inbound_cases(_instant))
def test_inbound_case_round_trips(case: InboundCase) -> None:
    """Every field of an inbound case survives the dialect and back."""
    wire = json_wire(SHANGHAI.case_to_dialect(case))
    assert SHANGHAI.read_case(JsonObject(wire)) == case


@settings(max_examples=80, deadline=None)
@given(notice=notices(_instant))
def test_notice_round_trips(notice: CaseNotice) -> None:
    """Every field of an update notice survives the dialect and back."""
    wire = json_wire(SHANGHAI.notice_to_dialect(notice))
    assert SHANGHAI.read_notice(JsonObject(wire)) == notice


@settings(max_examples=60, deadline=None)
@given(
    action=st.sampled_from(
        ["accept", "reject", "request_supplement", "supplement", "deny", "withdraw"]
    ),
    reason=st.one_of(st.none(), platforms.TEXT),
    at=_instant,
)
def test_event_round_trips(action: str, reason: str | None, at: float) -> None:
    """An event body survives the dialect and back, also with a result or an evaluation."""
    bodies: list[dict[str, Any]] = [
        {"action": action, **({"reason": reason} if reason else {})},
        {"action": "complete", "result": {"kind": "document", "document_sha256": "a" * 64}},
        {"action": "evaluate", "level": 4, "comment": "快"},
        {"action": "evaluate", "level": 2},
    ]
    for body in bodies:
        record = json_wire(SHANGHAI.event_record("e", "c", body, at))
        assert SHANGHAI.read_event_record(JsonObject(record)) == PlatformEvent("e", "c", body)


@pytest.mark.parametrize(
    "text", list(platforms.NOT_NUMBERS.values()), ids=list(platforms.NOT_NUMBERS)
)
@pytest.mark.parametrize(
    ("path", "name", "code"),
    [("/applications", "cursor", "invalid_cursor"), ("/events", "limit", "invalid_field")],
)
async def test_platform_paging_is_ascii_digits_only(
    tmp_path: Path, path: str, name: str, code: str, text: str
) -> None:
    """A cursor or limit in other digits than ASCII, or signed, is a 400 in dialect naming
    the parameter, never a 500, and changes nothing."""
    async with shanghai(tmp_path) as sh:
        before = sh.platform.store.counts()
        status, reply = await sh.get(BASE + path, **{name: text})
        assert (status, reply["errorType"], reply["errorField"]) == (400, code, name)
        assert sh.platform.store.counts() == before
