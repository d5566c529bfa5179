"""The Jiangsu adapter against a real simulated Jiangsu platform over loopback HTTP, and
against a stub that answers in broken dialect."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.jiangsu import dialect
from adapters.jiangsu.adapter import JiangsuAdapter, make_adapter
from adapters.jiangsu.dialect import JIANGSU
from adapters.jiangsu.platform import BASE, TOKEN_HEADER, build_platform
from adapters.jiangsu.strict_xml import Node, read_document, to_xml
from adapters.registry import citizen
from adapters.registry import dialect as registered
from adapters.simulation.officer import plan_for
from node.cases.catalog import MODES, load_catalog, matter_to_json
from node.cases.exchange import _parse_event
from node.cases.submission import parse_new_case
from node.certificates.library import PlatformLibrary
from node.certificates.model import TYPES, parse_certificate
from node.certificates.revocation import REASONS
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
    mistyped,
    notices,
)

TOKEN = "js-test-token"
XML = "application/xml; charset=utf-8"
PLATFORM = Platform(
    build_platform,
    credentials={"access_token": TOKEN},
    adapter=lambda url, clock: make_adapter(url, credentials={"access_token": TOKEN}),
    token=(TOKEN_HEADER, TOKEN),
    content_type=XML,
    decode=aiohttp.ClientResponse.read,
)
jiangsu = PLATFORM.serve
inbound_case = partial(
    platforms.inbound_case,
    "jiangsu",
    accepting="shanghai",
    applicant={"name": "何佳", "code_type": "111", "code": "310117198908077983"},
    submitted_at=T0 - 31,
)


def refusal(data: bytes) -> dict[str, str]:
    """The fields of a ``<cwxx>`` error reply."""
    fields = read_document(data, "cwxx")
    error = {
        "cwdm": fields.text("cwdm"),
        "cwms": fields.text("cwms"),
        "cwzd": fields.optional_text("cwzd") or "",
    }
    fields.finish()
    return error


def edit(node: Node, **changes: Node | str | None) -> Node:
    """``node`` with its children named in ``changes`` replaced (None: removed) or added."""
    tag, children = node
    assert not isinstance(children, str)
    kept: list[Node] = []
    for child in children:
        if child[0] not in changes:
            kept.append(child)
        elif changes[child[0]] is not None:
            kept.append(_child(child[0], changes[child[0]]))
    named = {child[0] for child in children}
    kept += [_child(k, v) for k, v in changes.items() if k not in named and v is not None]
    return (tag, kept)


def _child(tag: str, value: Node | str | None) -> Node:
    assert value is not None
    return (tag, value) if isinstance(value, str) else value


# --- round trips against the real platform --------------------------------------------------


async def test_registry_finds_the_dialect() -> None:
    """The registry maps jiangsu to this package's two callables."""
    found = registered("jiangsu")
    assert (found.build_platform, found.make_adapter) == (build_platform, make_adapter)


async def test_application_round_trip(tmp_path: Path) -> None:
    """An application entered in the dialect reaches the node as a valid POST /v1/cases body,
    once, and the acknowledgement is visible to the applicant."""
    async with jiangsu(tmp_path) as js:
        body = application_body(await js.fixtures())
        status, data = await js.post(
            f"{BASE}/sq", to_xml(dialect.application_form(body)), token=False
        )
        assert status == 201, data
        receipt = read_document(data, "sqhz")
        reference = receipt.text("sqbh")
        assert reference.startswith("JSZW20260302")
        assert receipt.text("blzt") == "YTJ" and receipt.text("sqsj") == "20260302100000"

        page = await js.adapter.poll_applications(None)
        assert page.items == [Application(reference=reference, body=body)]
        case = parse_new_case(page.items[0].body, find_matter=FEDERATED.get, me="jiangsu")
        assert case.to_json() == body

        again = await js.adapter.poll_applications(page.cursor)
        assert again.items == [] and again.cursor == page.cursor

        await js.adapter.acknowledge(reference, "320000-20260302-0123456789abcdef")
        await js.adapter.acknowledge(reference, "320000-20260302-0123456789abcdef")
        with pytest.raises(DialectError) as conflict:
            await js.adapter.acknowledge(reference, "320000-20260302-ffffffffffffffff")
        assert (conflict.value.code, conflict.value.field) == ("conflict", "ajbh")
        with pytest.raises(DialectError) as missing:
            await js.adapter.acknowledge("JSZW0", "320000-20260302-0123456789abcdef")
        assert (missing.value.code, missing.value.field) == ("not_found", "sqbh")

        acknowledged = await js.adapter.poll_applications(None)
        assert acknowledged.items == page.items

        status, data = await js.get(f"{BASE}/sq/{reference}")
        progress = read_document(data, "sqjd")
        assert status == 200
        assert progress.text("ajbh") == "320000-20260302-0123456789abcdef"
        assert progress.text("blzt") == "YTJ" and progress.objects("tzlb") == []


async def test_citizen_enters_and_follows_an_application(tmp_path: Path) -> None:
    """The citizen's side enters an application in the dialect and sees its federation case
    once the node acknowledges it."""
    async with jiangsu(tmp_path) as js:
        at_jiangsu = citizen("jiangsu")
        body = application_body(await js.fixtures())
        reference = await at_jiangsu.enter_application(js.session, js.url, body)
        assert await at_jiangsu.case_of(js.session, js.url, reference) is None
        await js.adapter.acknowledge(reference, "320000-20260302-0123456789abcdef")
        case_id = await at_jiangsu.case_of(js.session, js.url, reference)
        assert case_id == "320000-20260302-0123456789abcdef"
        with pytest.raises(ValueError, match="refused"):
            await at_jiangsu.enter_application(js.session, js.url, {**body, "handler": "jiangsu"})


async def test_refusal_round_trip(tmp_path: Path) -> None:
    """The federation's refusal of an application reaches the platform as a <th> with its
    kind, code, element path and reason, and the applicant sees it (已退回); a repeat
    changes nothing, while another refusal, an acknowledgement after it, a refusal of an
    application that became a case and one of an unknown application number are refused."""
    async with jiangsu(tmp_path) as js:
        fixtures = await js.fixtures()
        stored = js.platform.submit_application(mistyped(application_body(fixtures)), checked=False)
        [item] = (await js.adapter.poll_applications(None)).items
        assert isinstance(item, Application) and item.reference == stored.reference

        await js.adapter.reject_application(stored.reference, REFUSAL)
        await js.adapter.reject_application(stored.reference, REFUSAL)
        progress = js.platform.application_progress(stored.reference)
        assert progress.status == "refused" and progress.refusal is not None
        assert progress.refusal.refusal == ApplicationRefusal(
            "invalid_id_number", "sqr/zjhm", REFUSAL.reason, in_dialect=True
        )
        assert js.platform.store.counts()["refusals"] == 1

        status, data = await js.get(f"{BASE}/sq/{stored.reference}", token=False)
        shown = read_document(data, "sqjd")
        assert status == 200 and shown.text("blzt") == "YTH" and not shown.has("ajbh")
        held = shown.obj("th")
        assert [held.text(name) for name in ("thlb", "thdm", "thzd", "thyy", "thsj")] == [
            "SQR",
            "invalid_id_number",
            "sqr/zjhm",
            REFUSAL.reason,
            "20260302100000",
        ]
        status, data = await js.post(
            f"{BASE}/sq/{stored.reference}/th", to_xml(dialect.refusal_to_dialect(REFUSAL))
        )
        assert status == 200 and read_document(data, "thhz").text("sfcf") == "Y"

        with pytest.raises(DialectError) as other:
            await js.adapter.reject_application(
                stored.reference, ApplicationRefusal("unknown_matter", "matter_code", "无此事项")
            )
        assert (other.value.code, other.value.field) == ("conflict", "sqbh")
        with pytest.raises(DialectError) as acknowledged:
            await js.adapter.acknowledge(stored.reference, "320000-20260302-0123456789abcdef")
        assert acknowledged.value.code == "conflict"
        with pytest.raises(DialectError) as missing:
            await js.adapter.reject_application("JSZW0", REFUSAL)
        assert (missing.value.code, missing.value.field) == ("not_found", "sqbh")

        became = js.platform.submit_application(application_body(fixtures)).reference
        await js.adapter.acknowledge(became, "320000-20260302-0123456789abcdef")
        with pytest.raises(DialectError) as answered:
            await js.adapter.reject_application(became, REFUSAL)
        assert answered.value.code == "conflict"

        unreadable = js.platform.submit_application(application_body(fixtures)).reference
        own = ApplicationRefusal("unknown_code", "sq[1]/blfs", "is not a code", in_dialect=True)
        await js.adapter.reject_application(unreadable, own)
        held = read_document((await js.get(f"{BASE}/sq/{unreadable}"))[1], "sqjd").obj("th")
        assert (held.text("thlb"), held.text("thzd")) == ("JL", "sq[1]/blfs")

        wrong_kind = edit(dialect.refusal_to_dialect(REFUSAL), thlb="CL")
        fresh = js.platform.submit_application(application_body(fixtures)).reference
        status, data = await js.post(f"{BASE}/sq/{fresh}/th", to_xml(wrong_kind))
        assert (status, refusal(data)["cwdm"], refusal(data)["cwzd"]) == (
            400,
            "invalid_field",
            "thlb",
        )
        assert js.platform.store.counts()["refusals"] == 2


async def test_officer_events_reach_the_node(tmp_path: Path) -> None:
    """The officer's actions on a delivered case come through the adapter as event bodies the
    node accepts, in order, each once."""
    case_id = next(
        f"310000-20260302-{n:016x}"
        for n in range(1000)
        if plan_for(11, f"310000-20260302-{n:016x}").accept
        and not plan_for(11, f"310000-20260302-{n:016x}").supplement
        and plan_for(11, f"310000-20260302-{n:016x}").complete
    )
    async with jiangsu(tmp_path) as js:
        await js.adapter.deliver_case(inbound_case(case_id))
        for _ in range(2):  # accept, then complete, each an officer delay later
            js.clock.now += 7200
            js.platform.people.work()

        page = await js.adapter.poll_events(None)
        assert [type(item) for item in page.items] == [PlatformEvent, PlatformEvent]
        events = [item for item in page.items if isinstance(item, PlatformEvent)]
        assert [e.body["action"] for e in events] == ["accept", "complete"]
        assert all(e.case_id == case_id for e in events)
        assert events[1].body["result"]["kind"] == "document"
        for event in events:
            _parse_event(event.body)
        assert len({e.event_id for e in events}) == 2
        after = await js.adapter.poll_events(page.cursor)
        assert after.items == [] and after.cursor == page.cursor


async def test_applicant_evaluation_reaches_the_node(tmp_path: Path) -> None:
    """Once the node reports a case completed, the applicant's evaluation comes through with
    its level, and the applicant sees the result when following the application."""
    async with jiangsu(tmp_path) as js:
        body = application_body(await js.fixtures())
        _, data = await js.post(f"{BASE}/sq", to_xml(dialect.application_form(body)), token=False)
        reference = read_document(data, "sqhz").text("sqbh")
        case_id = "320000-20260302-00000000000000a1"
        await js.adapter.acknowledge(reference, case_id)
        result = {"kind": "document", "document_sha256": "ab" * 32}
        for notice in (
            CaseNotice(case_id, 2, "deliver", "accepting", "delivered", T0),
            CaseNotice(case_id, 3, "accept", "handling", "accepted", T0 + 60, reason="受理"),
            CaseNotice(case_id, 4, "complete", "handling", "completed", T0 + 120, result=result),
        ):
            await js.adapter.deliver_update(notice)
        js.clock.now += 7200
        js.platform.people.work()

        page = await js.adapter.poll_events(None)
        assert len(page.items) == 1 and isinstance(page.items[0], PlatformEvent)
        evaluation = page.items[0]
        assert evaluation.case_id == case_id and evaluation.body["action"] == "evaluate"
        assert evaluation.body["level"] in range(1, 6)
        _parse_event(evaluation.body)

        _, data = await js.get(f"{BASE}/sq/{reference}")
        progress = read_document(data, "sqjd")
        assert progress.text("blzt") == "BJ"
        assert progress.obj("jg").text("sha256") == "ab" * 32
        assert len(progress.objects("tzlb")) == 3


async def test_deliveries_are_idempotent(tmp_path: Path) -> None:
    """Delivering a case or a notice twice stores it once; a different case under a known id
    is refused as a conflict."""
    async with jiangsu(tmp_path) as js:
        case = inbound_case("310000-20260302-00000000000000c1")
        await js.adapter.deliver_case(case)
        await js.adapter.deliver_case(case)
        stored = js.platform.store.inbound_case(case.case_id)
        assert stored is not None and stored.case == case
        with pytest.raises(DialectError) as conflict:
            await js.adapter.deliver_case(inbound_case(case.case_id, matter=1))
        assert (conflict.value.code, conflict.value.field) == ("conflict", "ajbh")

        notice = CaseNotice(
            case.case_id, 2, "accept", "handling", "accepted", T0, due_at=T0 + 3 * 86400
        )
        await js.adapter.deliver_update(notice)
        await js.adapter.deliver_update(notice)
        assert [n.notice for n in js.platform.store.notices(case.case_id)] == [notice]
        counts = js.platform.store.counts()
        assert counts["inbound_cases"] == 1 and counts["notices"] == 1

        first = await js.post(f"{BASE}/ajtz", to_xml(dialect.notice_to_dialect(notice)))
        assert first[0] == 200 and read_document(first[1], "tzhz").text("sfcf") == "Y"


async def test_every_certificate_is_fetched_and_parses(tmp_path: Path) -> None:
    """Every certificate of the library comes back through the dialect exactly as the library
    holds it, and a well-formed id the library lacks is None."""
    async with jiangsu(tmp_path) as js:
        library = js.platform.store.certificates()
        for held in library:
            fetched = await js.adapter.fetch_certificate(held["certificate_id"])
            assert fetched == held
            parse_certificate(dict(fetched))
        assert {c["status"] for c in library} == {"valid", "suspended", "revoked", "expired"}
        assert {c["type"] for c in library} == set(TYPES)
        assert any(c["valid_until"] is None for c in library)  # 长期 comes through too
        first = parse_certificate_id(library[0]["certificate_id"])
        unknown = make_certificate_id(first.type_code, first.issuer_code, "ZZZ999")
        assert await js.adapter.fetch_certificate(str(unknown)) is None


async def test_revocations_feed_the_issuers_list(tmp_path: Path) -> None:
    """The library's revoked and suspended certificates reach the node's certificate library
    as revocation entries, with status, whole-second time and reason intact."""
    async with jiangsu(tmp_path) as js:
        entries = await PlatformLibrary(js.adapter).revocations()
        library = js.platform.store.certificates()
        held = js.platform.store.revocations()
    listed = {
        c["certificate_id"]: c["status"] for c in library if c["status"] in ("revoked", "suspended")
    }
    assert listed and {str(e.certificate_id): e.status.value for e in entries} == listed
    assert [e.to_json()["reason"] for e in entries] == [r["reason"] for r in held]
    assert [e.since for e in entries] == [r["since"] for r in held]


async def test_matters(tmp_path: Path) -> None:
    """The platform's matter list comes back in the catalog's JSON form."""
    async with jiangsu(tmp_path) as js:
        matters = await js.adapter.list_matters()
    assert list(matters) == [matter_to_json(m) for m in load_catalog("jiangsu").matters]


async def test_fixtures(tmp_path: Path) -> None:
    """The platform serves its seeded people, companies and certificates at /sim/fixtures,
    without a token."""
    async with jiangsu(tmp_path) as js:
        fixtures = await js.fixtures()
        library = js.platform.store.certificates()
    assert fixtures["province"] == "jiangsu" and fixtures["seed"] == 11
    assert fixtures["persons"] and fixtures["companies"]
    assert [c["certificate_id"] for c in fixtures["certificates"]] == [
        c["certificate_id"] for c in library
    ]
    provinces = [p["id_number"][:2] for p in fixtures["persons"]]
    assert set(provinces) <= {"31", "32", "33", "34"} and provinces.count("32") > len(provinces) / 2


# --- bad input to the platform: a 400 in dialect, and nothing stored -------------------------


def _notice_xml(**changes: Node | str | None) -> bytes:
    base = dialect.notice_to_dialect(
        CaseNotice("310000-20260302-00000000000000d1", 2, "accept", "handling", "accepted", T0)
    )
    return to_xml(edit(base, **changes))


def _case_xml(**changes: Node | str | None) -> bytes:
    base = dialect.case_to_dialect(inbound_case("310000-20260302-00000000000000d2"))
    return to_xml(edit(base, **changes))


_BILLION_LAUGHS = (
    b'<?xml version="1.0"?>\n<!DOCTYPE tz [\n <!ENTITY lol "lol">\n'
    + b"".join(
        f' <!ENTITY lol{n} "{f"&lol{n - 1};" * 10 if n > 1 else "&lol;" * 10}">\n'.encode()
        for n in range(1, 10)
    )
    + b"]>\n<tz><ajbh>&lol9;</ajbh></tz>"
)
_EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?>\n<!DOCTYPE aj [<!ENTITY secret SYSTEM "file:///etc/passwd">]>\n'
    b"<aj><ajbh>&secret;</ajbh></aj>"
)
_PARAMETER_ENTITY = (
    b'<?xml version="1.0"?>\n<!DOCTYPE aj [<!ENTITY % remote SYSTEM "http://127.0.0.1:9/x.dtd">'
    b" %remote;]>\n<aj/>"
)

BAD_REQUESTS = [
    ("malformed XML", "/ajjs", b"<aj><ajbh>x</ajbh>", "malformed_body", ""),
    ("not XML", "/ajjs", b'{"caseId": "x"}', "malformed_body", ""),
    ("wrong root element", "/ajjs", _notice_xml(), "malformed_body", ""),
    ("undeclared entity", "/ajtz", b"<tz><ajbh>&nbsp;</ajbh></tz>", "malformed_body", ""),
    ("billion laughs", "/ajtz", _BILLION_LAUGHS, "forbidden_xml", ""),
    ("external entity", "/ajjs", _EXTERNAL_ENTITY, "forbidden_xml", ""),
    ("parameter entity", "/ajjs", _PARAMETER_ENTITY, "forbidden_xml", ""),
    ("missing element", "/ajjs", _case_xml(ajbh=None), "missing_field", "ajbh"),
    ("empty element", "/ajjs", _case_xml(ajbh=""), "missing_field", "ajbh"),
    (
        "missing nested element",
        "/ajjs",
        _case_xml(sqr=("sqr", [("xm", "何佳"), ("zjlx", "111")])),
        "missing_field",
        "sqr/zjhm",
    ),
    ("unknown element", "/ajtz", _notice_xml(ys="red"), "unknown_field", "ys"),
    (
        "repeated element",
        "/ajtz",
        _notice_xml().replace(b"<xh>2</xh>", b"<xh>2</xh><xh>3</xh>"),
        "invalid_field",
        "xh",
    ),
    (
        "attribute",
        "/ajtz",
        _notice_xml().replace(b"<xh>", b'<xh lx="n">'),
        "unknown_field",
        "xh/@lx",
    ),
    (
        "text beside elements",
        "/ajtz",
        _notice_xml().replace(b"<xh>", b"oops<xh>"),
        "invalid_field",
        "tz",
    ),
    ("unknown status code", "/ajtz", _notice_xml(blzt="YSX"), "unknown_status", "blzt"),
    ("numeric status code", "/ajtz", _notice_xml(blzt="30"), "unknown_status", "blzt"),
    ("unknown action", "/ajtz", _notice_xml(czlx="XX"), "unknown_code", "czlx"),
    ("unknown province", "/ajjs", _case_xml(sjd="110000"), "unknown_code", "sjd"),
    ("sequence not a number", "/ajtz", _notice_xml(xh="二"), "invalid_field", "xh"),
    ("time in epoch seconds", "/ajtz", _notice_xml(sj=str(int(T0))), "bad_time", "sj"),
    ("time with separators", "/ajjs", _case_xml(tjsj="2026-03-02 10:00:00"), "bad_time", "tjsj"),
    ("time without seconds", "/ajtz", _notice_xml(sj="202603021000"), "bad_time", "sj"),
    ("impossible date", "/ajtz", _notice_xml(sj="20260230100000"), "bad_time", "sj"),
    ("impossible hour", "/ajtz", _notice_xml(sj="20260302250000"), "bad_time", "sj"),
    ("time before 2000", "/ajtz", _notice_xml(sj="19991231235959"), "bad_time", "sj"),
    (
        "full-width digits",
        "/ajtz",
        _notice_xml(sj="２０２６０３０２１０００００"),
        "bad_time",
        "sj",
    ),
    ("bad deadline", "/ajtz", _notice_xml(qx="20260302"), "bad_time", "qx"),
    (
        "non-UTF-8 body",
        "/ajjs",
        _case_xml(sxbm="江苏").replace("江苏".encode(), "江苏".encode("gbk")),
        "not_utf8",
        "",
    ),
    (
        "declared GBK",
        "/ajjs",
        _case_xml().replace(b'encoding="UTF-8"', b'encoding="GBK"'),
        "not_utf8",
        "",
    ),
    ("extra not JSON", "/ajtz", _notice_xml(kzxx="{oops"), "invalid_field", "kzxx"),
    (
        "nested too deep",
        "/ajtz",
        platforms.nested("jiangsu", platforms.BEYOND_RECURSION)[0],
        "too_deep",
        "",
    ),
    (
        "extra nested too deep",
        "/ajtz",
        _notice_xml(kzxx="[" * platforms.BEYOND_RECURSION + "]" * platforms.BEYOND_RECURSION),
        "invalid_field",
        "kzxx",
    ),
    (
        "extra with a huge number",
        "/ajtz",
        _notice_xml(kzxx='{"n": ' + "9" * 5000 + "}"),
        "invalid_field",
        "kzxx",
    ),
    (
        "bad applicant code",
        "/sq",
        b"",  # filled in by the test from the fixtures
        "invalid_id_number",
        "sqr/zjhm",
    ),
    (
        "bad material digest",
        "/sq",
        b"",  # filled in by the test from the fixtures
        "invalid_digest",
        "cllb/cl[2]/sha256",
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
    """A request that is not good Jiangsu dialect gets 400 and a <cwxx> naming the element,
    and changes nothing in the platform's store."""
    async with jiangsu(tmp_path) as js:
        if not data:
            form = dialect.application_form(application_body(await js.fixtures()))
            if code == "invalid_id_number":
                number = application_body(await js.fixtures())["applicant"]["code"]
                wrong = number[:-1] + ("1" if number[-1] == "0" else "0")
                data = to_xml(form).replace(number.encode(), wrong.encode())
            else:
                data = to_xml(form).replace(b"0f" * 32, b"0F" * 32, 1)
        before = js.platform.store.counts()
        status, reply = await js.post(BASE + path, data)
        assert status == 400, reply
        error = refusal(reply)
        assert (error["cwdm"], error["cwzd"]) == (code, field)
        assert error["cwms"]
        assert js.platform.store.counts() == before


async def test_refusals_never_echo_the_payload(tmp_path: Path) -> None:
    """An entity bomb is refused before expansion: the reply is small and repeats nothing of
    it, and no file named by an external entity is read into it."""
    async with jiangsu(tmp_path) as js:
        for data in (_BILLION_LAUGHS, _EXTERNAL_ENTITY):
            status, reply = await js.post(f"{BASE}/ajjs", data)
            assert status == 400 and len(reply) < 400
            assert b"lol" not in reply and b"root:" not in reply


async def test_platform_refuses_wrong_media_type_and_missing_token(tmp_path: Path) -> None:
    """A body not sent as UTF-8 XML gets 415; a node endpoint without the token gets 401,
    and the adapter without it raises unauthorized."""
    async with jiangsu(tmp_path) as js:
        before = js.platform.store.counts()
        for content_type in ("application/json", "application/xml; charset=gbk"):
            status, reply = await js.post(f"{BASE}/ajjs", _case_xml(), content_type=content_type)
            assert (status, refusal(reply)["cwdm"]) == (415, "unsupported_media_type")
        status, reply = await js.post(f"{BASE}/ajjs", _case_xml(), token=False)
        assert (status, refusal(reply)["cwdm"]) == (401, "unauthorized")
        status, reply = await js.get(f"{BASE}/bjdt", token=False)
        assert (status, refusal(reply)["cwdm"]) == (401, "unauthorized")
        unauthorised = make_adapter(js.url, credentials={})
        with pytest.raises(DialectError) as refused:
            await unauthorised.poll_events(None)
        await unauthorised.close()
        assert refused.value.code == "unauthorized"
        assert js.platform.store.counts() == before


async def test_platform_refuses_bad_paging(tmp_path: Path) -> None:
    """A cursor or page size that is not a small whole number gets 400 naming yb or ts."""
    async with jiangsu(tmp_path) as js:
        for query, field in (("yb=-1", "yb"), ("ts=0", "ts"), ("ts=501", "ts"), ("ts=x", "ts")):
            async with js.session.get(
                f"{js.url}{BASE}/sq?{query}", headers={TOKEN_HEADER: TOKEN}
            ) as response:
                assert response.status == 400
                assert refusal(await response.read())["cwzd"] == field


# --- bad replies to the adapter, from a stub that speaks broken dialect ---------------------


def stub(
    handler: Reply, *, timeout: float = STUB_TIMEOUT
) -> AbstractAsyncContextManager[JiangsuAdapter]:
    return platforms.stub(handler, lambda url: JiangsuAdapter(url, timeout=timeout))


def _xml_reply(data: bytes, status: int = 200) -> web.Response:
    return web.Response(body=data, status=status, content_type="application/xml")


def _good_event(n: int) -> Node:
    return dialect.event_record(f"e{n}", "c", {"action": "accept", "reason": "ok"}, T0)


async def test_untranslatable_records_become_malformed() -> None:
    """A feed record with an unknown code, a bad time, a missing or stray element becomes a
    Malformed in its place, naming the record and the element; the good ones come through."""
    records = [
        _good_event(1),
        edit(_good_event(2), czlx="XX"),
        edit(_good_event(3), sj=str(int(T0))),
        edit(_good_event(4), ajbh=None),
        edit(_good_event(5), dtbh=None),
        edit(_good_event(6), jg=("jg", [("jglx", "WS")])),
        _good_event(7),
        _good_event(8),
    ]
    page = to_xml(("dtlb", [("xyyb", "8"), ("sfyhx", "N"), *records]))
    page = page.replace(
        b"<dtbh>e7</dtbh><ajbh>c</ajbh><czlx>SL</czlx><sj>",
        b'<dtbh>e7</dtbh><ajbh>c</ajbh><czlx>SL</czlx><sj lx="bj">',
    )

    async def feed(request: web.Request) -> web.Response:
        return _xml_reply(page)

    async with stub(feed) as adapter:
        result = await adapter.poll_events(None)
    assert result.cursor == "8"
    kinds = [type(item).__name__ for item in result.items]
    assert kinds == ["PlatformEvent"] + ["Malformed"] * 6 + ["PlatformEvent"]
    malformed = [item for item in result.items if isinstance(item, Malformed)]
    assert [(m.reference, m.code, m.field) for m in malformed] == [
        ("e2", "unknown_code", "dt[2]/czlx"),
        ("e3", "bad_time", "dt[3]/sj"),
        ("e4", "missing_field", "dt[4]/ajbh"),
        ("?", "missing_field", "dt[5]/dtbh"),
        ("e6", "missing_field", "dt[6]/jg/sha256"),
        ("e7", "unknown_field", "dt[7]/sj/@lx"),
    ]


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\xff\xfe<sqlb/>", "not_utf8"),
        (b"<sqlb><xyyb>1</xyyb>", "malformed_body"),
        (b'{"records": []}', "malformed_body"),
        (b"<dtlb><xyyb>1</xyyb><sfyhx>N</sfyhx></dtlb>", "malformed_body"),
        (b"<sqlb><sfyhx>N</sfyhx></sqlb>", "missing_field"),
        (b"<sqlb><xyyb>1</xyyb><sfyhx>maybe</sfyhx></sqlb>", "unknown_code"),
        (b"<sqlb><xyyb>1</xyyb><sfyhx>N</sfyhx><x>1</x></sqlb>", "unknown_field"),
        (_BILLION_LAUGHS.replace(b"tz", b"sqlb"), "forbidden_xml"),
        (_EXTERNAL_ENTITY.replace(b"aj", b"sqlb"), "forbidden_xml"),
    ],
    ids=[
        "non-utf8",
        "malformed",
        "json",
        "wrong root",
        "missing xyyb",
        "bad sfyhx",
        "unknown element",
        "billion laughs",
        "external entity",
    ],
)
async def test_undecodable_replies_raise_dialect_error(body: bytes, code: str) -> None:
    """A reply that is not the dialect at all raises DialectError and yields nothing."""

    async def reply(request: web.Request) -> web.Response:
        return _xml_reply(body)

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.poll_applications(None)
    assert refused.value.code == code


async def test_refusal_outside_the_dialect_is_generic() -> None:
    """A 4xx whose body is not a <cwxx> is a DialectError named by its HTTP status."""

    async def reply(request: web.Request) -> web.Response:
        return web.Response(text="<html>Bad Request</html>", status=400)

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.deliver_case(inbound_case("310000-20260302-00000000000000e0"))
    assert refused.value.code == "http_400"


async def test_receipt_for_another_case_is_refused() -> None:
    """A delivery receipt that names another case is not taken as delivery of this one."""

    async def reply(request: web.Request) -> web.Response:
        return _xml_reply(to_xml(dialect.delivery_receipt("other", duplicate=False)), 201)

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.deliver_case(inbound_case("310000-20260302-00000000000000e2"))
    assert (refused.value.code, refused.value.field) == ("invalid_field", "ajbh")


async def test_unknown_certificate_status_is_refused(tmp_path: Path) -> None:
    """A certificate with a status code outside the table is a DialectError, not a guess."""
    async with jiangsu(tmp_path) as js:
        held = js.platform.store.certificates()[0]
    certificate = to_xml(edit(dialect.certificate_to_dialect(held), zzzt="DX"))

    async def reply(request: web.Request) -> web.Response:
        return _xml_reply(certificate)

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.fetch_certificate(held["certificate_id"])
    assert (refused.value.code, refused.value.field) == ("unknown_status", "zzzt")


async def test_revocation_with_a_valid_status_is_refused() -> None:
    """A status-change list naming a certificate as valid is not the dialect: DialectError."""
    record = dialect.revocation_record(
        {"certificate_id": "x", "status": "revoked", "since": T0, "reason": "lost"}
    )
    listed = to_xml(("ztbglb", [edit(record, zzzt="YX")]))

    async def reply(request: web.Request) -> web.Response:
        return _xml_reply(listed)

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.list_revocations()
    assert (refused.value.code, refused.value.field) == ("unknown_status", "ztbg[1]/zzzt")


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_unavailable(status: int) -> None:
    """A 5xx answer means the platform is unavailable: the node keeps the item and retries."""

    async def reply(request: web.Request) -> web.Response:
        return _xml_reply(to_xml(dialect.error_body("internal", "down")), status)

    async with stub(reply) as adapter:
        with pytest.raises(PlatformUnavailable):
            await adapter.deliver_case(inbound_case("310000-20260302-00000000000000e1"))


async def test_timeout_is_unavailable() -> None:
    """A platform that does not answer within the timeout is unavailable."""
    never = asyncio.Event()

    async def reply(request: web.Request) -> web.Response:
        await never.wait()
        return _xml_reply(b"<sxlb/>")

    async with stub(reply, timeout=0.2) as adapter:
        with pytest.raises(PlatformUnavailable):
            await adapter.list_matters()


async def test_platform_down_is_unavailable(tmp_path: Path) -> None:
    """When the platform's server has stopped, every call raises PlatformUnavailable."""
    async with jiangsu(tmp_path) as js:
        adapter = make_adapter(js.url, credentials={"access_token": TOKEN})
        await adapter.list_matters()
    try:
        with pytest.raises(PlatformUnavailable):
            await adapter.deliver_case(inbound_case("310000-20260302-00000000000000f1"))
        with pytest.raises(PlatformUnavailable):
            await adapter.poll_events(None)
    finally:
        await adapter.close()


# --- the dialect both ways (sans-I/O, property-based) -----------------------------------------

_xml_text = st.text(
    st.characters(
        codec="utf-8",
        exclude_categories=("Cs", "Cc"),
        include_characters="\t\n\r",
        exclude_characters="\ufffe\uffff",
    ),
    min_size=1,
    max_size=30,
)
_instant = st.integers(min_value=946_656_000, max_value=4_102_415_999).map(
    float
)  # 2000-01-01 to 2099-12-31 23:59:59, Beijing time, whole seconds
_materials = platforms.materials(_xml_text)


def _wire(node: Node, root: str) -> Any:
    return read_document(to_xml(node), root)


@settings(max_examples=60, deadline=None)
@given(case=inbound_cases(_instant, _xml_text, names=_xml_text))
def test_inbound_case_round_trips(case: InboundCase) -> None:
    """Every field of an inbound case survives the dialect and back."""
    assert JIANGSU.read_case(_wire(dialect.case_to_dialect(case), "aj")) == case


@settings(max_examples=80, deadline=None)
@given(notice=notices(_instant, _xml_text, extra_values=platforms.NUMBERS | st.text(max_size=5)))
def test_notice_round_trips(notice: CaseNotice) -> None:
    """Every field of an update notice survives the dialect and back."""
    assert JIANGSU.read_notice(_wire(dialect.notice_to_dialect(notice), "tz")) == notice


@settings(max_examples=60, deadline=None)
@given(
    action=st.sampled_from(
        ["accept", "reject", "request_supplement", "supplement", "deny", "withdraw"]
    ),
    reason=st.one_of(st.none(), _xml_text),
    at=_instant,
)
def test_event_round_trips(action: str, reason: str | None, at: float) -> None:
    """An event body survives the dialect and back, also with a result or an evaluation."""
    bodies: list[dict[str, Any]] = [
        {"action": action, **({"reason": reason} if reason else {})},
        {"action": "complete", "result": {"kind": "document", "document_sha256": "a" * 64}},
        {"action": "complete", "result": {"kind": "certificate", "certificate_id": "1.2.3"}},
        {"action": "evaluate", "level": 4, "comment": "快"},
        {"action": "evaluate", "level": 2},
    ]
    for body in bodies:
        record = _wire(dialect.event_record("e", "c", body, at), "dt")
        assert JIANGSU.read_event_record(record) == PlatformEvent("e", "c", body)


@settings(max_examples=40, deadline=None)
@given(
    handler=st.sampled_from(["shanghai", "zhejiang", "anhui"]),
    name=_xml_text,
    materials=_materials,
    submitted=_instant,
    acknowledged=st.one_of(st.none(), _instant),
)
def test_application_record_round_trips(
    handler: str,
    name: str,
    materials: list[dict[str, str]],
    submitted: float,
    acknowledged: float | None,
) -> None:
    """Every field of an application survives the feed record and back."""
    body = {
        "matter_code": "M" * 31,
        "handler": handler,
        "mode": MODES[0],
        "applicant": {"name": name, "code_type": "111", "code": "c"},
        "materials": materials,
    }
    case_id = None if acknowledged is None else "c-1"
    record = dialect.application_record("JSZW1", body, submitted, case_id, acknowledged)
    assert JIANGSU.read_application_record(_wire(record, "sq")) == Application("JSZW1", body)


def test_times_are_beijing_whole_seconds() -> None:
    """Instants are written in Beijing time with the sub-second part dropped, never rounded
    up; dates and birth minutes keep their own formats."""
    assert dialect.to_local(T0) == "20260302100000"
    assert dialect.to_local(T0 + 0.999) == "20260302100000"
    assert dialect.to_local(T0 - 0.5) == "20260302095959"
    assert dialect.to_date("1986-07-01") == "19860701"
    assert dialect.minute_to_local("2024-02-29T23:59") == "20240229235900"
    times: Node = ("r", [("sj", "20260302100000"), ("rq", "19000101"), ("cs", "20240229235900")])
    fields = _wire(times, "r")
    assert dialect.read_time(fields, "sj") == T0
    assert dialect.read_date(fields, "rq") == "1900-01-01"
    assert dialect.read_minute(fields, "cs") == "2024-02-29T23:59"
    with pytest.raises(DialectError) as seconds:
        dialect.read_minute(_wire(("r", [("cs", "20240229235901")]), "r"), "cs")
    assert (seconds.value.code, seconds.value.field) == ("bad_time", "cs")


def test_characters_xml_cannot_carry_are_refused_when_writing() -> None:
    """A value holding a character XML 1.0 cannot carry is refused by name, not mangled."""
    case = InboundCase(
        "c", "shanghai", "M", MODES[0], {"name": "a\x01b", "code_type": "111", "code": "c"},
        [], T0,
    )  # fmt: skip
    with pytest.raises(DialectError) as refused:
        to_xml(dialect.case_to_dialect(case))
    assert (refused.value.code, refused.value.field) == ("invalid_field", "sqr/xm")


def test_engine_fields_map_to_dialect_paths() -> None:
    """The engine's neutral field names become the dialect's element paths in refusals."""
    assert dialect.dialect_field("applicant.code") == "sqr/zjhm"
    assert dialect.dialect_field("materials[0].certificate_id") == "cllb/cl[1]/zzbs"
    assert dialect.dialect_field("materials") == "cllb"
    assert dialect.dialect_field("sequence") == "xh"
    assert dialect.dialect_field("zzbs") == "zzbs"


def test_code_tables_are_complete() -> None:
    """Every face field of every certificate type has its own element, and every revocation
    reason its own code."""
    names = {spec.name for t in TYPES.values() for spec in t.fields}
    assert set(dialect.FACE_ELEMENTS) == names
    assert len(set(dialect.FACE_ELEMENTS.values())) == len(names)
    assert set(dialect.REASON_CODES.values()) == set(REASONS)
    assert len(set(dialect.STATUS_CODES.values())) == len(dialect.STATUS_CODES) == 10


@pytest.mark.parametrize(
    "text", list(platforms.NOT_NUMBERS.values()), ids=list(platforms.NOT_NUMBERS)
)
@pytest.mark.parametrize(("path", "name"), [("/sq", "yb"), ("/bjdt", "ts")])
async def test_platform_paging_is_ascii_digits_only(
    tmp_path: Path, path: str, name: str, text: str
) -> None:
    """A cursor (yb) or page size (ts) in other digits than ASCII, or signed, is a 400 in
    dialect naming it, never a 500, and changes nothing."""
    async with jiangsu(tmp_path) as js:
        before = js.platform.store.counts()
        async with js.session.get(
            f"{js.url}{BASE}{path}", params={name: text}, headers={TOKEN_HEADER: TOKEN}
        ) as response:
            assert response.status == 400
            assert refusal(await response.read())["cwzd"] == name
        assert js.platform.store.counts() == before
