"""The Anhui adapter against a real simulated Anhui platform over loopback HTTP, and against
a stub that answers in broken dialect; the form scheme and the dialect sans-I/O."""

from __future__ import annotations

import asyncio
import json
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.anhui import dialect
from adapters.anhui.adapter import AnhuiAdapter, make_adapter
from adapters.anhui.dialect import ANHUI
from adapters.anhui.form import FormFields, encode_form, parse_form
from adapters.anhui.platform import BASE, FORM_TYPE, LICENSES, TOKEN_HEADER, build_platform
from adapters.registry import dialect as registered
from adapters.simulation.officer import plan_for
from adapters.translation import CERTIFICATE_TYPES
from node.cases.catalog import load_catalog, matter_to_json
from node.cases.exchange import _parse_event
from node.cases.submission import parse_new_case
from node.certificates.library import PlatformLibrary
from node.certificates.model import parse_certificate, to_json
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
from tests.certificate_samples import anhui_area_code_card
from tests.platforms import (
    FEDERATED,
    REFUSAL,
    STUB_TIMEOUT,
    T0,
    Platform,
    Reply,
    inbound_cases,
    mistyped,
    notices,
)

TOKEN = "ah-test-token"
CASE_ID = "320000-20260302-00000000000000d1"
PLATFORM = Platform(
    build_platform,
    credentials={"token": TOKEN},
    adapter=lambda url, clock: make_adapter(url, credentials={"token": TOKEN}),
    token=(TOKEN_HEADER, TOKEN),
    content_type=FORM_TYPE,
)
anhui = PLATFORM.serve
application_body = partial(platforms.application_body, handler="shanghai")
inbound_case = partial(platforms.inbound_case, "anhui", submitted_at=T0 - 30)


# --- round trips against the real platform --------------------------------------------------


async def test_application_round_trip(tmp_path: Path) -> None:
    """An application entered as an Anhui form reaches the node as a valid POST /v1/cases
    body, once, and the acknowledgement and later notices are visible to the applicant."""
    async with anhui(tmp_path) as ah:
        body = application_body(await ah.fixtures())
        form = encode_form(ANHUI.application_form(body))
        status, reply = await ah.post(f"{BASE}/sq/tj", form, token=False)
        assert status == 201, reply
        assert reply["flag"] is True
        reference = reply["result"]["sqbh"]
        assert reference.startswith("WSTB20260302")
        assert reply["result"]["sqsj"] == "2026-03-02 10:00:00"
        assert reply["result"]["bjzt"] == "已提交"

        page = await ah.adapter.poll_applications(None)
        assert page.items == [Application(reference=reference, body=body)]
        case = parse_new_case(page.items[0].body, find_matter=FEDERATED.get, me="anhui")
        assert case.to_json() == body

        again = await ah.adapter.poll_applications(page.cursor)
        assert again.items == []
        assert again.cursor == page.cursor

        case_id = "340000-20260302-0123456789abcdef"
        await ah.adapter.acknowledge(reference, case_id)
        await ah.adapter.acknowledge(reference, case_id)
        with pytest.raises(DialectError) as conflict:
            await ah.adapter.acknowledge(reference, "340000-20260302-ffffffffffffffff")
        assert (conflict.value.code, conflict.value.field) == ("conflict", "bjbh")
        with pytest.raises(DialectError) as missing:
            await ah.adapter.acknowledge("WSTB0", case_id)
        assert missing.value.code == "not_found"

        await ah.adapter.deliver_update(
            CaseNotice(case_id, 2, "deliver", "handling", "delivered", T0 + 60)
        )
        async with ah.session.get(f"{ah.url}{BASE}/sq/xq", params={"sqbh": reference}) as r:
            progress = (await r.json())["result"]
        assert progress["bjbh"] == case_id
        assert progress["bjzt"] == "已送达"
        assert [row["czlx"] for row in progress["jd"]] == ["送达"]
        assert progress["jd"][0]["czsj"] == "2026-03-02 10:01:00"

        rows = (await ah.get(f"{BASE}/sq/lb"))[1]["result"]["rows"]
        assert rows[0]["bjbh"] == case_id
        assert rows[0]["qrsj"] == "2026-03-02 10:00:00"


async def test_refusal_round_trip(tmp_path: Path) -> None:
    """The federation's refusal of an application reaches the platform as a form with its
    Chinese kind label, code, form key and reason, and the applicant sees it (已退回); a
    repeat changes nothing, while another refusal, an acknowledgement after it, a refusal of
    an application that became a case and one of an unknown application number are
    refused."""
    async with anhui(tmp_path) as ah:
        fixtures = await ah.fixtures()
        stored = ah.platform.submit_application(mistyped(application_body(fixtures)), checked=False)
        [item] = (await ah.adapter.poll_applications(None)).items
        assert isinstance(item, Application) and item.reference == stored.reference

        await ah.adapter.reject_application(stored.reference, REFUSAL)
        await ah.adapter.reject_application(stored.reference, REFUSAL)
        progress = ah.platform.application_progress(stored.reference)
        assert progress.status == "refused" and progress.refusal is not None
        assert progress.refusal.refusal == ApplicationRefusal(
            "invalid_id_number", "sqr.zjhm", REFUSAL.reason, in_dialect=True
        )
        assert ah.platform.store.counts()["refusals"] == 1

        async with ah.session.get(
            f"{ah.url}{BASE}/sq/xq", params={"sqbh": stored.reference}
        ) as response:
            shown = (await response.json())["result"]
        assert shown["bjzt"] == "已退回" and "bjbh" not in shown and shown["jd"] == []
        assert shown["th"] == {
            "thlb": "申请人信息有误",
            "thdm": "invalid_id_number",
            "thzd": "sqr.zjhm",
            "thyy": REFUSAL.reason,
            "thsj": "2026-03-02 10:00:00",
        }
        form = {
            "sqbh": stored.reference,
            **ANHUI.refusal_to_dialect(REFUSAL, dialect.dialect_field),
        }
        status, again = await ah.post(f"{BASE}/sq/th", encode_form(form))
        assert (status, again["result"]["sfcf"]) == (200, "是")

        with pytest.raises(DialectError) as other:
            await ah.adapter.reject_application(
                stored.reference, ApplicationRefusal("unknown_matter", "matter_code", "无此事项")
            )
        assert (other.value.code, other.value.field) == ("conflict", "sqbh")
        with pytest.raises(DialectError) as acknowledged:
            await ah.adapter.acknowledge(stored.reference, "340000-20260302-0123456789abcdef")
        assert acknowledged.value.code == "conflict"
        with pytest.raises(DialectError) as missing:
            await ah.adapter.reject_application("WSTB0", REFUSAL)
        assert (missing.value.code, missing.value.field) == ("not_found", "sqbh")

        became = ah.platform.submit_application(application_body(fixtures)).reference
        await ah.adapter.acknowledge(became, "340000-20260302-0123456789abcdef")
        with pytest.raises(DialectError) as answered:
            await ah.adapter.reject_application(became, REFUSAL)
        assert answered.value.code == "conflict"

        unreadable = ah.platform.submit_application(application_body(fixtures)).reference
        own = ApplicationRefusal("unknown_label", "rows[0].blfs", "is not a label", in_dialect=True)
        await ah.adapter.reject_application(unreadable, own)
        held = ah.platform.store.refusal(unreadable)
        assert held is not None and held.refusal == own

        fresh = ah.platform.submit_application(application_body(fixtures)).reference
        wrong = {**form, "sqbh": fresh, "thlb": "其他"}
        status, refused = await ah.post(f"{BASE}/sq/th", encode_form(wrong))
        assert (status, refused["code"], refused["field"]) == (400, "invalid_field", "thlb")
        unknown = {**form, "sqbh": fresh, "thlb": "不知道"}
        status, refused = await ah.post(f"{BASE}/sq/th", encode_form(unknown))
        assert (status, refused["code"], refused["field"]) == (400, "unknown_label", "thlb")
        assert ah.platform.store.counts()["refusals"] == 2


async def test_officer_events_reach_the_node(tmp_path: Path) -> None:
    """The officer's actions on a delivered case come through the adapter as event bodies the
    node accepts, in order, each once."""
    case_id = next(
        f"320000-20260302-{n:016x}"
        for n in range(1000)
        if plan_for(11, f"320000-20260302-{n:016x}").accept
        and not plan_for(11, f"320000-20260302-{n:016x}").supplement
        and plan_for(11, f"320000-20260302-{n:016x}").complete
    )
    async with anhui(tmp_path) as ah:
        await ah.adapter.deliver_case(inbound_case(case_id))
        for _ in range(2):  # accept, then complete, each an officer delay later
            ah.clock.now += 7200
            ah.platform.people.work()

        page = await ah.adapter.poll_events(None)
        events = [item for item in page.items if isinstance(item, PlatformEvent)]
        assert len(events) == len(page.items) == 2
        assert [e.body["action"] for e in events] == ["accept", "complete"]
        assert events[1].body["result"]["kind"] == "document"
        assert all(e.case_id == case_id for e in events)
        for event in events:
            _parse_event(event.body)
        assert len({e.event_id for e in events}) == 2

        rows = (await ah.get(f"{BASE}/bjdt/lb"))[1]["result"]["rows"]
        assert [row["czlx"] for row in rows] == ["受理", "办结"]
        assert rows[1]["jg"]["lx"] == "文书"

        after = await ah.adapter.poll_events(page.cursor)
        assert after.items == []
        assert after.cursor == page.cursor


async def test_deliveries_are_idempotent(tmp_path: Path) -> None:
    """Delivering a case or a notice twice stores it once; a different case or notice under a
    known key is refused as a conflict."""
    async with anhui(tmp_path) as ah:
        case = inbound_case(CASE_ID)
        await ah.adapter.deliver_case(case)
        await ah.adapter.deliver_case(case)
        stored = ah.platform.store.inbound_case(case.case_id)
        assert stored is not None
        assert stored.case == case
        with pytest.raises(DialectError) as conflict:
            await ah.adapter.deliver_case(inbound_case(case.case_id, matter=1))
        assert conflict.value.code == "conflict"

        notice = CaseNotice(
            case.case_id,
            2,
            "accept",
            "handling",
            "accepted",
            T0,
            reason="材料齐全",
            due_at=T0 + 3 * 86400,
            extra={"窗口": "合肥市政务服务中心", "n": [1, 2]},
        )
        await ah.adapter.deliver_update(notice)
        await ah.adapter.deliver_update(notice)
        assert [n.notice for n in ah.platform.store.notices(case.case_id)] == [notice]
        with pytest.raises(DialectError) as other:
            await ah.adapter.deliver_update(
                CaseNotice(case.case_id, 2, "reject", "handling", "rejected", T0, reason="不符合")
            )
        assert (other.value.code, other.value.field) == ("conflict", "xh")
        counts = ah.platform.store.counts()
        assert (counts["inbound_cases"], counts["notices"]) == (1, 1)


async def test_every_certificate_is_fetched_and_parses(tmp_path: Path) -> None:
    """Every certificate of the library comes back through the dialect exactly as the library
    holds it, and a well-formed id the library lacks, with either kind of issuer code, is
    None."""
    async with anhui(tmp_path) as ah:
        library = ah.platform.store.certificates()
        for held in library:
            fetched = await ah.adapter.fetch_certificate(held["certificate_id"])
            assert fetched == held
            parse_certificate(dict(fetched))
        assert {c["status"] for c in library} == {"valid", "suspended", "revoked", "expired"}
        assert {c["type"] for c in library} == set(CERTIFICATE_TYPES.values())
        first = parse_certificate_id(library[0]["certificate_id"])
        for issuer in (first.issuer_code, "340103"):
            unknown = make_certificate_id(first.type_code, issuer, "ZZZ999")
            assert await ah.adapter.fetch_certificate(str(unknown)) is None

        status, reply = await ah.get(f"{LICENSES}/xq", zzbs=library[0]["certificate_id"])
        assert status == 200
        assert reply["result"]["zzlxmc"] == "居民身份证"
        assert reply["result"]["zmxx"]["性别"] in ("男", "女")


async def test_area_code_identifier_is_accepted() -> None:
    """A licence whose identifier carries a six-digit area code as issuer (one Anhui system
    issues them) comes through the adapter as a valid certificate."""
    held = to_json(parse_certificate(anhui_area_code_card()))
    assert parse_certificate_id(held["certificate_id"]).issuer_code_kind == "area_code"

    async def reply(request: web.Request) -> web.Response:
        assert request.query["zzbs"] == held["certificate_id"]
        return web.json_response(dialect.ok_body(ANHUI.certificate_to_dialect(held)))

    async with stub(reply) as adapter:
        assert await adapter.fetch_certificate(held["certificate_id"]) == held


async def test_revocations_feed_the_issuers_list(tmp_path: Path) -> None:
    """The library's revoked and suspended licences reach the node's certificate library as
    revocation entries, with status, whole-second time and reason intact."""
    async with anhui(tmp_path) as ah:
        entries = await PlatformLibrary(ah.adapter).revocations()
        library = ah.platform.store.certificates()
        held = ah.platform.store.revocations()
        rows = (await ah.get(f"{LICENSES}/zxlb"))[1]["result"]["rows"]
    listed = {c["certificate_id"]: c["status"] for c in library if c["status"] in
              ("revoked", "suspended")}  # fmt: skip
    assert {str(e.certificate_id): e.status.value for e in entries} == listed
    assert [e.to_json()["reason"] for e in entries] == [r["reason"] for r in held]
    assert [e.since for e in entries] == [r["since"] for r in held]
    assert {row["zzzt"] for row in rows} == {"注销", "冻结"}
    assert all(row["ztsj"].endswith(" 00:00:00") for row in rows)


async def test_matters(tmp_path: Path) -> None:
    """The platform's matter list comes back in the catalog's JSON form."""
    async with anhui(tmp_path) as ah:
        matters = await ah.adapter.list_matters()
    assert list(matters) == [matter_to_json(m) for m in load_catalog("anhui").matters]


async def test_fixtures_describe_the_library(tmp_path: Path) -> None:
    """GET /sim/fixtures lists Anhui's seeded people, companies and every certificate of the
    library with the id, type, holder and status the adapter then fetches."""
    async with anhui(tmp_path) as ah:
        fixtures = await ah.fixtures()
        assert (fixtures["province"], fixtures["seed"]) == ("anhui", 11)
        assert fixtures["persons"]
        assert fixtures["companies"]
        library = ah.platform.store.certificates()
        assert [c["certificate_id"] for c in fixtures["certificates"]] == [
            c["certificate_id"] for c in library
        ]
        for listed in fixtures["certificates"][:10]:
            fetched = await ah.adapter.fetch_certificate(listed["certificate_id"])
            assert fetched is not None
            assert (fetched["type"], fetched["holder_code"], fetched["status"]) == (
                listed["type"],
                listed["holder_code"],
                listed["status"],
            )
            assert fetched["issuer_province"] == "anhui"


def test_registry_finds_the_anhui_dialect() -> None:
    """adapters.registry hands out this package's build_platform and make_adapter."""
    found = registered("anhui")
    assert found.build_platform is build_platform
    assert found.make_adapter is make_adapter


# --- bad input to the platform: a 400 in dialect, and nothing stored -------------------------


def _notice_form(**changes: str | None) -> bytes:
    base = ANHUI.notice_to_dialect(
        CaseNotice(CASE_ID, 2, "accept", "handling", "accepted", T0, due_at=T0 + 86400)
    )
    base.update(changes)
    return encode_form({k: v for k, v in base.items() if v is not None})


def _case_form(**changes: str | None) -> bytes:
    base = ANHUI.case_to_dialect(inbound_case("320000-20260302-00000000000000d2"))
    base.update(changes)
    return encode_form({k: v for k, v in base.items() if v is not None})


def _gbk(form: bytes) -> bytes:
    """The same form with its Chinese percent-escaped as GBK instead of UTF-8."""
    return urlencode(parse_form_pairs(form), encoding="gbk").encode()


def parse_form_pairs(form: bytes) -> list[tuple[str, str]]:
    return parse_qsl(form.decode(), keep_blank_values=True)


BAD_REQUESTS = [
    ("pair without =", "/bj/js", b"bjbh&sjd=%E6%B1%9F%E8%8B%8F%E7%9C%81", "malformed_body", ""),
    ("empty pair", "/bj/ztgx", _notice_form() + b"&&xh=2", "malformed_body", ""),
    (
        "bad escape",
        "/bj/js",
        _case_form(sxbm="%ZZ").replace(b"%25ZZ", b"%ZZ"),
        "malformed_body",
        "",
    ),
    ("key given twice", "/bj/ztgx", _notice_form() + b"&xh=3", "malformed_body", "xh"),
    ("key outside the grammar", "/bj/ztgx", _notice_form() + b"&Xh=3", "malformed_body", "Xh"),
    ("list with a gap", "/bj/js", _case_form() + b"&cl[7].mc=x", "malformed_body", "cl[3]"),
    ("shape conflict", "/bj/js", _case_form() + b"&sqr=x", "malformed_body", "sqr"),
    ("missing field", "/bj/js", _case_form(bjbh=None), "missing_field", "bjbh"),
    ("empty field", "/bj/ztgx", _notice_form(bjbh=""), "missing_field", "bjbh"),
    (
        "missing nested field",
        "/bj/js",
        _case_form().replace(b"sqr.zjhm", b"sqr.zjhx"),
        "missing_field",
        "sqr.zjhm",
    ),
    ("unknown field", "/bj/ztgx", _notice_form(ys="红"), "unknown_field", "ys"),
    ("unknown status label", "/bj/ztgx", _notice_form(bjzt="已完成"), "unknown_status", "bjzt"),
    ("status as a code", "/bj/ztgx", _notice_form(bjzt="30"), "unknown_status", "bjzt"),
    ("unknown action label", "/bj/ztgx", _notice_form(czlx="审核"), "unknown_label", "czlx"),
    ("unknown province label", "/bj/js", _case_form(sjd="江苏"), "unknown_label", "sjd"),
    ("sequence not a number", "/bj/ztgx", _notice_form(xh="02"), "invalid_field", "xh"),
    (
        "ISO time with T",
        "/bj/ztgx",
        _notice_form(czsj="2026-03-02T10:00:00"),
        "bad_time",
        "czsj",
    ),
    (
        "time with offset",
        "/bj/ztgx",
        _notice_form(czsj="2026-03-02 10:00:00+08:00"),
        "bad_time",
        "czsj",
    ),
    (
        "time with fraction",
        "/bj/js",
        _case_form(tjsj="2026-03-02 10:00:00.5"),
        "bad_time",
        "tjsj",
    ),
    ("one-digit fields", "/bj/js", _case_form(tjsj="2026-3-2 10:00:00"), "bad_time", "tjsj"),
    ("epoch seconds", "/bj/ztgx", _notice_form(czsj="1772416800"), "bad_time", "czsj"),
    ("no such day", "/bj/ztgx", _notice_form(cnsj="2026-02-30 10:00:00"), "bad_time", "cnsj"),
    ("before 2000", "/bj/js", _case_form(tjsj="1999-12-31 23:59:59"), "bad_time", "tjsj"),
    ("GBK percent-escapes", "/bj/js", _gbk(_case_form()), "not_utf8", ""),
    (
        "GBK raw bytes",
        "/bj/js",
        "sqr.xm=王静".encode("gbk") + b"&" + _case_form(),
        "not_utf8",
        "",
    ),
    ("bad extra JSON", "/bj/ztgx", _notice_form(kz="{not json"), "malformed_body", "kz"),
    (
        "extra nested too deep",
        "/bj/ztgx",
        _notice_form(kz="[" * platforms.BEYOND_RECURSION + "]" * platforms.BEYOND_RECURSION),
        "too_deep",
        "kz",
    ),
    (
        "extra with a huge number",
        "/bj/ztgx",
        _notice_form(kz='{"n": ' + "9" * 5000 + "}"),
        "number_too_large",
        "kz",
    ),
    ("bad applicant code", "/sq/tj", b"", "invalid_id_number", "sqr.zjhm"),
]


@pytest.mark.parametrize(
    ("path", "data", "code", "field"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
async def test_platform_refuses_bad_requests(
    tmp_path: Path, path: str, data: bytes, code: str, field: str
) -> None:
    """A request that is not good Anhui dialect gets 400 and a dialect error naming the field,
    and changes nothing in the platform's store."""
    async with anhui(tmp_path) as ah:
        if not data:
            form = ANHUI.application_form(application_body(await ah.fixtures()))
            number = form["sqr"]["zjhm"]
            form["sqr"]["zjhm"] = number[:-1] + ("1" if number[-1] == "0" else "0")
            data = encode_form(form)
        before = ah.platform.store.counts()
        status, reply = await ah.post(BASE + path, data)
        assert status == 400, reply
        assert reply["flag"] is False
        assert reply["code"] == code
        assert reply["field"] == field
        assert reply["message"]
        assert ah.platform.store.counts() == before


async def test_platform_refuses_wrong_media_type_charset_and_missing_token(
    tmp_path: Path,
) -> None:
    """A body not sent as a form gets 415, a form declared GBK 400 not_utf8, and a node
    endpoint without the token 401; none of them stores anything."""
    async with anhui(tmp_path) as ah:
        before = ah.platform.store.counts()
        body = json.dumps(ANHUI.case_to_dialect(inbound_case(CASE_ID))).encode()
        status, reply = await ah.post(f"{BASE}/bj/js", body, content_type="application/json")
        assert (status, reply["code"]) == (415, "unsupported_media_type")
        status, reply = await ah.post(
            f"{BASE}/bj/js", _gbk(_case_form()), content_type=f"{FORM_TYPE}; charset=GBK"
        )
        assert (status, reply["code"], reply["field"]) == (400, "not_utf8", "Content-Type")
        status, reply = await ah.post(f"{BASE}/bj/js", _case_form(), token=False)
        assert (status, reply["code"]) == (401, "unauthorized")
        unauthorised = make_adapter(ah.url, credentials={})
        with pytest.raises(DialectError) as refused:
            await unauthorised.poll_events(None)
        await unauthorised.close()
        assert refused.value.code == "unauthorized"
        assert ah.platform.store.counts() == before


async def test_query_refusals(tmp_path: Path) -> None:
    """A lookup without its key, a bad cursor or a bad limit is a 400 in dialect."""
    async with anhui(tmp_path) as ah:
        status, reply = await ah.get(f"{LICENSES}/xq")
        assert (status, reply["code"], reply["field"]) == (400, "missing_field", "zzbs")
        status, reply = await ah.get(f"{BASE}/sq/lb", cursor="-1")
        assert (status, reply["code"]) == (400, "invalid_cursor")
        status, reply = await ah.get(f"{BASE}/bjdt/lb", limit="0")
        assert (status, reply["code"], reply["field"]) == (400, "invalid_field", "limit")
        status, reply = await ah.get(f"{BASE}/sq/xq", sqbh="WSTB0")
        assert (status, reply["code"], reply["field"]) == (404, "not_found", "sqbh")


# --- bad replies to the adapter, from a stub that speaks broken dialect ---------------------


def stub(
    handler: Reply, *, timeout: float = STUB_TIMEOUT
) -> AbstractAsyncContextManager[AnhuiAdapter]:
    return platforms.stub(handler, lambda url: AnhuiAdapter(url, timeout=timeout))


def _good_event(n: int) -> dict[str, Any]:
    return ANHUI.event_record(f"e{n}", "c", {"action": "accept", "reason": "ok"}, T0)


async def test_untranslatable_rows_become_malformed() -> None:
    """A feed row with an unknown label, a bad time, a number where text belongs or a missing
    field becomes a Malformed in its place, naming the row and the field; the good rows
    around it come through."""
    rows = [
        _good_event(1),
        {**_good_event(2), "czlx": "审批"},
        {**_good_event(3), "czsj": "2026-03-02T10:00:00+08:00"},
        {k: v for k, v in _good_event(4).items() if k != "bjbh"},
        {**_good_event(5), "czsj": 1772416800},
        "not a row",
        _good_event(7),
    ]

    async def feed(request: web.Request) -> web.Response:
        page = {"rows": rows, "nextCursor": "7", "hasMore": False}
        return web.json_response(dialect.ok_body(page))

    async with stub(feed) as adapter:
        page = await adapter.poll_events(None)
    assert page.cursor == "7"
    kinds = [type(item).__name__ for item in page.items]
    assert kinds == ["PlatformEvent"] + ["Malformed"] * 5 + ["PlatformEvent"]
    bad = [item for item in page.items if isinstance(item, Malformed)]
    assert bad[0] == Malformed("e2", "unknown_label", "czlx", bad[0].detail)
    assert [(m.code, m.field) for m in bad[1:4]] == [
        ("bad_time", "czsj"),
        ("missing_field", "bjbh"),
        ("invalid_field", "czsj"),
    ]
    assert bad[4].reference == "?"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"\xff\xfe{}", "not_utf8"),
        (b"{not json", "malformed_body"),
        (b"[]", "malformed_body"),
        (b'{"message": "ok", "result": {}}', "missing_field"),
        (b'{"flag": true, "message": "ok", "result": {"rows": []}}', "missing_field"),
        (
            b'{"flag": true, "message": "ok", "result": {"rows": [], "nextCursor": "1",'
            b' "hasMore": false}, "x": 1}',
            "unknown_field",
        ),
        (b'{"flag": false, "code": "busy", "message": "try later", "field": ""}', "busy"),
    ],
    ids=["non-utf8", "malformed", "array", "no flag", "no nextCursor", "unknown", "flag false"],
)
async def test_undecodable_replies_raise_dialect_error(body: bytes, code: str) -> None:
    """A reply that is not the dialect at all, or a 200 with flag false, raises DialectError
    and yields nothing."""

    async def reply(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.poll_applications(None)
    assert refused.value.code == code


async def test_unknown_certificate_status_is_refused(tmp_path: Path) -> None:
    """A licence with a status label outside the table is a DialectError, not a guess."""
    async with anhui(tmp_path) as ah:
        held = ah.platform.store.certificates()[0]
    licence = {**ANHUI.certificate_to_dialect(held), "zzzt": "正常"}

    async def reply(request: web.Request) -> web.Response:
        return web.json_response(dialect.ok_body(licence))

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.fetch_certificate(held["certificate_id"])
    assert (refused.value.code, refused.value.field) == ("unknown_status", "zzzt")


async def test_revocation_with_a_valid_status_is_refused() -> None:
    """A revocation list naming a licence as valid is not the dialect: DialectError."""
    row = ANHUI.revocation_record(
        {"certificate_id": "x", "status": "revoked", "since": T0, "reason": "lost"}
    )

    async def reply(request: web.Request) -> web.Response:
        return web.json_response(dialect.ok_body({"rows": [{**row, "zzzt": "有效"}]}))

    async with stub(reply) as adapter:
        with pytest.raises(DialectError) as refused:
            await adapter.list_revocations()
    assert (refused.value.code, refused.value.field) == ("unknown_status", "rows[0].zzzt")


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_unavailable(status: int) -> None:
    """A 5xx answer means the platform is unavailable: the node keeps the item and retries."""

    async def reply(request: web.Request) -> web.Response:
        return web.json_response(dialect.error_body("internal", "down"), status=status)

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
    async with anhui(tmp_path) as ah:
        adapter = make_adapter(ah.url, credentials={"token": TOKEN})
        await adapter.list_matters()
    try:
        with pytest.raises(PlatformUnavailable):
            await adapter.deliver_case(inbound_case("320000-20260302-00000000000000f1"))
        with pytest.raises(PlatformUnavailable):
            await adapter.poll_events(None)
    finally:
        await adapter.close()


# --- times ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("local", "utc"),
    [
        ("2026-12-31 23:30:00", datetime(2026, 12, 31, 15, 30, tzinfo=UTC)),
        ("2027-01-01 00:30:00", datetime(2026, 12, 31, 16, 30, tzinfo=UTC)),
        ("2026-01-01 07:59:59", datetime(2025, 12, 31, 23, 59, 59, tzinfo=UTC)),
        ("2026-07-01 12:00:00", datetime(2026, 7, 1, 4, 0, tzinfo=UTC)),  # no summer time
        ("2000-01-01 00:00:00", datetime(1999, 12, 31, 16, 0, tzinfo=UTC)),
    ],
)
def test_local_time_converts_to_epoch_and_back(local: str, utc: datetime) -> None:
    """A Beijing local time on the wire is the epoch second eight hours earlier in UTC, also
    across midnight and a year's end, and formats back to the same text."""
    assert dialect.parse_time(local) == utc.timestamp()
    assert dialect.format_time(utc.timestamp()) == local


def test_times_are_truncated_to_the_second() -> None:
    """The wire has whole seconds: a fraction is dropped, never rounded up into the next
    second."""
    assert dialect.parse_time("2026-12-31 23:30:00") == 1_798_731_000
    assert dialect.format_time(1_798_731_000.999) == "2026-12-31 23:30:00"


@pytest.mark.parametrize(
    "text",
    [
        "2026-12-31T23:30:00",
        "2026-12-31 23:30:00Z",
        "2026-12-31 23:30",
        "2026-12-31 24:00:00",
        "２０２６-12-31 23:30:00",
        " 2026-12-31 23:30:00",
        "2100-01-01 00:00:00",
    ],
)
def test_bad_times_are_refused(text: str) -> None:
    """Anything but yyyy-MM-dd HH:mm:ss in ASCII digits, between 2000 and 2100, is bad_time."""
    with pytest.raises(DialectError) as refused:
        dialect.parse_time(text, field="czsj")
    assert (refused.value.code, refused.value.field) == ("bad_time", "czsj")


# --- the form scheme and the dialect both ways (sans-I/O, property-based) --------------------

_text = platforms.TEXT
_name = st.from_regex(r"[a-z][A-Za-z0-9]{0,6}", fullmatch=True)


def _value(deeper: int) -> st.SearchStrategy[Any]:
    """Values a form can carry with at most ``deeper`` more key segments below this one."""
    texts = st.lists(_text, min_size=1, max_size=2)
    if deeper == 0:
        return st.one_of(_text, texts)
    obj = st.dictionaries(_name, _value(deeper - 1), min_size=1, max_size=2)
    return st.one_of(_text, texts, obj, st.lists(obj, min_size=1, max_size=2))


@settings(max_examples=100, deadline=None)
@given(tree=st.dictionaries(_name, _value(3), min_size=1, max_size=3))
def test_form_round_trips(tree: dict[str, Any]) -> None:
    """Any tree of objects, lists and text (with &, =, +, % and Chinese in it) up to four
    key segments deep survives the form encoding and back."""
    assert parse_form(encode_form(tree)) == tree


def test_form_keys_and_escapes() -> None:
    """The scheme's keys as an integrator writes them, with UTF-8 escapes and + for space."""
    body = b"sqr.xm=%E7%8E%8B+%E9%9D%99&cl[0].mc=a%26b%3Dc&cl[1].mc=x&blfs[0]=%E5%85%A8"
    assert parse_form(body) == {
        "sqr": {"xm": "王 静"},
        "cl": [{"mc": "a&b=c"}, {"mc": "x"}],
        "blfs": ["全"],
    }
    assert parse_form(b"") == {}
    assert parse_form("xm=王静".encode()) == {"xm": "王静"}
    with pytest.raises(DialectError) as deep:
        parse_form(b"a.b.c.d.e=1")
    assert (deep.value.code, deep.value.field) == ("malformed_body", "a.b.c.d.e")


def test_form_fields_refuse_non_text_in_json() -> None:
    """In a JSON reply a number or boolean where text belongs is invalid_field."""
    fields = FormFields({"xh": 3, "ok": True}, "rows[0]")
    with pytest.raises(DialectError) as refused:
        fields.integer("xh")
    assert (refused.value.code, refused.value.field) == ("invalid_field", "rows[0].xh")


_whole_second = st.integers(
    min_value=int(dialect.EARLIEST.timestamp()), max_value=int(dialect.LATEST.timestamp()) - 1
).map(float)


@settings(max_examples=60, deadline=None)
@given(case=inbound_cases(_whole_second))
def test_inbound_case_round_trips(case: InboundCase) -> None:
    """Every field of an inbound case survives the form and back."""
    form = encode_form(ANHUI.case_to_dialect(case))
    assert ANHUI.read_case(FormFields(parse_form(form))) == case


@settings(max_examples=80, deadline=None)
@given(notice=notices(_whole_second))
def test_notice_round_trips(notice: CaseNotice) -> None:
    """Every field of an update notice survives the form, and the JSON of sq/xq, and back."""
    shape = ANHUI.notice_to_dialect(notice)
    assert ANHUI.read_notice(FormFields(parse_form(encode_form(shape)))) == notice
    assert ANHUI.read_notice(FormFields(json.loads(json.dumps(shape)))) == notice


@settings(max_examples=60, deadline=None)
@given(
    action=st.sampled_from(
        ["accept", "reject", "request_supplement", "supplement", "deny", "withdraw"]
    ),
    reason=st.one_of(st.none(), _text),
    at=_whole_second,
)
def test_event_round_trips(action: str, reason: str | None, at: float) -> None:
    """An event body survives the dialect and back, also with a result or an evaluation."""
    bodies: list[dict[str, Any]] = [
        {"action": action, **({"reason": reason} if reason else {})},
        {"action": "complete", "result": {"kind": "document", "document_sha256": "a" * 64}},
        {"action": "complete", "result": {"kind": "certificate", "certificate_id": "x"}},
        {"action": "evaluate", "level": 4, "comment": "快"},
        {"action": "evaluate", "level": 1},
    ]
    for body in bodies:
        record = json.loads(json.dumps(ANHUI.event_record("e", "c", body, at)))
        assert ANHUI.read_event_record(FormFields(record)) == PlatformEvent("e", "c", body)


def test_labels_cover_every_canonical_value() -> None:
    """Each label table maps one to one onto the node's canonical values."""
    from node.cases.lifecycle import Action, Status

    assert sorted(dialect.STATUS_LABELS.values()) == sorted(s.value for s in Status)
    assert sorted(dialect.ACTION_LABELS.values()) == sorted(
        a.value for a in Action if a.value != "submit"
    )
    assert dialect.STATUS_LABELS["办结"] == "completed"
    assert dialect.ACTION_LABELS["补齐"] == "supplement"


@pytest.mark.parametrize(
    "text", list(platforms.NOT_NUMBERS.values()), ids=list(platforms.NOT_NUMBERS)
)
@pytest.mark.parametrize(
    ("path", "name", "code"),
    [("/sq/lb", "cursor", "invalid_cursor"), ("/bjdt/lb", "limit", "invalid_field")],
)
async def test_platform_paging_is_ascii_digits_only(
    tmp_path: Path, path: str, name: str, code: str, text: str
) -> None:
    """A cursor or limit in other digits than ASCII, or signed, is a 400 in dialect naming
    the parameter, never a 500, and changes nothing."""
    async with anhui(tmp_path) as ah:
        before = ah.platform.store.counts()
        status, reply = await ah.get(BASE + path, **{name: text})
        assert (status, reply["code"], reply["field"]) == (400, code, name)
        assert ah.platform.store.counts() == before
